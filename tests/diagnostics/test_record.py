"""Recording during training: one JSON line per call, and training itself left untouched."""

import json

import pytest
import torch
from torch import nn

from rnnscope.diagnostics import read_records, record_step
from rnnscope.errors import UserError
from rnnscope.nn import RNN


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = RNN(2, 8, num_layers=2, nonlinearity="sigmoid", batch_first=True, dropout=0.5)
        self.readout = nn.Linear(8, 1)

    def forward(self, x):
        return self.readout(self.rnn(x)[0])  # (B, T, 1)


def test_record_appends_one_line_and_leaves_training_untouched(tmp_path):
    torch.manual_seed(0)
    model = Seq2Seq().train()
    batch = (torch.randn(40, 12, 2), torch.randn(40, 12, 1))
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    rng = torch.get_rng_state()
    first = record_step(model, batch, 10, tmp_path)
    record_step(model, batch, 20, tmp_path)
    assert torch.equal(torch.get_rng_state(), rng)  # the dropout draws did not move the stream
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    lines = (tmp_path / "diagnostics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["step"] == 10
    records = read_records(tmp_path)
    assert [r["step"] for r in records] == [10, 20]
    assert [layer["layer"] for layer in first["layers"]] == ["layer0", "layer1"]
    layer = records[0]["layers"][0]
    assert layer["batch"] == 16  # only the first samples are traced
    assert len(layer["gradient_flow"]["norms"]) == 12
    for key in ("saturation", "dead", "horizon", "z_histogram"):
        assert key in layer


def test_read_records_skips_a_cut_last_line_and_reports_a_bad_middle_one(tmp_path):
    path = tmp_path / "diagnostics.jsonl"
    path.write_text('{"step": 1, "layers": []}\n{"step": 2, "lay')
    assert [r["step"] for r in read_records(tmp_path)] == [1]
    path.write_text('{"step": 1\n{"step": 2, "layers": []}\n')
    with pytest.raises(UserError, match="line 1"):
        read_records(tmp_path)
    assert read_records(tmp_path / "nowhere") == []


def test_a_model_without_rnnscope_rnn_is_a_user_error(tmp_path):
    model = nn.Sequential(nn.Linear(2, 1))
    with pytest.raises(UserError, match="rnnscope.nn.RNN"):
        record_step(model, (torch.randn(2, 3, 2), torch.randn(2, 3, 1)), 0, tmp_path)
