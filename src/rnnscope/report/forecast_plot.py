"""The forecast picture: actual values and forecasts over time, split boundaries, the naive baseline."""

from __future__ import annotations

from pathlib import Path

from rnnscope.errors import UserError


def plot_forecast(frame: dict, path: str | Path, title: str = "") -> Path:
    """Draw one panel per target column: actual, the model's forecast and the naive forecast of the
    same step ahead, in the file's units against its time column, with the train | validation |
    test boundaries as dashed lines. `frame` comes from train.forecasting.forecast_frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = frame["targets"]
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3.2 * len(targets)), squeeze=False, sharex=True)
    for j, (name, ax) in enumerate(zip(targets, axes[:, 0])):
        ax.plot(frame["time"], frame["actual"][:, j], color="black", lw=1.0, label=f"{name} (actual)")
        ax.plot(frame["forecast_time"], frame["naive"][:, j], color="tab:gray", lw=0.8, ls=":",
                label=f"naive (last value), t+{frame['step']}")
        ax.plot(frame["forecast_time"], frame["forecast"][:, j], color="tab:blue", lw=1.0,
                label=f"model forecast, t+{frame['step']}")
        for boundary, label in zip(frame["bounds"], ("validation →", "test →")):
            ax.axvline(boundary, color="tab:red", ls="--", lw=0.8)
            ax.annotate(label, (boundary, 1.0), xycoords=("data", "axes fraction"), va="top", fontsize=8,
                        color="tab:red")
        ax.set_ylabel(name)
        ax.legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel(frame["time_name"])
    fig.suptitle(title or "forecast")
    fig.tight_layout()
    path = Path(path)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UserError(f"--plot {path}: cannot write the picture ({exc.strerror}); choose another path") from None
    finally:
        plt.close(fig)
    return path
