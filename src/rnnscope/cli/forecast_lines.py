"""The training summary's forecasting lines: the model beside the naive baseline on validation."""

from __future__ import annotations


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def summary_lines(result) -> list[str]:
    """`validation RMSE temp: model 0.41, naive 0.52 (0.79× naive)` per target, and a warning
    when the model loses to the naive forecast, with what to try."""
    info = result.forecast
    lines = [f"time index: {info['time']}; inputs: {', '.join(info['inputs'])}; targets: "
             f"{', '.join(info['targets'])}; missing values: {info['missing']}"
             + (f"; season: {info['season']} rows" if info["season"] else "")]
    losing = []
    for name, entry in (info["validation"] or {"targets": {}})["targets"].items():
        model, naive, ratio = entry["model"]["rmse"], entry["baselines"]["naive"]["rmse"], entry["rmse_vs_naive"]
        best = entry["best_baseline"]
        lines.append(f"validation RMSE {name}: model {_fmt(model)}, naive {_fmt(naive)}"
                     + (f" ({ratio:.2f}× naive)" if ratio is not None else "")
                     + (f", best baseline {best} {_fmt(entry['baselines'][best]['rmse'])}" if best else ""))
        if ratio is not None and ratio > 1:
            losing.append(name)
    if result.stopped_early:
        lines.append(f"stopped early at step {result.steps}: --train.patience validation checks without a "
                     "new best (best.pt holds the best weights)")
    if losing:
        lines.append(f"warning: the model forecasts {', '.join(losing)} worse than the naive last value on "
                     "validation; try --data.difference 1 (a trending series), --optim.name adam "
                     "--optim.lr 0.01, more --train.epochs, or a longer --data.seq_len")
    return lines
