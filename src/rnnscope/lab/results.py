"""Measured beside predicted: the ledger, the interface counters and the plan, for one lab run.

Per step (`traffic.jsonl`, phase "step"): wire bytes and messages summed over ranks, the step's
time on the slowest rank, and its communication time on the rank with the least: a collective
starts on every rank when it is called but moves nothing until the last rank arrives, so the
others' time includes waiting for a peer, and the last one's is the network's own. Per host over the whole run: the bytes
the ledger says rank i sent (every phase) beside the bytes host i's interface sent, less the
66 header bytes of every frame (`predict.frame_payload_bytes`). The plan predicts the step's
communication; the step time it is held to is that plus the computation the run measured
(step time − communication time), so the comparison isolates the network.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rnnscope.lab.netns import Counters
from rnnscope.lab.predict import Prediction, frame_payload_bytes
from rnnscope.costs.units import format_rate
from rnnscope.parallel.ledger import read_jsonl

TRAFFIC_FILE = "traffic.jsonl"  # what rank 0 writes into the run directory (parallel.context)


@dataclass(frozen=True)
class StepFigures:
    """One training step as the ledger recorded it."""

    step: int
    wire_bytes: int  # sent, all ranks
    messages: int  # sent, all ranks
    step_seconds: float  # slowest rank
    comm_seconds: float  # the rank that waited least: the network's share, not a peer's lateness


@dataclass
class LabResult:
    """One strategy at one link rate: measured figures beside the plan's."""

    strategy: str
    hosts: int
    rate_bps: float
    delay_ms: float
    run_dir: str
    prediction: Prediction
    steps: list[StepFigures]
    ledger_sent: list[int]  # rank i, every phase, wire bytes
    interface: list[Counters]  # host i, over the whole run
    wall_seconds: float
    summary: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        timed = self.steps[1:] if len(self.steps) > 2 else self.steps  # step 1 warms up
        step_s = statistics.median(s.step_seconds for s in timed)
        comm_s = statistics.median(s.comm_seconds for s in timed)
        compute_s = max(step_s - comm_s, 0.0)
        ledger = sum(self.ledger_sent)
        payload = sum(frame_payload_bytes(c.tx_bytes, c.tx_packets) for c in self.interface)
        self.summary = {
            "step_seconds": step_s,
            "comm_seconds": comm_s,
            "compute_seconds": compute_s,
            "predicted_comm_seconds": self.prediction.comm_seconds,
            "predicted_step_seconds": compute_s + self.prediction.comm_seconds,
            "step_ratio": step_s / (compute_s + self.prediction.comm_seconds),
            "wire_bytes_per_step": statistics.median(s.wire_bytes for s in timed),
            "predicted_wire_bytes_per_step": self.prediction.network_bytes,
            "messages_per_step": statistics.median(s.messages for s in timed),
            "ledger_bytes": ledger,
            "interface_payload_bytes": payload,
            "interface_frame_bytes": sum(c.tx_bytes for c in self.interface),
            "bytes_ratio": payload / ledger if ledger else float("nan"),
        }

    @property
    def label(self) -> str:
        """`data @ 100Mbit`."""
        return f"{self.strategy} @ {format_rate(self.rate_bps)}"

    def to_dict(self) -> dict:
        """Plain data for --json."""
        out = asdict(self)
        out["link"] = format_rate(self.rate_bps)
        return out


def step_figures(rows: list[dict]) -> list[StepFigures]:
    """Per-step totals over ranks from traffic.jsonl rows (phase "step")."""
    by_step: dict[int, list[dict]] = {}
    for row in rows:
        if row["phase"] == "step":
            by_step.setdefault(row["step"], []).append(row)
    figures = []
    for step, group in sorted(by_step.items()):
        figures.append(StepFigures(
            step=step,
            wire_bytes=sum(r["wire_bytes_sent"] for r in group),
            messages=sum(r["messages"] for r in group),
            step_seconds=max(r["step_seconds"] for r in group),
            comm_seconds=min(r["step_comm_seconds"] for r in group),
        ))
    return figures


def ledger_sent_by_rank(rows: list[dict], world_size: int) -> list[int]:
    """Wire bytes each rank sent over the whole run, every phase included."""
    sent = [0] * world_size
    for row in rows:
        sent[row["rank"]] += row["wire_bytes_sent"]
    return sent


def read_traffic(run_dir: Path) -> list[dict]:
    """The rows of `run_dir/traffic.jsonl`, or a LabError-worthy message if it is missing."""
    path = Path(run_dir) / TRAFFIC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} was not written: the run recorded no traffic")
    return read_jsonl(path)
