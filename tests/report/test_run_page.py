"""`rnnscope report`: the page holds a section per kind of data the run has, and nothing from outside."""

from __future__ import annotations

import json
import re

import pytest

from rnnscope.cli import main
from rnnscope.report.html import Page, compact
from rnnscope.report.run_page import build_run_page, underflow_note

SINGLE_SECTIONS = {"run", "config", "loss", "signals", "activation", "gradient-flow", "horizon"}
PARALLEL_SECTIONS = {"traffic", "ledger", "timeline"}


def section_ids(page_html: str) -> set[str]:
    return set(re.findall(r'<section id="([^"]+)"', page_html))


def charts(page_html: str) -> dict:
    block = re.search(r'<script type="application/json" id="rnnscope-data">(.*?)</script>', page_html, re.S)
    return json.loads(block.group(1))["charts"]


def test_single_run_has_the_diagnostics_sections_and_no_traffic(single_run):
    page_html = build_run_page(single_run).render()
    assert section_ids(page_html) == SINGLE_SECTIONS
    specs = charts(page_html)
    assert len(re.findall(r'<div class="chart" data-chart="c\d+"', page_html)) == len(specs)
    heatmaps = [s for s in specs.values() if s["type"] == "heatmap"]
    assert len(heatmaps) == 2  # one per layer
    assert len(heatmaps[0]["y"]) == 30 and len(heatmaps[0]["x"]) == 6  # T rows, 6 records
    assert heatmaps[0]["y"] == list(range(30))


def test_pipeline_run_has_traffic_ledger_and_timeline(pipeline_run):
    page_html = build_run_page(pipeline_run).render()
    assert PARALLEL_SECTIONS <= section_ids(page_html)
    assert "diagnostics" not in section_ids(page_html)
    ledger = page_html[page_html.index('<section id="ledger"'):]
    assert ledger.count("100.0%") == 2  # bytes and messages equal the formula
    timeline = [s for s in charts(page_html).values() if s["type"] == "timeline"][0]
    assert timeline["tracks"] == ["rank 0", "rank 1"]
    kinds = {s[4] for s in timeline["slices"]}
    assert {"step", "forward", "backward", "pp-act", "pp-grad"} <= kinds


def test_the_page_fetches_nothing(single_run):
    page_html = build_run_page(single_run).render()
    assert not re.search(r'(src|href)="(https?:)?//', page_html)
    assert "<link" not in page_html and "@import" not in page_html


def test_compact_rounds_and_nulls_non_finite():
    assert compact({"a": [1.234567891, float("nan"), float("inf")], "b": "x"}) == {"a": [1.2346, None, None], "b": "x"}


def test_a_closing_script_tag_in_a_label_does_not_break_the_page():
    page = Page("t")
    page.section("s", "S").chart({"type": "line", "series": [{"name": "</script><b>", "x": [1], "y": [2]}]})
    assert page.render().count("</script>") == 2  # the data block's and the renderer's


def test_underflow_is_reported_not_hidden():
    assert underflow_note([[1.0, 2.0], [3.0, 4.0]]) == ""
    note = underflow_note([[0.0, 0.0, 1e-30, 1.0], [0.0, 1e-3, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert "2 of 3 records" in note and "t < 1 to t < 2" in note


def test_cli_writes_the_page_and_the_trace(single_run, pipeline_run, tmp_path, capsys):
    assert main(["report", str(single_run), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "--trace", str(pipeline_run), "-o", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


@pytest.mark.parametrize("args, message", [
    (["report", "/no/such/run"], "does not exist"),
    (["report", "--trace", "{single}"], "only parallel runs"),
    (["report", "{single}", "-o", "/proc/no-such-dir/r.html"], "cannot write the report"),
])
def test_user_mistakes_are_one_line(args, message, single_run, capsys):
    args = [a.replace("{single}", str(single_run)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_thousand_step_run_stays_under_5_mb(single_run, tmp_path):
    """1,000 steps: a metrics line every 10, a diagnostics record every 10 (T = 100, 2 layers),
    and a 2-rank pipeline's traffic with every call's span (shapes copied from real files)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text((single_run / "config.toml").read_text())
    metric = json.loads((single_run / "metrics.jsonl").read_text().splitlines()[-1])
    record = json.loads((single_run / "diagnostics.jsonl").read_text().splitlines()[-1])
    for layer in record["layers"]:
        layer["gradient_flow"]["norms"] = [1e-3 * 1.01 ** t for t in range(100)]
        layer["horizon"]["relative"] = [0.5 ** k for k in range(100)]
    with (run_dir / "metrics.jsonl").open("w") as f, (run_dir / "diagnostics.jsonl").open("w") as g:
        for step in range(10, 1001, 10):
            f.write(json.dumps(metric | {"step": step}) + "\n")
            g.write(json.dumps(record | {"step": step}) + "\n")
    row = {"phase": "step", "world_size": 2, "algorithm": "direct", "calls": 10, "payload_bytes": 40960,
           "wire_bytes_sent": 40960, "wire_bytes_received": 0, "messages": 10, "seconds": 0.01,
           "busy_seconds": 0.01, "step_seconds": 0.05, "algbw": 4e6, "busbw": 4e6, "bytes_per_s": 8e5,
           "messages_per_s": 200.0, "comm_fraction": 0.2, "step_comm_seconds": 0.02, "step_comm_fraction": 0.4}
    with (run_dir / "traffic.jsonl").open("w") as f:
        for step in range(1, 1001):
            t0 = 1.7e9 + 0.05 * step
            for rank in (0, 1):
                for op, tag in (("send", "pp-act"), ("recv", "pp-grad"), ("recv", "pp-act"), ("send", "pp-grad")):
                    spans = [[t0 + 0.004 * k, t0 + 0.004 * k + 0.001] for k in range(10)]
                    f.write(json.dumps(row | {"step": step, "rank": rank, "op": op, "tag": tag,
                                              "spans": spans}) + "\n")
    path = build_run_page(run_dir).write(tmp_path / "report.html")
    assert path.stat().st_size < 5e6
    assert {"gradient-flow", "traffic", "timeline"} <= section_ids(path.read_text())


def test_a_run_killed_before_its_first_metrics_line_still_gets_a_page(single_run, tmp_path):
    (tmp_path / "config.toml").write_text((single_run / "config.toml").read_text())
    page_html = build_run_page(tmp_path).render()
    assert section_ids(page_html) == {"run", "config"}
    assert "logged no metrics line yet" in page_html


def test_traffic_without_spans_has_no_timeline_and_no_trace(pipeline_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "old"
    shutil.copytree(pipeline_run, run_dir, ignore=shutil.ignore_patterns("checkpoints"))
    rows = [json.loads(line) for line in (run_dir / "traffic.jsonl").read_text().splitlines()]
    (run_dir / "traffic.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "spans"}) + "\n"
                                                   for r in rows))
    assert "timeline" not in section_ids(build_run_page(run_dir).render())
    assert main(["report", "--trace", str(run_dir)]) == 2
    assert "no per-call timestamps" in capsys.readouterr().err
