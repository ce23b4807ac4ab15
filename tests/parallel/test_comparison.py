"""The comparison's arithmetic: per-step means from ledger rows, and formulas as gloo runs them."""

from __future__ import annotations

import argparse

import pytest

from rnnscope.cli import build_parser
from rnnscope.errors import UserError
from rnnscope.parallel.comparison import compare_row, formula, measure
from rnnscope.costs.traffic import RNNShape


def _row(step, rank, tag, sent, messages, payload, seconds=0.01, fraction=0.5, phase="step"):
    return {"step": step, "phase": phase, "rank": rank, "tag": tag, "wire_bytes_sent": sent,
            "messages": messages, "payload_bytes": payload, "step_seconds": seconds,
            "step_comm_fraction": fraction}


def test_measure_averages_steps_after_warmup_over_all_ranks():
    rows = [_row(1, 0, "pp-act", 999, 99, 999)]  # warm-up: left out
    for step in (2, 3):
        rows += [_row(step, 0, "pp-act", 100, 4, 100, 0.02, 0.25),
                 _row(step, 1, "pp-grad", 60, 4, 60, 0.04, 0.75)]
    rows.append(_row(3, 0, "mp-sync", 5000, 2, 5000, phase="sync"))  # not a training step
    m = measure(rows, warmup=1)
    assert m["steps"] == 2 and m["bytes"] == 160 and m["messages"] == 8
    assert m["step_seconds"] == pytest.approx(0.04)  # the slowest rank's step
    assert m["messages_per_s"] == pytest.approx(200)
    assert m["comm_fraction"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no training steps"):
        measure(rows, warmup=3)


def test_formulas_match_the_issue():
    B, H, T, L, b = 8, 16, 10, 2, 4
    shape = RNNShape(1, H, L, T, B, 1, b, every_step=True)
    pp_bytes, pp_messages = formula("pipeline", shape, 2, chunk=3)
    # 2(L−1)·T·B·H·b in 2(L−1)·ceil(T/chunk) messages, plus ŷ (B·T·O·b) broadcast once
    assert pp_bytes == 2 * T * B * H * b + B * T * b
    assert pp_messages == 2 * 4 + 1
    tp_bytes, tp_messages = formula("hidden_split", shape, 2)
    state = B * H * b
    # per rank (K−1)/K·S per all-gather; gloo's reduce-scatter moves an all-reduce's 2(K−1)/K·S
    gathers = T * L * 2 * state // 2
    scatters = (T * L * state + (L - 1) * T * state) * 2 * 2 // 2
    assert tp_bytes == gathers + scatters
    assert tp_messages == T * L * 2 + (T * L + L - 1) * 2 * 2


def test_pipeline_row_reports_bubble_and_idle():
    shape = RNNShape(1, 4, 2, 6, 2, 1, 4)
    rows = [_row(s, 0, "pp-act", 10, 1, 10) for s in (1, 2)]
    stats = {"ranks": [{"idle_fraction": 0.3}, {"idle_fraction": 0.2}]}
    row = compare_row("pipeline", rows, shape, 2, chunk=2, bucket_mb=25.0, stats=stats)
    assert row.bubble_fraction == pytest.approx(1 / 4)  # (S−1)/(C+S−1), C = 3
    assert row.idle_fraction == [0.3, 0.2]


def test_compare_refuses_what_it_cannot_measure(capsys):
    from rnnscope.cli import compare
    args = build_parser().parse_args(["compare", "--nproc", "2", "--steps", "2", "--warmup", "2"])
    with pytest.raises(UserError, match=r"--steps \(2\) must exceed --warmup \(2\)"):
        compare.run(args)
    with pytest.raises(UserError, match="choose one of data, pipeline, hidden_split"):
        compare.run(argparse.Namespace(**{**vars(args), "strategies": "data,ring"}))
