"""Turn a layer summary into verdict rows with plain advice, in the chapter's words.

LSTM and GRU layers get rows per gate, the carry gate (forget or update gate) and the cell-state
error besides (`gated_rows`).

Each row is (layer, check, finding, verdict, advice); `rnnscope diagnose` prints them as a table.
"""

from __future__ import annotations

from dataclasses import dataclass

SATURATED_SHARE = 0.05  # from this share of z in the saturated zone on, the layer is "saturated"
SLOW_SHARE = 0.25  # from this share in the slow zone on: "slow learning"
# (at torch's default initialization both shares are ~0; with the weights ×10, 5-35% saturated and 45-85% slow)
RELU_INACTIVE_SHARE = 0.8  # relu: above this share of z ≤ 0 the layer is mostly silent
DIRECT_SHARE = 0.5  # above this share of ∂L/∂h_t arriving at its own step, the norms say little
SHORT_MEMORY = 0.25  # horizon below this share of the sequence: "short memory"
MOSTLY_FORGETTING = 0.5  # above this share of carry-gate values below 0.1 the layer keeps little

OK = "ok"


@dataclass(frozen=True)
class Row:
    """One line of the verdict table."""

    layer: str
    check: str
    finding: str
    verdict: str
    advice: str

    def is_problem(self) -> bool:
        """True when the verdict is not ok/healthy."""
        return self.verdict not in (OK, "healthy", "remembers all")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def saturation_row(summary: dict) -> Row:
    """Saturated or slow-learning pre-activations."""
    s = summary["saturation"]
    finding = (
        f"{_pct(s['saturated_fraction'])} of pre-activations beyond {s['saturated_rule']}, "
        f"{_pct(s['slow_fraction'])} beyond {s['slow_rule']} (mean |z| {s['mean_abs_z']:.2f})"
    )
    if s["activation"] == "relu":
        finding = f"{_pct(s['saturated_fraction'])} of pre-activations at z ≤ 0 (no gradient passes)"
        if s["saturated_fraction"] > RELU_INACTIVE_SHARE:
            return Row(summary["layer"], "saturation", finding, "mostly inactive",
                       "most relu units pass no gradient: lower the learning rate, use --model.init "
                       "identity, or check for large negative biases")
        return Row(summary["layer"], "saturation", finding, OK, "")
    if s["saturated_fraction"] >= SATURATED_SHARE:
        return Row(summary["layer"], "saturation", finding, "saturated",
                   "f'(z) is almost 0 there, so those neurons barely learn; initial weights or inputs "
                   "are large: try --model.init xavier or a smaller --model.init_scale, and normalized inputs")
    if s["slow_fraction"] >= SLOW_SHARE:
        return Row(summary["layer"], "saturation", finding, "slow learning",
                   "most neurons sit on the flat part of the curve: a smaller --model.init_scale or "
                   "--model.init xavier keeps z nearer 0")
    return Row(summary["layer"], "saturation", finding, OK, "")


def dead_row(summary: dict) -> Row:
    """Units whose output never leaves zero."""
    d = summary["dead"]
    finding = f"{len(d['units'])} of {d['hidden']} units dead ({d['rule']} at every step)"
    if not d["units"]:
        return Row(summary["layer"], "dead neurons", finding, OK, "")
    advice = {
        "sigmoid": "their z stays far below 0 (σ(−7) ≈ 0.0009), so they feed nothing forward and forget "
        "the past: lower --model.init_scale, or use tanh, whose output is centred on 0",
        "relu": "z ≤ 0 at every step: no output, no gradient, no recovery; lower --optim.lr, use "
        "--model.init identity, or tanh",
        "tanh": "their weights are so small that h stays at 0: raise --model.init_scale",
        "lstm": "h = o ⊙ tanh(c) stays at 0: their output gates are shut or their cell states empty; "
        "check --model.init_scale and the inputs' scale",
        "gru": "h stays at 0: their weights are so small that n ≈ 0; raise --model.init_scale",
    }[d["activation"]]
    return Row(summary["layer"], "dead neurons", finding, "dead units", advice)


def gradient_row(summary: dict) -> Row:
    """Vanishing or exploding ‖∂L/∂h_t‖ over the time steps."""
    g = summary["gradient_flow"]
    growth, span = float(g["growth_per_step"]), float(g["span"])
    finding = f"‖∂L/∂h_t‖ ×{growth:.3g} per step back; the first step gets {span:.2g} of the last's"
    verdict = g["verdict"]
    if g.get("direct_share", 0.0) > DIRECT_SHARE and verdict == "healthy":
        finding += (f"; {_pct(g['direct_share'])} of it is each step's own error (a loss at every step), "
                    "so see the memory horizon for how far back it travels")
    cure = ("; try --model.activation tanh or relu with --model.init orthogonal or identity, "
            "or shorter sequences (--data.seq_len)")
    if summary["activation"] == "lstm":
        cure = "; start the forget gates nearer 1 (--model.forget_bias 1 to 3) so ∂L/∂c_t survives × f_t"
    elif summary["activation"] == "gru":
        cure = ("; h goes back × z_t directly, so see the carry gate row: update gates far from 1 "
                "replace h at every step; try --model.init orthogonal")
    advice = {
        "vanishing": "the early time steps get (almost) no learning signal"
        + (": σ'(z) ≤ 0.25 shrinks it at every step back" if summary["activation"] == "sigmoid" else "")
        + cure,
        "exploding": "clip the gradient norm (--optim.clip 1), lower --optim.lr or --model.init_scale",
        "no gradient": "the loss does not depend on this layer's states: check the model's output",
        "healthy": "",
    }[verdict]
    return Row(summary["layer"], "gradient flow", finding, verdict, advice)


