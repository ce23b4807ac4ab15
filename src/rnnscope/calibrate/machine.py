"""This machine, measured for the planner: gloo's α and β per op and size, the engine's speed.

Every op is timed the way the strategies call it, through `rnnscope.parallel.comm`'s
Communicator (`loopback`: isend/irecv ping-pong in pairs, all-reduce, all-gather, gloo's
reduce-scatter on its own, broadcast), at a grid of sizes and at the sizes the configured runs
send, as the mean per call (a step pays the sum of many calls, tail included); each op gets its
own link (`fit`). The engine's speed (`speed`) and the strategies' own code paths (`pattern`)
are timed in the same processes. `calibrated_inputs` turns it all into the planner's
`PlanInputs` for local runs, and a `Calibration` that says what was measured.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rnnscope.calibrate.fit import ComputeFit, fit_network
from rnnscope.calibrate.loopback import SIZES, Measured, measure_network, pooled
from rnnscope.calibrate.pattern import (Patterns, chunk_overhead, chunk_wait,
                                        data_loop_overhead, data_wait, payload_sizes,
                                        split_loop_overhead, split_overhead, split_wait)
from rnnscope.costs.backends import GLOO
from rnnscope.costs.layout import ParallelLayout, chunk_count
from rnnscope.costs.units import format_bytes
from rnnscope.plan.alphabeta import Link
from rnnscope.plan.compute import Device
from rnnscope.plan.simulate import PlanInputs, compute_slowdown, simulate
from rnnscope.plan.topology import Topology

log = logging.getLogger(__name__)


@dataclass
class Calibration:
    """What `calibrated_inputs` measured and fitted.

    network_seconds: seconds per call by op and payload bytes; links: each op's fitted link;
    compute: the engine's fitted speed; patterns: the strategies' code paths as timed;
    split_overhead_s, chunk_overhead_s, ddp_overhead_s: what those add per layer and time step
    (hidden split: the stage timed alone, plus what its own loop on the real group computed
    beyond that, `split_compute`), per layer and chunk (pipeline), per step (DDP: the one-rank
    loops' difference, plus what data parallelism's own loop computed beyond the simulation,
    `data_compute`; negative: the one-rank loops overstated a replica's step); split_wait_s:
    what the communication of a step of the hidden split's own loop on the real group takes
    beyond the simulated one, per exchange (the ranks' waits for each other and for a woken
    thread; negative: the micro-benchmark's collectives were slower than a run's);
    chunk_wait_s: the same for the pipeline, per chunk and stage (negative: the loop's work hid
    in the bubble); data_wait_s: the same for data parallelism, per DDP bucket's all-reduce
    (negative: the one-rank DDP loop or the micro-benchmark's all-reduces were slower than a
    run's); samples: every measurement the figures are the median of (`loopback.pooled`), to
    pool with the next calibration of the same configuration.
    """

    network_seconds: dict[str, dict[int, float]]
    links: dict[str, Link]
    compute: ComputeFit
    patterns: Patterns
    split_overhead_s: float
    chunk_overhead_s: float
    ddp_overhead_s: float
    split_wait_s: float = 0.0
    chunk_wait_s: float = 0.0
    data_wait_s: float = 0.0
    samples: tuple[Measured, ...] = field(default=(), repr=False)

    @property
    def summary(self) -> str:
        """One line: the latencies, the engine's rate and the strategies' overheads."""
        net, c = self.network_seconds["all_reduce"], self.compute
        small, large = min(net), max(net)
        return (f"p2p α={self.links['send'].alpha_s * 1e6:.0f} µs, all-reduce "
                f"{format_bytes(small)} {net[small] * 1e3:.2f} ms, "
                f"{format_bytes(large)} {net[large] * 1e3:.2f} ms; engine "
                f"{c.flops_per_s / 1e9:.2f} GFLOP/s + {c.step_overhead_s * 1e6:.0f} µs "
                f"per time step + {c.step_fixed_s * 1e3:.2f} ms per training step; "
                f"hidden split +{self.split_overhead_s * 1e6:.0f} µs per layer and "
                f"time step, pipeline +{self.chunk_overhead_s * 1e6:.0f} µs per layer "
                f"and chunk, DDP {self.ddp_overhead_s * 1e3:+.2f} ms per step; waits "
                f"{self.split_wait_s * 1e6:+.0f} µs per hidden-split exchange, "
                f"{self.chunk_wait_s * 1e6:+.0f} µs per pipeline chunk and stage, "
                f"{self.data_wait_s * 1e6:+.0f} µs per DDP bucket"
                + (f"; the median of {len(self.samples)} calibrations"
                   if len(self.samples) > 1 else ""))

    def to_dict(self) -> dict:
        """Plain values for `rnnscope plan --json` (the open-ended last regime: null)."""
        links = {op: [{"up_to_bytes": None if r.up_to_bytes == float("inf") else r.up_to_bytes,
                       "alpha_s": r.alpha_s, "bandwidth_Bps": r.bandwidth_Bps}
                      for r in link.regimes] for op, link in self.links.items()}
        compute = dataclasses.asdict(self.compute) | {
            "patterns": dataclasses.asdict(self.patterns),
            "split_overhead_s": self.split_overhead_s,
            "chunk_overhead_s": self.chunk_overhead_s, "ddp_overhead_s": self.ddp_overhead_s,
            "split_wait_s": self.split_wait_s, "chunk_wait_s": self.chunk_wait_s,
            "data_wait_s": self.data_wait_s}
        return {"network_seconds": self.network_seconds, "links": links, "compute": compute,
                "calibrations": max(1, len(self.samples)), "summary": self.summary}


def calibrated_inputs(shape, cfg, world: int = 2, repeats: int = 1,
                      earlier: Sequence[Measured] = ()
                      ) -> tuple[PlanInputs, list[int], Calibration]:
    """PlanInputs for local runs on this machine, the worker counts to predict, the measurements.

    Local runs use gloo's algorithms (its reduce-scatter is an all-reduce), one flat loopback
    "network" with α/β per op and size measured through the Communicator at the sizes the
    runs send, this CPU's measured speed and the strategies' code-path overheads
    (`rnnscope.calibrate.pattern`), and train's meaning of --data.batch_size (the global batch:
    strong scaling). Everything is timed in `world` processes at once, sharing the cores as a
    run of `world` workers does, so it predicts such a run best; a run of more workers than
    max(cores, world) is predicted to compute proportionally slower.

    The machine is measured `repeats` times, one after another; with `earlier` measurements of
    the same configuration (a previous Calibration's `samples`), everything is fitted from the
    median of them all (`loopback.pooled`): the machine's typical pace rather than one minute's.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    sizes = tuple(sorted(set(SIZES) | set(payload_sizes(shape, cfg.parallel.chunk,
                                                         cfg.parallel.bucket_mb))))
    samples = list(earlier)
    for k in range(repeats):
        log.info("measuring gloo on 127.0.0.1 (%d processes) and the engine's speed%s ...", world,
                 f" ({k + 1} of {repeats})" if repeats > 1 else "")
        samples.append(measure_network(world, budget_s=0.4, timeout_s=420, sizes=sizes,
                                       compute_args=(shape, cfg)))
    return fitted_inputs(samples, shape, cfg, world)


def fitted_inputs(samples: Sequence[Measured], shape, cfg,
                  world: int) -> tuple[PlanInputs, list[int], Calibration]:
    """`calibrated_inputs` from measurements already made (`world` processes, the sizes and
    shapes it measures), fitted from the median of them all (`loopback.pooled`)."""
    measured = pooled(samples, shape)
    compute, pat = measured.compute, measured.patterns
    links = fit_network(measured.network, world, interpolate=True)
    rate = compute.flops_per_s
    device = Device("this cpu (1 thread)", {4: rate, 8: rate, 2: rate}, 1.0,
                    compute.step_overhead_s, source="rnnscope plan --calibrate")
    # the strategies' own code paths, timed in every process at once (`rnnscope.calibrate.pattern`)
    calibration = Calibration(
        measured.network, links, compute, pat,
        split_overhead_s=(split_overhead(pat.split_s, shape, device, pat.split_ways)
                          if pat.split_ways > 1 else 0.0),
        chunk_overhead_s=chunk_overhead(pat.stage_s, pat.whole_s, shape, pat.stages, pat.chunk),
        ddp_overhead_s=max(0.0, pat.ddp_s - pat.plain_s), samples=tuple(samples))
    topology = Topology(links["send"], op_links=links, per_call=True)
    inputs = PlanInputs(shape, device, topology, chunk=cfg.parallel.chunk,
                        bucket_mb=cfg.parallel.bucket_mb, scaling="strong", algorithms=GLOO,
                        # compute was timed with `world` processes sharing the cores at once
                        cores=max(os.cpu_count() or 1, world),
                        step_fixed_s=compute.step_fixed_s,
                        split_overhead_s=calibration.split_overhead_s,
                        chunk_overhead_s=calibration.chunk_overhead_s,
                        ddp_overhead_s=calibration.ddp_overhead_s,
                        # a message's time is spent by the ranks' own threads; with more
                        # workers than cores the micro-benchmark's times are mostly waits for
                        # a core, which other workers fill with their compute
                        comm_on_cores=world <= (os.cpu_count() or 1),
                        # with more workers than cores, the gradient all-reduce has no
                        # core of its own to run on beside the backward
                        overlap=world <= (os.cpu_count() or 1))
    calibration.split_overhead_s = split_compute(inputs, pat, world)
    calibration.ddp_overhead_s = data_compute(inputs, pat, world)
    inputs = dataclasses.replace(inputs, split_overhead_s=calibration.split_overhead_s,
                                 ddp_overhead_s=calibration.ddp_overhead_s)
    waits = exchange_waits(inputs, pat, world)
    calibration.split_wait_s, calibration.chunk_wait_s, calibration.data_wait_s = waits
    inputs = dataclasses.replace(inputs, split_wait_s=waits.split_s, chunk_wait_s=waits.chunk_s,
                                 data_wait_s=waits.data_s)
    return inputs, [2, 4], calibration


def split_compute(inputs: PlanInputs, pat: Patterns, world: int) -> float:
    """`split_overhead_s` with what the hidden split's own loop on the real group computed
    beyond the simulation (`pattern.split_loop_overhead`: its step less its communication less
    the simulated compute), so that the plan's compute and exposed communication divide the
    step as the real one divides; never negative. The stage's own figure when the loop's
    communication was not timed. (With more workers than cores the simulation multiplies the
    overhead by the workers' share of a core, so the loop's extra is divided by it here.)"""
    if pat.split_real_s <= 0 or pat.split_real_comm_s <= 0:
        return inputs.split_overhead_s
    plan = simulate(inputs, ParallelLayout.for_strategy("hidden_split", world))
    extra = split_loop_overhead(pat.split_real_s, pat.split_real_comm_s,
                                plan.step_s - plan.exposed_comm_s, inputs.shape)
    return max(0.0, inputs.split_overhead_s + extra / compute_slowdown(inputs, world))


def data_compute(inputs: PlanInputs, pat: Patterns, world: int) -> float:
    """`ddp_overhead_s` with what data parallelism's own loop on the real group computed beyond
    the simulation (`pattern.data_loop_overhead`: its step less its all-reduces less the
    simulated compute of a replica's step), so that the plan's compute and exposed
    communication divide the step as the real one divides; it may be negative. Only where
    DDP all-reduces one bucket, after the backward, so that all of the loop's communication
    lengthened its step; with more buckets their all-reduces overlap the backward, and the
    one-rank loops' own figure stays, as it does when the loop's communication was not timed."""
    if pat.data_real_s <= 0 or pat.data_real_comm_s <= 0:
        return inputs.ddp_overhead_s
    plan = simulate(inputs, ParallelLayout.for_strategy("data", world))
    if plan.gradient_buckets != 1:
        return inputs.ddp_overhead_s
    extra = data_loop_overhead(pat.data_real_s, pat.data_real_comm_s,
                               plan.step_s - plan.exposed_comm_s)
    return inputs.ddp_overhead_s + extra / compute_slowdown(inputs, world)


class Waits(NamedTuple):
    """Seconds that ranks wait for each other beyond the messages' own time (`exchange_waits`):
    per hidden-split exchange, per pipeline chunk and stage, per DDP bucket's all-reduce."""

    split_s: float
    chunk_s: float
    data_s: float


def exchange_waits(inputs: PlanInputs, pat: Patterns, world: int) -> Waits:
    """What a step of the hidden split's, the pipeline's and data parallelism's own training
    loop, timed on the real group, took beyond the simulated step without waits
    (`pattern.split_wait`, `chunk_wait`, `data_wait`), per exchange, per chunk and stage, per
    bucket; any may be negative (the loop's own work that hides in a pipeline's bubble,
    collectives that the micro-benchmark timed slower than a run's exchange, a one-rank DDP
    slower than a replica); 0 for what was not timed. Each is divided by the workers' share of a
    core, by which the simulation multiplies it when there are more workers than cores."""
    split = chunk = data = 0.0
    if pat.split_real_s > 0:
        modelled = simulate(inputs, ParallelLayout.for_strategy("hidden_split", world)).step_s
        split = split_wait(pat.split_real_s, modelled, inputs.shape)
    if pat.pipe_real_s > 0:
        modelled = simulate(inputs, ParallelLayout.for_strategy("pipeline", world)).step_s
        chunks = chunk_count(inputs.shape.seq_len, min(max(inputs.chunk, 1), inputs.shape.seq_len))
        chunk = chunk_wait(pat.pipe_real_s, modelled, world, chunks)
    if pat.data_real_s > 0:
        plan = simulate(inputs, ParallelLayout.for_strategy("data", world))
        data = data_wait(pat.data_real_s, plan.step_s, plan.gradient_buckets)
    slower = compute_slowdown(inputs, world)
    return Waits(split / slower, chunk / slower, data / slower)
