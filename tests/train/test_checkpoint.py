"""Checkpoints: atomic writes, the safe unpickler, RNG states that come back exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rnnscope.errors import UserError
from rnnscope.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "step": 7, "config": {"a": {"b": [1, "x"]}},
             "rng": rng_state(), "best_val": float("inf"), "normalization": None}
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint(path, state)
    back = load_checkpoint(path)  # torch.load(weights_only=True) inside
    assert back["step"] == 7 and torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["config"] == {"a": {"b": [1, "x"]}}
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temporary file left


def test_replace_is_atomic_an_old_file_is_never_half_overwritten(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"step": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # and the half-written one is gone


def test_rng_states_come_back():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    saved = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    set_rng_state(saved)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_missing_broken_and_foreign_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(tmp_path / "broken.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not an rnnscope checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_unsafe_pickles_are_refused(tmp_path):
    torch.save({"format": 1, "thing": object()}, tmp_path / "unsafe.pt")
    with pytest.raises(UserError, match="cannot be read") as info:
        load_checkpoint(tmp_path / "unsafe.pt")
    assert "\n" not in str(info.value) and "load object," in str(info.value)
