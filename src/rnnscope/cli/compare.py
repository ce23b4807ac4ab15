"""`rnnscope compare`: the same model trained data-parallel, pipelined and hidden-split, side by side.

    rnnscope compare                                   # 2 local workers, 2 layers, 12 steps each
    rnnscope compare --nproc 2 --model.hidden 64 --data.seq_len 100 --parallel.chunk 10
    rnnscope compare --strategies pipeline,hidden_split --json

Each strategy runs as `rnnscope train --parallel.strategy S --parallel.nproc N` (torchrun, gloo on
127.0.0.1) for --steps optimizer steps; its traffic.jsonl is then read back. The table shows,
per training step and for all ranks together: wire bytes and messages measured by the
communicator beside the strategy's formula (rnnscope.costs), the message rate, the share of the
step spent communicating, the step time, and for the pipeline each rank's measured idle share
beside the bubble model (S−1)/(C+S−1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from rnnscope.costs.layout import STRATEGIES, strategy_name
from rnnscope.errors import UserError
from rnnscope.train.options import add_config_options, overrides_from_args, use_config_parser


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `compare` parser: workers, steps, strategies, and train's --section.key options."""
    parser = subparsers.add_parser(
        "compare", help="train the same model data-parallel, pipelined and hidden-split; "
        "show each one's traffic beside its formula",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("--config", metavar="FILE.toml",
                        help="a train config; its --section.key options may follow")
    parser.add_argument("--nproc", type=int, default=2,
                        help="local workers for every strategy (default 2)")
    parser.add_argument("--steps", type=int, default=12,
                        help="optimizer steps each strategy trains (default 12)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="first steps left out of the means (default 2: DDP's first step "
                        "uses one bucket, and first calls are slow)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated subset of {','.join(STRATEGIES)} (default all)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="keep each strategy's run directory under DIR (default: a "
                        "temporary directory, removed at the end)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds each strategy's run may take (default 300)")
    parser.add_argument("--json", action="store_true",
                        help="print the rows as JSON instead of the table")
    parser.add_argument("--html", metavar="FILE",
                        help="also write the comparison, with each strategy's timeline, as one HTML page")
    add_config_options(parser)
    return parser


def _strategies(text: str) -> list[str]:
    names = [strategy_name(s.strip(), "--strategies") for s in text.split(",") if s.strip()]
    if not names:
        raise UserError(f"--strategies {text!r}: choose from {', '.join(STRATEGIES)}")
    return names


def _check(args, cfg) -> None:
    if args.nproc < 2:
        raise UserError(f"--nproc must be ≥ 2 to compare parallel strategies, got {args.nproc}")
    if args.steps <= args.warmup:
        raise UserError(f"--steps ({args.steps}) must exceed --warmup ({args.warmup}): "
                        "nothing would be measured")
    if cfg.parallel.data_degree not in (0, 1):
        raise UserError(f"compare runs each strategy on its own; drop --parallel.data_degree "
                        f"{cfg.parallel.data_degree}")
    if cfg.data.batch_size % args.nproc:
        raise UserError(f"--data.batch_size {cfg.data.batch_size} does not split over "
                        f"--nproc {args.nproc} data-parallel workers; use a multiple of "
                        f"{args.nproc}")


def run_strategy(strategy: str, args, overrides: list[str], run_dir: Path) -> None:
    """Train with one strategy in a torchrun of --nproc workers; raise a UserError on failure."""
    cmd = [sys.executable, "-m", "rnnscope", "train", *(["--config", args.config] if args.config else []),
           *overrides, "--parallel.strategy", strategy, "--parallel.nproc", str(args.nproc),
           "--train.max_steps", str(args.steps), "--train.epochs", "0",
           "--train.log_every", str(args.steps), "--train.checkpoint_every", str(args.steps),
           "--train.progress", "false", "--train.run_dir", str(run_dir)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"the {strategy} run did not finish in {args.timeout:.0f} s; raise "
                        "--timeout or train a smaller model") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        raise UserError(f"the {strategy} run failed (exit {done.returncode}):\n" + "\n".join(tail))


def run(args: argparse.Namespace) -> int:
    """Run every strategy, read their ledgers, print the table (or JSON)."""
    from rnnscope.data import build_dataset
    from rnnscope.parallel.comparison import compare_row
    from rnnscope.costs.traffic import RNNShape
    from rnnscope.parallel.ledger import read_jsonl
    from rnnscope.train.config import load_config

    strategies = _strategies(args.strategies)
    overrides = overrides_from_args(args)
    if not any(o.startswith("--model.layers") for o in overrides):
        overrides += ["--model.layers", str(args.nproc)]  # one layer per pipeline stage
    cfg = load_config(args.config, overrides)
    _check(args, cfg)
    data = build_dataset(cfg.data, cfg.train.seed)
    shape = RNNShape(data.input_size, cfg.model.hidden, cfg.model.layers,
                          data.x_train.shape[1], cfg.data.batch_size, data.output_size, 4,
                          every_step=data.every_step, cell=cfg.model.cell)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnscope-compare-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        for strategy in strategies:
            run_dir = root / strategy
            if (run_dir / "metrics.jsonl").exists():
                raise UserError(f"--out {root}: {run_dir} already holds a run; choose another --out")
            run_strategy(strategy, args, overrides, run_dir)
            stats_file = run_dir / "model_parallel.json"
            stats = json.loads(stats_file.read_text()) if stats_file.exists() else None
            rows.append(compare_row(strategy, read_jsonl(run_dir / "traffic.jsonl"), shape,
                                    args.nproc, chunk=cfg.parallel.chunk,
                                    bucket_mb=cfg.parallel.bucket_mb, warmup=args.warmup,
                                    stats=stats, clip=cfg.optim.clip > 0))
        if args.html:  # while the run directories (their timelines) still exist
            from rnnscope.report.pages import compare_page

            path = compare_page(rows, shape, args.nproc, cfg.parallel.chunk,
                                {s: root / s for s in strategies}).write(args.html)
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps({"shape": dataclasses.asdict(shape), "nproc": args.nproc,
                          "chunk": cfg.parallel.chunk, "rows": [r.as_dict() for r in rows]},
                         indent=1))
    else:
        print_table(rows, shape, args.nproc, cfg.parallel.chunk)
    return 0


def print_table(rows, shape, nproc: int, chunk: int) -> None:
    """The comparison as one rich table, with the formulas' meaning underneath."""
    from rich.console import Console
    from rich.table import Table

    from rnnscope.parallel.summary import human_bytes

    title = (f"{nproc} workers · L={shape.layers} H={shape.hidden} T={shape.seq_len} "
             f"B={shape.batch} · per training step, all ranks")
    table = Table(title=title)
    for name in ("strategy", "bytes", "(formula)", "msgs", "(formula)", "msg/s", "comm %",
                 "step ms", "idle % (bubble)"):
        table.add_column(name, justify="left" if name == "strategy" else "right")
    for r in rows:
        idle = "—"
        if r.bubble_fraction is not None:
            measured = "/".join("?" if f is None else f"{100 * f:.0f}" for f in (r.idle_fraction or []))
            idle = f"{measured or '?'} ({100 * r.bubble_fraction:.1f})"
        table.add_row(
            r.strategy, human_bytes(r.bytes_per_step), human_bytes(r.formula_bytes_per_step),
            f"{r.messages_per_step:,.0f}", f"{r.formula_messages_per_step:,}",
            "—" if r.messages_per_s is None else f"{r.messages_per_s:,.0f}",
            "—" if r.comm_fraction is None else f"{100 * r.comm_fraction:.0f}",
            "—" if r.step_seconds is None else f"{1000 * r.step_seconds:.1f}", idle)
    console = Console()
    if console.width < 110:  # piped output: rich would squeeze the table into 80 columns
        console = Console(width=110)
    console.print(table)
    console.print(
        "bytes, messages: sent on the wire per step by the communicator's ledger; formula: "
        "rnnscope.costs (data: DDP buckets all-reduced; pipeline: 2(S−1)·T·B·H·b in "
        f"2(S−1)·⌈T/{chunk}⌉ messages, plus ŷ broadcast; hidden_split: an all-gather and a "
        "reduce-scatter of B·H·b per layer and step, gloo runs the reduce-scatter as an "
        "all-reduce; with --optim.clip a model split adds an 8-byte all-reduce of the gradient "
        "norm). idle: each pipeline rank's time waiting for a neighbour.",
        highlight=False)
