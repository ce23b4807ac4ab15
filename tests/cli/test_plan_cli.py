"""`rnnscope plan` end to end: table, JSON, plots, and one-line errors."""

import json

import pytest

from rnnscope.cli import main

MODEL = ["--model.hidden", "256", "--model.layers", "2", "--data.seq_len", "100",
         "--model.input_size", "1", "--model.output_size", "1"]


def test_json_has_every_worker_count_and_a_reason(capsys):
    assert main(["plan", *MODEL, "--workers", "8,64", "--link", "100Gbit", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["workers"] for p in out["plans"]] == [8, 64]
    assert out["inputs"]["network"][0]["bandwidth_Bps"] == pytest.approx(12.5e9)
    for plan in out["plans"]:
        assert plan["reason"].startswith(plan["recommended"])
        best = plan["best"][plan["recommended"].split(" ")[0]]
        assert best["step_s"] > 0 and best["layout"]["data"] >= 1


def test_table_marks_the_recommendation(capsys):
    assert main(["plan", *MODEL, "--workers", "16", "--nodes", "2", "--gpus-per-node", "8",
                 "--intra", "900GB/s"]) == 2  # --workers and --nodes together
    assert "not both" in capsys.readouterr().err
    assert main(["plan", *MODEL, "--nodes", "2", "--gpus-per-node", "8",
                 "--intra", "900GB/s"]) == 0
    out = capsys.readouterr().out
    assert "★" in out and "16 workers" in out


def test_plots_are_written(tmp_path, capsys):
    assert main(["plan", *MODEL, "--workers", "4,8", "--plot", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["plan_link_utilization_4.png", "plan_link_utilization_8.png",
                     "plan_step_time.png"]
    assert all((tmp_path / n).stat().st_size > 10_000 for n in names)


@pytest.mark.parametrize("argv, message", [
    (["--link", "400GB"], "--link '400GB' is a size, not a rate"),
    (["--latency", "5 parsecs"], "--latency '5 parsecs' has unknown unit 'parsecs'"),
    (["--latency", "fast"], "--latency 'fast' is not a number with a unit"),
    (["--workers", "8,x"], "--workers '8,x': 'x' is not a whole number"),
    (["--gpus-per-node", "8", "--workers", "12", "--intra", "1TB/s"], "12 is not whole nodes"),
    (["--gpus-per-node", "8", "--workers", "16"], "needs --intra"),
    (["--device", "tpu9"], "--device 'tpu9' is not a preset; choose one of a100"),
    (["--utilization", "2"], "--utilization must be in (0, 1]"),
    (["--calibrations", "3"], "--calibrations needs --calibrate"),
    (["--calibrate", "--calibrations", "0"], "--calibrations must be ≥ 1, got 0"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    assert main(["plan", *MODEL, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_calibrate_measures_this_machine_and_predicts_local_runs(capsys):
    # the default model (one layer: no pipeline to time) with a short sequence
    assert main(["plan", "--calibrate", "--data.seq_len", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    workers = [group["workers"] for group in out["plans"]]
    assert workers == [2, 4]
    compute = out["calibration"]["compute"]
    assert compute["flops_per_s"] > 0 and compute["ddp_overhead_s"] >= 0
    assert compute["chunk_overhead_s"] == 0.0  # one layer: no pipeline
    assert set(out["calibration"]["links"]) >= {"send", "all_reduce", "broadcast"}


def test_clipping_adds_the_norm_all_reduce_to_a_model_split(capsys):
    def best(*extra):
        assert main(["plan", *MODEL, "--workers", "8", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)["plans"][0]["best"]

    plain, clipped = best(), best("--optim.clip", "1")
    tags = {family: [item["tag"] for item in plan["items"]] for family, plan in clipped.items()}
    assert "grad_norm" in tags["hidden_split"] and "grad_norm" not in tags["data"]
    assert clipped["hidden_split"]["step_s"] > plain["hidden_split"]["step_s"]
    assert clipped["data"]["step_s"] == plain["data"]["step_s"]


def test_a_gated_cell_plans_from_the_same_formulas(capsys):
    """--model.cell: G times the gradients and FLOPs, the same h_t for the model splits, more
    memory per worker; the table names the cell."""
    def best(cell):
        assert main(["plan", *MODEL, "--workers", "8,4096", "--json", "--model.cell", cell]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["inputs"]["shape"]["cell"] == cell
        return {family: plan for family, plan in out["plans"][0]["best"].items()}

    elman, lstm, gru = best("elman"), best("lstm"), best("gru")
    assert lstm["data"]["inter_bytes"] > gru["data"]["inter_bytes"] > elman["data"]["inter_bytes"]
    assert lstm["data"]["compute_s"] > gru["data"]["compute_s"] > elman["data"]["compute_s"]
    for family in ("hidden_split", "data×pipeline"):  # the data replicas' gradients aside
        sent = {name: [(i["tag"], i["payload_bytes"], i["count"]) for i in plan[family]["items"]
                       if i["tag"] != "gradients"]
                for name, plan in (("elman", elman), ("lstm", lstm), ("gru", gru))}
        assert sent["lstm"] == sent["gru"] == sent["elman"], family
        assert lstm[family]["memory_bytes"] > elman[family]["memory_bytes"]
    assert main(["plan", *MODEL, "--workers", "8", "--model.cell", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "LSTM I=1 H=256" in out and "memory/worker" in out
