"""A pipeline run's wake-up stalls, read off its timeline (rnnscope.report.stalls)."""

import json

import pytest

from rnnscope.report.stalls import pipeline_stalls


def _row(rank, step, op, tag, spans):
    return {"step": step, "phase": "step", "rank": rank, "world_size": 2, "op": op, "tag": tag,
            "algorithm": "direct", "calls": len(spans), "payload_bytes": 1000 * len(spans),
            "wire_bytes_sent": 1000 * len(spans) if op == "send" else 0, "messages": len(spans),
            "spans": spans}


def _write(tmp_path, rows, phases=None):
    (tmp_path / "traffic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if phases is not None:
        (tmp_path / "compute.jsonl").write_text(
            "".join(json.dumps({"rank": rank, "phases": p}) + "\n" for rank, p in phases.items()))


def test_each_delivery_counts_from_the_later_start_and_a_step_loses_only_the_excess(tmp_path):
    rows = []
    for step in (1, 2, 3):
        t = 10.0 * step
        # activations 0 -> 1: the receive is posted first, the send 1 ms later, 0.2 ms to arrive
        rows.append(_row(0, step, "send", "pp-act", [[t + 0.001, t + 0.0012], [t + 0.003, t + 0.0032]]))
        rows.append(_row(1, step, "recv", "pp-act", [[t, t + 0.0012], [t + 0.0025, t + 0.0032]]))
        # gradients 1 -> 0: in step 2 the second one arrives 4 ms late (a thread woken late)
        late = 0.004 if step == 2 else 0.0
        rows.append(_row(1, step, "send", "pp-grad", [[t + 0.005, t + 0.0052], [t + 0.006, t + 0.0062]]))
        rows.append(_row(0, step, "recv", "pp-grad", [[t + 0.004, t + 0.0052], [t + 0.0055, t + 0.0062 + late]]))
        rows.append(_row(0, step, "all_reduce", "dp-grad", [[t, t + 0.5]]))  # not a pipeline message
    _write(tmp_path, rows)
    stalls = pipeline_stalls(tmp_path)
    assert len(stalls.deliveries) == 12
    assert stalls.typical_s == pytest.approx(0.0002)
    assert stalls.per_step_s[1] == pytest.approx(0.0) and stalls.per_step_s[3] == pytest.approx(0.0)
    assert stalls.per_step_s[2] == pytest.approx(0.004)  # the late one's excess, nothing else
    assert stalls.median_stall_s == pytest.approx(0.0)
    assert stalls.mean_stall_s == pytest.approx(0.004 / 3)
    assert pipeline_stalls(tmp_path, first_step=2).per_step_s.keys() == {2, 3}
    assert stalls.compute_s == {} and stalls.idle_s == {}  # no compute.jsonl


def test_compute_and_idle_per_step_from_the_phases(tmp_path):
    rows = [_row(0, 1, "send", "pp-act", [[0.0, 0.001]]), _row(1, 1, "recv", "pp-act", [[0.0, 0.001]])]
    phases = {0: [["forward c0", 0.0, 0.002], ["backward c0", 0.005, 0.008], ["step 1", 0.0, 0.010],
                  ["forward c0", 0.010, 0.013], ["step 2", 0.010, 0.020]]}
    _write(tmp_path, rows, phases)
    stalls = pipeline_stalls(tmp_path)
    assert stalls.compute_s[0] == pytest.approx(0.004)  # median of 5 ms and 3 ms
    assert stalls.idle_s[0] == pytest.approx(0.006)  # median of 5 ms and 7 ms


def test_a_run_without_pipeline_messages_has_no_stalls(tmp_path):
    assert pipeline_stalls(tmp_path) is None  # no traffic.jsonl
    _write(tmp_path, [_row(0, 1, "all_reduce", "dp-grad", [[0.0, 0.001]])])
    assert pipeline_stalls(tmp_path) is None


def test_three_stages_pair_each_sender_with_its_next_stage(tmp_path):
    # activations 0 -> 1 -> 2 in one step: rank 1's receive (from 0) is fast, rank 2's (from 1) slow
    rows = [_row(0, 1, "send", "pp-act", [[0.000, 0.0001]]), _row(1, 1, "recv", "pp-act", [[0.000, 0.0002]]),
            _row(1, 1, "send", "pp-act", [[0.001, 0.0011]]), _row(2, 1, "recv", "pp-act", [[0.0005, 0.004]])]
    _write(tmp_path, rows)
    assert sorted(pipeline_stalls(tmp_path).deliveries) == pytest.approx([0.0002, 0.003])

