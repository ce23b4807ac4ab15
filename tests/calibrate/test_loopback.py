"""The gloo micro-benchmark through the Communicator: a real 2-process run on 127.0.0.1."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnscope.calibrate.loopback import measure_network


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_gloo_micro_benchmark_on_loopback():
    measured = measure_network(2, budget_s=0.01, timeout_s=200, sizes=(4, 4096)).network
    assert set(measured) == {"send", "all_reduce", "all_gather", "reduce_scatter", "broadcast"}
    for op, times in measured.items():
        assert set(times) == {8, 4096}  # a whole float32 shard per rank: 4 B moves as 8 B
        assert all(0 < t < 5 for t in times.values()), (op, times)


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_the_calibration_also_times_the_loop_and_the_strategies_code_in_every_process():
    from rnnscope.costs.traffic import RNNShape
    from rnnscope.train.config import load_config

    cfg = load_config(None, ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "6",
                             "--data.samples", "64", "--data.batch_size", "8",
                             "--parallel.chunk", "2"])
    shape = RNNShape(input_size=1, hidden=8, layers=2, seq_len=6, batch=8, output_size=1)
    measured = measure_network(2, budget_s=0.005, timeout_s=200, sizes=(4,),
                               compute_args=(shape, cfg))
    compute, patterns = measured.compute, measured.patterns
    assert compute.flops_per_s > 0 and len(compute.points) == 5
    assert patterns.split_ways == 2 and patterns.stages == 2 and patterns.chunk == 2
    for key in ("split_s", "stage_s", "whole_s", "ddp_s", "plain_s", "split_real_s",
                "split_real_comm_s", "pipe_real_s", "data_real_s", "data_real_comm_s"):
        assert 0 < getattr(patterns, key) < 1, key
    assert patterns.split_real_comm_s < patterns.split_real_s  # the step computes too
    assert patterns.data_real_comm_s < patterns.data_real_s


CALIBRATE_FOREVER = """
import sys
from rnnscope.calibrate.loopback import measure_network
print("started", flush=True)
measure_network(2, budget_s=1000.0, timeout_s=1000, sizes=(1 << 24,))  # 600 calls of 16 MB per op: minutes
"""


def _spawned_children(pid: int) -> list[int]:
    """The multiprocessing workers among `pid`'s children (not its resource tracker)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return [k for k in kids if _is_calibration_worker(k)]


def _is_calibration_worker(pid: int) -> bool:
    """Whether `pid` is a live multiprocessing worker (a zombie has an empty command line)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone
        return False


@pytest.mark.distributed
@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sessions and /proc: Linux")
def test_the_calibrations_processes_lead_their_own_sessions_and_die_with_a_killed_parent():
    """As torchrun's agent starts a run's workers (each its own session, so its own scheduling
    autogroup), and without the orphans that leaving the terminal's process group could leave."""
    parent = subprocess.Popen([sys.executable, "-c", CALIBRATE_FOREVER], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 60
        kids: list[int] = []
        while time.monotonic() < deadline:  # both workers have called setsid
            kids = _spawned_children(parent.pid)
            if len(kids) == 2 and all(os.getsid(k) == k for k in kids):
                break
            time.sleep(0.1)
        assert len(kids) == 2 and all(os.getsid(k) == k for k in kids), kids
        assert os.getsid(parent.pid) != kids[0] != kids[1]
    finally:
        parent.kill()  # SIGKILL: no atexit, no clean-up of its own
        parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_is_calibration_worker(k) for k in kids):
        time.sleep(0.1)
    left = [k for k in kids if _is_calibration_worker(k)]
    for k in left:  # do not leave them behind even when the test fails
        os.kill(k, signal.SIGKILL)
    assert not left, f"calibration workers {left} outlived their killed parent"
