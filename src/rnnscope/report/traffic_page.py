"""The traffic sections of a run's report: bytes per step and tag, and the ledger beside the formula."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from rnnscope.costs.layout import STRATEGIES, STRATEGY_ALIASES
from rnnscope.errors import UserError
from rnnscope.parallel.summary import human_bytes
from rnnscope.report.html import Page


def per_step_by_tag(rows: list[dict]) -> dict[str, dict[int, float]]:
    """tag -> step -> wire bytes sent in that step, summed over ranks (training steps only)."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        if row["phase"] == "step" and row["step"] is not None:
            by_step = out.setdefault(row["tag"], {})
            by_step[row["step"]] = by_step.get(row["step"], 0) + row["wire_bytes_sent"]
    return out


def traffic_section(page: Page, rows: list[dict]) -> None:
    """Wire bytes per training step, one line per tag, and a table per tag and op."""
    by_tag = per_step_by_tag(rows)
    section = page.section("traffic", "Traffic per step and tag",
                           "Wire bytes every rank sent in each training step (summed over ranks), "
                           "as the communicator's ledger recorded them (traffic.jsonl).")
    if by_tag:
        series = [{"name": tag, "x": sorted(steps), "y": [steps[s] for s in sorted(steps)], "markers": len(steps) < 40,
                   "dash": k % 2 == 1}  # dashed every other: tags with equal bytes stay visible
                  for k, (tag, steps) in enumerate(sorted(by_tag.items()))]
        section.chart({"type": "line", "series": series, "int_x": True, "x_label": "optimizer step",
                       "y_label": "wire bytes sent per step", "y_min": 0})
    table = {}
    steps = {r["step"] for r in rows if r["phase"] == "step"}
    for row in rows:
        if row["phase"] != "step":
            continue
        entry = table.setdefault((row["tag"], row["op"], row["algorithm"]),
                                 {"calls": 0, "bytes": 0, "payload": 0, "seconds": 0.0})
        entry["calls"] += row["calls"]
        entry["bytes"] += row["wire_bytes_sent"]
        entry["payload"] += row["payload_bytes"]
        entry["seconds"] += row["seconds"]
    n = max(len(steps), 1)
    section.table(
        ["tag", "op", "algorithm", "calls/step", "wire bytes/step", "payload/step", "algbw (S/t)"],
        [[tag, op, algorithm, f"{e['calls'] / n:,.1f}", human_bytes(e["bytes"] / n), human_bytes(e["payload"] / n),
          (human_bytes(e["payload"] / e["seconds"]) + "/s") if e["seconds"] > 0 else "—"]
         for (tag, op, algorithm), e in sorted(table.items())])


def ledger_section(page: Page, rows: list[dict], run_dir: Path) -> None:
    """Measured bytes and messages per step beside the strategy's formula (rnnscope.plan)."""
    from rnnscope.parallel.comparison import compare_row

    config = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    strategy = config.get("parallel", {}).get("strategy", "none")
    section = page.section("ledger", "Ledger beside the formula",
                           "Wire bytes and messages per training step (all ranks, after the first "
                           "step) as measured by the ledger, beside what the strategy's formula "
                           "predicts. They agree exactly when the strategy sends what its formula says.")
    try:
        shape, world = _shape(config, rows, run_dir)
        stats_file = run_dir / "model_parallel.json"
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
        par = config.get("parallel", {})
        c = compare_row(strategy, rows, shape, world, chunk=par.get("chunk", 1),
                        bucket_mb=par.get("bucket_mb", 25.0), warmup=1, stats=stats,
                        clip=config.get("optim", {}).get("clip", 0) > 0)
    except (ValueError, KeyError, UserError) as exc:
        section.text(f"No comparison for this run: {exc}.")
        return
    match = lambda a, b: f"{100 * a / b:.1f}%" if b else "—"  # noqa: E731
    section.table(["per step, all ranks", "measured", "formula", "measured / formula"], [
        ["wire bytes", human_bytes(c.bytes_per_step), human_bytes(c.formula_bytes_per_step),
         match(c.bytes_per_step, c.formula_bytes_per_step)],
        ["messages", f"{c.messages_per_step:,.0f}", f"{c.formula_messages_per_step:,}",
         match(c.messages_per_step, c.formula_messages_per_step)],
        ["step time", "—" if c.step_seconds is None else f"{1e3 * c.step_seconds:.2f} ms", "", ""],
        ["time communicating", "—" if c.comm_fraction is None else f"{100 * c.comm_fraction:.0f}%", "", ""],
    ] + ([["pipeline idle per rank (bubble model)",
           "/".join("?" if f is None else f"{100 * f:.0f}%" for f in (c.idle_fraction or [])) or "?",
           f"{100 * c.bubble_fraction:.1f}%", ""]] if c.bubble_fraction is not None else []))
    section.text(f"{c.steps} steps measured, {world} ranks, strategy {strategy}.")


def _shape(config: dict, rows: list[dict], run_dir: Path):
    """The RNNShape the formula needs, from the run's config (its data rebuilt for the sizes)."""
    from rnnscope.data import build_dataset
    from rnnscope.costs.traffic import RNNShape
    from rnnscope.train.config import load_config

    strategy = config.get("parallel", {}).get("strategy", "none")
    if strategy not in STRATEGIES and strategy not in STRATEGY_ALIASES:
        raise ValueError(f"strategy {strategy!r} has no formula")
    if config["parallel"].get("data_degree", 0) not in (0, 1):
        raise ValueError("the formula covers one strategy alone, and this run combined data "
                         f"parallelism (degree {config['parallel']['data_degree']}) with {strategy}")
    cfg = load_config(str(run_dir / "config.toml"), [])
    data = build_dataset(cfg.data, cfg.train.seed)
    world = max(r["world_size"] for r in rows)
    shape = RNNShape(data.input_size, cfg.model.hidden, cfg.model.layers, data.x_train.shape[1],
                     cfg.data.batch_size, data.output_size, 4, every_step=data.every_step,
                     cell=cfg.model.cell)
    return shape, world
