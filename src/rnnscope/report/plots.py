"""PNG plots of the diagnostics: where the neurons sit on the S-curve, gradient flow, memory horizon.

Every function takes the plain dicts of `rnnscope.diagnostics.summary` (or diagnostics.jsonl
records), writes one PNG and returns its path. matplotlib runs on the Agg backend: no display.
"""

from __future__ import annotations

import math
from pathlib import Path


def _pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(axis) -> None:
    """Time steps are whole numbers: no tick at t = 2.5."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def first_nonzero(norms) -> int:
    """The first time step whose ‖∂L/∂h_t‖ is a positive finite number (len(norms) when none is).

    Earlier steps underflowed: the gradient vanished below float32's smallest number on its way
    back, so a log axis has nothing to draw there.
    """
    for t, v in enumerate(norms):
        v = float(v)
        if math.isfinite(v) and v > 0:
            return t
    return len(norms)


def _mark_underflow(ax, curves: list) -> None:
    """Shade the time steps before the first non-zero norm and say so on the axes."""
    firsts = [first_nonzero(norms) for norms in curves if len(norms)]
    hit = [f for f in firsts if f > 0]
    if not hit:
        return
    ax.axvspan(-0.5, max(hit) - 0.5, color="tab:gray", alpha=0.12, lw=0)
    span = f"t < {min(hit)}" if min(hit) == max(hit) else f"t < {min(hit)} to t < {max(hit)}"
    ax.text(0.01, 0.03, f"{span}: underflowed to 0 in {len(hit)} of {len(firsts)} curves "
            "(vanished, not missing)", transform=ax.transAxes, fontsize=8, color="tab:red")


def _finite(values) -> list[float]:
    """Floats with JSON's "inf"/"nan" strings turned back into floats, and ≤ 0 masked for log axes."""
    out = []
    for v in values:
        v = float(v)
        out.append(v if math.isfinite(v) and v > 0 else math.nan)
    return out


def plot_activation_usage(layers: list[dict], path: str | Path) -> Path:
    """Figure 5-4 made live: the activation's S-curve and f'(z), and a histogram of the layer's z.

    Args:
        layers: layer summaries, each with "layer", "activation", "saturation" and "z_histogram".
        path: the PNG to write.
    """
    import torch

    from rnnscope.diagnostics.thresholds import thresholds
    from rnnscope.engine.cells import get_activation

    plt = _pyplot()
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 3.6 * len(layers)), squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        act = get_activation(layer["activation"])
        hist = layer["z_histogram"]
        edges = hist["edges"]
        z = torch.linspace(edges[0], edges[-1], 801, dtype=torch.float64)
        ax.plot(z, act.forward(z), color="tab:blue", label=f"{act.name}(z)")
        ax.plot(z, act.derivative(z) / act.max_derivative, color="tab:orange", ls="--",
                label=f"{act.name}'(z) / max")
        limits = thresholds(act.name)
        for value, shade in ((limits.slow_z, 0.08), (limits.saturated_z, 0.16)):
            if value is not None:
                ax.axvspan(edges[0], -value, color="tab:red", alpha=shade, lw=0)
                ax.axvspan(value, edges[-1], color="tab:red", alpha=shade, lw=0)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("pre-activation z (values beyond the axis are counted at its ends)")
        ax.set_ylabel("f(z), f'(z)/max")
        twin = ax.twinx()
        widths = [b - a for a, b in zip(edges, edges[1:])]
        twin.bar(edges[:-1], hist["counts"], width=widths, align="edge", color="tab:gray", alpha=0.45,
                 label="neurons' z (count)")
        twin.set_ylabel("count of z values")
        sat = layer["saturation"]
        ax.set_title(f"{layer['layer']}: {100 * sat['saturated_fraction']:.0f}% of z beyond "
                     f"{sat['saturated_rule']} (saturated), {100 * sat['slow_fraction']:.0f}% beyond "
                     f"{sat['slow_rule']} (slow)", fontsize=10)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_gradient_flow(records: list[dict], path: str | Path) -> Path:
    """‖∂L/∂h_t‖ by time step (log scale), one curve per record, coloured by training step.

    Args:
        records: diagnostics records ({"step": …, "layers": [summary, …]}), in training order.
        path: the PNG to write.
    """
    plt = _pyplot()
    names = list(dict.fromkeys(layer["layer"] for record in records for layer in record["layers"]))
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 3.4 * len(names)), squeeze=False)
    steps = [record["step"] for record in records]
    cmap = plt.get_cmap("viridis")
    low, high = min(steps), max(steps)
    for ax, name in zip(axes[:, 0], names):
        for record in records:
            for layer in record["layers"]:
                if layer["layer"] != name:
                    continue
                norms = _finite(layer["gradient_flow"]["norms"])
                shade = 0.0 if high == low else (record["step"] - low) / (high - low)
                ax.plot(range(len(norms)), norms, color=cmap(shade), lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("time step t")
        _integer_ticks(ax.xaxis)
        _mark_underflow(ax, [layer["gradient_flow"]["norms"] for record in records
                             for layer in record["layers"] if layer["layer"] == name])
        ax.set_ylabel("‖∂L/∂h_t‖")
        ax.set_title(f"{name}: gradient norm by time step (the error travels right to left)", fontsize=10)
        if high > low:
            mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(low, high))
            fig.colorbar(mappable, ax=ax, label="training step")
    fig.tight_layout()
    return _save(fig, path)


