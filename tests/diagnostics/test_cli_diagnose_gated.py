"""`rnnscope diagnose` on tiny LSTM and GRU runs: records during training, per-gate verdicts and
plots, and --compare-inits over the forget-gate bias."""

import json

import pytest

from rnnscope.cli import main
from rnnscope.train import load_config, train

TINY = ["--data.samples", "48", "--data.seq_len", "10", "--model.hidden", "6", "--data.batch_size", "16",
        "--train.progress", "false", "--model.layers", "2"]


@pytest.fixture(scope="module", params=["lstm", "gru"])
def run_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / request.param
    train(load_config(None, TINY + ["--model.cell", request.param, "--train.max_steps", "4",
                                    "--diagnostics.every", "2", "--train.run_dir", str(path)]))
    return path


def test_training_records_gated_diagnostics_and_diagnose_reads_them(run_dir, capsys):
    plots = run_dir.name == "lstm"  # matplotlib is slow on a loaded machine: draw for one cell
    assert main(["diagnose", str(run_dir)] + ([] if plots else ["--no-plots"])) == 0
    out = capsys.readouterr().out
    for words in ("gate saturation", "carry gate", "gradient flow", "memory horizon", "Over training"):
        assert words in out, words
    assert ("cell-state error" in out) is plots
    for name in ("gate_usage.png", "state_gradients.png", "gradient_flow.png", "horizon.png") if plots else ():
        assert (run_dir / "diagnose" / name).read_bytes()[:4] == b"\x89PNG", name
    assert main(["diagnose", str(run_dir), "--json", "--no-plots"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in result["records"]] == [2, 4]
    layer = result["records"][0]["layers"][0]
    assert layer["cell"] == run_dir.name and layer["carry"]["gate"] == {"lstm": "f", "gru": "z"}[run_dir.name]
    assert len(layer["gradient_flow"]["norms"]) == 10 and len(result["layers"]) == 2


def test_compare_inits_over_the_forget_bias(run_dir, tmp_path, capsys):
    argv = ["diagnose", "--compare-inits", str(run_dir), "--scales", "1", "--out", str(tmp_path)]
    if run_dir.name == "gru":
        assert main(argv + ["--forget-biases", "1"]) == 2
        assert "--forget-biases is for --model.cell lstm, got --model.cell gru" in capsys.readouterr().err
        return
    assert main(argv + ["--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["init"], r["forget_bias"]) for r in results] == [
        (s, b) for s in ("default", "xavier", "orthogonal") for b in (0.0, 1.0, 3.0)]  # no identity for LSTM
    carry = {r["forget_bias"]: r["layers"][0]["carry"]["mean"] for r in results if r["init"] == "xavier"}
    assert carry[0.0] < carry[1.0] < carry[3.0]  # σ(b_f) at xavier's small weights: ≈ 0.5, 0.73, 0.95
    assert main(argv + ["--forget-biases", "0,2", "--schemes", "default", "--no-plots", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["forget_bias"] for r in results] == [0.0, 2.0]
    assert main(argv + ["--schemes", "identity"]) == 2
    assert "identity (W_hh = I) is for --model.cell elman" in capsys.readouterr().err
