"""`rnnscope plan`: predict each strategy's traffic, link utilization and step time at scale.

    rnnscope plan --model.hidden 1024 --model.layers 4 --data.seq_len 1000
    rnnscope plan --workers 8,64,512,4096 --link 400Gbit --latency 5us --json
    rnnscope plan --nodes 64 --gpus-per-node 8 --intra 900GB/s --link 400Gbit --plot plots/
    rnnscope plan --calibrate                # measure this machine, predict 2 and 4 local workers
    rnnscope plan --calibrate --calibrations 3   # the median of three measurements (a busy machine)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging

from rnnscope.errors import UserError
from rnnscope.train.options import add_config_options, overrides_from_args, use_config_parser

log = logging.getLogger(__name__)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `plan` parser: the network, the device, and train's [model]/[data]/[parallel]."""
    parser = subparsers.add_parser(
        "plan", help="predict traffic, link utilization and step time of each strategy at scale",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    use_config_parser(parser)
    parser.add_argument("--config", metavar="FILE.toml",
                        help="a train config (its [model], [data] and [parallel] are used)")
    net = parser.add_argument_group("the network")
    net.add_argument("--workers", metavar="LIST", default=None,
                     help="worker counts to plan for, comma-separated (default 8,64,512,4096; "
                     "with --nodes: nodes × gpus-per-node)")
    net.add_argument("--link", default="400Gbit",
                     help="bandwidth of each worker's network link: 400Gbit, 100Gb/s, 25GB/s "
                     "(default 400Gbit)")
    net.add_argument("--latency", default="5us",
                     help="one-way latency α of a network message: 5us, 1.5ms (default 5us)")
    net.add_argument("--nodes", type=int, default=None,
                     help="nodes; workers = nodes × --gpus-per-node (instead of --workers)")
    net.add_argument("--gpus-per-node", type=int, default=1,
                     help="GPUs per node, joined by --intra links (default 1: a flat network)")
    net.add_argument("--intra", default=None,
                     help="bandwidth inside a node, e.g. 900GB/s (NVLink); needed with "
                     "--gpus-per-node > 1")
    net.add_argument("--intra-latency", default="2us",
                     help="latency of a message inside a node (default 2us)")
    dev = parser.add_argument_group("the device")
    dev.add_argument("--device", default="h100",
                     help="accelerator preset: a100, h100, h200, mi300x, v100 (default h100)")
    dev.add_argument("--utilization", type=float, default=None,
                     help="share of the device's peak FLOP/s an RNN reaches (default 0.3)")
    dev.add_argument("--step-overhead", default=None,
                     help="fixed time per layer and forward time step, e.g. 10us (kernel "
                     "launches; the backward pays twice; default 10us)")
    dev.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"),
                     help="element type of weights, activations and gradients (default fp32)")
    run = parser.add_argument_group("the plan")
    run.add_argument("--scaling", default="weak", choices=("weak", "strong"),
                     help="weak: --data.batch_size sequences per data replica (the global batch "
                     "grows with it); strong: --data.batch_size is the global batch "
                     "(default weak)")
    run.add_argument("--model.input_size", dest="input_size", type=int, default=None,
                     help="input features per time step (default: the data task's)")
    run.add_argument("--model.output_size", dest="output_size", type=int, default=None,
                     help="outputs of the readout (default: the data task's)")
    run.add_argument("--json", action="store_true", help="print the plan as JSON")
    run.add_argument("--plot", metavar="DIR",
                     help="write PNGs: step-time breakdown against workers, link utilization "
                     "over one step")
    run.add_argument("--html", metavar="FILE",
                     help="also write the plan as one HTML page (throughput, step time, recommendation)")
    run.add_argument("--calibrate", action="store_true",
                     help="measure this machine with 2 processes (gloo loopback α/β through "
                     "the communicator, the engine's speed, the strategies' code-path "
                     "overheads) and predict local runs (default --workers 2,4; "
                     "--data.batch_size is the global batch, as in train)")
    run.add_argument("--calibrations", type=int, default=None, metavar="K",
                     help="with --calibrate: measure K times, one after another (about a "
                     "minute each), and predict from the median of every figure: the "
                     "machine's typical pace rather than one minute's (default 1)")
    add_config_options(parser, sections=("model", "data", "optim", "parallel"))
    return parser