def plot_horizon(curves: dict[str, list], epsilon: float, path: str | Path, title: str = "") -> Path:
    """‖∂h_T/∂h_(T-k)‖ relative to k = 0 against k (log scale), one curve per label, ε marked.

    Args:
        curves: label -> relative norms for k = 0, 1, ….
        epsilon: the horizon threshold (a horizontal line).
        path: the PNG to write.
        title: the plot's title (default: a description of the curve).
    """
    plt = _pyplot()
    fig, ax = _labelled_axes(plt, len(curves))
    for label, values in curves.items():
        ax.plot(range(len(values)), _finite(values), label=label, lw=1.4)
    ax.axhline(epsilon, color="tab:red", ls=":", label=f"ε = {epsilon:g}")
    ax.set_yscale("log")
    ax.set_xlabel("k (time steps back from the last)")
    _integer_ticks(ax.xaxis)
    ax.set_ylabel("‖∂h_T/∂h_(T−k)‖ / ‖∂h_T/∂h_T‖")
    ax.set_title(title or "memory horizon: how much the last state still depends on earlier ones", fontsize=10)
    _legend(ax, len(curves))
    fig.tight_layout()
    return _save(fig, path)


def plot_gradient_norms(curves: dict[str, list], path: str | Path, title: str = "") -> Path:
    """‖∂L/∂h_t‖ by time step (log scale), one labelled curve each (e.g. one per initialization)."""
    plt = _pyplot()
    fig, ax = _labelled_axes(plt, len(curves))
    for label, norms in curves.items():
        ax.plot(range(len(norms)), _finite(norms), label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    _integer_ticks(ax.xaxis)
    _mark_underflow(ax, list(curves.values()))
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.set_title(title or "gradient norm by time step", fontsize=10)
    _legend(ax, len(curves))
    fig.tight_layout()
    return _save(fig, path)


def plot_inits(results: list[dict], kind: str, path: str | Path, title: str = "") -> Path:
    """The init comparison grouped by scheme: one panel per scheme, one curve per scale.

    Args:
        results: `compare_inits` results ({"init", "scale", "layers": [summary, …]}); the first
            layer is drawn.
        kind: "gradient_flow" (‖∂L/∂h_t‖ against t) or "horizon" (relative ‖∂h_T/∂h_(T−k)‖ against k,
            with ε).
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    schemes = list(dict.fromkeys(r["init"] for r in results))
    scales = sorted({r["scale"] for r in results})
    fig, axes = plt.subplots(1, len(schemes), figsize=(3.3 * len(schemes) + 0.8, 3.8), sharey=True,
                             squeeze=False)
    cmap = plt.get_cmap("plasma")
    shade = {scale: cmap(0.85 * i / max(len(scales) - 1, 1)) for i, scale in enumerate(scales)}
    for ax, scheme in zip(axes[0], schemes):
        curves = []
        biases = sorted({r.get("forget_bias") for r in results if r.get("forget_bias") is not None})
        dashes = {bias: ("-", "--", ":", "-.")[i % 4] for i, bias in enumerate(biases)}  # LSTM's b_f
        for r in (r for r in results if r["init"] == scheme):
            layer = r["layers"][0]
            values = layer["gradient_flow"]["norms"] if kind == "gradient_flow" else layer["horizon"]["relative"]
            curves.append(values)
            bias = r.get("forget_bias")
            label = f"×{r['scale']:g}" + (f" b_f {bias:g}" if bias is not None else "")
            ax.plot(range(len(values)), _finite(values), color=shade[r["scale"]], lw=1.4,
                    ls=dashes.get(bias, "-"), label=label)
        if kind == "horizon":
            epsilon = results[0]["layers"][0]["horizon"]["epsilon"]
            ax.axhline(float(epsilon), color="tab:red", ls=":", label=f"ε = {float(epsilon):g}")
        else:
            _mark_underflow(ax, curves)
        ax.set_yscale("log")
        _integer_ticks(ax.xaxis)
        ax.set_title(scheme, fontsize=10)
        ax.set_xlabel("time step t" if kind == "gradient_flow" else "k (steps back from the last)")
        ax.legend(fontsize=7, title="init scale", title_fontsize=7)
    axes[0][0].set_ylabel("‖∂L/∂h_t‖" if kind == "gradient_flow" else "‖∂h_T/∂h_(T−k)‖, relative")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _labelled_axes(plt, n: int):
    """A figure for n labelled curves: distinct colours (tab20 past 10) and room for the legend."""
    fig, ax = plt.subplots(figsize=(8 if n <= 4 else 10, 4))
    colours = plt.get_cmap("tab10" if n <= 10 else "tab20").colors
    ax.set_prop_cycle(color=colours[: max(n, 1)])
    return fig, ax


def _legend(ax, n: int) -> None:
    """Inside the axes for a few curves, outside on the right for many."""
    if n <= 4:
        ax.legend(fontsize=8)
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _save(fig, path: str | Path) -> Path:
    """Write the figure as PNG, close it, return the path."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
