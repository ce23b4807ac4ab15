"""Fit what the calibration measured: α and β per op and message-size regime, the engine's speed.

Loopback does not follow one straight line (a 4 B all-reduce takes ≈ 0.14 ms, one of 1–16 kB
1.1–1.7 ms, one of 4 MB ≈ 3.5 ms), so each op gets its own link: regimes fitted to the time of
one step of its critical path (`alphabeta.message_schedule`), the fewest that fit
(`fit_regimes`) or, to predict local runs, one between each two measured sizes
(`interpolate_regimes`). Whole training steps timed at a few shapes (`speed`) are fitted as
3·overhead + 6·B·H·(I+H) / rate per layer and time step (`compute.step_seconds`) plus a fixed
cost per training step (`fit_compute`). Pure: numbers in, links and dataclasses out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnscope.costs.backends import GLOO
from rnnscope.costs.traffic import GATE_COUNT
from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link, Regime, message_schedule


@dataclass
class ComputeFit:
    """The engine's speed fitted from whole training steps.

    points: the measured steps, [B, L, H, seconds] each; step_overhead_s: per layer and forward
    time step (the backward pays twice); flops_per_s: the matmuls' rate; step_fixed_s: per
    training step outside the recurrence (batch, readout, loss, optimizer).
    """

    points: list[list[float]]
    step_overhead_s: float
    flops_per_s: float
    step_fixed_s: float


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


def fit_compute(points: list[tuple[int, int, int, float]], shape) -> ComputeFit:
    """Fit measured training steps (B, L, H, seconds) as t = 3·overhead·T·L + FLOPs / rate + fixed.

    FLOPs = T·Σ_layers 6·G·B·H·(I_l+H) (forward and backward; G gates, 1 for Elman), `overhead` per layer and time step
    (`compute.step_seconds`), `fixed` per training step (readout, loss, optimizer); least
    squares on relative error with every term ≥ 0, the configured shape counted three times.
    """
    B, L, H = shape.batch, shape.layers, shape.hidden
    T, I = shape.seq_len, shape.input_size
    G = GATE_COUNT[getattr(shape, "cell", "elman")]  # a gated cell's G weighted sums per unit
    features = np.array([[3.0 * T * l, T * sum(6.0 * G * b * h * ((I if k == 0 else h) + h)
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
    return ComputeFit([list(p) for p in points], overhead, 1 / inv_rate, fixed)


