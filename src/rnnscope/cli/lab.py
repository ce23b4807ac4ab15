"""`rnnscope lab`: train across emulated hosts on one machine, over links of a chosen rate.

    rnnscope lab --hosts 2 --link 100Mbit --model.hidden 500           # one run, data parallel
    rnnscope lab --hosts 2 --sweep-link 10Mbit,100Mbit,1Gbit --json     # every rate, a PNG too
    rnnscope lab --hosts 2 --link 50Mbit --measure-link 2               # just measure the link
    rnnscope lab --check                                                # what this machine can do
    rnnscope lab --cleanup                                              # remove crashed labs

Needs root and iproute2 (ip, tc with tbf); --delay-ms needs the kernel's netem too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

from rnnscope.train.options import add_config_options, overrides_from_args, use_config_parser

# config keys the lab sets itself (one worker per host), and the lab option to use instead
LAB_OWNED = {"parallel.strategy": "--strategy", "parallel.nproc": "--hosts",
             "train.run_dir": "--out", "train.max_steps": "--steps"}


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `lab` parser: the lab's options, then every `rnnscope train` config key."""
    parser = subparsers.add_parser(
        "lab", help="train across emulated hosts (namespaces, a bridge, shaped links)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lab = parser.add_argument_group("the lab")
    lab.add_argument("--hosts", type=int, default=2, help="emulated hosts, one worker each (2..64)")
    rate = lab.add_mutually_exclusive_group()
    rate.add_argument("--link", default="100Mbit",
                      help="rate of every host's link, each direction (e.g. 10Mbit, 1Gbit)")
    rate.add_argument("--sweep-link", metavar="RATES",
                      help="comma-separated rates to run one after another, e.g. 10Mbit,100Mbit,1Gbit")
    lab.add_argument("--strategy", default="data",
                     help="parallel strategy, or a comma-separated list: data, pipeline, hidden_split")
    lab.add_argument("--steps", type=int, default=20,
                     help="optimizer steps per run (sets --train.max_steps for the workers)")
    lab.add_argument("--delay-ms", type=float, default=0.0,
                     help="added one-way delay per link direction in ms (needs the netem qdisc)")
    lab.add_argument("--out", help="folder for the runs (default: runs/lab-<date-time>)")
    lab.add_argument("--timeout", type=float, default=600.0,
                     help="seconds one run may take before it is stopped as hung")
    lab.add_argument("--plot", help="PNG of step time against link rate "
                     "(default with --sweep-link: <out>/sweep.png)")
    lab.add_argument("--json", action="store_true", help="print the results as JSON")
    lab.add_argument("--html", metavar="FILE", help="also write the results as one HTML page")
    lab.add_argument("--calibrate", action="store_true",
                     help="first measure gloo's cost per message on loopback (10-30 s) and let the "
                     "prediction use it (matters for many small messages: --strategy hidden_split)")
    lab.add_argument("--measure-link", type=float, metavar="SECONDS",
                     help="only measure host 0 -> host 1 with a bulk TCP transfer this long")
    lab.add_argument("--check", action="store_true",
                     help="say whether this machine can build a lab (and add latency), then exit")
    lab.add_argument("--cleanup", action="store_true",
                     help="remove namespaces and links that crashed labs left (names rsl…-)")
    lab.add_argument("--config", metavar="FILE.toml",
                     help="TOML training config for every worker (as for rnnscope train)")
    use_config_parser(parser)  # an unknown --section.key gets "did you mean"
    add_config_options(parser)  # every training key, passed to each worker
    return parser


def train_overrides(args: argparse.Namespace) -> list[str]:
    """The `--section.key value` tokens given, refusing the keys that the lab sets itself."""
    from rnnscope.errors import UserError

    for key, option in LAB_OWNED.items():
        if hasattr(args, key):
            raise UserError(f"--{key} is set by the lab (one worker per host); use {option} instead")
    return overrides_from_args(args)


def run(args: argparse.Namespace) -> int:
    """Clean up, check, measure a link, or train across the lab and compare with the plan."""
    from rnnscope.errors import UserError
    from rnnscope.lab import system

    if args.cleanup:
        return _cleanup()
    if args.check:
        return _check(args)
    from rnnscope.costs.units import parse_rate, parse_rates
    from rnnscope.lab.netns import LINK_RATE_LIMITS

    rates = (parse_rates(args.sweep_link, limits=LINK_RATE_LIMITS) if args.sweep_link
             else [parse_rate(args.link, limits=LINK_RATE_LIMITS)])
    if args.steps < 1:
        raise UserError(f"--steps must be ≥ 1, got {args.steps}")
    if args.timeout <= 0:
        raise UserError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    try:
        if args.measure_link is not None:
            return _measure(args, rates)
        return _train(args, rates)
    except system.LabError as exc:  # the kernel or a worker failed, not the user
        print(f"rnnscope lab: error: {exc}", file=sys.stderr)
        return 1


def _cleanup() -> int:
    """Remove what crashed labs left behind (a live lab's owner keeps it)."""
    from rnnscope.errors import UserError
    from rnnscope.lab import requirements, system

    if not requirements.probe().root:
        raise UserError("--cleanup needs root (it deletes network namespaces); run it with sudo")
    removed, spared = system.cleanup_leftovers()
    print(f"removed {len(removed)}: {', '.join(removed)}" if removed else "nothing to remove")
    for prefix in spared:
        print(f"left {prefix}* alone: the process that built it still runs")
    return 0


def _check(args: argparse.Namespace) -> int:
    """Print whether a lab (and added latency) can run here; status 1 if not."""
    from rnnscope.lab.requirements import probe

    caps = probe()
    missing = caps.missing(latency=args.delay_ms > 0)
    if args.json:
        print(json.dumps({**caps.__dict__, "missing": missing}, indent=2))
    else:
        print(missing or ("the lab can run here"
                          + ("; added latency too (netem)" if caps.netem
                             else "; added latency cannot (no netem in this kernel)")))
    return 0 if missing is None else 1


def _measure(args: argparse.Namespace, rates: list[float]) -> int:
    """A bulk TCP transfer host 0 -> host 1 at each rate: does the link run at its rate?"""
    from rnnscope.errors import UserError
    from rnnscope.lab.bulk import measure
    from rnnscope.lab.netns import Lab
    from rnnscope.costs.units import format_rate

    if not 0 < args.measure_link <= 60:
        raise UserError(f"--measure-link must be between 0 and 60 seconds, got {args.measure_link:g}")
    rows = []
    for rate_bps in rates:
        with Lab(args.hosts, rate_bps, delay_ms=args.delay_ms) as lab:
            result = measure(lab, lab.hosts[0], lab.hosts[1], args.measure_link)
        rows.append({"link": format_rate(rate_bps), "rate_bps": rate_bps,
                     "goodput_bps": result.goodput_bps, "wire_bps": result.wire_bps,
                     "payload_bytes": result.payload_bytes, "seconds": result.seconds})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bulk TCP transfer host 0 -> host 1 (wire = frames, as tbf shapes them)")
    for name in ("link", "wire Mbit/s", "payload Mbit/s", "wire / link", "MB moved"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(row["link"], f"{row['wire_bps'] / 1e6:.2f}", f"{row['goodput_bps'] / 1e6:.2f}",
                      f"{row['wire_bps'] / row['rate_bps']:.3f}", f"{row['payload_bytes'] / 1e6:.1f}")
    Console().print(table)
    return 0


def _train(args: argparse.Namespace, rates: list[float]) -> int:
    """Every strategy at every rate: per-run tables as they end, then the sweep table and plot."""
    from rich.console import Console

    from rnnscope.costs.layout import strategy_name
    from rnnscope.report.lab_plots import plot_sweep
    from rnnscope.lab.requirements import require
    from rnnscope.lab.sweep import LabPlan, check_plan, sweep
    from rnnscope.lab.tables import hosts_table, steps_table, sweep_table

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    plan = LabPlan(hosts=args.hosts, rates_bps=rates,
                   strategies=[strategy_name(s.strip(), "--strategy")
                               for s in args.strategy.split(",") if s.strip()],
                   config_path=args.config,
                   overrides=train_overrides(args) + ["--train.max_steps", str(args.steps)],
                   out_dir=Path(args.out or f"runs/lab-{stamp}"), delay_ms=args.delay_ms,
                   timeout_s=args.timeout)
    check_plan(plan)  # the user's mistakes first, before asking anything of the kernel
    require(latency=args.delay_ms > 0)
    if args.calibrate:
        from dataclasses import replace

        from rnnscope.lab.predict import calibrate_software

        plan = replace(plan, software=calibrate_software())
    console = Console()

    def show(result) -> None:
        if not args.json:
            console.print(steps_table(result))
            console.print(hosts_table(result))

    results = sweep(plan, on_result=show)
    plot_path = args.plot or (plan.out_dir / "sweep.png" if len(rates) > 1 else None)
    if plot_path:
        plot_sweep(results, plot_path)
    if args.html:
        from rnnscope.report.pages import lab_page

        lab_page(results).write(args.html)
    (plan.out_dir / "lab.json").write_text(json.dumps([r.to_dict() for r in results], indent=2))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        console.print(sweep_table(results))
        console.print(f"results: {plan.out_dir / 'lab.json'}" +
                      (f", plot: {plot_path}" if plot_path else ""))
    return 0
