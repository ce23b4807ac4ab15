"""The gloo micro-benchmark on 127.0.0.1: every op timed as the strategies call it.

Each op goes through `rnnscope.parallel.comm.Communicator` (its bookkeeping included, as in a
run): isend/irecv ping-pong in pairs (0-1, 2-3, ...: every process busy, as in a pipeline),
all-reduce, all-gather, reduce-scatter and broadcast, each at every size, in N processes of one
thread. The time of a size is the mean per call (a step pays the sum of many calls, tail
included). `rnnscope.calibrate.fit` fits links to it; with a shape and a config, every process
then times the engine (`speed`) and the strategies' own code (`pattern`) at the same time.
`pooled` makes one measurement of several of the same configuration: the median of every figure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnscope.calibrate.fit import ComputeFit, fit_compute
from rnnscope.calibrate.looptime import strategy_step_seconds
from rnnscope.calibrate.pattern import Patterns, time_patterns
from rnnscope.calibrate.speed import measure_compute
from rnnscope.errors import UserError

SIZES = (4, 64, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)  # bytes (float32)
OPS = ("send", "all_reduce", "all_gather", "reduce_scatter", "broadcast")
# loopback's kB-sized calls switch between ≈ 0.7 and ≈ 2 ms for stretches of time: a mean needs
# hundreds of calls to see both
MAX_REPEATS = 600


@dataclass
class Measured:
    """What the micro-benchmark measured: seconds per call by op and payload bytes, and (when
    asked for) the engine's speed and the strategies' code paths, timed in every process."""

    network: dict[str, dict[int, float]]
    compute: ComputeFit | None = None
    patterns: Patterns | None = None


def pooled(samples: Sequence[Measured], shape=None) -> Measured:
    """The median of several calibrations of the same configuration, figure by figure.

    Every op and size's seconds, every timed engine shape's step (refitted at `shape` by
    `fit.fit_compute`) and every timed code path (`Patterns`) is the median over `samples`;
    one sample is returned as it is. A calibration catches the minute it runs in: on a busy
    host a strategy's loop step moved as much from one calibration to the next as the runs it
    predicts (Elman's hidden split 391–551 ms in six, the runs 378–507 ms; docs/plan.md §7,
    "Pooled calibrations"), and the median of a few is the machine's typical pace rather than
    one minute's. Raises ValueError where the samples did not time the same things (another
    shape, worker count or chunk)."""
    if not samples:
        raise ValueError("no calibration to pool")
    if len(samples) == 1:
        return samples[0]
    first = samples[0]
    if any(set(m.network) != set(first.network)
           or any(set(m.network[op]) != set(first.network[op]) for op in first.network)
           for m in samples):
        raise ValueError("calibrations of different ops or message sizes cannot be pooled")
    network = {op: {size: statistics.median(m.network[op][size] for m in samples)
                    for size in by_size} for op, by_size in first.network.items()}
    if first.compute is None or any(m.compute is None or m.patterns is None for m in samples):
        return Measured(network)
    if shape is None:
        raise ValueError("pooling the engine's timed steps needs the shape to refit them at")
    shapes = [[tuple(point[:3]) for point in m.compute.points] for m in samples]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("calibrations of different engine shapes cannot be pooled")
    points = [(*shapes[0][k], statistics.median(m.compute.points[k][3] for m in samples))
              for k in range(len(shapes[0]))]
    fields = dataclasses.fields(Patterns)
    counts = [f.name for f in fields if f.type in (int, "int")]
    if any(getattr(m.patterns, name) != getattr(first.patterns, name)
           for m in samples for name in counts):
        raise ValueError("calibrations of different splits, stages or chunks cannot be pooled")
    patterns = Patterns(**{
        f.name: (getattr(first.patterns, f.name) if f.name in counts
                 else _median_or_none([getattr(m.patterns, f.name) for m in samples]))
        for f in fields})
    return Measured(network, fit_compute(points, shape), patterns)


def _median_or_none(values: list):
    """The median of the values that were timed (None: none was)."""
    timed = [v for v in values if v is not None]
    return statistics.median(timed) if timed else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _op_runner(comm, op: str, size: int):
    """A call of `op` on about `size` bytes, as the strategies make it through the Communicator;
    returns (the call, the payload in bytes it moves)."""
    import torch

    rank, world = comm.rank, comm.world_size
    elements = max(world, -(-size // 4 // world) * world)  # a whole shard per rank
    x, part = torch.ones(elements), torch.empty(elements // world)
    if op == "send":  # ping-pong in pairs (0-1, 2-3, ...) with isend/irecv, as the pipeline
        peer = rank ^ 1  # sends, every pair at once: all processes busy, as in a pipeline

        def once() -> None:
            if peer < world:
                for sending in ((True, False) if rank % 2 == 0 else (False, True)):
                    (comm.isend(x, peer, tag="cal") if sending
                     else comm.irecv(x, peer, tag="cal")).wait()
        return once, elements * 4
    calls = {"all_reduce": lambda: comm.all_reduce(x, tag="cal"),
             "all_gather": lambda: comm.all_gather(x, part, tag="cal"),
             "reduce_scatter": lambda: comm.reduce_scatter(part, x, tag="cal"),
             "broadcast": lambda: comm.broadcast(x, 0, tag="cal")}
    return calls[op], elements * 4


def own_session(parent: int) -> None:
    """Make this process the leader of a new session, as torchrun's agent starts every worker
    (`start_new_session`), so that the calibration's processes are scheduled as a run's are;
    it then dies with `parent` (the calibrating process), as a run's workers die with their
    launcher: out of the terminal's process group, Ctrl-C and a `timeout` no longer reach it.

    On Linux with autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled, on by default)
    each session is its own scheduling group, and that changes how fast ranks that wait on each
    other wake up: the Elman pipeline's loop step took 8.3–9.4 ms in processes of one session and
    10–14 ms in processes of their own sessions, on this project's 2-core VM (docs/plan.md §7).
    Elsewhere setsid changes nothing that matters here; where it is refused, nothing changes."""
    from rnnscope.parallel.lifeline import die_with_parent

    try:
        os.setsid()
    except OSError:  # already a session or process group leader
        pass
    die_with_parent(parent=parent)


def _worker(rank: int, world: int, port: int, out: str, budget_s: float,
            sizes: tuple[int, ...], compute_args: tuple | None, parent: int) -> None:
    """One gloo process: time every op and size through rnnscope.parallel.comm's Communicator
    (its bookkeeping included, as in a run); rank 0 writes {op: {size: seconds}}.

    With `compute_args` (shape, cfg), every process then times training steps at the same
    time, so the engine is measured sharing the cores the way the workers of a run do."""
    import datetime

    import torch
    import torch.distributed as dist

    from rnnscope.parallel.comm import Communicator

    own_session(parent)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=30))
    comm = Communicator()
    results: dict[str, dict[int, float]] = {op: {} for op in OPS}
    for op in OPS:
        for size in sizes:
            once, moved = _op_runner(comm, op, size)
            for _ in range(3):  # warm up the connection and the buffers
                once()
            dist.barrier()
            pilot = []
            for _ in range(5):
                t0 = time.perf_counter()
                once()
                pilot.append(time.perf_counter() - t0)
            # ranks run in lockstep, so they must agree on the count before running it
            repeats = int(budget_s / max(np.median(pilot), 1e-7))
            count = torch.tensor([min(MAX_REPEATS, max(5, repeats))])
            dist.all_reduce(count, op=dist.ReduceOp.MIN)
            times = []
            for _ in range(int(count)):
                t0 = time.perf_counter()
                once()
                times.append(time.perf_counter() - t0)
            # the mean, not the median: a step pays the sum of its many calls, tail included
            seconds = float(np.mean(times))
            results[op][moved] = seconds / 2 if op == "send" else seconds
            comm.ledger.close_step(None, "calibrate")  # keep the records from piling up
    compute = patterns = None
    if compute_args is not None:
        dist.barrier()
        # every shape starts in all processes at once (they share the cores as a run's
        # workers do) and is averaged over them; more repeats than a quiet machine needs
        def combine(seconds: list[float]) -> list[float]:
            values = torch.tensor(seconds, dtype=torch.float64)
            dist.all_reduce(values)
            return (values / world).tolist()

        compute = measure_compute(*compute_args, repeats=40, sync=dist.barrier, combine=combine)
        one_rank, _ = dist.new_subgroups(group_size=1)  # DDP's own work, no network
        patterns = time_patterns(*compute_args, world, repeats=21,  # their own code
                                 sync=dist.barrier, combine=combine, group=one_rank)

        # and on the real group: the waits between ranks that the stages and a one-rank DDP alone
        # cannot show, in a step of the hidden split's, the pipeline's and data parallelism's own
        # training loop
        shape, cfg = compute_args

        def real_step(strategy: str) -> list[float]:
            real = strategy_step_seconds(cfg, strategy, rank, world, sync=dist.barrier)
            return combine([real.step_s, real.comm_s])

        splits = world > 1 and shape.hidden % world == 0
        split_real, split_comm = real_step("hidden_split") if splits else (0.0, 0.0)
        pipe_real = real_step("pipeline")[0] if 1 < world <= shape.layers else 0.0
        data_real, data_comm = real_step("data") if world > 1 else (0.0, 0.0)
        patterns = dataclasses.replace(patterns, split_real_s=split_real,
                                       split_real_comm_s=split_comm, pipe_real_s=pipe_real,
                                       data_real_s=data_real, data_real_comm_s=data_comm)
        dist.barrier()
    if rank == 0:
        Path(out).write_text(json.dumps({
            "network": results, "compute": compute and dataclasses.asdict(compute),
            "patterns": patterns and dataclasses.asdict(patterns)}))
    dist.destroy_process_group()


def measure_network(world: int = 2, budget_s: float = 0.15, timeout_s: float = 180.0,
                    sizes: tuple[int, ...] = SIZES,
                    compute_args: tuple | None = None) -> Measured:
    """Run the gloo micro-benchmark on 127.0.0.1; {op: {size_bytes: seconds}}.

    With `compute_args` = (shape, cfg) the engine (`measure_compute`) and the strategies' code
    paths (`time_patterns`) are timed too, in every process at once.

    Args:
        world: processes (2 for the point-to-point ping-pong; more time the collectives at n).
        budget_s: seconds of repeats per op and size (at least 5, at most MAX_REPEATS).
        timeout_s: the whole run's limit; past it the processes are killed and it fails.
        sizes: payloads in bytes, multiples of 4 (float32).
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "network.json")
        port = free_port()
        procs = [ctx.Process(target=_worker,
                             args=(r, world, port, out, budget_s, sizes, compute_args,
                                   os.getpid()),
                             daemon=True)
                 for r in range(world)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout_s
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        hung = [p for p in procs if p.is_alive()]
        for p in hung:
            p.kill()
            p.join()
        if hung or any(p.exitcode for p in procs) or not os.path.exists(out):
            codes = [p.exitcode for p in procs]
            raise UserError(f"the gloo micro-benchmark on 127.0.0.1 failed (exit codes {codes}"
                            f"{', timed out after %gs' % timeout_s if hung else ''}); "
                            f"check that loopback TCP works (rnnscope env)")
        raw = json.loads(Path(out).read_text())
    network = {op: {int(size): t for size, t in by_size.items()}
               for op, by_size in raw["network"].items()}
    if compute_args is None:
        return Measured(network)
    return Measured(network, ComputeFit(**raw["compute"]), Patterns(**raw["patterns"]))
