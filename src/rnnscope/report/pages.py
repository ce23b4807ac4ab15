"""The pages of `rnnscope compare --html`, `plan --html` and `lab --html`: the same kind of page
as `rnnscope report`, with each command's table and the charts a person would rather look at."""

from __future__ import annotations

from pathlib import Path

from rnnscope.parallel.summary import human_bytes
from rnnscope.report.html import Page
from rnnscope.report.timeline import page_timeline, read_phases


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{1e3 * seconds:.2f}"


def compare_page(rows, shape, nproc: int, chunk: int, run_dirs: dict[str, Path]) -> Page:
    """Data, pipeline and tensor parallelism side by side: traffic beside the formula, timelines.

    Args:
        rows: `rnnscope.parallel.comparison.Comparison` rows, one per strategy.
        shape: the RNNShape every strategy trained.
        nproc: workers per strategy.
        chunk: time steps per pipeline message.
        run_dirs: strategy -> its run directory (still on disk), for the timelines.
    """
    page = Page("rnnscope compare", f"{nproc} workers · L={shape.layers} H={shape.hidden} "
                f"T={shape.seq_len} B={shape.batch} · per training step, all ranks")
    section = page.section("comparison", "Traffic per step, measured beside the formula",
                           "Wire bytes and messages every rank sent per training step (the "
                           "communicator's ledger), beside each strategy's formula (rnnscope.plan).")
    section.table(["strategy", "bytes", "formula", "messages", "formula", "comm %", "step ms", "idle % (bubble)"],
                  [[r.strategy, human_bytes(r.bytes_per_step), human_bytes(r.formula_bytes_per_step),
                    f"{r.messages_per_step:,.0f}", f"{r.formula_messages_per_step:,}",
                    "—" if r.comm_fraction is None else f"{100 * r.comm_fraction:.0f}", _ms(r.step_seconds),
                    "—" if r.bubble_fraction is None else
                    "/".join("?" if f is None else f"{100 * f:.0f}" for f in (r.idle_fraction or []))
                    + f" ({100 * r.bubble_fraction:.1f})"] for r in rows])
    x = list(range(len(rows)))
    section.chart({"type": "line", "categories": [r.strategy for r in rows], "log_y": True,
                   "y_label": "wire bytes per step (log)", "x_label": "strategy", "series": [
                       {"name": "measured", "kind": "bars", "x": [k - 0.4 for k in x], "width": 0.4,
                        "y": [r.bytes_per_step for r in rows], "opacity": 0.8},
                       {"name": "formula", "kind": "bars", "x": x, "width": 0.4,
                        "y": [r.formula_bytes_per_step for r in rows], "opacity": 0.8}]},
                  "Each strategy's pair of bars: measured (left) and formula (right).")
    for r in rows:
        run_dir = run_dirs.get(r.strategy)
        if run_dir is None or not (run_dir / "traffic.jsonl").exists():
            continue
        from rnnscope.parallel.ledger import read_jsonl

        spec = page_timeline(read_jsonl(run_dir / "traffic.jsonl"), read_phases(run_dir))
        if spec is not None:
            page.section(f"timeline-{r.strategy}", f"Timeline: {r.strategy}",
                         f"Steps {spec['steps'][0]}–{spec['steps'][-1]} on every rank: grey bands are "
                         "steps, pale slices communication by tag, blue and orange compute.").chart(spec)
    return page


