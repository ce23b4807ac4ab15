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
import os
import sys
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


def resolve(args: argparse.Namespace):
    """The Config this command line asks for, with its run directory fixed."""
    from rnnscope.train.config import load_config
    from rnnscope.train.resume import check_config_file
    from rnnscope.train.setup import default_run_dir

    overrides = overrides_from_args(args)
    if args.resume:
        if args.config:
            raise UserError("--resume uses the run's own config.toml; leave out --config")
        config_file = Path(args.resume) / "config.toml"
        if not config_file.is_file():
            raise UserError(f"--resume {args.resume}: {config_file} does not exist; "
                            "give the directory of a run (it holds config.toml and checkpoints/)")
        check_config_file(config_file)  # empty or cut short: never train on silent defaults
        return load_config(config_file, overrides + ["--train.run_dir", args.resume]), overrides
    cfg = load_config(args.config, overrides)
    if not cfg.train.run_dir:  # fixed here, so every parallel worker writes to the same place
        cfg.train.run_dir = str(default_run_dir())
    return cfg, overrides


def run(args: argparse.Namespace) -> int:
    """Train (or resume), then print the summary table."""
    try:
        return _run(args)
    except UserError as exc:
        rank = os.environ.get("RANK")
        if rank is None:
            raise  # not a torchrun worker: the CLI prints it
        # workers share one stderr: one write per line, so that lines never run together
        who = "rnnscope train" if rank == "0" else f"rnnscope train (rank {rank})"
        sys.stderr.write(f"{who}: error: {exc}\n")
        sys.stderr.flush()
        return 2


def _run(args: argparse.Namespace) -> int:
    from rnnscope.train.loop import train
    from rnnscope.train.resume import resume_hint
    from rnnscope.train.stop import Interrupted

    cfg, overrides = resolve(args)
    if cfg.parallel.nproc > 1 and cfg.parallel.strategy == "none":
        raise UserError(f"--parallel.nproc {cfg.parallel.nproc} needs a --parallel.strategy to split the "
                        "work (data, pipeline or hidden_split); without one a single process trains")
    distributed = None
    if cfg.parallel.strategy != "none":
        if "RANK" not in os.environ:  # the launcher: start torchrun on the same command
            argv = ["train"] + (["--config", args.config] if args.config else []) + overrides
            argv += ["--resume", args.resume] if args.resume else ["--train.run_dir", cfg.train.run_dir]
            from rnnscope.parallel.launch import launch

            return int(launch(cfg, argv))
        from rnnscope.parallel.lifeline import die_with_parent
        from rnnscope.parallel.worker import from_env

        die_with_parent()  # no orphans
        distributed = from_env(cfg)
    resume = bool(args.resume) or bool(getattr(distributed, "resume", False))  # torchrun restart
    try:
        result = train(cfg, distributed=distributed, resume=resume)
    except Interrupted as exc:  # Ctrl-C or SIGTERM: one line (the launcher's, for a worker)
        if distributed is None:
            print(f"rnnscope train: {exc}{resume_hint(cfg.train.run_dir)}",
                  file=sys.stderr)
        return exc.exit_code
    except RuntimeError as exc:  # a worker whose peer died or hung: one line, the launcher says more
        # autograd wraps an error raised in DDP's hook: "... running the callback: CommError: ..."
        text = str(exc)
        from rnnscope.parallel.comm import CommError

        if distributed is None or not (isinstance(exc, CommError) or "CommError: " in text):
            raise
        text = text.rsplit("CommError: ", 1)[-1].strip().splitlines()[0]
        print(f"rnnscope train (rank {distributed.rank}): error: {text}", file=sys.stderr)
        return 1
    if distributed is None or distributed.is_main:
        print_summary(result)
    return 0


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def print_summary(result) -> None:
    """The end-of-run table: losses, accuracy, time and where the run was written."""
    from rich.console import Console
    from rich.table import Table

    from rnnscope.costs.units import format_seconds

    table = Table(title=f"rnnscope train: {result.task}", show_header=False)
    epochs = "epoch 0" if result.epochs == 1 else f"epochs 0–{result.epochs - 1}"  # numbered as in the log
    table.add_row("steps", f"{result.steps} ({epochs})")
    first = f"step {result.first_loss_step}" if getattr(result, "first_loss_step", None) else "first log"
    table.add_row("train loss", f"{_fmt(result.first_loss)} ({first}) → {_fmt(result.train_loss)}")
    table.add_row("validation loss", f"{_fmt(result.val_loss)} (best {_fmt(result.best_val_loss)})")
    if result.val_accuracy is not None or result.train_accuracy is not None:
        table.add_row("accuracy", f"train {_fmt(result.train_accuracy)}, validation {_fmt(result.val_accuracy)}")
    took = f"{result.seconds:.1f} s" if result.seconds >= 1 else format_seconds(result.seconds)  # not "0.0 s"
    table.add_row("time", f"{took} ({result.samples_per_s:,.0f} samples/s)")
    table.add_row("parameters", f"{result.parameters:,}")
    table.add_row("run directory", str(result.run_dir))
    Console().print(table)
    if getattr(result, "forecast", None):
        from rnnscope.cli.forecast_lines import summary_lines

        print("\n".join(summary_lines(result)))
    print(f"next: rnnscope evaluate {result.run_dir}\n      rnnscope predict {result.run_dir}")
