"""`rnnscope evaluate RUN_DIR`: a trained model's forecasts scored beside naive baselines.

    rnnscope evaluate runs/20260101-120000                  # the test split, best checkpoint
    rnnscope evaluate runs/20260101-120000 --split val --json
    rnnscope evaluate runs/20260101-120000 --data.csv new.csv

For a CSV run: MAE, RMSE, sMAPE and MASE in the data's units for the model and for the naive
(last value), seasonal-naive and mean forecasts, with the model's RMSE as a ratio of the best
baseline's (below 1: the model wins), per target column (and per step ahead with --data.steps
all). The test split (the last rows) took no part in training or in choosing best.pt; the
validation split chose best.pt. For a built-in task: loss (and accuracy) on train and validation.
"""

from __future__ import annotations

import argparse
import json

from rnnscope.cli.predict import MISSING_CHOICES
from rnnscope.errors import UserError
from rnnscope.train.options import use_config_parser

SPLITS = {"train": 0, "val": 1, "test": 2}


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `evaluate` parser."""
    parser = subparsers.add_parser("evaluate", help="score a trained model beside naive baselines",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the directory of a training run")
    parser.add_argument("--split", choices=tuple(SPLITS), default="test",
                        help="which part of the run's own data to score (default: test)")
    parser.add_argument("--data.csv", dest="csv", metavar="PATH",
                        help="score every forecast of this CSV instead of a split of the run's own data")
    parser.add_argument("--data.missing", dest="missing",
                        choices=MISSING_CHOICES,
                        help="what to do with empty cells in this file (default: what the run was trained with)")
    parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                        help="the best checkpoint by validation loss, or the latest (default: best)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return parser


def measure_task(cfg, ckpt, model, args) -> dict:
    """Built-in task: loss (and accuracy) on the train and validation parts."""
    from rnnscope.data import build_dataset
    from rnnscope.train.metrics import evaluate

    ds = build_dataset(cfg.data, cfg.train.seed)
    parts = {"train": (ds.x_train, ds.y_train)}
    if ds.has_val:
        parts["validation"] = (ds.x_val, ds.y_val)
    result = {"run_dir": args.run_dir, "checkpoint": args.checkpoint, "step": ckpt["step"],
              "data": ds.name, "parts": {}}
    for name, (x, y) in parts.items():
        result["parts"][name] = evaluate(model, ds.kind, x, y) | {"sequences": x.shape[0]}
    return result


def measure(args: argparse.Namespace) -> dict:
    """The metrics of the asked split (CSV run) or of train and validation (built-in task)."""
    from rnnscope.cli.predict import prepared_for
    from rnnscope.data.csv import origins
    from rnnscope.train.forecasting import score_origins, score_series
    from rnnscope.train.restore import load_run, restore_model

    cfg, ckpt = load_run(args.run_dir, args.checkpoint)
    model = restore_model(cfg, ckpt)
    if ckpt["normalization"] is None:
        if args.csv or args.missing:
            raise UserError(f"the run in {args.run_dir} was trained on the built-in task "
                            f"{cfg.data.task!r}, not on CSV columns; leave out --data.csv and --data.missing")
        return measure_task(cfg, ckpt, model, args)
    prepared = prepared_for(cfg, ckpt, args)
    part = 0 if args.csv else SPLITS[args.split]
    split = args.csv or args.split
    if isinstance(prepared, list):  # several series: over all of them, and per series
        scores = score_series(model, prepared, part, cfg.data.seq_len)
        span = range(scores["forecasts"])
    else:
        span = origins(prepared, part, cfg.data.seq_len)
    if len(span) == 0:
        fix = ("give a longer file" if args.csv else
               f"--split val, or train with --data.{'test' if part == 2 else 'val'}_fraction above 0")
        raise UserError(f"{args.run_dir}: the {split} data holds no complete forecast "
                        f"(its run has --data.seq_len {cfg.data.seq_len}); {fix}")
    if not isinstance(prepared, list):
        scores = score_origins(model, prepared, span, cfg.data.seq_len)
    spec = (prepared[0] if isinstance(prepared, list) else prepared).spec
    result = {"run_dir": args.run_dir, "checkpoint": args.checkpoint, "step": ckpt["step"],
              "data": args.csv or cfg.data.csv, "split": split, "forecasts": scores["forecasts"],
              "season": spec["season"], "targets": scores["targets"]}
    if "series" in scores:
        result["series"] = scores["series"]
    return result


def _cell(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def print_scores(result: dict) -> None:
    """One table per target column: the model and each baseline, MAE RMSE sMAPE MASE."""
    from rich.console import Console
    from rich.table import Table

    from rnnscope.data.scores import METRICS

    console = Console()
    for name, entry in result["targets"].items():
        table = Table(title=f"rnnscope evaluate: {name} on {result['split']} ({result['forecasts']} forecasts, "
                            f"{result['checkpoint']} checkpoint, step {result['step']})")
        table.add_column("forecast")
        for metric in METRICS:
            table.add_column(metric.upper() if metric != "smape" else "sMAPE %", justify="right")
        table.add_row("model", *(_cell(entry["model"][m]) for m in METRICS))
        for baseline, values in entry["baselines"].items():
            table.add_row(baseline, *(_cell(values[m]) for m in METRICS))
        console.print(table)
        ratio = entry["rmse_vs_best_baseline"]
        if ratio is not None:
            verdict = "beats" if ratio < 1 else "loses to"
            print(f"model RMSE / best baseline ({entry['best_baseline']}) RMSE = {ratio:.3f}: the model {verdict} it")
        for step, values in entry.get("per_step", {}).items():
            print(f"  {step}: " + ", ".join(f"{m} {_cell(values[m])}" for m in METRICS))
        for series, scores in result.get("series", {}).items():  # several series: each one's line
            own = scores["targets"][name]
            print(f"  series {series} ({scores['forecasts']} forecasts): model RMSE {_cell(own['model']['rmse'])}, "
                  f"naive {_cell(own['baselines']['naive']['rmse'])}, MASE {_cell(own['model']['mase'])}")


def run(args: argparse.Namespace) -> int:
    """Print the metrics as tables (or JSON)."""
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if "targets" in result:
        print_scores(result)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rnnscope evaluate: {result['data']} ({args.checkpoint} checkpoint, "
                        f"step {result['step']})")
    columns = ["part", "sequences", "loss"] + (["accuracy"] if any("accuracy" in m for m in
                                                                    result["parts"].values()) else [])
    for column in columns:
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, m in result["parts"].items():
        cells = [name, str(m["sequences"]), _cell(m["loss"])]
        if "accuracy" in columns:
            cells.append("—" if m.get("accuracy") is None else f"{m['accuracy']:.1%}")
        table.add_row(*cells)
    Console().print(table)
    return 0
