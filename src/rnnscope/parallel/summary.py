"""The end-of-run table of where the bytes went, from traffic.jsonl rows (all ranks).

One line per rank, tag and op, averaged over the training steps (setup and close lines show
their one-off totals). Columns, nccl-tests definitions:

- `S/step`: payload bytes per step (the array all-reduced; for all-gather the output).
- `sent/step`, `recv/step`, `msgs/step`: what this rank put on and took off the wire per step,
  by the algorithm's formula (ring all-reduce: 2(n−1)/n·S each way, in 2(n−1) messages).
- `algbw` = S / t, the *algorithm* bandwidth (t: the operations' summed duration).
- `busbw` = algbw × bus factor (2(n−1)/n all-reduce, (n−1)/n all-gather and reduce-scatter,
  1 broadcast and send/recv), the *bus* bandwidth, comparable across n and with the link speed.
- `rate`: wire bytes sent per second of step time; `comm %`: share of the step during which
  an operation of this tag was in flight.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from rnnscope.costs.collectives import bus_factor


def human_bytes(n: float) -> str:
    """Decimal units, like nccl-tests: 1 kB = 1000 B."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def human_rate(n: float | None, unit: str = "B/s") -> str:
    """A bytes-per-second (or other) rate with a decimal prefix, '-' when unknown."""
    if n is None:
        return "-"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}{unit}"
    return f"{n:.1f} {unit}"


def aggregate(rows: list[dict]) -> list[dict]:
    """One summary line per (phase, rank, tag, op, algorithm, world_size), sums and derived rates."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        key = (row["phase"], row["rank"], row["tag"], row["op"], row["algorithm"], row["world_size"])
        groups[key].append(row)
    order = {"setup": 0, "step": 1, "close": 2}
    lines = []
    for (phase, rank, tag, op, algorithm, n), group in sorted(
            groups.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 3), kv[0][2:4])):
        steps = len({r["step"] for r in group})
        seconds = sum(r["seconds"] for r in group)
        step_seconds = sum(r["step_seconds"] for r in group)
        payload = sum(r["payload_bytes"] for r in group)
        sent = sum(r["wire_bytes_sent"] for r in group)
        algbw = payload / seconds if seconds > 0 else None
        lines.append({
            "phase": phase, "rank": rank, "tag": tag, "op": op, "algorithm": algorithm,
            "world_size": n, "steps": steps, "calls": sum(r["calls"] for r in group),
            "payload_per_step": payload / steps, "sent_per_step": sent / steps,
            "received_per_step": sum(r["wire_bytes_received"] for r in group) / steps,
            "messages_per_step": sum(r["messages"] for r in group) / steps,
            "seconds_per_step": sum(r["busy_seconds"] for r in group) / steps,
            "algbw": algbw, "busbw": None if algbw is None else algbw * bus_factor(op, n),
            "bytes_per_s": sent / step_seconds if step_seconds > 0 else None,
            "comm_fraction": (sum(r["busy_seconds"] for r in group) / step_seconds
                              if step_seconds > 0 else None),
        })
    return lines


def step_comm_fraction(rows: list[dict], rank: int) -> float | None:
    """Share of rank's training-step time spent with any operation in flight (all tags)."""
    per_step = {r["step"]: (r["step_comm_seconds"], r["step_seconds"])
                for r in rows if r["rank"] == rank and r["phase"] == "step"}
    total = sum(s for _, s in per_step.values())
    return sum(c for c, _ in per_step.values()) / total if total > 0 else None


def median_step_comm_seconds(rows: list[dict], first_step: int = 1) -> float | None:
    """The seconds a training step spent communicating, from step `first_step` on: per step the
    mean over the ranks of `step_comm_seconds` (the wall time during which any of the step's
    calls was in flight), then the median over the steps. None when the rows hold no such step
    (a step without a call has no row)."""
    per_step: dict[int, dict[int, float]] = {}
    for row in rows:
        if (row.get("phase") == "step" and row["step"] >= first_step
                and row.get("step_comm_seconds") is not None):
            per_step.setdefault(row["step"], {})[row["rank"]] = row["step_comm_seconds"]
    if not per_step:
        return None
    return statistics.median(statistics.fmean(ranks.values()) for ranks in per_step.values())


def summary_table(rows: list[dict], title: str = "traffic per rank, tag and op"):
    """A rich Table of `aggregate(rows)`."""
    from rich.table import Table

    table = Table(title=title, caption="algbw = S/t; busbw = algbw × bus factor (nccl-tests); "
                  "sent/recv by the algorithm's formula; setup and close: totals, not per step")
    for name in ("rank", "tag", "op", "steps", "S/step", "sent/step", "recv/step", "msgs/step",
                 "comm ms/step", "algbw", "busbw", "rate", "comm %"):
        table.add_column(name, justify="left" if name in ("tag", "op") else "right",
                         no_wrap=name in ("tag", "op"))
    for line in aggregate(rows):
        phase = "" if line["phase"] == "step" else f" ({line['phase']})"
        table.add_row(
            str(line["rank"]), line["tag"] + phase, f"{line['op']}/{line['algorithm']}",
            str(line["steps"]), human_bytes(line["payload_per_step"]),
            human_bytes(line["sent_per_step"]), human_bytes(line["received_per_step"]),
            f"{line['messages_per_step']:.0f}", f"{line['seconds_per_step'] * 1e3:.2f}",
            human_rate(line["algbw"]), human_rate(line["busbw"]), human_rate(line["bytes_per_s"]),
            "-" if line["comm_fraction"] is None else f"{100 * line['comm_fraction']:.1f}")
    return table


def print_summary(rows: list[dict], path: Path | None = None) -> None:
    """Print the table, each rank's share of step time spent communicating, and the file."""
    import sys

    from rich.console import Console

    # a terminal wraps the table to its width; a log file or a pipe gets it whole
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(summary_table(rows))
    for rank in sorted({r["rank"] for r in rows}):
        fraction = step_comm_fraction(rows, rank)
        if fraction is not None:
            console.print(f"rank {rank}: communicating during {100 * fraction:.1f}% of step time")
    total = sum(r["wire_bytes_sent"] for r in rows)
    console.print(f"wire bytes sent, all ranks and phases: {human_bytes(total)}"
                  + (f"  (per step and rank: {path})" if path else ""))
