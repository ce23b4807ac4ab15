"""The lab sweep as a picture: step time against link rate, measured (solid) and predicted (dashed).

The dotted line is the part of each measured step during which nothing was on the wire (step time
minus the time any communication was in flight). It is not the compute alone: where computation
overlaps communication (DDP's backward with its bucket all-reduces, a pipeline stage with its
sends), that overlapped compute counts as time on the wire. On a slower link communication lasts
longer and hides more of the compute, so this line falls as the link slows; the figure says so.
"""

from __future__ import annotations

from pathlib import Path

from rnnscope.lab.results import LabResult


def format_link_rate(bits_per_s: float) -> str:
    """A tick label in bit/s units: 100e6 -> "100 Mbit/s", 2.5e9 -> "2.5 Gbit/s"."""
    for unit, factor in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits_per_s >= factor:
            return f"{bits_per_s / factor:g} {unit}"
    return f"{bits_per_s:g} bit/s"


def plot_sweep(results: list[LabResult], path: str | Path) -> Path:
    """Write a PNG of step time (ms, log) against link rate (log), one colour per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    strategies = sorted({r.strategy for r in results}, key=[r.strategy for r in results].index)
    for k, strategy in enumerate(strategies):
        runs = sorted((r for r in results if r.strategy == strategy), key=lambda r: r.rate_bps)
        rates = [r.rate_bps for r in runs]
        colour = f"C{k}"
        ax.plot(rates, [r.summary["step_seconds"] * 1e3 for r in runs], "o-", color=colour,
                label=f"{strategy}: measured step")
        ax.plot(rates, [r.summary["predicted_step_seconds"] * 1e3 for r in runs], "s--",
                color=colour, alpha=0.7, label=f"{strategy}: predicted step")
        ax.plot(rates, [r.summary["compute_seconds"] * 1e3 for r in runs], ":", color=colour,
                alpha=0.6, label=f"{strategy}: nothing on the wire")
    ax.set_xscale("log")
    ax.set_yscale("log")
    rates = sorted({r.rate_bps for r in results})
    ax.xaxis.set_major_locator(FixedLocator(rates))  # the rates that were run, labelled in bit/s
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_link_rate(x)))
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FuncFormatter(lambda y, _: f"{y:g}"))  # 300, not 3×10²
    ax.set_xlabel("link rate per host")
    ax.set_ylabel("time per training step (ms)")
    hosts = results[0].hosts if results else 0
    ax.set_title(f"The same RNN training over slower links ({hosts} emulated hosts)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "dotted: step time minus the time anything was on the wire. Compute that "
             "overlaps communication counts as wire time,\nso this line falls on slower links, where "
             "communication lasts longer and hides more of the compute.", fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
