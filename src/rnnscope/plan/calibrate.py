"""Measure this machine: gloo's α and β per op and message size, and the engine's speed.

Every op is timed the way the strategies call it, through `rnnscope.parallel.comm`'s
Communicator (isend/irecv ping-pong in pairs, all-reduce, all-gather, gloo's reduce-scatter on
its own, broadcast), at a grid of sizes and at the sizes the configured runs send, as the mean
per call (a step pays the sum of many calls, tail included). Loopback does not follow one
straight line (DESIGN.md: a 4 B all-reduce takes ≈ 0.14 ms, one of 1–16 kB 1.1–1.7 ms, one of
4 MB ≈ 3.5 ms), so each op gets its own link: regimes fitted to the time of one step of its
critical path (`alphabeta.message_schedule`), the fewest that fit (`fit_regimes`) or, to
predict local runs, one between each two measured sizes (`interpolate_regimes`).
Steps of train's own loop (`rnnscope.plan.looptime`) are timed at a few shapes around the
configured one, in every benchmark process at once (1 thread each, sharing the cores as a run's
workers do; each shape started together and averaged over the processes), and fitted as
3·overhead + 6·B·H·(I+H) / rate per layer and time step (`compute.step_seconds`) plus a fixed
cost per training step (batch, readout, loss, optimizer); the strategies' own code paths are
timed too (`rnnscope.plan.pattern`: the hidden split's and the pipeline's stages, DDP)."""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link, Regime, message_schedule
from rnnscope.plan.compute import Device
# re-exported: callers (rnnscope.lab.predict) import the micro-benchmark from here
from rnnscope.plan.loopback import OPS, SIZES, free_port, measure_network  # noqa: F401
from rnnscope.plan.units import format_bytes

log = logging.getLogger(__name__)

# what gloo runs for each op, as rnnscope.parallel.comm records it: (formula op, algorithm)
GLOO = {"all_reduce": ("all_reduce", "ring"), "all_gather": ("all_gather", "ring"),
        "reduce_scatter": ("all_reduce", "ring"), "broadcast": ("broadcast", "ring"),
        "send": ("send", "direct"), "recv": ("recv", "direct")}


