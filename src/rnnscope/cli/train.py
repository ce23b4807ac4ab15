"""`rnnscope train`: train an RNN; with no arguments, the chapter's sigmoid Elman RNN on a noisy sine.

    rnnscope train                                          # sigmoid RNN, MSE, plain SGD, sine
    rnnscope train --data.task adding --data.seq_len 100    # the long-range adding problem
    rnnscope train --data.csv prices.csv --data.target close --data.seq_len 30
    rnnscope train --config run.toml --optim.lr 0.1        # a TOML file, then overrides
    rnnscope train --resume runs/20260101-120000            # continue a stopped run exactly
    rnnscope train --parallel.strategy data --parallel.nproc 2   # torchrun, 2 gloo workers
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from rnnscope.errors import UserError
from rnnscope.train.options import add_config_options, overrides_from_args, use_config_parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `train` parser: --config, --resume and every config field as --section.key."""
    parser = subparsers.add_parser(
        "train", help="train an RNN (default: the chapter's sigmoid Elman RNN on a noisy sine)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("--config", metavar="FILE.toml",
                        help="a TOML file with [model], [data], [optim], [train], ... sections "
                        "(a run's config.toml works); --section.key options override it")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its latest checkpoint (its config.toml, "
                        "then any --section.key options); the result is bitwise the uninterrupted run's")
    add_config_options(parser)
    return parser


def _parallel(module: str, strategy: str):
    """rnnscope.parallel.<module>, or a UserError when that part is not installed."""
    try:
        return importlib.import_module(f"rnnscope.parallel.{module}")
    except ModuleNotFoundError as exc:
        if exc.name in ("rnnscope.parallel", f"rnnscope.parallel.{module}"):
            raise UserError(f"--parallel.strategy {strategy} is not available in this install "
                            f"(rnnscope.parallel.{module} is missing); use --parallel.strategy none") from None
        raise


def resolve(args: argparse.Namespace):
    """The Config this command line asks for, with its run directory fixed."""
    from rnnscope.train.config import load_config
    from rnnscope.train.setup import default_run_dir

    overrides = overrides_from_args(args)
    if args.resume:
        if args.config:
            raise UserError("--resume uses the run's own config.toml; leave out --config")
        config_file = Path(args.resume) / "config.toml"
        if not config_file.is_file():
            raise UserError(f"--resume {args.resume}: {config_file} does not exist; "
                            "give the directory of a run (it holds config.toml and checkpoints/)")
        return load_config(config_file, overrides + ["--train.run_dir", args.resume]), overrides
    cfg = load_config(args.config, overrides)
    if not cfg.train.run_dir:  # fixed here, so every parallel worker writes to the same place
        cfg.train.run_dir = str(default_run_dir())
    return cfg, overrides


def run(args: argparse.Namespace) -> int:
    """Train (or resume), then print the summary table."""
    from rnnscope.train.loop import train

    cfg, overrides = resolve(args)
    if cfg.parallel.nproc > 1 and cfg.parallel.strategy == "none":
        raise UserError(f"--parallel.nproc {cfg.parallel.nproc} needs a --parallel.strategy to split the "
                        "work (data, pipeline or tensor); without one a single process trains")
    distributed = None
    if cfg.parallel.strategy != "none":
        if "RANK" not in os.environ:  # the launcher: start torchrun on the same command
            argv = ["train"] + (["--config", args.config] if args.config else []) + overrides
            argv += ["--resume", args.resume] if args.resume else ["--train.run_dir", cfg.train.run_dir]
            return int(_parallel("launch", cfg.parallel.strategy).launch(cfg, argv))
        distributed = _parallel("context", cfg.parallel.strategy).from_env(cfg)
    resume = bool(args.resume) or bool(getattr(distributed, "resume", False))  # torchrun restart
    result = train(cfg, distributed=distributed, resume=resume)
    if distributed is None or distributed.is_main:
        print_summary(result)
    return 0


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def print_summary(result) -> None:
    """The end-of-run table: losses, accuracy, time and where the run was written."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rnnscope train: {result.task}", show_header=False)
    table.add_row("steps", f"{result.steps} ({result.epochs} epochs)")
    table.add_row("train loss", f"{_fmt(result.first_loss)} (first log) → {_fmt(result.train_loss)}")
    table.add_row("validation loss", f"{_fmt(result.val_loss)} (best {_fmt(result.best_val_loss)})")
    if result.val_accuracy is not None or result.train_accuracy is not None:
        table.add_row("accuracy", f"train {_fmt(result.train_accuracy)}, validation {_fmt(result.val_accuracy)}")
    table.add_row("time", f"{result.seconds:.1f} s ({result.samples_per_s:,.0f} samples/s)")
    table.add_row("parameters", f"{result.parameters:,}")
    table.add_row("run directory", str(result.run_dir))
    Console().print(table)
    print(f"next: rnnscope evaluate {result.run_dir}\n      rnnscope predict {result.run_dir}")
