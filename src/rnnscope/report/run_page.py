"""`rnnscope report RUN_DIR`: one page with everything a run directory knows.

Sections appear only when the run has their data:

    run           what was trained and how it ended                    config.toml, metrics.jsonl
    config        every config value                                   config.toml
    loss          training and validation loss (and baselines)         metrics.jsonl
    signals       gradient norm, learning rate, samples per second     metrics.jsonl
    activation    the S-curve with the neurons' z histogram            diagnostics.jsonl (last record)
    gradient-flow ‖∂L/∂h_t‖ per time step over training (heat map)     diagnostics.jsonl
    horizon       memory horizon over training, and its last curve     diagnostics.jsonl
    traffic       wire bytes per step and tag                          traffic.jsonl
    ledger        measured bytes and messages beside the formula       traffic.jsonl + config
    timeline      communication and compute per rank, a few steps      traffic.jsonl spans, compute.jsonl
"""

from __future__ import annotations

import html
import json
import math
import tomllib
from pathlib import Path

from rnnscope.diagnostics.record import read_records
from rnnscope.errors import UserError
from rnnscope.report.html import Page
from rnnscope.report.plots import first_nonzero
from rnnscope.report.timeline import page_timeline, read_phases

SMALL = 190  # px: the height of a secondary chart


