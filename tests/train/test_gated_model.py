"""--model.cell lstm / gru: the model, its initial weights, the config's refusals, and training
with TBPTT, resume, predict and evaluate on gated cells."""

from __future__ import annotations

import json

import pytest
import torch

from rnnscope.cli import main
from rnnscope.errors import UserError
from rnnscope.nn import GRU, LSTM
from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import train
from rnnscope.train.model import SequenceModel, initialize

SMALL = ["--data.samples", "96", "--data.seq_len", "10", "--model.hidden", "6", "--data.batch_size", "16",
         "--train.progress", "false", "--train.log_every", "5", "--train.checkpoint_every", "5"]


def model(*overrides: str, every_step: bool = True) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(3, 2, load_config(None, list(overrides)).model, every_step).double()


@pytest.mark.parametrize("cell, cls", [("lstm", LSTM), ("gru", GRU)])
def test_the_cell_picks_the_module_and_carries_one_state_tensor(cell, cls):
    m = model("--model.cell", cell, "--model.hidden", "5", "--model.layers", "2")
    assert isinstance(m.rnn, cls) and m.rnn.num_layers == 2 and m.rnn.batch_first
    x = torch.randn(4, 8, 3, dtype=torch.float64)
    y_hat, state = m(x)
    assert y_hat.shape == (4, 8, 2)
    assert state.shape == ((4 if cell == "lstm" else 2), 4, 5)  # LSTM: h_n and c_n stacked
    # carrying the state across two halves gives the whole sequence's outputs (what TBPTT relies on)
    first, state = m(x[:, :3])
    second, _ = m(x[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), y_hat, rtol=1e-12, atol=1e-12)


def test_lstm_forget_bias_and_per_gate_init():
    m = model("--model.cell", "lstm", "--model.hidden", "4")
    initialize(m, "orthogonal", 1.0, forget_bias=1.0)
    b_ih, b_hh = m.rnn.bias_ih_l0.detach(), m.rnn.bias_hh_l0.detach()
    assert torch.equal((b_ih + b_hh)[4:8], torch.ones(4, dtype=torch.float64))  # rows of the forget gate
    assert torch.equal(b_ih[:4], torch.zeros(4, dtype=torch.float64))  # the other gates: 0 (not default)
    for W in m.rnn.weight_hh_l0.detach().chunk(4):  # each gate's (H, H) block orthogonal
        torch.testing.assert_close(W @ W.T, torch.eye(4, dtype=torch.float64), atol=1e-12, rtol=0)
    default = model("--model.cell", "lstm", "--model.hidden", "4")
    before = default.rnn.bias_ih_l0.detach().clone()
    initialize(default, "default", 1.0, forget_bias=2.5)  # torch's uniform elsewhere, untouched
    assert torch.equal(default.rnn.bias_ih_l0[4:8].detach(), torch.full((4,), 2.5, dtype=torch.float64))
    assert torch.equal(default.rnn.bias_ih_l0[:4].detach(), before[:4])
    gru = model("--model.cell", "gru")
    b = gru.rnn.bias_ih_l0.detach().clone()
    initialize(gru, "default", 1.0, forget_bias=3.0)  # no forget gate in a GRU
    assert torch.equal(gru.rnn.bias_ih_l0.detach(), b)


@pytest.mark.parametrize("overrides, message", [
    (["--model.init", "identity"], "--model.init identity .* is for --model.cell elman"),
    (["--model.cell", "peephole"], "--model.cell must be one of elman, lstm, gru"),
])
def test_config_refuses_what_gated_cells_cannot_do(overrides, message):
    cell = [] if "--model.cell" in overrides else ["--model.cell", "gru"]
    with pytest.raises(UserError, match=message):
        load_config(None, cell + overrides)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_learns_and_resumes_bitwise_with_tbptt(tmp_path, cell):
    extra = ["--model.cell", cell, "--optim.name", "adam", "--optim.lr", "0.02",
             "--train.tbptt_k1", "5", "--train.tbptt_k2", "5"]
    runs = {name: load_config(None, SMALL + ["--train.run_dir", str(tmp_path / name), *extra, *steps])
            for name, steps in (("whole", ["--train.max_steps", "20"]), ("parts", ["--train.max_steps", "8"]))}
    whole = train(runs["whole"])
    train(runs["parts"])
    train(load_config(None, SMALL + ["--train.run_dir", str(tmp_path / "parts"), *extra,
                                     "--train.max_steps", "20"]), resume=True)
    a, b = (load_checkpoint(tmp_path / name / "checkpoints" / "latest.pt")["model"] for name in ("whole", "parts"))
    assert a.keys() == b.keys() and "rnn.weight_hh_l0" in a
    assert a["rnn.weight_hh_l0"].shape[0] == (4 if cell == "lstm" else 3) * 6
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert whole.val_loss < lines[0]["val_loss"]


def test_predict_and_evaluate_rebuild_the_gated_model(tmp_path, capsys):
    run = tmp_path / "lstm"
    assert main(["train", *SMALL, "--model.cell", "lstm", "--train.max_steps", "6",
                 "--train.run_dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["parts"]["validation"]["loss"] > 0
    assert main(["predict", str(run)]) == 0
    assert "wrote" in capsys.readouterr().out and (run / "predictions.csv").stat().st_size > 0
    assert main(["train", *SMALL, "--model.cell", "gru", "--model.init", "identity"]) == 2
    assert "--model.init identity" in capsys.readouterr().err
