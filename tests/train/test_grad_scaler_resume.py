"""fp16's GradScaler (train/precision.py) is saved in every checkpoint and restored on --resume, so
a resumed run continues from the scale where it stood. fp16 needs CUDA; the plumbing is checked on
the CPU with a CPU GradScaler standing in for CUDA's (the same state_dict)."""

from __future__ import annotations

import pytest
import torch

from rnnscope.train import loop
from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import train
from rnnscope.train.precision import Precision

SMALL = ["--data.samples", "120", "--data.seq_len", "12", "--model.hidden", "8", "--data.batch_size", "16",
         "--train.progress", "false", "--train.log_every", "5", "--train.checkpoint_every", "5"]


class ScaledOnCpu(Precision):
    """fp32 with a CPU GradScaler whose scale doubles every step (growth_interval 1)."""

    def __init__(self, name, device) -> None:
        super().__init__(name, device)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1)


def test_precision_state_round_trips_and_is_none_without_a_scaler():
    assert Precision("fp32", torch.device("cpu")).state_dict() is None
    Precision("bf16", torch.device("cpu")).load_state_dict({"scale": 8.0})  # no scaler: nothing to load
    a = ScaledOnCpu("fp32", torch.device("cpu"))
    a.scaler.load_state_dict({**a.scaler.state_dict(), "scale": 2.0**9, "_growth_tracker": 3})
    b = ScaledOnCpu("fp32", torch.device("cpu"))
    b.load_state_dict(a.state_dict())
    assert b.scaler.get_scale() == 2.0**9 and b.state_dict() == a.state_dict()
    b.load_state_dict(None)  # a checkpoint from before the scaler was saved: the scaler's start
    assert b.scaler.get_scale() == 2.0**9


def test_a_resumed_run_continues_from_the_checkpoints_scale(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "Precision", ScaledOnCpu)

    def cfg(name, steps):
        return load_config(None, SMALL + ["--train.run_dir", str(tmp_path / name), "--train.max_steps", str(steps)])

    train(cfg("whole", 12))
    train(cfg("parts", 5))
    stopped = load_checkpoint(tmp_path / "parts" / "checkpoints" / "latest.pt")
    assert stopped["step"] == 5 and stopped["grad_scaler"]["scale"] == 2.0 ** (4 + 5)  # doubled each step
    train(cfg("parts", 12), resume=True)
    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    parts = load_checkpoint(tmp_path / "parts" / "checkpoints" / "latest.pt")
    assert parts["grad_scaler"] == whole["grad_scaler"] and whole["grad_scaler"]["scale"] == 2.0 ** (4 + 12)
    assert all(torch.equal(whole["model"][k], parts["model"][k]) for k in whole["model"])


def test_a_run_without_a_scaler_checkpoints_none_and_resumes(tmp_path):
    cfg = load_config(None, SMALL + ["--train.run_dir", str(tmp_path / "r"), "--train.max_steps", "5"])
    train(cfg)
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "latest.pt")["grad_scaler"] is None
    cfg = load_config(None, SMALL + ["--train.run_dir", str(tmp_path / "r"), "--train.max_steps", "7"])
    assert train(cfg, resume=True).steps == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 trains on CUDA only")
def test_fp16_on_cuda_checkpoints_its_scaler(tmp_path):
    cfg = load_config(None, SMALL + ["--train.run_dir", str(tmp_path / "r"), "--train.max_steps", "5",
                                     "--train.device", "cuda", "--train.precision", "fp16"])
    train(cfg)
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "latest.pt")["grad_scaler"]["scale"] > 0
