"""Exact resume after SIGKILL: a real `rnnscope train` process is killed in the middle of training,
resumed with --resume, and its final weights equal an uninterrupted run's bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rnnscope.cli import main
from rnnscope.train.checkpoint import load_checkpoint

ARGS = ["--data.samples", "200", "--data.seq_len", "10", "--model.hidden", "8", "--data.batch_size", "8",
        "--optim.name", "momentum", "--optim.lr", "0.05", "--train.epochs", "0", "--train.max_steps", "500",
        "--train.checkpoint_every", "20", "--train.log_every", "50", "--train.progress", "false"]


def weights(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return {**state["model"], **{f"opt{k}": v["momentum_buffer"] for k, v in state["optimizer"]["state"].items()}}


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "rnnscope", "train", *ARGS, "--train.run_dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = killed / "checkpoints" / "latest.pt"
    try:
        deadline = time.monotonic() + 120
        while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        # the first checkpoint (step 20 of 500) is there: the run is now past it, in a step or
        # in the next checkpoint's write, and far from its end even on a fast machine
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    stopped_at = load_checkpoint(latest)["step"]
    assert 0 < stopped_at < 500, "the run must be killed in the middle of training"

    assert main(["train", "--resume", str(killed)]) == 0
    whole = tmp_path / "whole"
    assert main(["train", *ARGS, "--train.run_dir", str(whole)]) == 0

    resumed, uninterrupted = weights(killed), weights(whole)
    assert load_checkpoint(killed / "checkpoints" / "latest.pt")["step"] == 500
    assert resumed.keys() == uninterrupted.keys() and len(resumed) > 4
    for name in uninterrupted:
        assert torch.equal(resumed[name], uninterrupted[name]), name
