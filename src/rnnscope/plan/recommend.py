"""Which layout to use on N workers, and why, in one sentence.

For every N the planner tries each family of layouts (data, pipeline, hidden_split,
data×pipeline, data×hidden_split) with every degree that divides the model, keeps the fastest of each family by
throughput (samples per second), and recommends the fastest overall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnscope.costs.layout import ParallelLayout
from rnnscope.costs.units import format_bandwidth, format_bytes, format_percent, format_seconds
from rnnscope.errors import UserError
from rnnscope.plan.simulate import PlanInputs, StepPlan, check_layout, simulate, single_device_seconds

FAMILIES = ("data", "pipeline", "hidden_split", "data×pipeline", "data×hidden_split")


@dataclass
class WorkerPlan:
    """The plans for one worker count: the best of each family, and the recommendation."""

    workers: int
    best: dict[str, StepPlan] = field(default_factory=dict)
    infeasible: dict[str, str] = field(default_factory=dict)  # family -> why not
    recommended: StepPlan | None = None
    reason: str = ""


def _divisors(n: int) -> list[int]:
    return [i for i in range(1, n + 1) if n % i == 0]


def layouts(inputs: PlanInputs, workers: int) -> dict[str, list[ParallelLayout]]:
    """Every layout of exactly `workers` workers that the model admits, by family."""
    s = inputs.shape
    found: dict[str, list[ParallelLayout]] = {f: [] for f in FAMILIES}
    for p in range(1, s.layers + 1):
        for k in _divisors(s.hidden):
            if workers % (p * k) or (p > 1 and k > 1):
                continue
            layout = ParallelLayout(workers // (p * k), p, k)
            try:
                check_layout(inputs, layout)
            except UserError:
                continue
            if layout.family in found:
                found[layout.family].append(layout)
    return found


def _why_not(inputs: PlanInputs, family: str, workers: int) -> str:
    s = inputs.shape
    if family == "data" and inputs.scaling == "strong" and workers > s.batch:
        return f"{workers} replicas > global batch {s.batch}"
    if family == "pipeline":
        return f"{workers} stages > {s.layers} layer(s)"
    if family == "hidden_split":
        return f"{workers} does not divide hidden {s.hidden}"
    if family == "data×pipeline":
        return f"no d × p = {workers} with d ≥ 2 and 2 ≤ p ≤ {s.layers} layers"
    return f"no d × hs = {workers} with d ≥ 2 and hs ≥ 2 dividing hidden {s.hidden}"


def plan_workers(inputs: PlanInputs, workers: int) -> WorkerPlan:
    """Simulate every layout for `workers` and pick the best of each family and overall."""
    if workers < 1:
        raise UserError(f"--workers must be ≥ 1, got {workers}")
    result = WorkerPlan(workers)
    for family, candidates in layouts(inputs, workers).items():
        plans = [simulate(inputs, layout) for layout in candidates]
        if plans:
            result.best[family] = max(plans, key=lambda plan: plan.samples_per_s)
        else:
            result.infeasible[family] = _why_not(inputs, family, workers)
    if workers == 1:
        result.best["single"] = simulate(inputs, ParallelLayout())
    if not result.best:
        raise UserError(f"no layout of {workers} workers fits this model")
    ranked = sorted(result.best.values(), key=lambda plan: -plan.samples_per_s)
    result.recommended = ranked[0]
    result.reason = reason(inputs, ranked)
    return result


def _comm_phrase(inputs: PlanInputs, plan: StepPlan) -> str:
    """The communication that lengthens the step most, in words."""
    topo = inputs.topology
    top = max(plan.items, key=lambda item: item.exposed_s)
    link = topo.inter if top.cost.inter_bytes else topo.intra
    wire_s = top.cost.inter_bytes / topo.inter.bandwidth_Bps + (
        top.cost.intra_bytes / topo.intra.bandwidth_Bps if topo.intra else 0.0)
    bound = "latency-bound " if top.cost.seconds > 2 * wire_s * max(top.count, 1) else ""
    op = top.op.replace("_", "-")
    if top.tag == "gradients":
        calls = len(top.schedule)
        what = (f"{calls} {bound}gradient {op}{'s' if calls > 1 else ''} "
                f"({format_bytes(top.payload_bytes)} in all)")
    elif top.count > 1:
        what = (f"{top.count:,} {bound}{op}s of {format_bytes(top.payload_bytes)} "
                f"({format_seconds(top.cost.seconds)} each)")
    else:
        what = f"a {bound}{format_bytes(top.payload_bytes)} {op} per step"
    where = ("on the calibrated loopback" if topo.op_links
             else f"over {format_bandwidth(link.bandwidth_Bps)} links")
    return f"{what} leaving {format_seconds(plan.exposed_comm_s)} exposed {where}"


def dominant_cost(inputs: PlanInputs, plan: StepPlan) -> str:
    """What holds a plan back most, in a phrase: exposed communication, the pipeline bubble,
    or compute beyond an even share of one device's work."""
    layout = plan.layout
    # the even share: one device's work on the reference batch, split over the workers it uses
    reference = plan.batch_per_replica if inputs.scaling == "weak" else inputs.shape.batch
    ways = layout.pipeline * layout.hidden_split * (layout.data if inputs.scaling == "strong" else 1)
    ideal = single_device_seconds(inputs, reference) / ways
    losses = {"compute": plan.compute_s - ideal, "bubble": plan.bubble_s}
    if plan.items:
        losses["comm"] = plan.exposed_comm_s
    worst = max(losses, key=losses.get)
    if worst == "comm":
        return _comm_phrase(inputs, plan)
    if worst == "bubble":
        return (f"its pipeline bubble ({format_seconds(plan.bubble_s)}: "
                f"{plan.bubble_fraction:.0%} of each stage's time idle)")
    if ways == 1:
        return (f"its compute ({format_seconds(plan.compute_s)}: time steps run one after "
                f"the other)")
    if layout.hidden_split > 1:
        why = "the fixed cost of each time step does not shrink when the hidden units split"
    elif layout.data > 1 and inputs.scaling == "strong":
        why = "a smaller batch per replica does not shorten the fixed cost of each time step"
    else:
        why = "its stages hold layers of unequal cost"
    return (f"its per-worker compute ({format_seconds(plan.compute_s)}, "
            f"{plan.compute_s / ideal:.3g}× an even 1/{ways} share: {why})")


