"""Rich tables for `rnnscope explain lstm` / `gru`: the numbers of `gated_walkthrough`, readable."""

from __future__ import annotations

import math

from rich.console import Console

from rnnscope.explain.render import _table, fmt


def render_gated(result: dict, console: Console) -> None:
    """Weights, forward, backward (with the carried error beside Elman's), and the gradients."""
    s, cell = result["setting"], result["setting"]["cell"]
    gates, names = list(result["weights"]), result["gate_names"]
    carry = "f" if cell == "lstm" else "z"
    console.print(
        f"[bold]{cell.upper()}, step by step[/bold]: one unit, {len(s['sequence'])} time steps, ŷ = h_T, "
        f"MSE against y = {fmt(s['target'])}\nweights: " + "; ".join(
            f"{g} ({names[g]}): w_x {fmt(w['w_x'])}, w_h {fmt(w['w_h'])}, b {fmt(w['b'])}"
            for g, w in result["weights"].items()))
    if cell == "lstm":
        title = "Forward (1/2): weighted sums a_k = w_x·x_t + w_h·h_(t-1) + b"
    else:
        title = "Forward (1/2): weighted sums a_r, a_z as for LSTM; a_n = w_x,n·x_t + b_n + r·(w_h,n·h_(t-1))"
    sums = _table(title, ("t", "x_t", "h_(t-1)") + tuple(f"a_{g}" for g in gates))
    for row in result["forward"]:
        sums.add_row(str(row["t"]), fmt(row["x"]), fmt(row["h_prev"], 5), *(fmt(row["gates"][g]["a"], 5) for g in gates))
    console.print(sums)
    if cell == "lstm":
        title = "Forward (2/2): i, f, o = σ(a), g = tanh(a);  c_t = f·c_(t-1) + i·g;  h_t = o·tanh(c_t)"
        ends = ("c_prev", "c", "h")
        columns = ("c_(t-1)", "c_t", "h_t")
    else:
        title = "Forward (2/2): r, z = σ(a), n = tanh(a_n);  h_t = z·h_(t-1) + (1 − z)·n"
        ends, columns = ("h",), ("h_t",)
    fwd = _table(title, ("t",) + tuple(f"{g}" for g in gates) + columns)
    for row in result["forward"]:
        fwd.add_row(str(row["t"]), *(fmt(row["gates"][g]["value"], 5) for g in gates), *(fmt(row[k], 5) for k in ends))
    console.print(fwd)
    console.print(f"prediction ŷ = {fmt(result['prediction'])}, MSE = {fmt(result['loss'])}, "
                  f"output error ∂L/∂ŷ = 2(ŷ − y) = {fmt(result['output_error'])}")
    if cell == "lstm":
        columns = ("t", "∂L/∂h_t", "∂L/∂c_t") + tuple(f"δ_{g}" for g in gates) + (
            "f_t", "∂L/∂c_t·f_t", "Elman w_h·σ'(z_t)")
        title = ("Backward, last step first: ∂L/∂c_t = ∂L/∂h_t·o·(1 − tanh²c_t) + ∂L/∂c_(t+1)·f_(t+1); "
                 "∂L/∂c_t·f_t goes on to c_(t-1)")
    else:
        columns = ("t", "∂L/∂h_t") + tuple(f"δ_{g}" for g in gates) + (
            "z_t", "∂L/∂h_t·z_t", "Elman w_h·σ'(z_t)")
        title = "Backward, last step first: ∂L/∂h_(t-1) = ∂L/∂h_t·z_t + Σ_k δ_k·w_h,k; ∂L/∂h_t·z_t is the direct part"
    bwd = _table(title, columns)
    for row in result["backward"]:
        head = [fmt(row["dh"], 4)] + ([fmt(row["dc"], 4)] if cell == "lstm" else [])
        carried = row["to_c_prev"] if cell == "lstm" else row["to_h_prev_direct"]
        bwd.add_row(str(row["t"]), *head, *(fmt(row["delta"][g], 4) for g in gates), fmt(row["carry"], 4),
                    fmt(carried, 4), fmt(row["elman_factor"], 4))
    console.print(bwd)
    factors = [row["carry"] for row in result["backward"]]
    elman = [row["elman_factor"] for row in result["backward"]]
    console.print(
        f"Per step back, the error along the {'cell state' if cell == 'lstm' else 'hidden state'} is "
        f"multiplied by {carry}_t ({', '.join(fmt(f, 3) for f in factors)}), no derivative, no weight; "
        f"the chapter's Elman neuron (w_h = {fmt(result['elman']['w_h'])}, same sequence) multiplies it by "
        f"w_h·σ'(z_t) ≤ 0.25·w_h ({', '.join(fmt(f, 3) for f in elman)}). Over these {len(factors)} steps: "
        f"{fmt(math.prod(factors), 3)} against {fmt(math.prod(elman), 3)}.")
    grads = _table("Gradients: Σ_t per-step adjustments (Trace) and the engine's gradient",
                   ("gate", "∂L/∂w_x", "∂L/∂w_h", "∂L/∂b", "engine ∂L/∂w_x", "engine ∂L/∂w_h", "engine ∂L/∂b"))
    for g in gates:
        a, e = result["accumulated"][g], result["engine_gradient"][g]
        grads.add_row(f"{g} ({names[g]})", *(fmt(a[k], 5) for k in ("w_x", "w_h", "b")),
                      *(fmt(e[k], 5) for k in ("w_x", "w_h", "b")))
    console.print(grads)
    console.print(f"|Σ adjustments − engine gradient| ≤ {result['check']:.1e}")
