"""`rnnscope predict RUN_DIR`: a trained model's forecasts as CSV, in the data's own units.

    rnnscope predict runs/20260101-120000                          # the run's own CSV (or task)
    rnnscope predict runs/20260101-120000 --data.csv new.csv -o forecast.csv --plot forecast.png

For a CSV run every window of --data.seq_len rows gives one forecast from its last row (the
origin): the target columns `horizon` rows later (or every step up to it with --data.steps all).
Each output row has the time of the forecast row, the step ahead, the forecast per target and
the actual value where the file has it; the last windows forecast past the end of the file.
Forecasts are computed in batches and written as they come, so any file size fits in memory.
For a built-in task the predictions cover its validation sequences.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import sys
from pathlib import Path

from rnnscope.errors import UserError
from rnnscope.train.config import DataConfig
from rnnscope.train.options import use_config_parser

# --data.missing's choices, from the config field (importing data/ here would load torch for --help)
MISSING_CHOICES = next(f.metadata["choices"] for f in dataclasses.fields(DataConfig) if f.name == "missing")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `predict` parser."""
    parser = subparsers.add_parser("predict", help="write a trained model's predictions as CSV",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the directory of a training run")
    parser.add_argument("--data.csv", dest="csv", metavar="PATH",
                        help="a CSV with the columns the model was trained on (default: the run's own data)")
    parser.add_argument("--data.missing", dest="missing", choices=MISSING_CHOICES,
                        help="what to do with empty cells in this file (default: what the run was trained with)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="where to write the predictions, - for stdout (default: RUN_DIR/predictions.csv)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw actual and forecast over time, with the splits and the naive baseline")
    parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                        help="the best checkpoint by validation loss, or the latest (default: best)")
    return parser


def safe_cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula (a leading = + - @ tab or CR gets a ')."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def series_spec(ckpt, run_dir) -> dict:
    """The forecasting spec a CSV run saved, or a one-line error for an older run."""
    spec = (ckpt.get("normalization") or {}).get("spec")
    if spec is None:
        raise UserError(f"the run in {run_dir} was trained by an older rnnscope without a saved series "
                        "spec; train it again to predict or evaluate on CSV data")
    return spec


def prepared_for(cfg, ckpt, args):
    """The Prepared arrays of the file to forecast (the run's own, with its splits, or --data.csv)."""
    from rnnscope.data.series import prepare

    spec = series_spec(ckpt, args.run_dir)
    data_cfg = dataclasses.replace(cfg.data, csv=args.csv or cfg.data.csv)
    return prepare(data_cfg, spec=spec, missing=args.missing, own_file=not args.csv)[1]


def csv_batches(cfg, model, prepared, own_file: bool):
    """The header, then one pyarrow table per batch of forecasts: (the series id,) time, step,
    forecast and actual per target (and the split of the forecast row for the run's own file)."""
    many = isinstance(prepared, list)
    parts = prepared if many else [prepared]
    spec = parts[0].spec
    targets = spec["targets"]
    header = ["time", "step"] + [safe_cell(f"{n}_predicted") for n in targets] + [safe_cell(n) for n in targets]
    header = ([safe_cell(spec["series"]["column"] or "series")] if many else []) + header
    header += ["split"] if own_file else []
    yield header
    for part in parts:
        yield from _series_batches(cfg, model, part, own_file, many)


def _series_batches(cfg, model, prepared, own_file: bool, many: bool):
    """The batches of one series' forecasts (with its id in the first column when there are several)."""
    import numpy as np
    import pyarrow as pa

    from rnnscope.data.csv import all_origins
    from rnnscope.data.ragged import MIN_STEPS
    from rnnscope.data.series import steps_ahead
    from rnnscope.data.timeindex import stamp
    from rnnscope.train.forecasting import actual_values, every_span, forecast

    spec = prepared.spec
    ks, targets = steps_ahead(spec), spec["targets"]
    R, split_names = prepared.x.shape[0], np.array(["train", "validation", "test", "future"])
    L = cfg.data.seq_len
    span, window = every_span(prepared, L) if many else (all_origins(prepared, L), L)  # data/ragged.py
    if many and len(span) == 0:
        raise UserError(f"series {prepared.series_id!r} has {R} rows, fewer than one window of "
                        f"{cfg.data.seq_len} (the run's --data.seq_len) or a shorter one of {MIN_STEPS}; give it "
                        "more rows or leave it out")
    for o, values in forecast(model, prepared, span, window):  # window: fewer rows for a short series
        actual = actual_values(prepared, o, ks)  # (B, K, O)
        target_row = (o[:, None] + np.array(ks)[None, :]).ravel()  # (B·K,), origin-major
        past_end = np.maximum(target_row - (R - 1), 0)
        times = stamp(spec["time"], prepared.positions[np.minimum(target_row, R - 1)] + past_end)
        columns = [pa.array(times), pa.array(np.tile(ks, len(o)))]
        if many:
            columns.insert(0, pa.array(np.full(len(times), safe_cell(prepared.series_id))))
        # float32 text is the shortest that round-trips float32: about 7 significant digits
        columns += [pa.array(values[:, :, j].ravel().astype(np.float32)) for j in range(len(targets))]
        columns += [pa.array(actual[:, :, j].ravel(), from_pandas=True) for j in range(len(targets))]
        if own_file:
            parts = np.searchsorted(prepared.bounds[1:], target_row, side="right")
            columns.append(pa.array(split_names[np.minimum(parts, 3)]))
        quote = many and any(ch in prepared.series_id for ch in ',"\r\n')
        yield pa.table(columns, names=[f"c{i}" for i in range(len(columns))],
                       metadata={"quote": "1"} if quote else None)


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


def _write(f, batches) -> int:
    """Header line, then each batch (a list of rows, or a pyarrow table) to the binary file f."""
    import io

    from pyarrow import csv as pacsv

    text = io.StringIO()
    csv.writer(text).writerow(next(batches))
    f.write(text.getvalue().encode())
    count, options = 0, pacsv.WriteOptions(include_header=False, quoting_style="none")  # times and split names: no commas
    for batch in batches:
        if isinstance(batch, list):
            text = io.StringIO()
            csv.writer(text).writerows(batch)
            f.write(text.getvalue().encode())
        elif batch.schema.metadata and b"quote" in batch.schema.metadata:  # a series id with a comma
            pacsv.write_csv(batch, f, write_options=pacsv.WriteOptions(include_header=False))
        else:
            pacsv.write_csv(batch, f, write_options=options)
        count += len(batch) if isinstance(batch, list) else batch.num_rows
    return count


def write_rows(out: str, batches) -> int:
    """Write the header and batches to `out` (- for stdout) atomically; the number of rows written."""
    if out == "-":  # a reader that stops early (`| head`) ends us quietly: the CLI's top level
        count = _write(sys.stdout.buffer, batches)
        sys.stdout.flush()
        return count
    path = Path(out)
    if path.is_dir():
        raise UserError(f"-o {out} is a directory; give a file name such as {path / 'predictions.csv'}")
    if not path.parent.is_dir():
        raise UserError(f"-o {out}: the folder {path.parent} does not exist; create it or choose another path")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            count = _write(f, batches)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a forecast that failed half way leaves no file behind
    return count


def run(args: argparse.Namespace) -> int:
    """Write the predictions (and the picture) and say where."""
    from rnnscope.train.restore import load_run, restore_model

    cfg, ckpt = load_run(args.run_dir, args.checkpoint)
    model = restore_model(cfg, ckpt)
    source = args.csv or cfg.data.csv
    if (args.csv or args.plot or args.missing) and ckpt["normalization"] is None:
        raise UserError(f"the run in {args.run_dir} was trained on the built-in task "
                        f"{cfg.data.task!r}, not on CSV columns; leave out --data.csv, --data.missing and --plot")
    out = args.output or str(Path(args.run_dir) / "predictions.csv")
    if source:
        prepared = prepared_for(cfg, ckpt, args)
        count = write_rows(out, csv_batches(cfg, model, prepared, own_file=not args.csv))
        if args.plot:
            from rnnscope.report.forecast_plot import plot_forecast
            from rnnscope.train.forecasting import forecast_frame

            first = prepared[0] if isinstance(prepared, list) else prepared  # several series: the first
            title = str(source) + (f", series {first.series_id}" if first.series_id is not None else "")
            plot_forecast(forecast_frame(model, first, cfg.data.seq_len), args.plot, title=title)
    else:
        header, rows = task_rows(cfg, ckpt, model)
        count = write_rows(out, iter([header, rows]))
    if out != "-":
        print(f"wrote {count} predictions ({source or cfg.data.task}) to {out}"
              + (f"; the picture to {args.plot}" if args.plot else ""))
    return 0
