"""Rich tables for `rnnscope explain`: the numbers of walkthrough, curve and forgetting, readable."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table


def fmt(value, digits: int = 6) -> str:
    """A number with `digits` significant digits; vectors and matrices compactly in brackets."""
    if value is None:
        return "–"
    if isinstance(value, list):
        inner = max(3, digits - 2)
        return "[" + ", ".join(fmt(v, inner) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(title: str, columns: tuple[str, ...]) -> Table:
    """A table whose cells wrap instead of cutting numbers short."""
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, collapse_padding=True)
    for column in columns:
        table.add_column(column, justify="right", overflow="fold")
    return table


def render_walkthrough(result: dict, console: Console) -> None:
    """Forward, backward, accumulation and update of the worked example, then the loss per epoch."""
    s = result["setting"]
    w = result["initial_weights"]
    readout = "ŷ = h_T (the neuron's own output)" if s["readout"] == "none" else "ŷ = w_y·h_T + b_y"
    console.print(
        f"[bold]BPTT, step by step[/bold] (figure 5-3): {s['hidden']} {s['activation']} neuron(s), "
        f"{len(s['sequence'])} time steps, MSE, learning rate {s['lr']:g}, {readout}\n"
        "initial weights: " + ", ".join(f"{k} = {fmt(v)}" for k, v in w.items())
    )
    fwd = _table("Forward pass: z_t = w_x·x_t + w_h·h_(t-1) + b,  h_t = f(z_t)",
                 ("t", "x_t", "h_(t-1)", "z_t (weighted sum)", "h_t = f(z_t)"))
    for row in result["forward"]:
        fwd.add_row(str(row["t"]), fmt(row["x"]), fmt(row["h_prev"]), fmt(row["z"]), fmt(row["h"]))
    console.print(fwd)
    console.print(
        f"prediction ŷ = {fmt(result['prediction'])}, target y = {fmt(result['target'])}, "
        f"MSE = (ŷ − y)² = {fmt(result['loss'])}\n"
        f"output error ∂L/∂ŷ = 2(ŷ − y) = {fmt(result['output_error'])}"
    )
    bwd = _table("Backward pass, last step first: error term δ_t = error × f'(z_t); "
                 "adjustment = learning rate × δ_t × input",
                 ("t", "error ∂L/∂h_t", "f'(z_t)", "error term δ_t", "Δw_h = lr·δ_t·h_(t-1)",
                  "Δw_x = lr·δ_t·x_t", "Δb = lr·δ_t"))
    for row in result["backward"]:
        bwd.add_row(str(row["t"]), *(fmt(row[k], 4) for k in ("error", "derivative", "error_term",
                                                               "adjust_w_h", "adjust_w_x", "adjust_b")))
    console.print(bwd)
    acc = _table("Accumulated over the time steps (shared weights: one adjustment per weight)",
                 ("weight", "Σ_t adjustments", f"applied ({s['time_reduction']})",
                  "lr × engine gradient", "updated weight = w − applied"))
    for name in ("w_h", "w_x", "b"):
        acc.add_row(name, fmt(result["accumulated"][name]), fmt(result["applied"][name]),
                    fmt(result["lr_times_engine_gradient"][name]), fmt(result["updated"][name]))
    for name, value in result["readout_adjustment"].items():
        acc.add_row(name + " (readout)", "–", fmt(value), fmt(value), fmt(result["updated"][name]))
    console.print(acc)
    note = "averaged: Σ ÷ T" if s["time_reduction"] == "mean" else "summed, as torch and Keras do"
    console.print(f"applied = {note}; |applied − lr × engine gradient| ≤ {result['check']:.1e}")
    if len(result["epochs"]) > 1:
        ep = _table("Loss per epoch (one gradient-descent step on the sequence each)",
                    ("epoch", "prediction ŷ", "loss"))
        for row in result["epochs"]:
            ep.add_row(str(row["epoch"]), fmt(row["prediction"]), fmt(row["loss"]))
        console.print(ep)


def render_curve(result: dict, console: Console) -> None:
    """The S-curve facts of figure 5-4."""
    name = result["activation"]
    table = _table(f"{name}: where learning slows down (figure 5-4)",
                   ("z", f"{name}(z)", f"{name}'(z)", f"{name}'(z) / max", "zone"))
    for row in result["rows"]:
        table.add_row(fmt(row["z"]), fmt(row["f"], 4), fmt(row["derivative"], 4), fmt(row["ratio"], 4), row["zone"])
    console.print(table)
    for note in result["notes"]:
        console.print("• " + note)


def render_forgetting(result: dict, console: Console) -> None:
    """The figure 5-5 table: what h_1 still contributes at each later step."""
    s = result["setting"]
    table = _table(
        f"'Forgotten' history (figure 5-5): h_1 = {s['h1']:g} versus h_1 = 0; "
        f"w_x = {s['w_x']:g}, w_h = {s['w_h']:g}, b = {s['b']:g}, {s['activation']}",
        ("t", "x_t", "z_t", "h_t", "h_t if h_1=0", "Δh_t", "f'(z_t)", "∏ w_h·f'", "h_1·∏"),
    )
    for row in result["rows"]:
        table.add_row(str(row["t"]), fmt(row["x"]), *(fmt(row[k], 3) for k in (
            "z", "h", "h_from_zero", "difference", "derivative", "product", "linear_estimate")))
    console.print(table)
    for note in result["notes"]:
        console.print("• " + note)
