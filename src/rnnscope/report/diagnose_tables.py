"""Rich tables for `rnnscope diagnose`: verdicts with advice, the picture over training, and the
comparison of initializations."""

from __future__ import annotations

from rich.table import Table

from rnnscope.diagnostics.advice import Row, rows_for

SEVERE = {"saturated", "dead units", "vanishing", "exploding", "short memory", "no gradient"}


def _verdict(row: Row) -> str:
    colour = "red" if row.verdict in SEVERE else "yellow" if row.is_problem() else "green"
    return f"[{colour}]{row.verdict}[/{colour}]"


def verdict_table(layers: list[dict]) -> Table:
    """One row per layer and check: what was found, the verdict and what to do."""
    table = Table(title="What the chapter warns about, checked", show_lines=True)
    for column, ratio in (("layer", 1), ("check", 2), ("finding", 5), ("verdict", 2), ("advice", 5)):
        table.add_column(column, ratio=ratio, overflow="fold")
    for layer in layers:
        for row in rows_for(layer):
            table.add_row(row.layer, row.check, row.finding, _verdict(row), row.advice)
    return table


def over_training_table(records: list[dict], max_rows: int = 12) -> Table:
    """A few records of diagnostics.jsonl: loss, saturation, gradient growth and horizon per layer."""
    if len(records) > max_rows:  # first, last, and evenly spaced ones between
        picks = sorted({round(i * (len(records) - 1) / (max_rows - 1)) for i in range(max_rows)})
        records = [records[i] for i in picks]
    table = Table(title="Over training (diagnostics.jsonl)")
    for column in ("step", "loss", "layer", "saturated", "slow", "dead", "∂L/∂h ×/step", "gradient", "horizon"):
        table.add_column(column, justify="right")
    for record in records:
        for i, layer in enumerate(record["layers"]):
            sat, flow, hor = layer["saturation"], layer["gradient_flow"], layer["horizon"]
            loss = record.get("loss")
            table.add_row(
                str(record["step"]) if i == 0 else "",
                (f"{loss:.4g}" if isinstance(loss, float) else str(loss)) if i == 0 else "",
                layer["layer"], f"{100 * sat['saturated_fraction']:.0f}%", f"{100 * sat['slow_fraction']:.0f}%",
                str(len(layer["dead"]["units"])), f"{float(flow['growth_per_step']):.3g}", flow["verdict"],
                f"{hor['horizon']}/{hor['steps'] - 1}",
            )
    return table


def compare_table(results: list[dict], cfg) -> Table:
    """The model at initialization under every scheme and scale, side by side."""
    m, d = cfg.model, cfg.data
    unit = m.activation if m.cell == "elman" else m.cell
    table = Table(title=f"At initialization: {m.layers}×{m.hidden} {unit} on {d.csv or d.task}, "
                        f"T = {d.seq_len}")
    biases = any(r.get("forget_bias") is not None for r in results)
    for column in ("init", "scale") + (("forget bias",) if biases else ()) + (
            "layer", "saturated", "slow", "dead", "∂L/∂h ×/step", "gradient", "horizon", "loss"):
        table.add_column(column, justify="right")
    for result in results:
        for i, layer in enumerate(result["layers"]):
            sat, flow, hor = layer["saturation"], layer["gradient_flow"], layer["horizon"]
            bias = (f"{result['forget_bias']:g}" if i == 0 else "",) if biases else ()
            table.add_row(
                result["init"] if i == 0 else "", f"×{result['scale']:g}" if i == 0 else "", *bias, layer["layer"],
                f"{100 * sat['saturated_fraction']:.0f}%", f"{100 * sat['slow_fraction']:.0f}%",
                f"{len(layer['dead']['units'])}/{layer['hidden']}", f"{float(flow['growth_per_step']):.3g}",
                flow["verdict"], f"{hor['horizon']}/{hor['steps'] - 1}",
                f"{result['loss']:.4g}" if i == 0 else "",
            )
    return table
