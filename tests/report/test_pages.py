"""compare, plan and lab write the same kind of page: their tables and charts, drawn in a browser."""

from __future__ import annotations

import pytest
from report_browser import BROWSER, check_in_browser

from rnnscope.cli import main
from rnnscope.report.pages import compare_page, lab_page, plan_page



def result(rate_bps=10e6, strategy="data", comm_s=0.1):
    """A LabResult from three steps of two ranks' ledger rows, and a prediction."""
    from rnnscope.lab.netns import Counters
    from rnnscope.lab.predict import Prediction
    from rnnscope.lab.results import LabResult, ledger_sent_by_rank, step_figures

    rows = [{"step": s, "phase": "step", "rank": r, "wire_bytes_sent": 1000, "messages": 2,
             "step_seconds": 0.3, "step_comm_seconds": 0.2 - 0.05 * r} for s in (1, 2, 3) for r in (0, 1)]
    return LabResult(strategy, 2, rate_bps, 0.0, "/tmp/run", Prediction(strategy, 2, rate_bps, 1000, 2, 2000, 4, comm_s),
                     step_figures(rows), ledger_sent_by_rank(rows, 2),
                     [Counters(0, 0, 2160, 10), Counters(0, 0, 4320, 20)], 12.0)

MODEL = ["--model.hidden", "64", "--model.layers", "2", "--data.seq_len", "50",
         "--model.input_size", "1", "--model.output_size", "1"]


def _in_browser(page, tmp_path, name):
    if BROWSER is not None:
        check_in_browser(page, tmp_path, name)


def test_plan_page_marks_the_recommendation_on_samples_per_second(tmp_path):
    from rnnscope.plan.from_config import shape_from_config
    from rnnscope.plan.recommend import plan_workers
    from rnnscope.plan.simulate import PlanInputs
    from rnnscope.train.config import load_config
    import argparse

    from rnnscope.cli.plan import _device, _topology, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["plan", *MODEL, "--workers", "8,64"])
    cfg = load_config(None, MODEL[:6])
    inputs = PlanInputs(shape_from_config(cfg, 1, 1, 4), _device(args), _topology(args))
    plans = [plan_workers(inputs, n) for n in (8, 64)]
    page = plan_page(inputs, plans)
    throughput = page.charts["c0"]
    assert [m["y"] for m in throughput["marks"]] == pytest.approx([wp.recommended.samples_per_s for wp in plans], rel=1e-4)
    _in_browser(page, tmp_path, "plan_page")


def test_plan_cli_writes_the_page(tmp_path):
    assert main(["plan", *MODEL, "--workers", "8", "--html", str(tmp_path / "plan.html")]) == 0
    assert 'id="throughput"' in (tmp_path / "plan.html").read_text()


def test_lab_page(tmp_path):
    page = lab_page([result(10e6), result(100e6, comm_s=0.01), result(10e6, "tensor")])
    assert page.charts["c0"]["log_x"] is True
    _in_browser(page, tmp_path, "lab_page")


def test_compare_page_has_each_strategy_and_its_timeline(pipeline_run, tmp_path):
    import json

    from rnnscope.parallel.comparison import compare_row
    from rnnscope.parallel.ledger import read_jsonl
    from rnnscope.costs.traffic import RNNShape

    shape = RNNShape(1, 16, 2, 20, 32, 1, 4, every_step=True)
    stats = json.loads((pipeline_run / "model_parallel.json").read_text())
    row = compare_row("pipeline", read_jsonl(pipeline_run / "traffic.jsonl"), shape, 2, chunk=5,
                      bucket_mb=25.0, stats=stats)
    assert row.bytes_per_step == row.formula_bytes_per_step
    page = compare_page([row], shape, 2, 5, {"pipeline": pipeline_run})
    assert [s.key for s in page.sections] == ["comparison", "timeline-pipeline"]
    _in_browser(page, tmp_path, "compare_page")
