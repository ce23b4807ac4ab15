"""The ledger: every operation the communicator ran, and what it derives per training step.

A `Record` is one operation on one rank: op, tag, payload bytes S, the wire bytes this rank sent
and received for the algorithm used (from `rnnscope.costs.collectives`, the same formula the
planner predicts with), messages sent, and its start and end on this process's clock.

`Ledger.close_step(step)` turns the records since the last close into rows, one per
(step, rank, tag, op), with the derived quantities (nccl-tests definitions):

- `seconds`: the summed duration of the row's operations; `busy_seconds`: the wall time during
  which at least one of them was in flight (overlapping async operations count once).
- `algbw` = S / t (payload bytes over `seconds`), the *algorithm* bandwidth, bytes/s.
- `busbw` = algbw × bus_factor(op, n), the *bus* bandwidth: 2(n−1)/n for all-reduce,
  (n−1)/n for all-gather and reduce-scatter, 1 for broadcast and send/recv.
- `bytes_per_s`, `messages_per_s`: wire bytes sent and messages sent over the whole step.
- `comm_fraction`: busy_seconds / step_seconds for this tag; `step_comm_seconds` and
  `step_comm_fraction`: the same over every tag of the step.
- `spans`: each call's [start, end] in Unix seconds (time.time()'s clock, shared by the
  processes of one machine), for timelines (`rnnscope report --trace`).

Besides the rows the ledger keeps `phases`: named compute spans [name, start, end] (Unix seconds)
that a strategy marks with `with ledger.phase("forward c0"):`, and one "step N" span per closed
training step; the parallel context writes them to compute.jsonl.

Rows of the setup (before the first step) and of the close have `step: null` and `phase`
"setup" / "close"; training rows have `phase: "step"`.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rnnscope.costs.collectives import bus_factor

# the fields every traffic.jsonl row carries, in this order
ROW_FIELDS = (
    "step", "phase", "rank", "world_size", "op", "tag", "algorithm", "calls", "payload_bytes",
    "wire_bytes_sent", "wire_bytes_received", "messages", "seconds", "busy_seconds",
    "step_seconds", "algbw", "busbw", "bytes_per_s", "messages_per_s", "comm_fraction",
    "step_comm_seconds", "step_comm_fraction", "spans",
)

MAX_PHASES = 200_000  # compute spans kept per rank (a pipeline marks two per chunk and step)


@dataclass(frozen=True)
class Record:
    """One operation on one rank; times are `time.perf_counter()` seconds."""

    op: str
    tag: str
    algorithm: str
    world_size: int  # ranks in the group the operation ran on (2 for point-to-point)
    payload_bytes: int
    wire_bytes_sent: int
    wire_bytes_received: int
    messages: int
    start: float
    end: float

    @property
    def seconds(self) -> float:
        """How long the operation took, from its issue to its completion."""
        return self.end - self.start


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of `(start, end)` intervals: time during which anything was in flight."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


class Ledger:
    """Thread-safe record of one rank's operations, closed into per-step rows.

    Async operations complete on the backend's own thread (a DDP communication hook's all-reduce
    does), so `add` takes a lock.
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank  # the process's global rank; one ledger per process, for every group
        self.rows: list[dict] = []  # closed rows, oldest first
        self._pending: list[Record] = []
        self._lock = threading.Lock()
        self._mark = time.perf_counter()  # start of the step being recorded
        self.clock_offset = time.time() - time.perf_counter()  # perf_counter + offset = Unix time
        self.phases: list[list] = []  # [name, start, end] compute spans, Unix seconds

    @contextmanager
    def phase(self, name: str):
        """Mark a compute span (forward of a chunk, backward of a layer) for the timeline."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add_phase(name, start, time.perf_counter())

    def add_phase(self, name: str, start: float, end: float) -> None:
        """Keep a compute span given in perf_counter seconds (for code that cannot use `phase`)."""
        if len(self.phases) < MAX_PHASES:
            self.phases.append([name, start + self.clock_offset, end + self.clock_offset])

    def add(self, record: Record) -> None:
        """Append one completed operation to the step being recorded."""
        with self._lock:
            self._pending.append(record)

    def pending(self) -> list[Record]:
        """A copy of the records not yet closed into rows."""
        with self._lock:
            return list(self._pending)

    def close_step(self, step: int | None, phase: str = "step") -> list[dict]:
        """Close the records since the last close into rows for `step`; return those rows.

        The step's duration runs from the previous close (or the ledger's creation) to now.
        """
        now = time.perf_counter()
        with self._lock:
            records, self._pending = self._pending, []
        if phase == "step" and len(self.phases) < MAX_PHASES:
            self.phases.append([f"step {step}", self._mark + self.clock_offset, now + self.clock_offset])
        step_seconds, self._mark = now - self._mark, now
        rows = step_rows(records, step, phase, self.rank, step_seconds, self.clock_offset)
        self.rows.extend(rows)
        return rows

    def totals(self) -> dict[str, float]:
        """Sums over every closed row of this rank: bytes, messages, seconds."""
        keys = ("payload_bytes", "wire_bytes_sent", "wire_bytes_received", "messages", "seconds")
        return {k: sum(row[k] for row in self.rows) for k in keys}


def step_rows(records: list[Record], step: int | None, phase: str, rank: int,
              step_seconds: float, clock_offset: float | None = None) -> list[dict]:
    """Aggregate one step's records into one row per (tag, op), with the derived rates.

    `clock_offset` turns perf_counter seconds into Unix seconds for the rows' `spans`
    (default: this process's offset now).
    """
    if clock_offset is None:
        clock_offset = time.time() - time.perf_counter()
    groups: dict[tuple[str, str, str, int], list[Record]] = {}
    for record in records:
        key = (record.tag, record.op, record.algorithm, record.world_size)
        groups.setdefault(key, []).append(record)
    step_comm = busy_seconds([(r.start, r.end) for r in records])
    rows = []
    for (tag, op, algorithm, n), group in sorted(groups.items()):
        payload = sum(r.payload_bytes for r in group)
        sent = sum(r.wire_bytes_sent for r in group)
        messages = sum(r.messages for r in group)
        seconds = sum(r.seconds for r in group)
        busy = busy_seconds([(r.start, r.end) for r in group])
        algbw = _ratio(payload, seconds)
        rows.append({
            "step": step, "phase": phase, "rank": rank, "world_size": n,
            "op": op, "tag": tag, "algorithm": algorithm, "calls": len(group),
            "payload_bytes": payload, "wire_bytes_sent": sent,
            "wire_bytes_received": sum(r.wire_bytes_received for r in group),
            "messages": messages, "seconds": seconds, "busy_seconds": busy,
            "step_seconds": step_seconds,
            "algbw": algbw,
            "busbw": None if algbw is None else algbw * bus_factor(op, n),
            "bytes_per_s": _ratio(sent, step_seconds),
            "messages_per_s": _ratio(messages, step_seconds),
            "comm_fraction": _ratio(busy, step_seconds),
            "step_comm_seconds": step_comm,
            "step_comm_fraction": _ratio(step_comm, step_seconds),
            "spans": [[round(r.start + clock_offset, 6), round(r.end + clock_offset, 6)] for r in group],
        })
    return rows


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    """Write rows as JSON lines (ordered by step, rank, tag), atomically; return the path."""
    path = Path(path)
    order = {"setup": 0, "step": 1, "close": 2}
    rows = sorted(rows, key=lambda r: (order.get(r["phase"], 3), r["step"] or 0, r["rank"],
                                       r["tag"], r["op"]))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps({k: row.get(k) for k in ROW_FIELDS}) + "\n")
    tmp.replace(path)
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a traffic.jsonl (or any JSON-lines file, compute.jsonl too) back into rows."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]
