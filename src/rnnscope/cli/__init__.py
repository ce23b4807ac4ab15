"""`rnnscope <command>`: each subcommand is a small module exposing `register` and `run`.

A subcommand module defines

    def register(subparsers) -> argparse.ArgumentParser   # adds its parser
    def run(args: argparse.Namespace) -> int              # does the work, returns the exit status

and keeps heavy imports (torch) inside `run`, so that `rnnscope --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rnnscope import __version__
from rnnscope.errors import UserError

# name -> module; a plain dict registry (a miss lists what exists, argparse does that for us)
COMMANDS: dict[str, str] = {
    "train": "rnnscope.cli.train",
    "predict": "rnnscope.cli.predict",
    "evaluate": "rnnscope.cli.evaluate",
    "explain": "rnnscope.cli.explain",
    "diagnose": "rnnscope.cli.diagnose",
    "compare": "rnnscope.cli.compare",
    "plan": "rnnscope.cli.plan",
    "lab": "rnnscope.cli.lab",
    "report": "rnnscope.cli.report",
    "env": "rnnscope.cli.env",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="rnnscope",
        description="Train recurrent networks and see what their training does, "
        "inside the network and on the wire.",
    )
    parser.add_argument("--version", action="version", version=f"rnnscope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = module.register(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rnnscope` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
    )
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"rnnscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnscope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