def plan_page(inputs, plans) -> Page:
    """The plan: per worker count, each family's step time and samples per second; ★ = recommended."""
    shape = inputs.shape
    page = Page("rnnscope plan", f"L={shape.layers} H={shape.hidden} T={shape.seq_len} B={shape.batch} · "
                f"{inputs.device.name} · {inputs.scaling} scaling")
    families = list(dict.fromkeys(f for wp in plans for f in wp.best))
    workers = [wp.workers for wp in plans]
    section = page.section("throughput", "Samples per second",
                           "The best layout of each family at each worker count; ★ marks the "
                           "recommended layout, the one with the most samples per second.")
    series = [{"name": family, "markers": True, "x": [wp.workers for wp in plans if family in wp.best],
               "y": [wp.best[family].samples_per_s for wp in plans if family in wp.best]} for family in families]
    marks = [{"x": wp.workers, "y": wp.recommended.samples_per_s, "label": "★"} for wp in plans if wp.recommended]
    section.chart({"type": "line", "series": series, "marks": marks, "log_x": len(set(workers)) > 1, "log_y": True,
                   "x_ticks": workers,
                   "x_label": "workers", "y_label": "samples per second"})
    section = page.section("step-time", "Step time", "Compute, pipeline bubble and exposed "
                           "communication of each family's best layout.")
    for family in families:
        have = [wp for wp in plans if family in wp.best]
        section.heading(family).chart({"type": "line", "height": 200, "log_x": len(have) > 1, "y_min": 0,
                                       "x_ticks": [wp.workers for wp in have],
                                       "x_label": "workers", "y_label": "ms per step", "series": [
            {"name": name, "markers": True, "x": [wp.workers for wp in have],
             "y": [getattr(wp.best[family], attr) * 1e3 for wp in have]}
            for attr, name in (("step_s", "step"), ("compute_s", "compute"), ("bubble_s", "bubble"),
                               ("exposed_comm_s", "exposed communication"))]})
    page.section("recommendation", "Recommendation").table(
        ["workers", "recommended", "samples/s", "step ms", "why"],
        [[f"{wp.workers:,}", wp.recommended.layout.label if wp.recommended else "—",
          f"{wp.recommended.samples_per_s:,.0f}" if wp.recommended else "—",
          _ms(wp.recommended.step_s) if wp.recommended else "—", wp.reason] for wp in plans])
    return page


def lab_page(results) -> Page:
    """The lab sweep: step time against link rate, measured and predicted, and the table."""
    from rnnscope.report.lab_plots import format_link_rate

    hosts = results[0].hosts if results else 0
    page = Page("rnnscope lab", f"{hosts} emulated hosts · {len(results)} runs")
    strategies = list(dict.fromkeys(r.strategy for r in results))
    series = []
    for strategy in strategies:
        runs = sorted((r for r in results if r.strategy == strategy), key=lambda r: r.rate_bps)
        rates = [r.rate_bps / 1e6 for r in runs]
        series += [{"name": f"{strategy}: measured", "markers": True, "x": rates,
                    "y": [r.summary["step_seconds"] * 1e3 for r in runs]},
                   {"name": f"{strategy}: predicted", "dash": True, "x": rates,
                    "y": [r.summary["predicted_step_seconds"] * 1e3 for r in runs]}]
    section = page.section("sweep", "Step time against link rate",
                           "Measured (solid) and predicted (dashed) time per training step at each "
                           "emulated link rate.")
    section.chart({"type": "line", "series": series, "log_x": len({r.rate_bps for r in results}) > 1,
                   "log_y": True, "x_ticks": sorted({r.rate_bps / 1e6 for r in results}),
                   "x_label": "link rate per host (Mbit/s)", "y_label": "ms per training step"})
    section.table(["run", "link", "step ms", "predicted ms", "nothing on the wire ms", "wire bytes/step",
                   "interface / ledger"],
                  [[r.strategy, format_link_rate(r.rate_bps), _ms(r.summary["step_seconds"]),
                    _ms(r.summary["predicted_step_seconds"]), _ms(r.summary["compute_seconds"]),
                    human_bytes(r.summary["wire_bytes_per_step"]), f"{r.summary['bytes_ratio']:.3f}"]
                   for r in results])
    section.text("“Nothing on the wire” is the step time minus the time any communication was in "
                 "flight; compute that overlaps communication counts as wire time, so it shrinks on "
                 "slower links.")
    return page
