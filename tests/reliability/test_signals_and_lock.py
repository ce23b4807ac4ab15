"""Signals stop a run cleanly (one line, 130/143, a checkpoint, the --resume command); one run
per run directory, and a dead run's lock never blocks."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from procs import SMALL_DATA, alive, full_only, listening, start, tree, wait_for
from rnnscope.cli import main
from rnnscope.parallel.ledger import read_jsonl
from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import train

LONG = ["--train.epochs", "0", "--train.max_steps", "300", "--train.checkpoint_every", "1000",
        "--train.log_every", "5"]


def logged(run_dir) -> bool:
    path = run_dir / "metrics.jsonl"
    return path.exists() and path.stat().st_size > 0


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")["model"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), full_only(signal.SIGINT, 130)])
def test_a_signal_stops_with_one_line_a_checkpoint_and_a_resume_that_is_exact(tmp_path, sig, code):
    run_dir = tmp_path / "run"
    proc = start(run_dir, *LONG, strategy=None)
    try:
        wait_for(lambda: logged(run_dir), 60, "the first metrics line", proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {signal.Signals(sig).name}" in lines[0], err
    step = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"]
    assert 0 < step < 300 and f"holds step {step}" in lines[0]
    command = lines[0].split("continue with: ")[1]
    assert command == f"rnnscope train --resume {run_dir}"
    assert main(command.split()[1:]) == 0  # the printed command, run in this process
    train(load_config(None, SMALL_DATA + LONG + ["--train.run_dir", str(tmp_path / "whole")]))
    whole, parts = weights(tmp_path / "whole"), weights(run_dir)
    assert all(torch.equal(whole[k], parts[k]) for k in whole)


@pytest.mark.timeout(120)
def test_one_run_per_directory_and_a_killed_runs_lock_never_blocks(tmp_path, capsys):
    run_dir = tmp_path / "run"
    first = start(run_dir, *LONG, "--train.checkpoint_every", "5", strategy=None)
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "latest.pt").exists(), 60, "a checkpoint", first)
        first.send_signal(signal.SIGSTOP)  # still holding the lock, not finishing meanwhile
        for argv in (["--resume", str(run_dir)], ["--train.run_dir", str(run_dir)]):
            assert main(["train", *argv]) == 2
            err = capsys.readouterr().err
            assert f"in use by process {first.pid}" in err and err.count("\n") == 1, err
        first.kill()
        first.wait(timeout=10)
    finally:
        first.kill()
    step = load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"]
    assert main(["train", "--resume", str(run_dir), "--train.max_steps", str(step + 10)]) == 0


@pytest.mark.distributed
@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGTERM, full_only(signal.SIGINT)])
def test_a_signal_to_the_launcher_ends_a_parallel_run_in_one_line(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = start(run_dir, *LONG, "--train.checkpoint_every", "5")
    pids: list[int] = []
    try:
        wait_for(lambda: logged(run_dir), 60, "the first metrics line", proc)
        pids = tree(proc.pid)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=40)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "closing signal" not in err, err  # torchrun's agent, kept for -v
    stopped = [line for line in err.splitlines() if "stopped by" in line]
    assert len(stopped) == 1 and signal.Signals(sig).name in stopped[0], err
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert f"(step {state['step']}); continue with: rnnscope train --resume {run_dir}" in stopped[0]
    assert not [p for p in pids if alive(p)] and not listening(pids)
    # nothing of the ledger is lost: each worker wrote its own rows, the launcher merged them
    rows = read_jsonl(run_dir / "traffic.jsonl")
    assert {r["rank"] for r in rows if r["phase"] == "step"} == {0, 1}
    assert {json.loads(line)["rank"] for line in (run_dir / "compute.jsonl").read_text().splitlines()} == {0, 1}
    assert not list(run_dir.glob("*.rank*.jsonl"))


def test_a_stop_cut_short_inside_a_batch_keeps_the_last_completed_steps_checkpoint(tmp_path, monkeypatch):
    """A stop signal, then the batch fails before it ends (a second signal, or a data-parallel peer
    that left first): the checkpoint of the last completed step, offered and still pending
    (its confirmation was that batch's loss), is written, and the run ends Interrupted."""
    from rnnscope.train import loop
    from rnnscope.train.stop import Interrupted

    real = loop.train_batch

    def batch(run, state, idx):
        if state.step == 5:  # step 5's checkpoint is pending; a signal came, then the batch breaks
            run.stop.signum = signal.SIGTERM
            raise RuntimeError("Connection closed by peer")
        real(run, state, idx)

    monkeypatch.setattr(loop, "train_batch", batch)
    cfg = load_config(None, SMALL_DATA + LONG + ["--train.checkpoint_every", "5",
                                                 "--train.run_dir", str(tmp_path / "run")])
    with pytest.raises(Interrupted, match="stopped by SIGTERM"):
        train(cfg)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["step"] == 5
