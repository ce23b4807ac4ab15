"""Launching through torch.distributed.run: refusals, the command line, and worker failures."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnscope.errors import UserError
from rnnscope.parallel.launch import check_launch, describe_failure, torchrun_args
from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config


def test_a_batch_that_does_not_split_is_refused_with_the_arithmetic():
    cfg = load_config(None, ["--parallel.strategy", "data", "--parallel.nproc", "4",
                             "--data.batch_size", "30"])
    with pytest.raises(UserError, match=r"30 does not split over --parallel.nproc 4 workers "
                                        r"\(30 / 4 = 7.50\).*28 or 32"):
        check_launch(cfg)


def test_torchrun_command_stays_on_loopback_and_pins_the_run_directory():
    cfg = load_config(None, ["--parallel.strategy", "data", "--parallel.nproc", "3",
                             "--parallel.max_restarts", "2"])
    args = torchrun_args(cfg, ["train", "--parallel.nproc", "3"], Path("runs/x"))
    assert args[args.index("--rdzv-endpoint") + 1] == "127.0.0.1:0"
    assert args[args.index("--local-addr") + 1] == "127.0.0.1"
    assert args[args.index("--nproc-per-node") + 1] == "3"
    assert args[args.index("--max-restarts") + 1] == "2"
    assert args[args.index("-m"):] == ["-m", "rnnscope", "train", "--parallel.nproc", "3",
                                       "--train.run_dir", "runs/x"]
    resumed = torchrun_args(cfg, ["train", "--resume", "runs/y"], Path("runs/y"))
    assert "--train.run_dir" not in resumed


def test_describe_failure_names_the_worker_the_signal_and_the_checkpoint(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    killed = ProcessFailure(local_rank=1, pid=4242, exitcode=-9, error_file="")
    stopped = ProcessFailure(local_rank=0, pid=4241, exitcode=-15, error_file="")
    stopped.timestamp = killed.timestamp
    text = describe_failure(ChildFailedError("rnnscope", {0: stopped, 1: killed}), tmp_path, 0)
    assert "failed: worker rank 1 (pid 4242) was killed by SIGKILL" in text
    assert "then rank 0 was killed by SIGTERM" in text
    assert "no checkpoint was written" in text
    # the survivor that aborted when its peer's connection was reset is a consequence, too
    aborted = ProcessFailure(local_rank=0, pid=4241, exitcode=-6, error_file="")
    aborted.timestamp = killed.timestamp
    text = describe_failure(ChildFailedError("rnnscope", {0: aborted, 1: killed}), tmp_path, 0)
    assert "failed: worker rank 1 (pid 4242) was killed by SIGKILL" in text
    # and so is the survivor that said its one line about the dead peer and exited with status 1
    reported = ProcessFailure(local_rank=0, pid=4241, exitcode=1, error_file="")
    reported.timestamp = killed.timestamp
    text = describe_failure(ChildFailedError("rnnscope", {0: reported, 1: killed}), tmp_path, 0)
    assert "failed: worker rank 1 (pid 4242) was killed by SIGKILL" in text


# -- real runs through `rnnscope train` ------------------------------------------------------

def start_training(run_dir: Path, *extra: str) -> subprocess.Popen:
    """`rnnscope train --parallel.strategy data --parallel.nproc 2 ...` in the background."""
    argv = [sys.executable, "-m", "rnnscope", "train", "--parallel.strategy", "data",
            "--parallel.nproc", "2", "--train.run_dir",
            str(run_dir), "--train.progress", "false", "--train.checkpoint_every", "5",
            "--train.log_every", "5", "--data.samples", "256", "--data.batch_size", "8", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def worker_pids(launcher: int) -> dict[int, int]:
    """rank -> pid of the launcher's worker processes (its children with RANK set)."""
    pids = {}
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            ranks = [e[5:] for e in env if e.startswith(b"RANK=")]
            if ranks:
                pids[int(ranks[0])] = int(pid)
    return pids


def kill_worker_after_first_checkpoint(proc: subprocess.Popen, run_dir: Path, rank: int,
                                       deadline_s: float = 90) -> None:
    """Wait for checkpoints/latest.pt, then SIGKILL the worker of `rank`."""
    latest = run_dir / "checkpoints" / "latest.pt"
    end = time.monotonic() + deadline_s
    while not latest.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(worker_pids(proc.pid)[rank], signal.SIGKILL)


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_a_killed_worker_stops_the_run_with_a_clear_error_and_an_intact_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir, "--train.max_steps", "1000000")
    try:
        kill_worker_after_first_checkpoint(proc, run_dir, rank=1)
        _, stderr = proc.communicate(timeout=60)  # a hang is a failure
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr[-2000:]
    assert "worker rank 1" in stderr and "SIGKILL" in stderr, stderr[-2000:]
    assert f"the last checkpoint is {run_dir / 'checkpoints' / 'latest.pt'}" in stderr
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")  # intact and readable
    assert state["step"] >= 5


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_max_restarts_resumes_from_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir, "--train.max_steps", "60", "--parallel.max_restarts", "1")
    try:
        kill_worker_after_first_checkpoint(proc, run_dir, rank=0)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # a fresh start in the same run directory would have been refused: this run resumed
    assert proc.returncode == 0, stderr[-3000:]
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"] == 60
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 60
    assert (run_dir / "traffic.jsonl").exists() and "dp-grad" in stdout
