"""Side by side: what data, pipeline and hidden-split parallelism put on the network per step.

Measured figures come from a run's `traffic.jsonl` (the communicator's ledger, phase "step",
after `warmup` steps); formulas from `rnnscope.costs.traffic`, with each collective costed
the way the backend runs it (`costs.backends`: gloo's reduce-scatter is an all-reduce),
so that measured and formula agree exactly when the strategy does what its formula says.

Every byte and message figure is for the whole network (summed over ranks) per training step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rnnscope.costs.backends import backend_algorithms
from rnnscope.costs.layout import bubble_fraction, chunk_count
from rnnscope.costs.traffic import RNNShape, network_totals, strategy_traffic


@dataclass
class Comparison:
    """One strategy's row of the comparison table."""

    strategy: str
    world_size: int
    steps: int  # steps measured (after warm-up)
    bytes_per_step: float  # wire bytes sent, all ranks
    formula_bytes_per_step: int
    messages_per_step: float  # messages sent, all ranks
    formula_messages_per_step: int
    payload_bytes_per_step: float  # S summed over operations and ranks
    messages_per_s: float | None  # messages_per_step / step time
    comm_fraction: float | None  # mean over ranks of the time anything was in flight
    step_seconds: float | None  # mean over steps of the slowest rank's step
    idle_fraction: list[float | None] | None = None  # pipeline: measured per rank
    bubble_fraction: float | None = None  # pipeline: (S−1)/(C+S−1)

    def as_dict(self) -> dict:
        """Plain types, for --json."""
        return asdict(self)


def formula(strategy: str, shape: RNNShape, world_size: int, *, chunk: int = 1,
            bucket_mb: float = 25.0, backend: str = "gloo", clip: bool = False) -> tuple[int, int]:
    """(wire bytes, messages) per step, all ranks, that the strategy's formula predicts.

    The pipeline's formula includes ŷ (B·T·O or B·O elements) broadcast from the last stage,
    so that every rank has the loss (tag pp-out); with `clip`, a model split's gradient-norm
    all-reduce (tag grad-norm).
    """
    traffic = strategy_traffic(strategy, shape, world_size, chunk=chunk, bucket_mb=bucket_mb,
                               clip=clip)
    return network_totals(traffic, backend_algorithms(backend))


def measure(rows: list[dict], warmup: int = 1) -> dict:
    """Per-step means over the steps after `warmup`, from traffic.jsonl rows (all ranks)."""
    steps = sorted({r["step"] for r in rows if r["phase"] == "step" and r["step"] > warmup})
    if not steps:
        raise ValueError(f"no training steps after the first {warmup} in the traffic rows; "
                         "train for more steps")
    per_step = {s: [r for r in rows if r["phase"] == "step" and r["step"] == s] for s in steps}
    n = len(steps)
    sent = sum(r["wire_bytes_sent"] for g in per_step.values() for r in g) / n
    messages = sum(r["messages"] for g in per_step.values() for r in g) / n
    payload = sum(r["payload_bytes"] for g in per_step.values() for r in g) / n
    step_seconds, fractions = [], []
    for group in per_step.values():
        by_rank = {r["rank"]: r for r in group}  # one row per rank carries its step's figures
        step_seconds.append(max(r["step_seconds"] for r in by_rank.values()))
        fractions += [r["step_comm_fraction"] for r in by_rank.values()
                      if r["step_comm_fraction"] is not None]
    seconds = sum(step_seconds) / n
    return {"steps": n, "bytes": sent, "messages": messages, "payload": payload,
            "step_seconds": seconds, "messages_per_s": messages / seconds if seconds else None,
            "comm_fraction": sum(fractions) / len(fractions) if fractions else None}


def compare_row(strategy: str, rows: list[dict], shape: RNNShape, world_size: int, *,
                chunk: int, bucket_mb: float, warmup: int = 1,
                stats: dict | None = None, backend: str = "gloo",
                clip: bool = False) -> Comparison:
    """One strategy's measured figures beside its formula."""
    m = measure(rows, warmup)
    f_bytes, f_messages = formula(strategy, shape, world_size, chunk=chunk, bucket_mb=bucket_mb,
                                  backend=backend, clip=clip)
    row = Comparison(strategy, world_size, m["steps"], m["bytes"], f_bytes, m["messages"],
                     f_messages, m["payload"], m["messages_per_s"], m["comm_fraction"],
                     m["step_seconds"])
    if strategy == "pipeline":
        row.bubble_fraction = bubble_fraction(world_size, chunk_count(shape.seq_len, chunk))
        if stats:
            row.idle_fraction = [r["idle_fraction"] for r in stats.get("ranks", [])]
    return row
