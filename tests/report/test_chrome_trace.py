"""The Chrome trace of a pipeline run: one process per rank, calls and compute as slices, the wavefront."""

from __future__ import annotations

from rnnscope.parallel.ledger import read_jsonl
from rnnscope.report.timeline import chrome_trace, lanes, read_phases


def _trace(run_dir) -> dict:
    return chrome_trace(read_jsonl(run_dir / "traffic.jsonl"), read_phases(run_dir))


def test_lanes_never_overlap():
    assert lanes([(0, 2), (1, 3), (2, 4), (2.5, 5), (5, 6)]) == [0, 1, 0, 2, 0]


def test_every_call_is_a_slice_with_tag_bytes_algorithm_and_busbw(pipeline_run):
    rows = read_jsonl(pipeline_run / "traffic.jsonl")
    events = [e for e in _trace(pipeline_run)["traceEvents"] if e.get("cat") == "comm"]
    assert len(events) == sum(row["calls"] for row in rows)  # every call, setup and close included
    for e in events:
        assert {"tag", "bytes", "algorithm", "busbw_MBps"} <= set(e["args"]) and e["dur"] >= 0
    send = next(e for e in events if e["args"]["tag"] == "pp-act" and e["args"]["op"] == "send")
    assert send["args"]["bytes"] == 5 * 32 * 16 * 4  # chunk × B × H × 4 bytes


def test_slices_on_one_thread_never_overlap(pipeline_run):
    by_thread = {}
    for e in _trace(pipeline_run)["traceEvents"]:
        if e["ph"] == "X":
            by_thread.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    assert {pid for pid, _ in by_thread} == {0, 1}
    for spans in by_thread.values():
        spans.sort()
        assert all(a[1] <= b[0] + 0.2 for a, b in zip(spans, spans[1:]))  # 0.2 µs: rounding


def test_the_pipeline_wavefront_shows(pipeline_run):
    """Stage 1 computes chunk c only after stage 0 has computed it: the forward runs as a wave."""
    compute = {}
    for e in _trace(pipeline_run)["traceEvents"]:
        if e.get("cat") == "forward":
            compute.setdefault((e["pid"], e["name"]), []).append(e)
    starts = lambda rank, name: [e["ts"] for e in compute[(rank, name)]]  # noqa: E731
    ends = lambda rank, name: [e["ts"] + e["dur"] for e in compute[(rank, name)]]  # noqa: E731
    for chunk in range(4):  # T = 20 in chunks of 5
        name = f"forward c{chunk}"
        assert len(starts(0, name)) >= 12  # one per training step (and per evaluation: "eval c…")
        assert all(s1 >= e0 for s1, e0 in zip(starts(1, name), ends(0, name)))
