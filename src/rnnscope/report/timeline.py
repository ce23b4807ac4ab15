"""A parallel run's timeline: every communication call and compute phase, per rank.

Read from the run directory:
- traffic.jsonl rows carry `spans`, each call's [start, end] in Unix seconds (the ledger's);
- compute.jsonl carries each rank's compute phases: "step N", "forward cK", "backward cK".

`chrome_trace` turns them into the Chrome trace event format (JSON), which chrome://tracing,
Perfetto (ui.perfetto.dev, "Open trace file") and `about:tracing` open: one process per rank,
with a thread for the training steps, one for compute and as many "comm" threads as calls
overlap (asynchronous sends and receives are in flight together; a thread holds one at a time).
`page_timeline` is the same picture for the HTML report, cut to a few steps.
"""

from __future__ import annotations

import json
from pathlib import Path

from rnnscope.costs.collectives import bus_factor

PHASES_FILE = "compute.jsonl"  # written by rnnscope.parallel.context at the end of a parallel run
COMPUTE_COLOURS = {"forward": "#4C72B0", "backward": "#DD8452", "eval": "#8C8C8C"}
TAG_COLOURS = ["#C44E52", "#55A868", "#8172B3", "#CCB974", "#64B5CD", "#DA8BC3", "#937860"]


def read_phases(run_dir: str | Path) -> dict[int, list[list]]:
    """rank -> [[name, start, end], ...] from compute.jsonl ({} when the run has none)."""
    path = Path(run_dir) / PHASES_FILE
    if not path.exists():
        return {}
    phases = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            phases[record["rank"]] = record["phases"]
    return phases


def comm_calls(rows: list[dict]) -> list[dict]:
    """One dict per communication call: rank, step, op, tag, algorithm, bytes, start, end, busbw."""
    calls = []
    for row in rows:
        spans = row.get("spans") or []
        if not spans:
            continue
        payload = row["payload_bytes"] / max(row["calls"], 1)  # S of one call
        sent = row["wire_bytes_sent"] / max(row["calls"], 1)
        for start, end in spans:
            seconds = end - start
            busbw = payload / seconds * bus_factor(row["op"], row["world_size"]) if seconds > 0 else None
            calls.append({"rank": row["rank"], "step": row["step"], "phase": row["phase"],
                          "op": row["op"], "tag": row["tag"], "algorithm": row["algorithm"],
                          "bytes": payload, "wire_bytes_sent": sent, "start": start, "end": end,
                          "busbw": busbw})
    return sorted(calls, key=lambda c: (c["rank"], c["start"]))


def lanes(intervals: list[tuple[float, float]]) -> list[int]:
    """The first free lane of each interval (in the given order, sorted by start)."""
    ends: list[float] = []
    out = []
    for start, end in intervals:
        for k, reach in enumerate(ends):
            if reach <= start:
                ends[k] = end
                out.append(k)
                break
        else:
            ends.append(end)
            out.append(len(ends) - 1)
    return out


def phase_kind(name: str) -> str:
    """"forward c3" -> "forward"; "step 12" -> "step"."""
    return name.split(" ", 1)[0]


