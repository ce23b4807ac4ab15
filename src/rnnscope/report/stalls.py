"""A pipeline run's wake-up stalls, measured from its own timeline.

A pipeline stage blocked in a receive waits for the message and then for its thread to be woken.
The ledger's spans (traffic.jsonl) hold every send's and receive's [start, end], so each
message's delivery can be read off a run: from the later of the send's and the receive's start
to the receive's end. Most deliveries take about the same (α plus the bytes); a few take
milliseconds (a thread woken a scheduler tick late). What a step loses to those is the excess of
each delivery over the run's typical one (its median), summed over the step's messages: the
stall that the planner's model (α, β, the simulated waves) does not describe.

`stalls_of` is a pure function of a run's ledger rows and compute phases (`pipeline_stalls` reads
them from the run directory); `benchmarks/plan_vs_measured.py` prints the prediction with the
measured stalls put in beside its error, to say how much of the pipeline's remaining error they
explain (docs/plan.md §7), as it does with a hidden split's exchanges
(`parallel.summary.median_step_comm_seconds`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from rnnscope.parallel.ledger import read_jsonl
from rnnscope.report.timeline import comm_calls, phase_kind, read_phases

PIPELINE_TAGS = ("pp-act", "pp-grad")  # activations forward, their gradients backward


@dataclass
class Stalls:
    """What a pipeline run's messages took, from `first_step` on.

    deliveries: seconds of every delivery (a receive's end − the later of its and its send's
        start), the pipeline's activations and gradients together;
    typical_s: their median;
    per_step_s: per step, the sum over its messages of (delivery − typical_s), the excess only;
    compute_s, idle_s: per rank, the median seconds a step spent in compute phases and the rest
        of the step (empty when the run has no compute.jsonl).
    """

    deliveries: list[float]
    typical_s: float
    per_step_s: dict[int, float]
    compute_s: dict[int, float]
    idle_s: dict[int, float]

    @property
    def mean_stall_s(self) -> float:
        """The mean excess per step: what the stalls add to a step on average."""
        return statistics.fmean(self.per_step_s.values()) if self.per_step_s else 0.0

    @property
    def median_stall_s(self) -> float:
        """The median step's excess."""
        return statistics.median(self.per_step_s.values()) if self.per_step_s else 0.0


def _pairs(calls: list[dict], first_step: int) -> dict[int, list[float]]:
    """step -> deliveries of that step's pipeline messages. The ledger does not name a message's
    peer, so the stages are taken to be in rank order (the pipeline strategy's layout): per step
    and tag, the i-th rank that sends pairs with the i-th rank that receives (activations go from
    stage k to k + 1, gradients from k + 1 to k), and between two ranks the k-th send with the
    k-th receive (a pair's messages arrive in order)."""
    sends: dict[tuple, dict[int, list[dict]]] = {}
    recvs: dict[tuple, dict[int, list[dict]]] = {}
    for call in calls:
        if call["tag"] in PIPELINE_TAGS and call["step"] >= first_step and call["op"] in ("send", "recv"):
            side = sends if call["op"] == "send" else recvs
            side.setdefault((call["step"], call["tag"]), {}).setdefault(call["rank"], []).append(call)
    out: dict[int, list[float]] = {}
    for key, by_sender in sends.items():
        by_receiver = recvs.get(key, {})
        for sender, receiver in zip(sorted(by_sender), sorted(by_receiver)):
            pairs = zip(sorted(by_sender[sender], key=lambda c: c["start"]),
                        sorted(by_receiver[receiver], key=lambda c: c["start"]))
            out.setdefault(key[0], []).extend(max(0.0, r["end"] - max(s["start"], r["start"])) for s, r in pairs)
    return out


def _compute_and_idle(phases: dict[int, list[list]], first_step: int) -> tuple[dict[int, float], dict[int, float]]:
    """Per rank, the median compute and idle seconds of a step (a "step N" phase encloses it)."""
    compute, idle = {}, {}
    for rank, items in phases.items():
        busy, per_step_compute, per_step_idle = 0.0, [], []
        for name, start, end in items:
            if phase_kind(name) == "step":
                if int(name.split()[1]) >= first_step:
                    per_step_compute.append(busy)
                    per_step_idle.append(max(0.0, end - start - busy))
                busy = 0.0
            else:
                busy += end - start
        if per_step_compute:
            compute[rank] = statistics.median(per_step_compute)
            idle[rank] = statistics.median(per_step_idle)
    return compute, idle


def stalls_of(rows: list[dict], phases: dict[int, list[list]], first_step: int = 1) -> Stalls | None:
    """The stalls in a run's ledger rows (traffic.jsonl) and compute phases (compute.jsonl) from
    step `first_step` on; None when the rows hold no pipeline messages with spans (not a pipeline
    run, or an old ledger)."""
    by_step = _pairs(comm_calls(rows), first_step)
    deliveries = [d for step in by_step.values() for d in step]
    if not deliveries:
        return None
    typical = statistics.median(deliveries)
    per_step = {step: sum(max(0.0, d - typical) for d in ds) for step, ds in by_step.items()}
    compute, idle = _compute_and_idle(phases, first_step)
    return Stalls(deliveries, typical, per_step, compute, idle)


def pipeline_stalls(run_dir: str | Path, first_step: int = 1) -> Stalls | None:
    """`stalls_of` the run in `run_dir`; None also when it has no traffic.jsonl."""
    traffic = Path(run_dir) / "traffic.jsonl"
    if not traffic.exists():
        return None
    return stalls_of(read_jsonl(traffic), read_phases(run_dir), first_step)
