"""The ledger's per-step rows: sums, overlaps, algbw and busbw by the nccl-tests definitions."""

import json

import pytest

from rnnscope.parallel.ledger import ROW_FIELDS, Ledger, Record, busy_seconds, read_jsonl, write_jsonl
from rnnscope.parallel.summary import (aggregate, human_bytes, median_step_comm_seconds,
                                      step_comm_fraction, summary_table)


def record(op="all_reduce", tag="dp-grad", start=0.0, end=1.0, payload=1000, n=4, sent=1500):
    return Record(op=op, tag=tag, algorithm="ring", world_size=n, payload_bytes=payload,
                  wire_bytes_sent=sent, wire_bytes_received=sent, messages=2 * (n - 1),
                  start=start, end=end)


def test_busy_seconds_counts_overlapping_operations_once():
    assert busy_seconds([]) == 0
    assert busy_seconds([(0, 1), (0.5, 2), (3, 4)]) == pytest.approx(3.0)
    assert busy_seconds([(0, 4), (1, 2)]) == pytest.approx(4.0)


def test_close_step_derives_algbw_busbw_rates_and_fractions(monkeypatch):
    ledger = Ledger(rank=1)
    ledger._mark = 0.0
    monkeypatch.setattr("time.perf_counter", lambda: 10.0)  # the step lasted 10 s
    ledger.add(record(start=1.0, end=2.0))
    ledger.add(record(start=1.5, end=3.0))  # overlaps the first: busy 2 s, summed 2.5 s
    ledger.add(record(op="all_gather", tag="dp-check", start=5.0, end=5.5, payload=24, sent=18))
    rows = {r["tag"]: r for r in ledger.close_step(7)}
    grad = rows["dp-grad"]
    assert (grad["step"], grad["rank"], grad["calls"], grad["phase"]) == (7, 1, 2, "step")
    assert grad["payload_bytes"] == 2000 and grad["wire_bytes_sent"] == 3000
    assert grad["messages"] == 12
    assert grad["seconds"] == pytest.approx(2.5) and grad["busy_seconds"] == pytest.approx(2.0)
    assert grad["algbw"] == pytest.approx(2000 / 2.5)  # S / t
    assert grad["busbw"] == pytest.approx(2000 / 2.5 * 2 * 3 / 4)  # x 2(n-1)/n
    assert rows["dp-check"]["busbw"] == pytest.approx(24 / 0.5 * 3 / 4)  # x (n-1)/n
    assert grad["bytes_per_s"] == pytest.approx(300.0) and grad["messages_per_s"] == 1.2
    assert grad["comm_fraction"] == pytest.approx(0.2)
    assert grad["step_comm_seconds"] == pytest.approx(2.5)  # 2 s of grads + 0.5 s of check
    assert grad["step_comm_fraction"] == pytest.approx(0.25)
    assert ledger.pending() == [] and len(ledger.rows) == 2
    assert set(ROW_FIELDS) <= set(grad)


def test_a_step_without_operations_has_no_rows_and_rates_are_none_for_zero_time():
    ledger = Ledger(rank=0)
    assert ledger.close_step(1) == []
    ledger.add(record(start=2.0, end=2.0))
    row = ledger.close_step(2)[0]
    assert row["algbw"] is None and row["busbw"] is None


def test_jsonl_round_trip_orders_setup_steps_close(tmp_path):
    ledger = Ledger(rank=0)
    ledger.add(record(tag="dp-init"))
    ledger.close_step(None, "setup")
    for step in (1, 2):
        ledger.add(record())
        ledger.close_step(step)
    ledger.add(record(tag="dp-check"))
    ledger.close_step(None, "close")
    other = [dict(r, rank=1) for r in ledger.rows]
    path = write_jsonl(other + ledger.rows, tmp_path / "traffic.jsonl")
    rows = read_jsonl(path)
    assert [(r["phase"], r["step"], r["rank"]) for r in rows] == [
        ("setup", None, 0), ("setup", None, 1), ("step", 1, 0), ("step", 1, 1),
        ("step", 2, 0), ("step", 2, 1), ("close", None, 0), ("close", None, 1)]
    assert list(json.loads(path.read_text().splitlines()[0])) == list(ROW_FIELDS)


def test_summary_aggregates_per_rank_tag_and_op():
    ledger = Ledger(rank=0)
    for step in (1, 2):
        ledger.add(record(start=0.0, end=0.5))
        ledger._mark -= 1.0  # make each step last about a second longer
        ledger.close_step(step)
    lines = aggregate(ledger.rows)
    assert len(lines) == 1
    line = lines[0]
    assert line["steps"] == 2 and line["sent_per_step"] == 1500
    assert line["algbw"] == pytest.approx(2000 / 1.0)
    assert 0 < step_comm_fraction(ledger.rows, 0) < 0.5
    table = summary_table(ledger.rows)
    assert table.row_count == 1
    assert human_bytes(1500) == "1.50 kB" and human_bytes(12) == "12 B"


def test_rows_carry_each_call_as_a_unix_time_span_and_steps_as_phases(monkeypatch):
    ledger = Ledger(rank=0)
    ledger._mark, ledger.clock_offset = 0.0, 1_700_000_000.0  # perf_counter 0 = that Unix time
    monkeypatch.setattr("time.perf_counter", lambda: 10.0)
    ledger.add(record(start=1.0, end=2.0))
    ledger.add(record(start=1.5, end=3.0))
    with ledger.phase("forward c0"):
        pass
    (row,) = ledger.close_step(3)
    assert row["spans"] == [[1_700_000_001.0, 1_700_000_002.0], [1_700_000_001.5, 1_700_000_003.0]]
    assert ledger.phases == [["forward c0", 1_700_000_010.0, 1_700_000_010.0],
                             ["step 3", 1_700_000_000.0, 1_700_000_010.0]]
    ledger.close_step(None, "close")  # only training steps are phases
    assert len(ledger.phases) == 2


def test_the_clock_offset_gives_unix_time():
    import time

    ledger = Ledger(rank=0)
    ledger.add(record(start=time.perf_counter(), end=time.perf_counter()))
    (row,) = ledger.close_step(1)
    assert abs(row["spans"][0][0] - time.time()) < 5.0


def test_a_step_communicates_for_the_mean_over_ranks_then_the_median_over_steps():
    def row(rank, step, tag, comm, phase="step"):
        return {"step": step, "phase": phase, "rank": rank, "tag": tag, "step_comm_seconds": comm}

    # rank 0 / rank 1 communicate 0.2 / 0.4 s in step 1, 0.3 / 0.3 in step 2, 0.9 / 0.7 in step 3;
    # every row of a step carries the same step_comm_seconds (hs-act and hs-grad alike)
    rows = [row(0, 1, "hs-act", 0.2), row(0, 1, "hs-grad", 0.2), row(1, 1, "hs-act", 0.4),
            row(0, 2, "hs-act", 0.3), row(1, 2, "hs-act", 0.3),
            row(0, 3, "hs-act", 0.9), row(1, 3, "hs-act", 0.7),
            row(0, None, "restart", 5.0, phase="setup")]  # the setup is not a step
    assert median_step_comm_seconds(rows) == pytest.approx(0.3)  # the median of 0.3, 0.3, 0.8
    assert median_step_comm_seconds(rows, first_step=3) == pytest.approx(0.8)
    assert median_step_comm_seconds(rows, first_step=4) is None
    assert median_step_comm_seconds([]) is None
