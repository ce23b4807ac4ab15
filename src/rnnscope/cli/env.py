"""`rnnscope env`: what a bug report needs (versions, threads, devices, distributed backends)."""

from __future__ import annotations

import argparse
import json
import platform
import sys


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `env` parser."""
    parser = subparsers.add_parser("env", help="print versions, threads, devices and backends")
    parser.add_argument("--json", action="store_true", help="print the same facts as JSON")
    return parser


def collect() -> dict[str, object]:
    """The facts a bug report needs, as a flat dict."""
    import numpy
    import torch
    import torch.distributed as dist

    from rnnscope import __version__

    cuda = torch.cuda.is_available()
    return {
        "rnnscope": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "torch threads (intra-op)": torch.get_num_threads(),
        "torch threads (inter-op)": torch.get_num_interop_threads(),
        "cpu capability": torch.backends.cpu.get_cpu_capability(),
        "cuda available": cuda,
        "cuda version": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "distributed available": dist.is_available(),
        "gloo": dist.is_available() and dist.is_gloo_available(),
        "nccl": dist.is_available() and dist.is_nccl_available(),
        "mpi": dist.is_available() and dist.is_mpi_available(),
    }


def run(args: argparse.Namespace) -> int:
    """Print the environment as a table, or JSON with --json."""
    facts = collect()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rnnscope env", show_header=False)
    for key, value in facts.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    Console().print(table)
    return 0
