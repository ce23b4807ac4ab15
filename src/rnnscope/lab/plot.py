"""The sweep as a picture: step time against link rate, measured (solid) and predicted (dashed).

(Drawing belongs to `rnnscope.report`; this one figure lives here until report offers a
home for it.)
"""

from __future__ import annotations

from pathlib import Path

from rnnscope.lab.results import LabResult


def plot_sweep(results: list[LabResult], path: str | Path) -> Path:
    """Write a PNG of step time (ms, log) against link rate (Mbit/s, log), one colour per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    strategies = sorted({r.strategy for r in results}, key=[r.strategy for r in results].index)
    for k, strategy in enumerate(strategies):
        runs = sorted((r for r in results if r.strategy == strategy), key=lambda r: r.rate_bps)
        rates = [r.rate_bps / 1e6 for r in runs]
        colour = f"C{k}"
        ax.plot(rates, [r.summary["step_seconds"] * 1e3 for r in runs], "o-", color=colour,
                label=f"{strategy}: measured")
        ax.plot(rates, [r.summary["predicted_step_seconds"] * 1e3 for r in runs], "s--",
                color=colour, alpha=0.7, label=f"{strategy}: predicted")
        ax.plot(rates, [r.summary["compute_seconds"] * 1e3 for r in runs], ":", color=colour,
                alpha=0.5, label=f"{strategy}: compute alone")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("link rate per host (Mbit/s)")
    ax.set_ylabel("time per training step (ms)")
    hosts = results[0].hosts if results else 0
    ax.set_title(f"The same RNN training over slower links ({hosts} emulated hosts)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
