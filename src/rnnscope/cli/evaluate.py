"""`rnnscope evaluate RUN_DIR`: a trained model's loss (and accuracy, and RMSE in the data's units).

    rnnscope evaluate runs/20260101-120000                  # train and validation parts, best checkpoint
    rnnscope evaluate runs/20260101-120000 --data.csv new.csv --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from rnnscope.errors import UserError
from rnnscope.train.options import use_config_parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `evaluate` parser."""
    parser = subparsers.add_parser("evaluate", help="print a trained model's loss and accuracy",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the directory of a training run")
    parser.add_argument("--data.csv", dest="csv", metavar="PATH",
                        help="evaluate on every window of this CSV instead of the run's own data")
    parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                        help="the best checkpoint by validation loss, or the latest (default: best)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return parser


def rmse(model, x, y, target_names: list[str], normalization: dict) -> dict[str, float]:
    """Root mean square error per target column, in the CSV's units (std × normalized RMSE)."""
    import torch

    with torch.no_grad():
        y_hat, _ = model(x)
    squared = (y_hat - y).pow(2).reshape(-1, y.shape[-1]).mean(0).sqrt()  # (O,)
    idx = [normalization["columns"].index(name) for name in target_names]
    return {name: float(squared[k]) * normalization["std"][i]
            for k, (name, i) in enumerate(zip(target_names, idx))}


def measure(args: argparse.Namespace) -> dict:
    """Loss, accuracy and RMSE per data part, with the checkpoint's step."""
    from rnnscope.data import build_dataset
    from rnnscope.train.metrics import evaluate
    from rnnscope.train.restore import load_run, restore_model

    cfg, ckpt = load_run(args.run_dir, args.checkpoint)
    model = restore_model(cfg, ckpt)
    norm = ckpt["normalization"]
    if args.csv:
        if norm is None:
            raise UserError(f"the run in {args.run_dir} was trained on the built-in task "
                            f"{cfg.data.task!r}, not on CSV columns; leave out --data.csv")
        data_cfg = dataclasses.replace(cfg.data, csv=args.csv, val_fraction=0.0,
                                       column=ckpt["dataset"]["input_names"],
                                       target=ckpt["dataset"]["target_names"])
        ds = build_dataset(data_cfg, cfg.train.seed, normalization=norm)
        parts = {args.csv: (ds.x_train, ds.y_train)}
    else:
        ds = build_dataset(cfg.data, cfg.train.seed, normalization=norm)
        parts = {"train": (ds.x_train, ds.y_train)}
        if ds.has_val:
            parts["validation"] = (ds.x_val, ds.y_val)
    result = {"run_dir": args.run_dir, "checkpoint": args.checkpoint, "step": ckpt["step"],
              "data": ds.name, "parts": {}}
    for name, (x, y) in parts.items():
        metrics = evaluate(model, ds.kind, x, y)
        metrics["sequences"] = x.shape[0]
        if norm is not None:
            metrics["rmse"] = rmse(model, x, y, ds.target_names, norm)
        result["parts"][name] = metrics
    return result


def run(args: argparse.Namespace) -> int:
    """Print the metrics as a table (or JSON)."""
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rnnscope evaluate: {result['data']} ({args.checkpoint} checkpoint, "
                        f"step {result['step']})")
    columns = ["part", "sequences", "loss"] + [k for k in ("accuracy", "rmse")
                                                if any(k in m for m in result["parts"].values())]
    for column in columns:
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, m in result["parts"].items():
        cells = [name, str(m["sequences"]), f"{m['loss']:.4g}"]
        if "accuracy" in columns:
            cells.append("—" if m.get("accuracy") is None else f"{m['accuracy']:.1%}")
        if "rmse" in columns:
            cells.append(", ".join(f"{k} {v:.4g}" for k, v in m["rmse"].items()))
        table.add_row(*cells)
    Console().print(table)
    return 0
