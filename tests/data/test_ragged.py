"""Series of different lengths (data/ragged.py): a series shorter than --data.seq_len gives one
shorter window; its batches run packed, so each window stops at its own last row. The loss of a
padded batch equals that of running every window alone (float64), no padded step reaches a
gradient, and the CLI trains, evaluates and predicts such a file end to end."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnnscope.cli import main
from rnnscope.data import build_dataset
from rnnscope.data.ragged import MIN_STEPS, PaddedWindows, RaggedRows
from rnnscope.errors import UserError
from rnnscope.parallel.data import shard_rows
from rnnscope.train.config import load_config
from rnnscope.train.metrics import loss_fn
from rnnscope.train.model import SequenceModel

L = 8
SIZES = {"long": 40, "mid": 30, "short": 7, "tiny": 6}  # rows; short and tiny hold no window of L


def series_file(path):
    rng = np.random.default_rng(1)
    lines = ["store,v"]
    for store, n in SIZES.items():
        lines += [f"{store},{math.sin(i / 3) + rng.normal(0, 0.1):.4f}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def data_cfg(path, *more):
    return load_config(None, ["--data.csv", str(path), "--data.series_column", "store", "--data.seq_len", str(L),
                              *more]).data


@pytest.mark.parametrize("predict, difference", [("every_step", "0"), ("last_step", "0"), ("last_step", "1")])
def test_a_short_series_gives_one_shorter_window_per_split_padded_past_its_length(tmp_path, predict, difference):
    ds = build_dataset(data_cfg(series_file(tmp_path / "s.csv"), "--data.predict", predict, "--data.difference",
                                difference), seed=0)
    parts = {p.series_id: p for p in ds.series}
    offsets = dict(zip(SIZES, np.cumsum([0] + list(SIZES.values()))))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        assert isinstance(x, RaggedRows) and x.shape[1] == L
        first = x.starts.numpy()
        lengths = x.lengths.numpy()
        for store, n in SIZES.items():
            mine = (first >= offsets[store]) & (first < offsets[store] + n)
            if n < L:  # one shorter window, ending at the split's last origin
                assert mine.sum() == 1 and MIN_STEPS <= lengths[mine][0] < L
                assert first[mine][0] >= offsets[store] + int(difference)  # a differenced first row has no input
            else:
                assert (lengths[mine] == L).all()
        i = int(np.flatnonzero(lengths < L)[0])
        batch = x[[i]]
        assert isinstance(batch, PaddedWindows)
        n, s = int(lengths[i]), int(first[i])
        store = next(k for k in SIZES if offsets[k] <= s < offsets[k] + SIZES[k])
        rows = parts[store].x[s - offsets[store] : s - offsets[store] + n]
        assert torch.equal(batch.x[0, :n], torch.from_numpy(rows)) and (batch.x[0, n:] == 0).all()
        target = y[[i]]
        if predict == "every_step":  # NaN past the window's own length: the loss leaves it out
            assert torch.equal(target[0, :n], torch.from_numpy(parts[store].t[s - offsets[store]:][:n]))
            assert torch.isnan(target[0, n:]).all()
        else:  # the target at the window's own last row
            assert torch.equal(target[0], torch.from_numpy(parts[store].t[s - offsets[store] + n - 1]))


def _model(cell: str, every_step: bool) -> SequenceModel:
    torch.manual_seed(0)
    cfg = SimpleNamespace(cell=cell, layers=2, hidden=5, activation="tanh", time_reduction="sum")
    return SequenceModel(3, 2, cfg, every_step).double()


def _batch(lengths, garbage: float = 0.0):
    """A padded batch (B, L, 3) whose padded steps hold `garbage`; targets NaN past each length."""
    gen = torch.Generator().manual_seed(2)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), L, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(len(lengths), L, 2, generator=gen, dtype=torch.float64)
    pad = torch.arange(L)[None, :] >= lengths[:, None]
    x = torch.where(pad[..., None], torch.full_like(x, garbage), x)
    return x, y.masked_fill(pad[..., None], float("nan")), lengths


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("every_step", [False, True])
def test_the_loss_of_a_packed_batch_is_each_window_run_alone_and_padding_reaches_no_gradient(cell, every_step):
    lengths = [L, 3, 6, 2, L]
    model = _model(cell, every_step)
    x, y, n = _batch(lengths)
    target = y if every_step else y[torch.arange(len(n)), n - 1]  # (B, O): at each window's last row
    loss = loss_fn("regression", model(PaddedWindows(x, n))[0], target)
    grads = torch.autograd.grad(loss, list(model.parameters()))

    # each window alone, unpadded: the pooled squared errors over the same count of targets
    total, count = 0.0, 0
    for b, k in enumerate(lengths):
        y_hat, _ = model(x[b : b + 1, :k])  # a plain (1, k, 3) tensor: the dense engine
        err = (y_hat - (y[b : b + 1, :k] if every_step else target[b : b + 1])) ** 2
        total, count = total + err.sum(), count + err.numel()
    alone = total / count
    alone_grads = torch.autograd.grad(alone, list(model.parameters()))
    assert loss.item() == pytest.approx(alone.item(), rel=1e-12, abs=0)
    for g, a in zip(grads, alone_grads):
        assert torch.allclose(g, a, rtol=0, atol=1e-12)

    # garbage in the padded steps changes nothing, and its gradient is zero
    x_bad, _, _ = _batch(lengths, garbage=1e6)
    x_bad.requires_grad_(True)
    loss_bad = loss_fn("regression", model(PaddedWindows(x_bad, n))[0], target)
    assert loss_bad.item() == loss.item()
    loss_bad.backward()
    pad = torch.arange(L)[None, :] >= n[:, None]
    assert (x_bad.grad[pad] == 0).all() and (x_bad.grad[~pad] != 0).any()


def test_a_padded_batch_is_sliced_like_a_tensor_and_refuses_truncated_bptt():
    x, _, n = _batch([L, 3, 2])
    batch = PaddedWindows(x, n)
    assert batch[:, 0:L] is batch and batch[1:].shape == (2, L, 3) and batch[[2]].lengths.tolist() == [2]
    with pytest.raises(UserError, match=r"--train\.tbptt_k1 cuts them into pieces: set it to 0"):
        batch[:, 0:4]
    x_share, y_share = shard_rows((batch, torch.zeros(3, 1)), rank=2, world_size=3)  # data parallel
    assert x_share.lengths.tolist() == [2] and torch.equal(x_share.x, x[2:])
    with pytest.raises(UserError, match=r"reached torch\.tensor_split.*--parallel\.strategy data"):
        torch.tensor_split(batch, 2)  # how the model-split strategies cut a batch


def test_the_cli_trains_evaluates_and_predicts_series_shorter_than_a_window(tmp_path, capsys):
    path, run = series_file(tmp_path / "s.csv"), tmp_path / "run"
    assert main(["train", "--data.csv", str(path), "--data.series_column", "store", "--data.seq_len", str(L),
                 "--model.hidden", "6", "--model.cell", "gru", "--train.epochs", "2", "--data.batch_size", "8",
                 "--train.run_dir", str(run), "--train.progress", "false"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(m["loss"]) for m in metrics if "loss" in m)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    per = json.loads(capsys.readouterr().out)["series"]
    assert per["short"]["forecasts"] == 1 and per["tiny"]["forecasts"] == 1  # the test split's shorter window
    assert per["long"]["forecasts"] > 1
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    for store in ("short", "tiny"):  # one forecast from all the series' rows: its next row (from 1)
        mine = [r for r in rows if r["store"] == store]
        assert len(mine) == 1 and mine[0]["time"] == str(SIZES[store] + 1) and mine[0]["split"] == "future"
        assert math.isfinite(float(mine[0]["v_predicted"]))
    import pandas as pd  # load_run(...).predict forecasts a short series as predict does

    import rnnscope

    frame = rnnscope.load_run(run).predict(pd.read_csv(path))
    short = frame[frame["store"] == "short"]
    assert len(short) == 1
    assert float(short["v_predicted"].iloc[0]) == pytest.approx(
        float(next(r for r in rows if r["store"] == "short")["v_predicted"]), rel=1e-6)
    # truncated BPTT cannot cut windows of different lengths: one line, exit 2
    assert main(["train", "--data.csv", str(path), "--data.series_column", "store", "--data.seq_len", str(L),
                 "--train.tbptt_k1", "4", "--train.epochs", "1", "--train.run_dir", str(tmp_path / "r2"),
                 "--train.progress", "false"]) == 2
    assert "--train.tbptt_k1 cuts them into pieces" in capsys.readouterr().err
