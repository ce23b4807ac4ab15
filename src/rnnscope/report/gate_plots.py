"""PNG plots of the gated cells' diagnostics: where every gate sits, the errors along h and c, and
gradient flow beside memory horizon for several runs (the showcase).

Every function takes the plain dicts of `rnnscope.diagnostics.summary` (gated layers), writes
one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

from rnnscope.report.plots import _finite, _pyplot, _save


def plot_gate_usage(layers: list[dict], path: str | Path) -> Path:
    """One histogram per layer and gate of the gate's values, with the saturated share in the title.

    The carry gate (LSTM's forget gate, GRU's update gate) is drawn in orange: mass near 1 carries
    the state, near 0 drops it.
    """
    plt = _pyplot()
    gates = max(len(layer["gates"]) for layer in layers)
    fig, axes = plt.subplots(len(layers), gates, figsize=(3.2 * gates, 2.6 * len(layers)), squeeze=False)
    for row, layer in zip(axes, layers):
        carry = layer["carry"]["gate"]
        for ax, (gate, info) in zip(row, layer["gates"].items()):
            edges, counts = info["histogram"]["edges"], info["histogram"]["counts"]
            ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge",
                   color="tab:orange" if gate == carry else "tab:blue")
            ax.set_title(f"{layer['layer']} {gate}: {info['name']}\n"
                         f"{100 * info['saturated_fraction']:.0f}% saturated ({info['saturated_rule']})", fontsize=8)
            ax.set_xlabel("σ(a)" if info["activation"] == "sigmoid" else "tanh(a)", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in row[len(layer["gates"]):]:
            ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_state_gradients(layers: list[dict], path: str | Path) -> Path:
    """‖∂L/∂h_t‖ and (LSTM) ‖∂L/∂c_t‖ by time step, log scale, one panel per layer."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 3.2 * len(layers)), squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        norms = _finite(layer["gradient_flow"]["norms"])
        ax.plot(range(len(norms)), norms, label="‖∂L/∂h_t‖", lw=1.3)
        if layer.get("cell_gradient_flow"):
            cell = _finite(layer["cell_gradient_flow"]["norms"])
            ax.plot(range(len(cell)), cell, label="‖∂L/∂c_t‖ (back × f_t)", lw=1.3)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        ax.set_title(f"{layer['layer']} ({layer['cell']}): the errors by time step (they travel right to left)",
                     fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_flow_and_horizon(flows: dict[str, list], horizons: dict[str, list], epsilon: float,
                          path: str | Path, title: str = "") -> Path:
    """Two panels side by side: ‖∂L/∂h_t‖ relative to the last step, and the memory horizon.

    Args:
        flows: label -> ‖∂L/∂h_t‖ for t = 0 … T-1 (each curve divided by its last value).
        horizons: label -> relative state Jacobian norms for k = 0, 1, ….
        epsilon: the horizon threshold.
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for label, norms in flows.items():
        values = _finite(norms)
        last = values[-1] if values and values[-1] == values[-1] else 1.0
        steps_back = [len(values) - 1 - t for t in range(len(values))]
        left.plot(steps_back, [v / last for v in values], label=label, lw=1.3)
    left.set_xlabel("k (time steps back from the last)")
    left.set_ylabel("‖∂L/∂h_(T−k)‖ / ‖∂L/∂h_T‖")
    left.set_title("gradient flow: how much error reaches k steps back", fontsize=10)
    for label, values in horizons.items():
        right.plot(range(len(values)), _finite(values), label=label, lw=1.3)
    right.axhline(epsilon, color="tab:red", ls=":", label=f"ε = {epsilon:g}")
    right.set_xlabel("k (time steps back from the last)")
    right.set_ylabel("‖∂s_T/∂s_(T−k)‖ / ‖I‖")
    right.set_title("memory horizon: how much the last state depends on s_(T−k)", fontsize=10)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
