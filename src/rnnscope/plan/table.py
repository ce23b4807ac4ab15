"""A plan as a person reads it (a rich table and one reason per worker count) or as JSON."""

from __future__ import annotations

from dataclasses import asdict

from rnnscope.plan.recommend import FAMILIES, WorkerPlan
from rnnscope.plan.simulate import PlanInputs, StepPlan
from rnnscope.costs.units import format_bandwidth, format_bytes, format_percent, format_seconds


def _workers(n: int) -> str:
    return f"{n:,} worker{'s' if n > 1 else ''}"


def _seconds(s: float) -> str:
    return format_seconds(s) if s > 0 else "0"


def describe_inputs(inputs: PlanInputs) -> str:
    """One line: the model, the batch, the device and the links."""
    s, d, topo = inputs.shape, inputs.device, inputs.topology
    dtype = {4: "fp32", 2: "bf16"}.get(s.bytes_per_element, f"{s.bytes_per_element}-byte")
    batch = (f"B={s.batch} per data replica (weak scaling)" if inputs.scaling == "weak"
             else f"B={s.batch} global (strong scaling)")
    link = topo.inter
    net = (f"network {format_bandwidth(link.bandwidth_Bps)}, α={format_seconds(link.alpha_s)}"
           if len(link.regimes) == 1 else f"network {link.name} ({len(link.regimes)} regimes)")
    if not topo.flat:
        net += (f"; nodes of {topo.gpus_per_node} at {format_bandwidth(topo.intra.bandwidth_Bps)}"
                f", α={format_seconds(topo.intra.alpha_s)}")
    rate = d.flops_per_s(s.bytes_per_element)
    cell = {"elman": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}[s.cell]
    return (f"{cell} I={s.input_size} H={s.hidden} L={s.layers} O={s.output_size}, "
            f"T={s.seq_len}, {batch}, {dtype}; {d.name}: {rate / 1e12:.3g} TFLOP/s sustained "
            f"+ {format_seconds(d.step_overhead_s)} per time step; {net}; chunk="
            f"{inputs.chunk}, buckets {inputs.bucket_mb:g} MiB")


def plan_table(console, inputs: PlanInputs, plans: list[WorkerPlan],
               measured: dict | None = None) -> None:
    """Print one row per worker count and layout family, then the recommendation with its reason."""
    from rich.table import Table

    table = Table(title="rnnscope plan: one training step", caption=describe_inputs(inputs))
    for name, justify in (("workers", "right"), ("layout", "left"), ("step", "right"),
                          ("compute", "right"), ("bubble", "right"), ("exposed comm", "right"),
                          ("sent/worker", "right"), ("memory/worker", "right"), ("net util", "right"),
                          ("efficiency", "right"), ("samples/s", "right")):
        table.add_column(name, justify=justify)
    for wp in plans:
        for family in FAMILIES + ("single",):
            if family in wp.best:
                plan = wp.best[family]
                star = "★ " if plan is wp.recommended else ""
                table.add_row(f"{wp.workers:,}", star + plan.layout.label,
                              format_seconds(plan.step_s), format_seconds(plan.compute_s),
                              _seconds(plan.bubble_s), _seconds(plan.exposed_comm_s),
                              format_bytes(plan.inter_bytes + plan.intra_bytes),
                              format_bytes(plan.memory_bytes),
                              format_percent(plan.inter_utilization),
                              format_percent(plan.efficiency), f"{plan.samples_per_s:,.0f}")
        table.add_section()
    console.print(table)
    console.print("[dim]sent/worker: bytes one worker sends per step (network + inside a node); "
                  "memory/worker: its weights, gradients, Adam's moments and saved activations; "
                  "net util: network bytes / (step × link bandwidth); efficiency: throughput / "
                  "(workers × one device's).[/dim]")
    for wp in plans:
        if wp.infeasible:
            why = "; ".join(f"{family}: {text}" for family, text in wp.infeasible.items())
            console.print(f"[dim]{_workers(wp.workers)}, not possible: {why}[/dim]")
    for wp in plans:
        console.print(f"★ {_workers(wp.workers)}: {wp.reason}")
    if measured:
        console.print(f"calibrated on this machine: {measured.get('summary', '')}")


def plan_to_dict(plan: StepPlan) -> dict:
    """A StepPlan as plain JSON-able values."""
    out = {key: value for key, value in asdict(plan).items() if key not in ("layout", "items")}
    out["layout"] = {"family": plan.layout.family, "label": plan.layout.label,
                     **asdict(plan.layout)}
    out["items"] = [{"tag": item.tag, "op": item.op, "payload_bytes": item.payload_bytes,
                     "count": item.count, "seconds_each": item.cost.seconds,
                     "algorithm": item.cost.algorithm, "inter_bytes_each": item.cost.inter_bytes,
                     "intra_bytes_each": item.cost.intra_bytes,
                     "messages_each": item.cost.messages, "exposed_s": item.exposed_s}
                    for item in plan.items]
    return out


def _regimes(link) -> list[dict]:
    """A link's regimes; the open-ended last one has up_to_bytes null (JSON has no infinity)."""
    return [{"up_to_bytes": None if r.up_to_bytes == float("inf") else r.up_to_bytes,
             "alpha_s": r.alpha_s, "bandwidth_Bps": r.bandwidth_Bps} for r in link.regimes]


def plans_to_json(inputs: PlanInputs, plans: list[WorkerPlan], measured: dict | None = None) -> dict:
    """The whole plan: inputs, and per worker count every family's best, the pick and why."""
    topo = inputs.topology
    return {
        "inputs": {
            "shape": asdict(inputs.shape), "scaling": inputs.scaling, "chunk": inputs.chunk,
            "bucket_mb": inputs.bucket_mb, "device": {
                "name": inputs.device.name, "peak_flops": inputs.device.peak_flops,
                "utilization": inputs.device.utilization,
                "step_overhead_s": inputs.device.step_overhead_s,
                "source": inputs.device.source},
            "network": _regimes(topo.inter),
            "gpus_per_node": topo.gpus_per_node,
            "intra": _regimes(topo.intra) if topo.intra else None,
            "op_links": ({op: _regimes(link) for op, link in topo.op_links.items()}
                         if topo.op_links else None),
        },
        "plans": [{"workers": wp.workers, "recommended": wp.recommended.layout.label,
                   "reason": wp.reason, "infeasible": wp.infeasible,
                   "best": {family: plan_to_dict(plan) for family, plan in wp.best.items()}}
                  for wp in plans],
        "calibration": measured,
    }
