"""Whole steps of the training loop itself, timed: what a local run's step costs besides the network.

A step of `rnnscope train` is more than the engine's forward and backward: the batch is picked
and sliced, the loss and its gradient norm are read back, the optimizer steps, the strategy's
hooks run. The calibration therefore times the loop itself, `rnnscope.train.loop.train`, for a
few dozen steps on a throw-away run directory, with a DistContext (`StepClock`) that only notes
when the steps end. With `wrap`, the model is wrapped first (data parallel: DDP on a process
group of this one rank, so DDP's hooks and bucket copies run and nothing crosses the network).
`strategy_step_seconds` times every strategy's own context the same way (data parallel, the
pipeline, the hidden split), on the calibration's real process group.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rnnscope.train.distributed import SingleProcess

# timed steps of a strategy's own loop on the calibration's group (`strategy_step_seconds`): a
# data-parallel step is ~7 ms (Elman) to ~20 ms (LSTM) here, with spikes of a scheduler tick
# (4 ms), so it is timed over as many steps as a benchmark run's ≥ 2 s measure; a pipeline step
# is ~10 ms, a hidden split's ~0.5 s (T·L exchanges each way). A hidden
# split's steps come in stretches of 250–650 ms (its threads woken a scheduler tick late or not):
# medians of 10 steps of one launch were 374–486 ms, 404–608 ms (docs/plan.md §7), so it is
# timed over 24, twice a benchmark run's measured steps
STRATEGY_STEPS = {"data": 240, "pipeline": 120, "hidden_split": 24}

WARMUP_STEPS = 3  # steps before the clock starts: allocator, first-call paths, DDP's rebuild


TRIM = 0.2  # the share of the slowest and of the fastest calls `interleaved_seconds` leaves out


def interleaved_seconds(runs: list, repeats: int, sync=None) -> list[float]:
    """Seconds per call of each of `runs` (None: 0.0), timed in turns: one warm-up call each
    (then `sync()`, if given), then `repeats` rounds of one call of each, in order.

    Taking turns makes a change in the machine's load fall on every run alike, so differences
    between them (the pipeline's chunked and whole-sequence stages) are not a drift; each run's
    figure is the mean of its calls without the slowest and fastest TRIM of them (a busy
    machine's bursts), the moderate descheduling of shared cores kept in."""
    live = [run for run in runs if run is not None]
    for run in live:
        run()
    if sync is not None:
        sync()
    times: dict[int, list[float]] = {id(run): [] for run in live}
    for _ in range(repeats):
        for run in live:
            t0 = time.perf_counter()
            run()
            times[id(run)].append(time.perf_counter() - t0)
    cut = int(TRIM * repeats)
    out = []
    for run in runs:
        if run is None:
            out.append(0.0)
            continue
        kept = sorted(times[id(run)])[cut:repeats - cut] or times[id(run)]
        out.append(sum(kept) / len(kept))
    return out


class StepClock(SingleProcess):
    """A one-process DistContext that notes when each step after the warm-up ends.

    Args:
        warmup: steps left out of the timing.
        sync: called when the warm-up is over (a barrier: every calibration process starts
            its timed steps together).
        wrap: model -> the module to train (None: the model itself).
        ledger: closed after every step, as every strategy's context does.
    """

    def __init__(self, warmup: int, sync=None, wrap=None, ledger=None) -> None:
        self.warmup, self._sync, self._wrap, self._ledger = warmup, sync, wrap, ledger
        self.ends: list[float] = []  # the end of the warm-up's last step, then of every step

    @property
    def steps(self) -> list[float]:
        """Seconds of every timed step."""
        return [b - a for a, b in zip(self.ends, self.ends[1:])]

    def wrap_model(self, model):
        """`wrap(model)`, or the model itself."""
        return self._wrap(model) if self._wrap is not None else model

    def on_step_end(self, step: int, model) -> None:
        """Close the ledger's step; after the warm-up, sync once, then note every step's end."""
        if self._ledger is not None:
            self._ledger.close_step(step)
        if step == self.warmup and self._sync is not None:
            self._sync()
        if step >= self.warmup:
            self.ends.append(time.perf_counter())


def loop_step_seconds(cfg, batch: int, layers: int, hidden: int, repeats: int, sync=None,
                      wrap=None, ledger=None) -> float:
    """Median seconds per step of `train(cfg)` at this batch, depth and width, one process.

    The loop runs WARMUP_STEPS + `repeats` steps (no logging, checkpoints or diagnostics in
    between) on a temporary run directory; its start-up and final evaluation are not timed.
    The median, as the benchmark reads a run (its median step): a burst of the machine's other
    work during one step of a shape would otherwise move that shape's point, and the fit with it
    (one such burst nearly doubled a point and put a data-parallel prediction 27 % long).
    """
    cfg = timing_config(cfg, repeats)
    cfg.model.hidden, cfg.model.layers, cfg.data.batch_size = hidden, layers, batch
    cfg.parallel.strategy = "none"
    clock = StepClock(WARMUP_STEPS, sync, wrap, ledger)
    run_loop(cfg, clock)
    assert len(clock.steps) == repeats, (len(clock.steps), repeats)
    return statistics.median(clock.steps)


def timing_config(cfg, repeats: int):
    """A copy of cfg whose loop runs WARMUP_STEPS + `repeats` steps with nothing in between (no
    logging, checkpoints, weight checks or diagnostics), one thread, full BPTT (the planner's)."""
    cfg = copy.deepcopy(cfg)
    cfg.train.epochs, cfg.train.max_steps = 0, WARMUP_STEPS + repeats
    cfg.train.log_every = cfg.train.checkpoint_every = cfg.parallel.check_every = 10**9
    cfg.train.progress, cfg.train.threads, cfg.diagnostics.every = False, 1, 0
    cfg.train.tbptt_k1 = cfg.train.tbptt_k2 = 0
    return cfg


def run_loop(cfg, context) -> None:
    """`train(cfg)` with `context` as its DistContext, on a temporary run directory."""
    from rnnscope.train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.run_dir = str(Path(tmp) / "run")
        train(cfg, distributed=context)


def ddp_step_seconds(cfg, batch: int, layers: int, hidden: int, repeats: int, group,
                     sync=None) -> float:
    """`loop_step_seconds` with the model in DDP, as `--parallel.strategy data` wraps it
    (`rnnscope.parallel.data.wrap_ddp`: the ledgered hook, --parallel.bucket_mb buckets), on
    `group`, a process group of this one rank: DDP's own work without the network."""
    import torch

    from rnnscope.parallel.comm import Communicator
    from rnnscope.parallel.data import wrap_ddp
    from rnnscope.parallel.ledger import Ledger

    comm = Communicator(group, ledger=Ledger(0))

    def wrap(model):
        return wrap_ddp(model, comm, cfg.parallel.bucket_mb, torch.device("cpu"))

    return loop_step_seconds(cfg, batch, layers, hidden, repeats, sync, wrap, comm.ledger)


@dataclass(frozen=True)
class RealStep:
    """A strategy's training-loop step on a real group, one rank's: the median step (`step_s`)
    and the median of the steps' communication (`comm_s`: the wall time during which any of a
    step's calls was in flight, the ledger's step_comm_seconds), both in seconds."""

    step_s: float
    comm_s: float


def strategy_step_seconds(cfg, strategy: str, rank: int, world: int, repeats: int | None = None,
                          sync=None) -> RealStep:
    """Median seconds per step of `train(cfg)` as `--parallel.strategy data`, `pipeline` or
    `hidden_split` on the default process group of `world` ranks (every rank calls it at once),
    this rank's, and of its communication.

    The strategy's own context (`DataParallel`, `PipelineParallel`, `HiddenSplitParallel`) runs
    the loop, so the step has what a run's has and a stage or a one-rank DDP timed alone has
    not: the ranks' waits for each other and for a woken thread at every exchange or gradient
    all-reduce, the ŷ broadcast, the loss, the optimizer and the loop's own work, each on the
    rank and at the moment a run does it (a pipeline's partly inside the other stages' bubble).
    The loop runs WARMUP_STEPS + `repeats` (default STRATEGY_STEPS) steps on a temporary run
    directory per rank; nothing is gathered or written at the end.
    """
    import torch

    from rnnscope.parallel.comm import Communicator
    from rnnscope.parallel.context import WorkerEnv
    from rnnscope.parallel.ledger import Ledger
    from rnnscope.parallel.summary import median_step_comm_seconds
    from rnnscope.parallel.worker import CONTEXTS

    if strategy not in STRATEGY_STEPS:
        raise ValueError(f"no real-group step to time for strategy {strategy!r}; "
                         f"one of {', '.join(STRATEGY_STEPS)}")
    repeats = STRATEGY_STEPS[strategy] if repeats is None else repeats
    clock = StepClock(WARMUP_STEPS, sync)  # here only the record of the steps' ends

    class Timed(CONTEXTS[strategy]):
        def on_step_end(self, step: int, model) -> None:
            super().on_step_end(step, model)
            clock.on_step_end(step, model)

        def close(self, run_dir) -> None:  # the calibration's group stays; no ledger to gather
            self.ledger.close_step(None, "close")

    cfg = timing_config(cfg, repeats)
    # one model group over all `world` ranks, or `world` replicas, as `exchange_waits` simulates
    cfg.parallel.strategy, cfg.parallel.nproc, cfg.parallel.data_degree = strategy, world, 1
    env = WorkerEnv(rank=rank, world_size=world, local_rank=rank, local_world_size=world,
                    restart_count=0)
    ledger = Ledger(rank)
    run_loop(cfg, Timed(cfg, Communicator(ledger=ledger), torch.device("cpu"), env))
    assert len(clock.steps) == repeats, (len(clock.steps), repeats)
    comm = median_step_comm_seconds(ledger.rows, first_step=WARMUP_STEPS + 1)
    return RealStep(statistics.median(clock.steps), comm or 0.0)
