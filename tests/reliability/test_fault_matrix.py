"""The fault matrix: kill a run at any write of its files, or fault a parallel run's processes
at each phase; the run ends within its timeout, leaves no process or listening port, its last
checkpoint loads, and a resume ends bitwise equal to an uninterrupted run.

The default suite runs a representative subset (well under a minute on a loaded 2-core box);
RNNSCOPE_FULL_FAULTS=1 runs every cell. docs/reliability.md lists which cell holds what.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from procs import FULL_MATRIX, SMALL_DATA, alive, full_only, listening, start, tree, wait_for, worker_pids
from rnnscope.cli import main
from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import train

RUN = ["--train.epochs", "0", "--train.max_steps", "30", "--train.checkpoint_every", "10",
       "--train.log_every", "10", "--optim.name", "momentum", "--optim.lr", "0.05"]

# the child dies (os._exit, as under SIGKILL) at its n-th atomic rename or n-th metrics append;
# a run of RUN renames config.toml (1), best.pt and latest.pt after steps 10, 20 (2-5) and at
# the end (6, 7), and appends metrics at steps 10, 20, 30
CHILD = textwrap.dedent("""
    import os, sys
    n, kind = int(sys.argv[1]), sys.argv[2]
    count = [0]
    if kind == "rename":
        real_replace = os.replace
        def replace(src, dst):
            count[0] += 1
            if count[0] == n:
                os._exit(137)
            return real_replace(src, dst)
        os.replace = replace
    else:
        from rnnscope.train import metrics
        real_write = metrics.MetricsLog.write
        def write(self, record):
            count[0] += 1
            if count[0] == n:
                with self.path.open("a") as f:
                    f.write('{"step": ')  # half a line, then the kill
                os._exit(137)
            return real_write(self, record)
        metrics.MetricsLog.write = write
    from rnnscope.cli import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    train(load_config(None, SMALL_DATA + RUN + ["--train.run_dir", str(run_dir)]))
    return run_dir


def final_state(run_dir) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    momentum = {f"m{k}": v["momentum_buffer"] for k, v in state["optimizer"]["state"].items()}
    return {**state["model"], **momentum}


def steps_logged(run_dir) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind, n", [("rename", 1), ("rename", 3), ("append", 2), ("rename", 6)]
                         + [full_only("rename", k) for k in (2, 4, 5, 7)]
                         + [full_only("append", k) for k in (1, 3)])
def test_a_kill_at_any_write_of_a_run_file_loses_nothing(tmp_path, uninterrupted, kind, n, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", *SMALL_DATA, *RUN, "--train.run_dir", str(run_dir)]
    child = subprocess.run([sys.executable, "-c", CHILD, str(n), kind, *argv],
                           env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                           text=True, timeout=90)
    assert child.returncode == 137, child.stderr
    # whatever was on disk is whole: config.toml parses, a checkpoint loads
    if (run_dir / "config.toml").exists():
        load_config(run_dir / "config.toml")
    if (run_dir / "checkpoints" / "latest.pt").exists():
        load_checkpoint(run_dir / "checkpoints" / "latest.pt")
        assert main(["train", "--resume", str(run_dir)]) == 0, capsys.readouterr().err
    else:  # killed before the first checkpoint: the same command starts it again
        assert main(argv) == 0, capsys.readouterr().err
    resumed, whole = final_state(run_dir), final_state(uninterrupted)
    assert resumed.keys() == whole.keys()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert steps_logged(run_dir) == steps_logged(uninterrupted) == [10, 20, 30]


# -- parallel runs: strategy × phase × fault --------------------------------------------------

STRATEGY_ARGS = {"data": [], "pipeline": ["--model.layers", "2"], "tensor": []}
PAR = ["--train.epochs", "0", "--train.max_steps", "60", "--train.checkpoint_every", "5",
       "--train.log_every", "5", "--parallel.timeout_s", "5"]


def _fault(proc, fault: str) -> None:
    if fault == "kill-launcher":
        os.kill(proc.pid, signal.SIGKILL)
    elif fault == "term-launcher":
        os.kill(proc.pid, signal.SIGTERM)
    elif fault == "int-launcher":
        os.kill(proc.pid, signal.SIGINT)
    else:
        worker = worker_pids(proc.pid)[1]
        os.kill(worker, signal.SIGKILL if fault == "kill-worker" else signal.SIGSTOP)


CELLS = [("data", "training", "stop-worker")] + [
    full_only(strategy, phase, fault)
    for strategy in STRATEGY_ARGS for phase in ("start-up", "training", "checkpoint")
    for fault in ("kill-worker", "kill-launcher", "term-launcher", "int-launcher", "stop-worker")
    if (strategy, phase, fault) != ("data", "training", "stop-worker")]


@pytest.mark.distributed
@pytest.mark.timeout(240)
@pytest.mark.parametrize("strategy, phase, fault", CELLS)
def test_fault_matrix(tmp_path, strategy, phase, fault, capsys):
    run_dir = tmp_path / "run"
    extra = [*PAR, *STRATEGY_ARGS[strategy]]
    # a checkpoint write to catch in the act: each is held open 0.3 s before its rename
    proc = start(run_dir, *extra, strategy=strategy, slow_checkpoints_s=0.3 if phase == "checkpoint" else 0.0)
    pids: list[int] = []
    try:
        if phase == "start-up":
            wait_for(lambda: len(worker_pids(proc.pid)) == 2, 60, "the workers", proc)
        elif phase == "training":
            wait_for(lambda: (run_dir / "checkpoints" / "latest.pt").exists(), 90, "a checkpoint", proc)
        else:  # right when a checkpoint is being written: its temporary file exists
            wait_for(lambda: any(p.name.endswith(".tmp") for p in (run_dir / "checkpoints").glob(".*"))
                     if (run_dir / "checkpoints").exists() else False, 90, "a checkpoint write", proc)
        pids = tree(proc.pid)
        _fault(proc, fault)
        # the run ends: the hang guard is the collective timeout (5 s) plus the launcher's grace
        proc.communicate(timeout=60)
        wait_for(lambda: not any(alive(p) for p in pids), 15, "every process to end")
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
    assert not listening(pids)
    latest = run_dir / "checkpoints" / "latest.pt"
    if not latest.exists():
        return  # faulted before the first checkpoint: nothing to resume (a new start is allowed)
    load_checkpoint(latest)
    if not FULL_MATRIX:
        return  # the default suite proves exact resume in the single-process and kill-at-write tests
    # resume with the same command line, then compare with an uninterrupted run of it
    resumed = start(None, "--resume", str(run_dir), strategy=strategy)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    whole = start(tmp_path / "whole", *extra, strategy=strategy)
    _, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err
    a, b = final_state(run_dir), final_state(tmp_path / "whole")
    assert all(torch.equal(a[k], b[k]) for k in b)