def _num(value) -> float | None:
    """A metric as a float; None for missing, "nan", "inf" (JSON cannot hold them)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON line of a file ([] when missing; a last line cut short is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a killed run
    return out


def build_run_page(run_dir: str | Path) -> Page:
    """The report page of one run directory (a UserError when it is not one)."""
    run_dir = Path(run_dir)
    config_file = run_dir / "config.toml"
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; give the --train.run_dir of a run")
    if not config_file.exists():
        raise UserError(f"{run_dir} has no config.toml; is it a run directory of `rnnscope train`?")
    try:
        config = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{config_file} is not valid TOML ({exc}); was it edited by hand?") from None
    metrics = _read_jsonl(run_dir / "metrics.jsonl")
    records = read_records(run_dir)
    traffic = _read_jsonl(run_dir / "traffic.jsonl")

    model, data, par = config.get("model", {}), config.get("data", {}), config.get("parallel", {})
    what = data.get("csv") or data.get("task", "?")
    strategy = par.get("strategy", "none")
    subtitle = (f"{what} · {model.get('layers', '?')}×{model.get('hidden', '?')} "
                f"{model.get('cell', model.get('activation', '?'))} · T = {data.get('seq_len', '?')}"
                + (f" · {strategy} parallel on {par.get('nproc')} processes" if strategy != "none" else ""))
    page = Page(f"rnnscope run {run_dir.name}", subtitle)
    run_section(page, run_dir, metrics, records, traffic)
    config_section(page, config)
    if metrics:
        loss_section(page, metrics)
        signals_section(page, metrics)
    if records:
        activation_section(page, records[-1])
        gradient_flow_section(page, records)
        horizon_section(page, records)
    if traffic:
        from rnnscope.report.traffic_page import ledger_section, traffic_section

        traffic_section(page, traffic)
        ledger_section(page, traffic, run_dir)
        spec = page_timeline(traffic, read_phases(run_dir))
        if spec is not None:
            timeline_section(page, spec, run_dir)
    return page


def run_section(page: Page, run_dir: Path, metrics, records, traffic) -> None:
    """What the run is and how it ended, in one table."""
    rows = [["run directory", str(run_dir)]]
    if metrics:
        first, last = metrics[0], metrics[-1]
        rows += [["steps", last.get("step")], ["epochs", last.get("epoch")],
                 ["training loss", f"{_num(first.get('loss')) or float('nan'):.4g} → "
                                   f"{_num(last.get('loss')) or float('nan'):.4g}"]]
        val = [_num(m.get("val_loss")) for m in metrics if _num(m.get("val_loss")) is not None]
        if val:
            rows += [["validation loss (last, best)", f"{val[-1]:.4g}, {min(val):.4g}"]]
    files = [name for name in ("metrics.jsonl", "diagnostics.jsonl", "traffic.jsonl", "compute.jsonl")
             if (run_dir / name).exists()]
    rows.append(["files read", ", ".join(files) or "none"])
    section = page.section("run", "This run", "Hover a chart to read its values; drag across it to "
                           "zoom in, double-click to zoom out.")
    section.table(["", ""], rows)
    if not metrics:
        section.text("metrics.jsonl is missing or empty: the run logged no metrics line yet.", "note warn")


def config_section(page: Page, config: dict) -> None:
    """Every config value, section by section."""
    tables = [(f"[{name}]", ["key", "value"],
               [[key, json.dumps(value) if isinstance(value, (list, bool, str)) else value]
                for key, value in section.items()])
              for name, section in config.items() if isinstance(section, dict)]
    page.section("config", "Configuration", "From the run's config.toml (what the run was "
                 "trained with, overrides included).").tables(tables)


def loss_section(page: Page, metrics: list[dict]) -> None:
    """Training and validation loss per step, log scale; baselines as dashed lines."""
    steps = [m["step"] for m in metrics]
    few = len(steps) < 30  # a short run's few points are marked, not only joined
    series = [{"name": "training loss", "x": steps, "y": [_num(m.get("loss")) for m in metrics], "markers": few}]
    if any(_num(m.get("val_loss")) is not None for m in metrics):
        series.append({"name": "validation loss", "x": steps, "y": [_num(m.get("val_loss")) for m in metrics],
                       "markers": few})
    # a baseline (e.g. the naive forecast's loss) is any metrics key that names one
    last = metrics[-1]
    hlines = [{"y": _num(v), "label": k.replace("_", " ")} for k, v in last.items()
              if ("baseline" in k or "naive" in k) and _num(v) is not None and _num(v) > 0]
    positive = all(v is None or v > 0 for s in series for v in s["y"])
    page.section("loss", "Loss", "The mean training loss since the previous metrics line, and the "
                 "validation loss at that step" + (" (dashed: the baselines the data provides)." if hlines
                                                  else ".")).chart(
        {"type": "line", "series": series, "hlines": hlines, "log_y": positive, "int_x": True,
         "x_label": "optimizer step", "y_label": "loss" + (" (log)" if positive else "")})


def signals_section(page: Page, metrics: list[dict]) -> None:
    """Gradient norm, learning rate and throughput: small charts, one each."""
    steps = [m["step"] for m in metrics]
    section = page.section("signals", "Gradient norm, learning rate, throughput")
    for key, label, log in (("grad_norm", "‖∇‖ before clipping", True), ("lr", "learning rate", False),
                            ("samples_per_s", "samples per second", False)):
        values = [_num(m.get(key)) for m in metrics]
        if all(v is None for v in values):
            continue
        log = log and all(v is None or v > 0 for v in values)
        section.chart({"type": "line", "height": SMALL, "int_x": True, "log_y": log,
                       "series": [{"name": label, "x": steps, "y": values, "markers": len(steps) < 30}],
                       "x_label": "optimizer step", "y_label": label})


def activation_section(page: Page, record: dict) -> None:
    """Figure 5-4 made live: f(z), f'(z)/max and the histogram of the layer's z, per layer."""
    import torch

    from rnnscope.diagnostics.thresholds import thresholds
    from rnnscope.engine.cells import get_activation

    section = page.section("activation", "Activation usage",
                           f"Where the neurons' pre-activations z sit on the S-curve at step "
                           f"{record['step']} (the last diagnostics record). Beyond the shaded "
                           f"thresholds f'(z) is small: the neuron learns slowly or not at all.")
    for layer in record["layers"]:
        hist, sat = layer.get("z_histogram"), layer.get("saturation", {})
        if not hist:
            continue
        edges, counts = hist["edges"], hist["counts"]
        try:
            act = get_activation(layer.get("activation", "sigmoid"))
        except UserError:
            act = None
        series = [{"name": "z values (count)", "kind": "bars", "axis": "right", "x": edges[:-1],
                   "y": counts, "width": edges[1] - edges[0], "color": "#8C8C8C"}]
        bands = []
        limits = thresholds(act.name) if act is not None else None
        for value, shade in ((getattr(limits, "slow_z", None), 0.08), (getattr(limits, "saturated_z", None), 0.12)):
            if value is not None:
                bands += [{"x0": edges[0], "x1": -value, "opacity": shade}, {"x0": value, "x1": edges[-1], "opacity": shade}]
        if act is not None:
            z = torch.linspace(edges[0], edges[-1], 161, dtype=torch.float64)
            series += [{"name": f"{act.name}(z)", "x": z.tolist(), "y": act.forward(z).tolist()},
                       {"name": f"{act.name}'(z) / max", "x": z.tolist(), "dash": True,
                        "y": (act.derivative(z) / act.max_derivative).tolist()}]
        caption = (f"{100 * _num(sat.get('saturated_fraction', 0)):.0f}% of z beyond "
                   f"{html.escape(str(sat.get('saturated_rule', '?')))} (saturated), "
                   f"{100 * _num(sat.get('slow_fraction', 0)):.0f}% beyond "
                   f"{html.escape(str(sat.get('slow_rule', '?')))} (slow); "
                   f"{len(layer.get('dead', {}).get('units', []))} of {layer.get('hidden', '?')} units dead. "
                   "Values beyond the axis are counted in its end bins.")
        section.heading(layer["layer"]).chart(
            {"type": "line", "series": series, "bands": bands, "x_label": "pre-activation z",
             "y_label": "f(z), f'(z)/max", "y2_label": "count", "y_min": 0}, caption)


def underflow_note(norms_by_record: list[list]) -> str:
    """Say when early time steps' ‖∂L/∂h_t‖ underflowed to 0 (instead of drawing from t = k)."""
    firsts = [first_nonzero(norms) for norms in norms_by_record]
    hit = [f for f in firsts if f > 0]
    if not hit:
        return ""
    return (f"In {len(hit)} of {len(firsts)} records the gradient underflowed to 0 before reaching the "
            f"first time steps (t < {min(hit)} to t < {max(hit)}, hatched): it vanished below float32's "
            "smallest number, it did not start there.")


