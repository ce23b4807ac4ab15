"""Launching through torch.distributed.run: refusals, the command line, and worker failures."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testing_utils import alive, listening_inodes, socket_inodes, tree, worker_pids

from rnnscope.errors import UserError
from rnnscope.parallel.launch import (FAILURE_GRACE_S, SHUTDOWN_GRACE_S, check_launch,
                                      describe_failure, is_stopped, short_shutdown, torchrun_args)
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
    agent = torchrun_args(cfg, ["train"], Path("runs/x"), Path("/tmp/agent"))
    assert agent[agent.index("--log-dir") + 1] == "/tmp/agent" and "--log-dir" not in args


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


def test_describe_failure_names_a_stopped_worker_first_even_when_its_peer_ended_earlier(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    survivor = ProcessFailure(local_rank=0, pid=4241, exitcode=1, error_file="")  # timed out
    hung = ProcessFailure(local_rank=1, pid=4242, exitcode=-15, error_file="")
    hung.timestamp = survivor.timestamp + 1  # the launcher ended it after its peer gave up
    failed = ChildFailedError("rnnscope", {0: survivor, 1: hung})
    text = describe_failure(failed, tmp_path, 0, hung={4242}, timeout_s=8)
    assert text.startswith("distributed training failed: worker rank 1 (pid 4242) was stopped "
                           "(hung) and did not answer within --parallel.timeout_s 8"), text
    assert "then rank 0 exited with status 1" in text
    # without the launcher's word on who was stopped, the first to end is named
    assert "worker rank 0 (pid 4241) exited with status 1" in describe_failure(failed, tmp_path, 0)


def test_is_stopped_sees_sigstop_and_sigcont():
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not is_stopped(child.pid)
        os.kill(child.pid, signal.SIGSTOP)
        end = time.monotonic() + 10
        while not is_stopped(child.pid):
            assert time.monotonic() < end, "the child never showed as stopped"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGCONT)
        while is_stopped(child.pid):
            assert time.monotonic() < end, "the child never showed as running again"
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert not is_stopped(child.pid)  # gone


class _FakeContext:
    """What PContext.close touches: the pids, _close, and the log plumbing."""

    def __init__(self, pids):
        self._pids, self._tail_logs, self.filtered_stdout, self.filtered_stderr = pids, [], None, None
        self.closed_with = []

    def pids(self):
        return self._pids

    def _close(self, death_sig, timeout):
        self.closed_with.append((death_sig, timeout))


def test_short_shutdown_continues_stopped_workers_and_gives_a_failed_run_one_second():
    from torch.distributed.elastic.multiprocessing.api import PContext

    child = subprocess.Popen(["sleep", "30"])
    try:
        os.kill(child.pid, signal.SIGSTOP)
        end = time.monotonic() + 10
        while not is_stopped(child.pid):
            assert time.monotonic() < end
            time.sleep(0.01)
        fake = _FakeContext({0: child.pid})
        with short_shutdown(SHUTDOWN_GRACE_S) as hung:
            PContext.close(fake, None, 30)  # a worker failed: the context closes itself
            PContext.close(fake, signal.SIGTERM, 30)  # the launcher was signalled
        assert fake.closed_with == [(signal.SIGTERM, FAILURE_GRACE_S),
                                    (signal.SIGTERM, SHUTDOWN_GRACE_S)]
        assert hung == {child.pid}
        assert not is_stopped(child.pid)  # continued, so that it can act on the signal
    finally:
        child.kill()
        child.wait()
    assert PContext.close.__name__ == "close" and PContext.close.__qualname__ == "PContext.close"


# -- real runs through `rnnscope train` ------------------------------------------------------

def start_training(run_dir: Path, *extra: str, tmp: Path | None = None) -> subprocess.Popen:
    """`rnnscope train --parallel.strategy data --parallel.nproc 2 ...` in the background
    (with TMPDIR=`tmp` when given, to see what the run leaves in its temporary directory)."""
    argv = [sys.executable, "-m", "rnnscope", "train", "--parallel.strategy", "data",
            "--parallel.nproc", "2", "--train.run_dir",
            str(run_dir), "--train.progress", "false", "--train.checkpoint_every", "5",
            "--train.log_every", "5", "--data.samples", "256", "--data.batch_size", "8", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"TMPDIR": str(tmp)} if tmp else {})}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


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
    run_dir, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    proc = start_training(run_dir, "--train.max_steps", "1000000", tmp=tmp)
    try:
        kill_worker_after_first_checkpoint(proc, run_dir, rank=1)
        _, stderr = proc.communicate(timeout=60)  # a hang is a failure
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr[-2000:]
    assert "worker rank 1" in stderr and "SIGKILL" in stderr, stderr[-2000:]
    assert "of binary" not in stderr, stderr[-2000:]  # torchrun's agent's own line, kept for -v
    assert f"the last checkpoint is {run_dir / 'checkpoints' / 'latest.pt'}" in stderr
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")  # intact and readable
    assert state["step"] >= 5
    assert not list(tmp.iterdir())  # torchrun's agent files went with the launch (no torchelastic_*)


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_max_restarts_resumes_from_the_last_checkpoint(tmp_path):
    run_dir, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    proc = start_training(run_dir, "--train.max_steps", "60", "--parallel.max_restarts", "1", tmp=tmp)
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
    assert "leaked" not in stderr, stderr[-2000:]  # triton's bindings, where installed, stay quiet at exit
    assert not list(tmp.iterdir())  # torchrun's agent files went with the launch (no torchelastic_*)


# The run must end within --parallel.timeout_s of the stop. The slack is what the clock here
# cannot attribute to the run: the step in flight when the worker stops (the survivor's
# collective, whose timer is what expires, may start up to one step later: milliseconds here),
# this test's 20 ms polling, and the scheduling delay of a loaded 2-core box in reading the
# launcher's exit. One second covers them; the whole teardown must fit the reserve
# (parallel/context.py: collective_timeout), not this slack.
STOP_TIMEOUT_S = 10
STOP_SLACK_S = 1.0


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_a_stopped_worker_ends_the_run_within_timeout_s_leaving_no_process_or_port(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_training(run_dir, "--train.max_steps", "1000000",
                          "--parallel.timeout_s", str(STOP_TIMEOUT_S))
    pids: list[int] = []
    try:
        latest = run_dir / "checkpoints" / "latest.pt"
        end = time.monotonic() + 90
        while not latest.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "no checkpoint appeared"
            time.sleep(0.02)
        pids = tree(proc.pid)
        listening = socket_inodes(pids) & listening_inodes()
        assert listening, "the run's stores should be listening while it trains"
        worker = worker_pids(proc.pid)[1]
        os.kill(worker, signal.SIGSTOP)
        stopped_at = time.monotonic()
        while proc.poll() is None and time.monotonic() < stopped_at + 60:  # a hang is a failure
            time.sleep(0.02)
        took = time.monotonic() - stopped_at
        _, stderr = proc.communicate(timeout=30)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 1, stderr[-3000:]
    assert took <= STOP_TIMEOUT_S + STOP_SLACK_S, (
        f"the run ended {took:.1f} s after the stop, past --parallel.timeout_s "
        f"{STOP_TIMEOUT_S} (+{STOP_SLACK_S} s slack)")
    assert not [p for p in pids if alive(p)], "a process of the run outlived it"
    assert not listening & listening_inodes(), "a socket of the run still listens"
    lines = [line for line in stderr.splitlines() if line.startswith("rnnscope train: error:")]
    assert len(lines) == 1 and f"worker rank 1 (pid {worker}) was stopped (hung)" in lines[0], stderr
    assert "Traceback" not in stderr and "leaked" not in stderr
    load_checkpoint(latest)  # the last checkpoint is whole


def test_agent_directories_of_launchers_that_are_gone_are_removed(tmp_path, monkeypatch):
    """A launcher killed with SIGKILL leaves its torchrun agent directory behind; the next launch
    removes it (its pid is gone), and leaves those of launchers still running alone."""
    import tempfile

    from rnnscope.parallel.launch import agent_directory

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"rnnscope-torchrun-{gone.pid}-abc"
    (stale / "none_x" / "attempt_0" / "0").mkdir(parents=True)
    running = tmp_path / f"rnnscope-torchrun-{os.getppid()}-def"
    running.mkdir()
    unrelated = tmp_path / "rnnscope-torchrun-notapid"
    unrelated.mkdir()
    with agent_directory() as mine:
        assert Path(mine).name.startswith(f"rnnscope-torchrun-{os.getpid()}-")
        assert not stale.exists() and running.exists() and unrelated.exists()
    assert not Path(mine).exists()