def _fit_segment(m: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    """α, 1/β by least squares on relative error; returns (α, 1/β, squared relative error)."""
    A = np.stack([np.ones_like(m), m], axis=1) / t[:, None]
    coef, *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    alpha, inv_beta = max(float(coef[0]), 0.0), max(float(coef[1]), 1e-15)
    if coef[0] < 0 or coef[1] <= 0:  # refit with the clipped parameter fixed
        inv_beta = max(float(np.sum(m * (t - alpha) / t**2) / np.sum(m**2 / t**2)), 1e-15) \
            if coef[1] > 0 else 1e-15
        alpha = max(float(np.sum((t - m * inv_beta) / t**2) / np.sum(1 / t**2)), 0.0)
    err = float(np.sum(((alpha + m * inv_beta) - t) ** 2 / t**2))
    return alpha, inv_beta, err


def fit_regimes(points: dict[int, float], max_regimes: int = 3, name: str = "link",
                min_points: int = 3) -> Link:
    """A Link whose regimes fit (message bytes -> seconds per message), fewest that fit well.

    An extra regime is added only while the fit is off by more than 2 % rms and it cuts the
    squared relative error by more than half; each regime
    covers at least `min_points` measured sizes (noise on a busy machine would otherwise get
    regimes of its own).
    """
    sizes = sorted(points)
    m = np.array(sizes, dtype=float)
    t = np.array([points[s] for s in sizes], dtype=float)
    best_of: dict[int, tuple[float, list[int], list]] = {}
    for k in range(1, max(1, min(max_regimes, len(sizes) // min_points)) + 1):
        for cuts in _cut_points(len(sizes), k, min_points):
            bounds = [0, *cuts, len(sizes)]
            fits = [_fit_segment(m[a:b], t[a:b]) for a, b in zip(bounds, bounds[1:])]
            err = sum(f[2] for f in fits)
            if k not in best_of or err < best_of[k][0]:
                best_of[k] = (err, bounds, fits)
    chosen = 1
    good_enough = len(sizes) * 0.02**2  # a 2 % rms relative error needs no further regime
    for k in sorted(best_of)[1:]:
        if best_of[chosen][0] > good_enough and best_of[k][0] < 0.5 * best_of[chosen][0]:
            chosen = k
    _, bounds, fits = best_of[chosen]
    regimes = []
    for i, ((alpha, inv_beta, _), b) in enumerate(zip(fits, bounds[1:])):
        # the boundary sits halfway (geometrically) between the sizes on either side
        up_to = float("inf") if i == len(fits) - 1 else float(np.sqrt(m[b - 1] * m[b]))
        regimes.append(Regime(up_to, alpha, 1.0 / inv_beta))
    return Link(tuple(regimes), name)


def _cut_points(n: int, k: int, least: int = 2) -> list[tuple[int, ...]]:
    """Every way to cut n sorted points into k contiguous groups of at least `least`."""
    if k == 1:
        return [()] if n >= least else []
    out = []
    for first in range(least, n - least * (k - 1) + 1):
        out += [(first, *(first + c for c in rest))
                for rest in _cut_points(n - first, k - 1, least)]
    return out


def interpolate_regimes(points: dict[int, float], name: str = "link") -> Link:
    """A Link through every measured (message bytes -> seconds) point: one regime per pair of
    neighbouring sizes, the line through both (α and β of that size range).

    Each regime ends just below the next measured size, so every measured point is reproduced
    exactly. A segment whose time falls (noise) is flat at its first point (β unbounded); one
    whose line would cross zero keeps α = 0 and goes through its upper point. Below the
    smallest size the first segment applies, above the largest the last.
    """
    sizes = sorted(points)
    times = [points[m] for m in sizes]
    if len(sizes) == 1:
        return Link((Regime(float("inf"), times[0], 1e18),), name)
    regimes = []
    for i in range(len(sizes) - 1):
        (m0, t0), (m1, t1) = (sizes[i], times[i]), (sizes[i + 1], times[i + 1])
        slope = (t1 - t0) / (m1 - m0)  # seconds per byte
        if slope <= 0:
            alpha, bandwidth = t0, 1e18
        elif t0 - slope * m0 < 0:
            alpha, bandwidth = 0.0, m1 / t1
        else:
            alpha, bandwidth = t0 - slope * m0, 1 / slope
        up_to = float("inf") if i == len(sizes) - 2 else m1 - 0.5
        regimes.append(Regime(up_to, alpha, bandwidth))
    return Link(tuple(regimes), name)


def fit_network(measured: dict, world: int, interpolate: bool = False) -> dict[str, Link]:
    """One Link per op: per-step time (time / steps) against the per-step message size.

    Each op's steps are those of what gloo runs for it (`GLOO`: its reduce-scatter is an
    all-reduce). `interpolate`: a regime between every two measured sizes
    (`interpolate_regimes`, for predicting runs at the measured sizes) instead of the fewest
    regimes that fit (`fit_regimes`).
    """
    links = {}
    for op, sizes in measured.items():
        formula_op, algorithm = GLOO.get(op, (op, "ring"))
        points = {}
        for size, seconds in sizes.items():
            n = 2 if formula_op in ("send", "recv") else world
            schedule = message_schedule(formula_op, size, n, algorithm, element_size=4)
            steps = sum(count for count, _ in schedule)
            points[max(schedule[0][1], 1)] = seconds / steps
        fit = interpolate_regimes if interpolate else fit_regimes
        links[op] = fit(points, name=f"gloo {op}")
    return links


def mean_seconds(run, repeats: int, sync=None) -> float:
    """Mean seconds of `repeats` calls of `run` after one warm-up call (then `sync()`, if given).

    The mean, not the median: a run's step time is its wall time over its steps (throughput),
    and with more workers than cores a process is sometimes descheduled mid-step; that is part
    of what a step costs."""
    run()  # the first call warms up
    if sync is not None:
        sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - t0) / repeats


def compute_shapes(shape) -> list[tuple[int, int, int]]:
    """(B, L, H) timed by `measure_compute`: the configured shape, the batch split 2 and 4 ways
    (the local data-parallel runs), one layer (a pipeline stage) and twice the hidden size."""
    B, L, H = shape.batch, shape.layers, shape.hidden
    return sorted({(B, L, H), (max(1, B // 2), L, H), (max(1, B // 4), L, H), (B, 1, H),
                   (B, L, 2 * H)})


def measure_compute(shape, cfg, repeats: int = 3, sync=None, combine=None) -> dict:
    """Time whole training steps of train's model (1 thread) around `shape` and fit the device.

    Each shape is timed as steps of train's own loop (`looptime.loop_step_seconds`: batch,
    forward, readout, loss, backward, gradient norm, optimizer step; the mean of `repeats`
    after a warm-up). In a calibration of several processes, `sync` (a barrier) starts every
    shape together in all of them and `combine` (list of seconds -> the same list averaged over
    the processes) makes every process fit the same points. Returns `fit_compute`'s dict.
    """
    import torch

    from rnnscope.plan.looptime import loop_step_seconds

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        variants = compute_shapes(shape)
        seconds = [loop_step_seconds(cfg, b, l, h, repeats, sync) for b, l, h in variants]
    finally:
        torch.set_num_threads(threads)
    if combine is not None:
        seconds = combine(seconds)
    return fit_compute([(*v, t) for v, t in zip(variants, seconds)], shape)


def fit_compute(points: list[tuple[int, int, int, float]], shape) -> dict:
    """Fit measured training steps (B, L, H, seconds) as t = 3·overhead·T·L + FLOPs / rate + fixed.

    FLOPs = T·Σ_layers 6·B·H·(I_l+H) (forward and backward), `overhead` per layer and time step
    (`compute.step_seconds`), `fixed` per training step (readout, loss, optimizer); least
    squares on relative error with every term ≥ 0, the configured shape counted three times.
    Returns {"points", "step_overhead_s", "flops_per_s", "step_fixed_s"}.
    """
    B, L, H = shape.batch, shape.layers, shape.hidden
    T, I = shape.seq_len, shape.input_size
    features = np.array([[3.0 * T * l, T * sum(6.0 * b * h * ((I if k == 0 else h) + h)
                                               for k in range(l)), 1.0]
                         for b, l, h, _ in points])
    seconds = np.array([t for *_, t in points])
    # least squares on relative error, every coefficient ≥ 0 (the FLOP term > 0): try each
    # subset of the terms that keeps the FLOP term, keep the best fit whose terms are positive
    weight = np.array([3.0 if (b, l, h) == (B, L, H) else 1.0 for b, l, h, _ in points])
    A, best = features / seconds[:, None] * weight[:, None], None
    for keep in ([0, 1, 2], [1, 2], [0, 1], [1]):
        coef, *_ = np.linalg.lstsq(A[:, keep], weight, rcond=None)
        if np.all(coef > 0):
            full = np.zeros(3)
            full[keep] = coef
            err = float(np.sum((A @ full - weight) ** 2))
            if best is None or err < best[0]:
                best = (err, full)
    if best is None:
        raise UserError(f"timing the engine gave no usable FLOP rate ({points}); "
                        f"the machine may be too busy: run --calibrate again")
    overhead, inv_rate, fixed = (float(c) for c in best[1])
    return {"points": [list(p) for p in points], "step_overhead_s": overhead,
            "flops_per_s": 1 / inv_rate, "step_fixed_s": fixed}


def calibrated_inputs(shape, cfg, world: int = 2):
    """PlanInputs for local runs on this machine, the worker counts to predict, the measurements.

    Local runs use gloo's algorithms (its reduce-scatter is an all-reduce), one flat loopback
    "network" with α/β per op and size measured through the Communicator at the sizes the
    runs send, this CPU's measured speed and the strategies' code-path overheads
    (`rnnscope.plan.pattern`), and train's meaning of --data.batch_size (the global batch:
    strong scaling). Everything is timed in `world` processes at once, sharing the cores as a
    run of `world` workers does, so it predicts such a run best; a run of more workers than
    max(cores, world) is predicted to compute proportionally slower.
    """
    from rnnscope.plan.simulate import PlanInputs
    from rnnscope.plan.topology import Topology

    from rnnscope.plan.pattern import chunk_overhead, payload_sizes, split_overhead

    log.info("measuring gloo on 127.0.0.1 (%d processes) and the engine's speed ...", world)
    sizes = tuple(sorted(set(SIZES) | set(payload_sizes(shape, cfg.parallel.chunk,
                                                         cfg.parallel.bucket_mb))))
    measured = measure_network(world, budget_s=0.4, timeout_s=420, sizes=sizes,
                               compute_args=(shape, cfg))
    network, compute = measured["network"], measured["compute"]
    links = fit_network(network, world, interpolate=True)
    rate = compute["flops_per_s"]
    device = Device("this cpu (1 thread)", {4: rate, 8: rate, 2: rate}, 1.0,
                    compute["step_overhead_s"], source="rnnscope plan --calibrate")
    # the strategies' own code paths, timed in every process at once (`rnnscope.plan.pattern`)
    pat = compute["patterns"]
    compute["split_overhead_s"] = (split_overhead(pat["split_s"], shape, device, pat["split_ways"])
                                   if pat["split_ways"] > 1 else 0.0)
    compute["chunk_overhead_s"] = chunk_overhead(pat["stage_s"], pat["whole_s"], shape,
                                                 pat["stages"], pat["chunk"])
    compute["ddp_overhead_s"] = max(0.0, pat["ddp_s"] - pat["plain_s"])
    topology = Topology(links["send"], op_links=links, per_call=True)
    inputs = PlanInputs(shape, device, topology, chunk=cfg.parallel.chunk,
                        bucket_mb=cfg.parallel.bucket_mb, scaling="strong", algorithms=GLOO,
                        # compute was timed with `world` processes sharing the cores at once
                        cores=max(os.cpu_count() or 1, world),
                        step_fixed_s=compute["step_fixed_s"],
                        split_overhead_s=compute["split_overhead_s"],
                        chunk_overhead_s=compute["chunk_overhead_s"],
                        ddp_overhead_s=compute["ddp_overhead_s"],
                        # a message's time is spent by the ranks' own threads; with more
                        # workers than cores the micro-benchmark's times are mostly waits for
                        # a core, which other workers fill with their compute
                        comm_on_cores=world <= (os.cpu_count() or 1),
                        # with more workers than cores, the gradient all-reduce has no
                        # core of its own to run on beside the backward
                        overlap=world <= (os.cpu_count() or 1))

    small, large = min(network["all_reduce"]), max(network["all_reduce"])
    measured = {
        "network_seconds": network,
        "links": {op: [{"up_to_bytes": None if r.up_to_bytes == float("inf") else r.up_to_bytes,
                        "alpha_s": r.alpha_s, "bandwidth_Bps": r.bandwidth_Bps}
                       for r in link.regimes] for op, link in links.items()},
        "compute": compute,
        "summary": (f"p2p α={links['send'].alpha_s * 1e6:.0f} µs, all-reduce "
                    f"{format_bytes(small)} {network['all_reduce'][small] * 1e3:.2f} ms, "
                    f"{format_bytes(large)} {network['all_reduce'][large] * 1e3:.2f} ms; engine "
                    f"{rate / 1e9:.2f} GFLOP/s + {compute['step_overhead_s'] * 1e6:.0f} µs "
                    f"per time step + {compute['step_fixed_s'] * 1e3:.2f} ms per training step; "
                    f"hidden split +{compute['split_overhead_s'] * 1e6:.0f} µs per layer and "
                    f"time step, pipeline +{compute['chunk_overhead_s'] * 1e6:.0f} µs per layer "
                    f"and chunk, DDP +{compute['ddp_overhead_s'] * 1e3:.2f} ms per step"),
    }
    return inputs, [2, 4], measured