def chrome_trace(rows: list[dict], phases: dict[int, list[list]]) -> dict:
    """The Chrome trace event format of a run: "X" (complete) events, times in µs from the start."""
    calls = comm_calls(rows)
    starts = [c["start"] for c in calls] + [p[1] for spans in phases.values() for p in spans]
    t0 = min(starts) if starts else 0.0
    us = lambda t: round((t - t0) * 1e6, 1)  # noqa: E731
    events = []
    ranks = sorted({c["rank"] for c in calls} | set(phases))
    for rank in ranks:
        events.append({"ph": "M", "name": "process_name", "pid": rank, "args": {"name": f"rank {rank}"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": rank, "args": {"sort_index": rank}})
        for tid, name in ((0, "steps"), (1, "compute")):
            events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": tid, "args": {"name": name}})
        for name, start, end in phases.get(rank, []):
            kind = phase_kind(name)
            events.append({"ph": "X", "name": name, "cat": kind, "pid": rank, "tid": 0 if kind == "step" else 1,
                           "ts": us(start), "dur": us(end) - us(start)})
        mine = [c for c in calls if c["rank"] == rank]
        used = set()
        for call, lane in zip(mine, lanes([(c["start"], c["end"]) for c in mine])):
            if lane not in used:
                used.add(lane)
                events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": 10 + lane,
                               "args": {"name": f"comm {lane}"}})
            events.append({
                "ph": "X", "name": f"{call['op']} {call['tag']}", "cat": "comm", "pid": rank, "tid": 10 + lane,
                "ts": us(call["start"]), "dur": us(call["end"]) - us(call["start"]),
                "args": {"tag": call["tag"], "op": call["op"], "bytes": call["bytes"],
                         "wire_bytes_sent": call["wire_bytes_sent"], "algorithm": call["algorithm"],
                         "busbw_MBps": None if call["busbw"] is None else round(call["busbw"] / 1e6, 3),
                         "step": call["step"], "phase": call["phase"]}})
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": {"t0_unix_s": t0}}


def write_trace(rows: list[dict], phases: dict[int, list[list]], path: str | Path) -> Path:
    """Write the Chrome trace JSON; return its path."""
    path = Path(path)
    path.write_text(json.dumps(chrome_trace(rows, phases), separators=(",", ":")))
    return path


def page_timeline(rows: list[dict], phases: dict[int, list[list]], steps: int = 3) -> dict | None:
    """A `timeline` chart spec of `steps` training steps after the first (warm-up), or None."""
    calls = [c for c in comm_calls(rows) if c["phase"] == "step" and c["step"] is not None]
    step_numbers = sorted({c["step"] for c in calls})
    if not step_numbers:
        return None
    shown = step_numbers[1:1 + steps] if len(step_numbers) > 1 else step_numbers[:steps]
    ranks = sorted({c["rank"] for c in calls})
    window = [c for c in calls if c["step"] in shown]
    lo, hi = min(c["start"] for c in window), max(c["end"] for c in window)
    step_spans = {rank: [p for p in phases.get(rank, []) if p[0] in {f"step {s}" for s in shown}] for rank in ranks}
    if any(step_spans.values()):
        lo = min([lo] + [p[1] for spans in step_spans.values() for p in spans])
        hi = max([hi] + [p[2] for spans in step_spans.values() for p in spans])
    tags = sorted({c["tag"] for c in window})
    groups = {"step": {"colour": "#8C8C8C", "opacity": 0.18}}
    groups.update({tag: {"colour": TAG_COLOURS[k % len(TAG_COLOURS)], "opacity": 0.6}
                   for k, tag in enumerate(tags)})
    groups.update({kind: {"colour": colour, "opacity": 0.95, "inset": 4}
                   for kind, colour in COMPUTE_COLOURS.items()})
    slices = []  # drawn in order: steps (faint bands), communication, then compute on top
    for track, rank in enumerate(ranks):
        for name, start, end in phases.get(rank, []):
            if end > lo and start < hi and phase_kind(name) == "step":
                slices.append([track, (max(start, lo) - lo) * 1e3, (min(end, hi) - lo) * 1e3, name, "step", ""])
        for c in window:
            if c["rank"] == rank:
                busbw = "" if c["busbw"] is None else f", busbw {c['busbw'] / 1e6:.3g} MB/s"
                slices.append([track, (c["start"] - lo) * 1e3, (c["end"] - lo) * 1e3, f"{c['op']} {c['tag']}",
                               c["tag"], f"step {c['step']}, {c['bytes']:.0f} B, {c['algorithm']}{busbw}"])
        for name, start, end in phases.get(rank, []):
            if end > lo and start < hi and phase_kind(name) != "step":  # clipped to the window
                slices.append([track, (max(start, lo) - lo) * 1e3, (min(end, hi) - lo) * 1e3, name,
                               phase_kind(name), ""])
    used = {s[4] for s in slices}
    return {"type": "timeline", "tracks": [f"rank {r}" for r in ranks], "slices": slices,
            "groups": {k: v for k, v in groups.items() if k in used},
            "x_label": f"ms from the start of step {shown[0]}", "time_unit": "ms", "steps": shown}
