"""`rnnscope diagnose` end to end on a tiny real run: verdicts, JSON, plots, --compare-inits."""

import json

import pytest

from rnnscope.cli import main
from rnnscope.train import load_config, train

TINY = ["--data.samples", "48", "--data.seq_len", "12", "--model.hidden", "8", "--data.batch_size", "16",
        "--train.progress", "false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny"
    train(load_config(None, TINY + ["--train.max_steps", "6", "--diagnostics.every", "2",
                                    "--train.run_dir", str(path)]))
    return path


def test_diagnose_prints_verdicts_and_writes_the_plots(run_dir, capsys):
    assert main(["diagnose", str(run_dir)]) == 0
    out = capsys.readouterr().out
    for words in ("saturation", "dead neurons", "gradient flow", "memory horizon", "Over training"):
        assert words in out, words
    for name in ("activation_usage.png", "gradient_flow.png", "horizon.png"):
        png = run_dir / "diagnose" / name
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_diagnose_json_has_the_training_records(run_dir, capsys):
    assert main(["diagnose", str(run_dir), "--json", "--no-plots"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in result["records"]] == [2, 4, 6]
    assert result["step"] == 6 and result["plots"] == []
    (layer,) = result["layers"]
    assert layer["steps"] == 12 and layer["hidden"] == 8


def test_compare_inits_side_by_side(run_dir, tmp_path, capsys):
    argv = ["diagnose", "--compare-inits", str(run_dir), "--schemes", "default,identity", "--scales", "1,10",
            "--out", str(tmp_path)]
    assert main(argv + ["--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["init"], r["scale"]) for r in results] == [("default", 1), ("default", 10), ("identity", 1),
                                                          ("identity", 10)]
    saturated = {(r["init"], r["scale"]): r["layers"][0]["saturation"]["saturated_fraction"] for r in results}
    assert saturated[("default", 10)] > saturated[("default", 1)]
    assert (tmp_path / "compare_inits_horizon.png").exists()
    assert main(["diagnose", "--compare-inits", "--no-plots", "--scales", "1"] + TINY[:6]) == 0
    assert "At initialization" in capsys.readouterr().out


@pytest.mark.parametrize("argv,words", [
    (["diagnose"], "RUN_DIR"),
    (["diagnose", "/nonexistent/run"], "does not exist"),
    (["diagnose", "--compare-inits", "--schemes", "he"], "he"),
    (["diagnose", "--compare-inits", "--scales", "0"], "--scales"),
    (["diagnose", "--epsilon", "2", "x"], "--epsilon"),
])
def test_mistakes_exit_2_with_one_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_overrides_without_compare_inits_are_refused(run_dir, capsys):
    assert main(["diagnose", str(run_dir), "--model.hidden", "4"]) == 2
    assert "--compare-inits" in capsys.readouterr().err


def test_recording_does_not_change_training(run_dir, tmp_path):
    import torch

    plain = tmp_path / "plain"
    train(load_config(None, TINY + ["--train.max_steps", "6", "--train.run_dir", str(plain)]))
    recorded = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["model"]
    baseline = torch.load(plain / "checkpoints" / "latest.pt", weights_only=True)["model"]
    assert recorded.keys() == baseline.keys()
    assert all(torch.equal(recorded[k], baseline[k]) for k in baseline)
    assert not (plain / "diagnostics.jsonl").exists()


def test_without_a_checkpoint_the_last_record_is_diagnosed(run_dir, tmp_path, capsys):
    (tmp_path / "diagnostics.jsonl").write_bytes((run_dir / "diagnostics.jsonl").read_bytes())
    assert main(["diagnose", str(tmp_path), "--no-plots"]) == 0
    assert "diagnostics.jsonl, step 6 (no checkpoint yet)" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["diagnose", str(empty)]) == 2
    assert "neither" in capsys.readouterr().err