def reason(inputs: PlanInputs, ranked: list[StepPlan]) -> str:
    """One sentence: the winner, its step time and efficiency, and what holds the runner-up back."""
    best = ranked[0]
    reference = best.batch_per_replica if inputs.scaling == "weak" else inputs.shape.batch
    one_device = reference / single_device_seconds(inputs, reference)  # samples/s
    warning = ""
    if best.samples_per_s < one_device:
        warning = (f" (still slower than one device: this model cannot use "
                   f"{best.layout.world:,} workers)")
    workers = f"{best.layout.world:,} worker{'s' if best.layout.world > 1 else ''}"
    head = (f"{best.layout.label} is fastest on {workers} "
            f"({format_seconds(best.step_s)} per step, {format_percent(best.efficiency)} scaling "
            f"efficiency){warning}")
    others = [plan for plan in ranked[1:] if plan.layout.family != best.layout.family]
    if not others:
        return head + f"; it is the only layout that fits, limited by {dominant_cost(inputs, best)}."
    runner = others[0]
    ratio = best.samples_per_s / runner.samples_per_s
    # by throughput: with weak scaling a layout of fewer data replicas takes shorter steps of a
    # smaller global batch, so its step time alone would mislead
    return (f"{head}; the next best, {runner.layout.label}, trains {ratio:.3g}× fewer samples "
            f"per second because of {dominant_cost(inputs, runner)}.")
