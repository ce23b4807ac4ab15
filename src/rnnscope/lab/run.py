"""One training run across the lab: a torchrun agent and worker per host, inside its namespace.

    host i:  ip netns exec rsl…-hi  python -m torch.distributed.run --nnodes N --node_rank i
             --nproc_per_node 1 --master_addr 10.213.0.1 --master_port 29400
             -m rnnscope train --parallel.strategy data ...      (GLOO_SOCKET_IFNAME=rsl…-hi)

The rendezvous store lives on host 0's lab address, and gloo is told the lab interface by name
(it would otherwise pick one by resolving the hostname, which is the machine's own), so every
byte of the training crosses the shaped links. Host i runs global rank i. After the run the
ledger (`traffic.jsonl`) is read back beside the bytes each host's interface counted.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rnnscope.lab.netns import Counters, Lab
from rnnscope.lab.system import LabError

log = logging.getLogger(__name__)

MASTER_PORT = 29400  # on host 0's lab address; no other process can listen inside the lab
# variables that would make a worker believe it belongs to some other distributed job
FOREIGN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
               "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "GLOO_SOCKET_IFNAME")


@dataclass(frozen=True)
class RunOutput:
    """What one run left: its directory, and each host's interface counters over the run."""

    run_dir: Path
    counters: list[Counters]  # host i = rank i
    seconds: float  # wall time of the whole run, start-up included


def worker_argv(lab: Lab, node_rank: int, train_args: list[str], agent_dir: Path) -> list[str]:
    """The torchrun command of host `node_rank` (one worker), ending in `rnnscope train ...`;
    its agent keeps its per-worker files in `agent_dir` (beside the host's log; without it they
    would go to a /tmp/torchelastic_* directory nobody removes)."""
    return [sys.executable, "-m", "torch.distributed.run",
            "--nnodes", str(len(lab.hosts)), "--node_rank", str(node_rank),
            "--nproc_per_node", "1", "--max_restarts", "0",
            "--master_addr", lab.hosts[0].address, "--master_port", str(MASTER_PORT),
            "--log_dir", str(agent_dir),
            "-m", "rnnscope", "train", *train_args]


def worker_env(ifname: str) -> dict[str, str]:
    """This process's environment for a worker, told to use the lab interface `ifname`."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env.update(GLOO_SOCKET_IFNAME=ifname, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def run_workers(lab: Lab, train_args: list[str], run_dir: Path, timeout_s: float) -> RunOutput:
    """Start one worker per host, wait for all of them, and count what crossed each link.

    Raises `LabError` naming the host and showing the end of its log when a worker fails or
    the run outlives `timeout_s`; the caller's `with Lab` then stops whatever still runs.
    """
    log_dir = run_dir / "lab"
    log_dir.mkdir(parents=True, exist_ok=True)
    before = [lab.counters(host) for host in lab.hosts]
    start = time.monotonic()
    procs: list[subprocess.Popen] = []
    logs = [log_dir / f"host{host.index}.log" for host in lab.hosts]
    try:
        for host, log_path in zip(lab.hosts, logs):
            argv = worker_argv(lab, host.index, train_args, log_dir / f"agent{host.index}")
            with log_path.open("w") as out:  # the child keeps its own descriptor
                procs.append(lab.popen(host, argv,
                                       env=worker_env(host.ifname), stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        _wait_all(procs, logs, start + timeout_s)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    after = [lab.counters(host) for host in lab.hosts]
    return RunOutput(run_dir, [a - b for a, b in zip(after, before)], time.monotonic() - start)


def _wait_all(procs: list[subprocess.Popen], logs: list[Path], deadline: float) -> None:
    """Wait until every worker has exited; the first failure or the deadline raises LabError."""
    while True:
        codes = [proc.poll() for proc in procs]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            i = _first_cause(procs, logs, failed)
            raise LabError(f"the worker on host {i} exited with status {procs[i].returncode}"
                           f"{said(logs[i])}; end of {logs[i]}:\n{tail(logs[i])}")
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            waiting = [i for i, code in enumerate(codes) if code is None]
            raise LabError(f"the run did not finish in time (hosts {waiting} still running; "
                           f"raise --timeout); end of {logs[waiting[0]]}:\n{tail(logs[waiting[0]])}")
        time.sleep(0.1)


def _first_cause(procs: list[subprocess.Popen], logs: list[Path], failed: list[int], wait_s: float = 3.0) -> int:
    """The host to report: a failure on one host ends the others' rendezvous too, and whichever
    exits first may be the one that only saw its peer go. So the others get up to `wait_s` to end,
    and a failed host whose log holds rnnscope's own error line is preferred."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(proc.poll() is None for proc in procs):
        time.sleep(0.1)
    failed = [i for i, proc in enumerate(procs) if proc.poll() not in (None, 0)] or failed
    return next((i for i in failed if said(logs[i])), failed[0])


def said(path: Path) -> str:
    """`: <the worker's own error line>` (what `rnnscope train` printed), or "" if none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if "rnnscope train: error:" in line:
            return ": " + line.split("rnnscope train: error:", 1)[1].strip()
    return ""


def tail(path: Path, lines: int = 10) -> str:
    """The last `lines` lines of a log file (or a note that it is empty)."""
    try:
        text = path.read_text(errors="replace").rstrip()
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