def gradient_flow_section(page: Page, records: list[dict]) -> None:
    """‖∂L/∂h_t‖ as a heat map: time step (rows) against training step (columns), per layer."""
    section = page.section("gradient-flow", "Gradient flow over training",
                           "‖∂L/∂h_t‖ for each time step t (rows) at each diagnostics record "
                           "(columns), log colour scale. The error enters at the last steps and "
                           "travels down to t = 0: a column that fades downwards is a vanishing gradient.")
    names = list(dict.fromkeys(layer["layer"] for r in records for layer in r["layers"]))
    for name in names:
        columns = [(r["step"], layer["gradient_flow"]["norms"]) for r in records for layer in r["layers"]
                   if layer["layer"] == name and layer.get("gradient_flow", {}).get("norms")]
        if not columns:
            continue
        T = max(len(norms) for _, norms in columns)
        z = [[(_num(norms[t]) if t < len(norms) and (_num(norms[t]) or 0) > 0 else None)
              for _, norms in columns] for t in range(T)]
        section.heading(name).chart(
            {"type": "heatmap", "x": [s for s, _ in columns], "y": list(range(T)), "z": z, "log": True,
             "x_label": "training step", "y_label": "time step t", "z_label": "‖∂L/∂h_t‖",
             "height": min(420, 120 + 6 * T)})
        note = underflow_note([norms for _, norms in columns])
        if note:
            section.text(note, "note warn")


def horizon_section(page: Page, records: list[dict]) -> None:
    """How far back the last state still depends on earlier ones: over training, and the last curve."""
    section = page.section("horizon", "Memory horizon",
                           "The horizon is the largest k with ‖∂h_T/∂h_(T−k)‖ / ‖∂h_T/∂h_T‖ above ε: "
                           "how many steps back the network can still learn from.")
    names = list(dict.fromkeys(layer["layer"] for r in records for layer in r["layers"]))
    series = []
    for name in names:
        points = [(r["step"], layer["horizon"]) for r in records for layer in r["layers"]
                  if layer["layer"] == name and "horizon" in layer]
        series.append({"name": name, "x": [s for s, _ in points], "markers": True,
                       "y": [_num(h.get("horizon")) for _, h in points]})
    section.chart({"type": "line", "series": series, "height": SMALL, "int_x": True, "int_y": True,
                   "x_label": "training step", "y_label": "horizon (time steps)"})
    last = records[-1]
    curves = [(layer["layer"], layer["horizon"]) for layer in last["layers"] if layer.get("horizon", {}).get("relative")]
    if curves:
        epsilon = _num(curves[0][1].get("epsilon")) or 1e-3
        section.chart({"type": "line", "log_y": True, "int_x": True, "hlines": [{"y": epsilon, "label": f"ε = {epsilon:g}"}],
                       "series": [{"name": name, "x": list(range(len(h["relative"]))),
                                   "y": [_num(v) for v in h["relative"]]} for name, h in curves],
                       "x_label": "k (time steps back from the last)", "y_label": "‖∂h_T/∂h_(T−k)‖, relative"},
                      f"At step {last['step']}, the last diagnostics record.")


def timeline_section(page: Page, spec: dict, run_dir: Path) -> None:
    """Communication (inset, by tag) and compute (forward, backward) per rank over a few steps."""
    steps = spec["steps"]
    page.section("timeline", "Communication timeline",
                 f"Steps {steps[0]}–{steps[-1]} on every rank: grey bands are training steps, pale "
                 "slices communication calls by tag (from issue to completion: a receive posted ahead "
                 "waits in flight), and the narrow blue and orange slices forward and backward compute "
                 "(where the strategy marks them). Drag to zoom into a step. The whole run as a trace for "
                 f"Perfetto or chrome://tracing: <code>rnnscope report --trace {html.escape(str(run_dir))}</code>."
                 ).chart(spec)
