"""Measured beside predicted, from traffic.jsonl rows: per step, per host, tables and the plot."""

import pytest
from rich.console import Console

from rnnscope.lab.netns import Counters
from rnnscope.report.lab_plots import format_link_rate, plot_sweep
from rnnscope.lab.predict import Prediction
from rnnscope.lab.results import LabResult, ledger_sent_by_rank, step_figures
from rnnscope.lab.tables import hosts_table, steps_table, sweep_table


def row(step, rank, sent, step_s, comm_s, phase="step", messages=2):
    return {"step": step, "phase": phase, "rank": rank, "wire_bytes_sent": sent,
            "messages": messages, "step_seconds": step_s, "step_comm_seconds": comm_s}


ROWS = [row(None, 0, 500, 1.0, 0.5, "setup"), row(None, 1, 0, 1.0, 0.5, "setup")] + [
    row(s, r, 1000, 0.30 + 0.01 * r, 0.20 - 0.05 * r) for s in (1, 2, 3) for r in (0, 1)]


def result(rate_bps=10e6, strategy="data", comm_s=0.1) -> LabResult:
    prediction = Prediction(strategy, 2, rate_bps, 1000, 2, 2000, 4, comm_s)
    counters = [Counters(0, 0, 1500 + 66 * 10, 10), Counters(0, 0, 3000 + 66 * 20, 20)]
    return LabResult(strategy, 2, rate_bps, 0.0, "/tmp/run", prediction, step_figures(ROWS),
                     ledger_sent_by_rank(ROWS, 2), counters, 12.0)


def test_step_figures_sum_bytes_and_take_the_slowest_step_and_the_least_waiting_comm():
    figures = step_figures(ROWS)
    assert [f.step for f in figures] == [1, 2, 3]
    assert figures[0].wire_bytes == 2000 and figures[0].messages == 4
    assert figures[0].step_seconds == pytest.approx(0.31)  # the slower rank
    assert figures[0].comm_seconds == pytest.approx(0.15)  # the rank that waited least


def test_ledger_sent_counts_every_phase():
    assert ledger_sent_by_rank(ROWS, 2) == [3500, 3000]


def test_summary_holds_the_plan_to_the_measured_step():
    r = result(comm_s=0.1)
    s = r.summary
    assert s["step_seconds"] == pytest.approx(0.31) and s["comm_seconds"] == pytest.approx(0.15)
    assert s["compute_seconds"] == pytest.approx(0.16)
    assert s["predicted_step_seconds"] == pytest.approx(0.26)
    assert s["step_ratio"] == pytest.approx(0.31 / 0.26)
    assert s["bytes_ratio"] == pytest.approx(4500 / 6500)
    assert r.to_dict()["link"] == "10Mbit" and r.label == "data @ 10Mbit"


def test_tables_show_every_step_host_and_run():
    console = Console(record=True, width=200)
    for table in (steps_table(result()), hosts_table(result()),
                  sweep_table([result(10e6), result(100e6)])):
        console.print(table)
    text = console.export_text()
    assert "data @ 10Mbit" in text and "100Mbit" in text
    assert "310.0 (260.0)" in text  # measured (predicted) step time, ms
    assert "0.692" in text  # interface payload / ledger bytes


def test_plot_writes_a_png(tmp_path):
    path = plot_sweep([result(10e6), result(100e6, comm_s=0.01), result(10e6, "tensor")],
                      tmp_path / "plots" / "sweep.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_link_rates_are_labelled_in_bit_per_second():
    assert [format_link_rate(r) for r in (5e5, 10e6, 1e9, 2.5e9)] == ["500 kbit/s", "10 Mbit/s", "1 Gbit/s",
                                                                       "2.5 Gbit/s"]
