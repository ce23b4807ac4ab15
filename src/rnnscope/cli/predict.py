"""`rnnscope predict RUN_DIR`: a trained model's predictions as CSV, in the data's own units.

    rnnscope predict runs/20260101-120000                          # the run's own CSV (or task)
    rnnscope predict runs/20260101-120000 --data.csv new.csv -o forecast.csv

For a CSV run every window of --data.seq_len rows (stride 1) gives one prediction: the target
columns `horizon` rows after the window's end; the last windows forecast rows past the end of the
file. Values are de-normalized with the statistics saved in the checkpoint. For a built-in task
the predictions cover its validation sequences.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from rnnscope.errors import UserError
from rnnscope.train.options import use_config_parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `predict` parser."""
    parser = subparsers.add_parser("predict", help="write a trained model's predictions as CSV",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the directory of a training run")
    parser.add_argument("--data.csv", dest="csv", metavar="PATH",
                        help="a CSV with the columns the model was trained on (default: the run's own data)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="where to write the predictions, - for stdout (default: RUN_DIR/predictions.csv)")
    parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                        help="the best checkpoint by validation loss, or the latest (default: best)")
    return parser


def csv_rows(cfg, ckpt, model, path: str) -> tuple[list[str], list[list]]:
    """Header and rows of predictions for a CSV file, one per window (stride 1)."""
    import torch

    from rnnscope.data.csv import denormalize, load_for_prediction, normalize, prediction_windows

    info, norm = ckpt["dataset"], ckpt["normalization"]
    inputs, targets = info["input_names"], info["target_names"]
    x, y = load_for_prediction(path, inputs, targets)  # (R, I), (R, O) or None
    windows = prediction_windows(normalize(inputs, x, norm, path), cfg.data.seq_len)  # (N, T, I)
    with torch.no_grad():
        y_hat, _ = model(windows)  # (N, T, O) or (N, O)
    last = y_hat[:, -1] if info["every_step"] else y_hat  # (N, O): the step after the window
    predicted = denormalize(targets, last.numpy().astype(float), norm)
    header = ["row"] + [f"{name}_predicted" for name in targets] + (targets if y is not None else [])
    rows = []
    for i, values in enumerate(predicted):
        row = i + cfg.data.seq_len - 1 + cfg.data.horizon  # 0-based data row the prediction is for
        if y is None:
            actual = []
        elif row < len(y):
            actual = [f"{v:.6g}" for v in y[row]]
        else:  # a forecast past the end of the file: nothing to compare with yet
            actual = [""] * len(targets)
        rows.append([row + 1, *(f"{v:.6g}" for v in values), *actual])
    return header, rows


def task_rows(cfg, ckpt, model) -> tuple[list[str], list[list]]:
    """Header and rows of predictions for a built-in task's validation sequences."""
    import torch

    from rnnscope.data import build_dataset
    from rnnscope.data.tasks import IGNORE

    ds = build_dataset(cfg.data, cfg.train.seed)
    x, y = (ds.x_val, ds.y_val) if ds.has_val else (ds.x_train, ds.y_train)
    with torch.no_grad():
        y_hat, _ = model(x)
    if ds.kind == "classification":
        classes = y_hat.argmax(-1)  # (N, T)
        rows = [[n, t, int(y[n, t]), int(classes[n, t])]
                for n in range(y.shape[0]) for t in range(y.shape[1]) if y[n, t] != IGNORE]
        return ["sample", "step", "target", "predicted"], rows
    names = ds.target_names
    header = ["sample", "step"] + names + [f"{name}_predicted" for name in names]
    if not ds.every_step:  # (N, O): one prediction per sequence, at its last step
        y, y_hat = y[:, None], y_hat[:, None]
    T = x.shape[1]
    rows = [[n, t if ds.every_step else T - 1, *(f"{v:.6g}" for v in y[n, t].tolist()),
             *(f"{v:.6g}" for v in y_hat[n, t].tolist())]
            for n in range(y.shape[0]) for t in range(y.shape[1])]
    return header, rows


def run(args: argparse.Namespace) -> int:
    """Write the predictions and say where."""
    from rnnscope.train.restore import load_run, restore_model

    cfg, ckpt = load_run(args.run_dir, args.checkpoint)
    model = restore_model(cfg, ckpt)
    source = args.csv or cfg.data.csv
    if args.csv and ckpt["normalization"] is None:
        raise UserError(f"the run in {args.run_dir} was trained on the built-in task "
                        f"{cfg.data.task!r}, not on CSV columns; leave out --data.csv")
    header, rows = csv_rows(cfg, ckpt, model, source) if source else task_rows(cfg, ckpt, model)
    out = args.output or str(Path(args.run_dir) / "predictions.csv")
    if out == "-":
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
        return 0
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {len(rows)} predictions ({source or cfg.data.task}) to {out}")
    return 0