def horizon_row(summary: dict) -> Row:
    """How far back the last hidden state still depends on earlier ones."""
    h = summary["horizon"]
    T = h["steps"]
    state = "(h, c)" if summary["activation"] == "lstm" else "h"
    finding = f"{state}_T depends on {state}_(T-k) above ε = {h['epsilon']:g} for k ≤ {h['horizon']} of {T - 1} steps"
    if h["reached_start"]:
        return Row(summary["layer"], "memory horizon", finding, "remembers all", "")
    if h["horizon"] < SHORT_MEMORY * (T - 1):
        return Row(summary["layer"], "memory horizon", finding, "short memory",
                   f"what happened more than {h['horizon']} steps back is forgotten (figure 5-5): if the "
                   "task needs longer memory, fix the gradient flow first")
    return Row(summary["layer"], "memory horizon", finding, OK, "")


def gate_saturation_row(summary: dict) -> Row:
    """Gates beyond the derivative-ratio rule's saturation limit (the carry gate has its own row)."""
    gates, carry = summary["gates"], summary["carry"]["gate"]
    finding = ", ".join(f"{g} {_pct(s['saturated_fraction'])}" for g, s in gates.items()) + " of weighted sums saturated"
    stuck = [g for g, s in gates.items() if g != carry and s["saturated_fraction"] >= SATURATED_SHARE]
    if stuck:
        names = ", ".join(gates[g]["name"] for g in stuck)
        return Row(summary["layer"], "gate saturation", finding, "saturated",
                   f"the {names} barely learn{'s' if len(stuck) == 1 else ''} (σ' or tanh' ≈ 0 there); "
                   "a smaller --model.init_scale or normalized inputs keep the weighted sums nearer 0")
    return Row(summary["layer"], "gate saturation", finding, OK, "")


def carry_row(summary: dict) -> Row:
    """The forget gate (LSTM) or update gate (GRU): near 1 carries the state, near 0 drops it."""
    c = summary["carry"]
    finding = (f"{c['name']} {c['gate']}: mean {c['mean']:.2f}; {_pct(c['carrying_fraction'])} above "
               f"{c['carrying_above']:g} (carrying), {_pct(c['forgetting_fraction'])} below {c['forgetting_below']:g} "
               "(forgetting)")
    carriers = sum(m > c["carrying_above"] for m in c["unit_means"])
    finding += f"; {carriers} of {len(c['unit_means'])} units carry on average (mean above {c['carrying_above']:g})"
    if c["forgetting_fraction"] > MOSTLY_FORGETTING:
        advice = ("most of the cell state is dropped at every step: raise --model.forget_bias (1 to 3)"
                  if summary["cell"] == "lstm" else "h is replaced at most steps, so little is carried back")
        return Row(summary["layer"], "carry gate", finding, "mostly forgetting", advice)
    return Row(summary["layer"], "carry gate", finding, OK, "")


def cell_gradient_row(summary: dict) -> Row:
    """LSTM: ‖∂L/∂c_t‖ over the steps, the error that goes back × f_t."""
    g = summary["cell_gradient_flow"]
    finding = (f"‖∂L/∂c_t‖ ×{float(g['growth_per_step']):.3g} per step back (× f_t, not × w_h·σ'(z_t)); "
               f"the first step gets {float(g['span']):.2g} of the last's")
    verdict = g["verdict"]
    advice = {"vanishing": "the forget gates are far from 1: raise --model.forget_bias (1 to 3)",
              "exploding": "clip the gradient norm (--optim.clip 1)", "no gradient": "", "healthy": ""}[verdict]
    return Row(summary["layer"], "cell-state error", finding, verdict, advice)


def gated_rows(summary: dict) -> list[Row]:
    """Every verdict row of an LSTM or GRU layer summary."""
    rows = [gate_saturation_row(summary), carry_row(summary), dead_row(summary), gradient_row(summary)]
    if summary.get("cell_gradient_flow"):
        rows.append(cell_gradient_row(summary))
    return rows + [horizon_row(summary)]


def rows_for(summary: dict) -> list[Row]:
    """Every verdict row of one layer summary."""
    if summary.get("cell") in ("lstm", "gru"):
        return gated_rows(summary)
    return [saturation_row(summary), dead_row(summary), gradient_row(summary), horizon_row(summary)]
