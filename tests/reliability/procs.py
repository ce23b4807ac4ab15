"""Helpers for tests that start, signal and inspect real `rnnscope train` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from testing_utils import alive, children, listening, tree, worker_pids  # noqa: F401  (the tests import them from here)

SMALL_DATA = ["--train.progress", "false", "--data.samples", "256", "--data.batch_size", "8",
              "--model.hidden", "8", "--data.seq_len", "10"]


SLOW_CHECKPOINTS = Path(__file__).parent / "slow_checkpoints"  # its sitecustomize.py holds writes open


def start(run_dir: Path | None, *args: str, strategy: str | None = "data", nproc: int = 2,
          cwd: Path | None = None, slow_checkpoints_s: float = 0.0) -> subprocess.Popen:
    """`rnnscope train ...` in the background (its own session, so a test can signal it alone).
    With `slow_checkpoints_s`, every checkpoint write is held open that long before its rename
    (slow_checkpoints/sitecustomize.py), so that a test can catch one in progress."""
    argv = [sys.executable, "-m", "rnnscope", "train", *SMALL_DATA]
    if strategy:
        argv += ["--parallel.strategy", strategy, "--parallel.nproc", str(nproc)]
    if run_dir is not None:
        argv += ["--train.run_dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if slow_checkpoints_s > 0:
        env["RNNSCOPE_TEST_SLOW_CHECKPOINT"] = str(slow_checkpoints_s)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SLOW_CHECKPOINTS), env.get("PYTHONPATH")]))
    return subprocess.Popen([*argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd, start_new_session=True)


def wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `predicate` until true; a process that ends first or a timeout fails the test."""
    end = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}: {err[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


FULL_MATRIX = os.environ.get("RNNSCOPE_FULL_FAULTS") == "1"


def full_only(*values):
    """A pytest.param that runs only in the full fault matrix (RNNSCOPE_FULL_FAULTS=1); the
    default suite keeps a representative subset, fast enough for every run."""
    import pytest

    return pytest.param(*values, marks=pytest.mark.skipif(
        not FULL_MATRIX, reason="full fault matrix only: set RNNSCOPE_FULL_FAULTS=1"))