def _topology(args: argparse.Namespace):
    from rnnscope.plan.alphabeta import Link
    from rnnscope.plan.topology import Topology
    from rnnscope.costs.units import parse_bandwidth, parse_duration

    inter = Link.simple(parse_duration(args.latency, "--latency"),
                        parse_bandwidth(args.link, "--link"), "network")
    intra = None
    if args.intra is not None:
        intra = Link.simple(parse_duration(args.intra_latency, "--intra-latency"),
                            parse_bandwidth(args.intra, "--intra"), "node")
    return Topology(inter, args.gpus_per_node, intra)


def _workers(args: argparse.Namespace) -> list[int]:
    from rnnscope.costs.units import parse_int_list

    if args.nodes is not None:
        if args.workers is not None:
            raise UserError("give --workers or --nodes (workers = nodes × --gpus-per-node), "
                            "not both")
        if args.nodes < 1:
            raise UserError(f"--nodes must be ≥ 1, got {args.nodes}")
        return [args.nodes * args.gpus_per_node]
    workers = parse_int_list(args.workers or "8,64,512,4096", "--workers")
    if args.gpus_per_node > 1:
        for n in workers:
            if n % args.gpus_per_node:
                raise UserError(f"--workers {n} is not whole nodes: {n} % gpus-per-node"
                                f"({args.gpus_per_node}) = {n % args.gpus_per_node}")
    return workers


def _device(args: argparse.Namespace):
    from dataclasses import replace

    from rnnscope.plan.compute import get_device
    from rnnscope.costs.units import parse_duration

    device = get_device(args.device)
    if args.utilization is not None:
        device = device.with_utilization(args.utilization)
    if args.step_overhead is not None:
        device = replace(device, step_overhead_s=parse_duration(args.step_overhead,
                                                                "--step-overhead"))
    return device


def run(args: argparse.Namespace) -> int:
    """Plan every worker count; print the table (or JSON); write the plots."""
    from rnnscope.plan.from_config import shape_from_config
    from rnnscope.plan.recommend import plan_workers
    from rnnscope.plan.table import plan_table, plans_to_json
    from rnnscope.plan.simulate import PlanInputs
    from rnnscope.train.config import load_config

    cfg = load_config(args.config, overrides_from_args(args))
    dtype_bytes = {"fp32": 4, "bf16": 2}[args.dtype]
    shape = shape_from_config(cfg, args.input_size, args.output_size, dtype_bytes)
    if args.calibrations is not None and not args.calibrate:
        raise UserError(f"--calibrations needs --calibrate (got --calibrations "
                        f"{args.calibrations} alone): add --calibrate to measure this machine")
    if args.calibrate:
        from rnnscope.calibrate.machine import calibrated_inputs

        repeats = 1 if args.calibrations is None else args.calibrations
        if repeats < 1:
            raise UserError(f"--calibrations must be ≥ 1, got {repeats}: it is how many "
                            f"measurements to take the median of (1 measures once)")
        inputs, workers, calibration = calibrated_inputs(shape, cfg, repeats=repeats)
        inputs = dataclasses.replace(inputs, clip=cfg.optim.clip > 0)
        workers = _workers(args) if args.workers or args.nodes else workers
        measured = calibration.to_dict()
    else:
        inputs = PlanInputs(shape, _device(args), _topology(args), chunk=cfg.parallel.chunk,
                            bucket_mb=cfg.parallel.bucket_mb, scaling=args.scaling,
                            clip=cfg.optim.clip > 0)
        workers, measured = _workers(args), None
    plans = [plan_workers(inputs, n) for n in workers]
    if args.json:
        print(json.dumps(plans_to_json(inputs, plans, measured), indent=2))
    else:
        import sys

        from rich.console import Console

        # a pipe or a file gets the whole table, not 80 columns of wrapped cells
        plan_table(Console(width=None if sys.stdout.isatty() else 160), inputs, plans, measured)
    if args.plot:
        from rnnscope.report.plan_plots import write_plan_plots

        for path in write_plan_plots(inputs, plans, args.plot):
            log.info("wrote %s", path)
    if args.html:
        from rnnscope.report.pages import plan_page

        log.info("wrote %s", plan_page(inputs, plans).write(args.html))
    return 0
