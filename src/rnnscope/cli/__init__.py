"""`rnnscope <command>`: each subcommand is a small module exposing `register` and `run`.

A subcommand module defines

    def register(subparsers) -> argparse.ArgumentParser   # adds its parser
    def run(args: argparse.Namespace) -> int              # does the work, returns the exit status

and keeps heavy imports (torch) inside `run`, so that `rnnscope --help` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import logging
import os
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


def unknown_command(argv: list[str]) -> str | None:
    """The error for a mistyped command name, with the closest command; None when it is known."""
    for token in argv:
        if token in ("-v", "--verbose"):
            continue
        if token.startswith("-") or token in COMMANDS:  # --help, --version: argparse's own
            return None
        match = difflib.get_close_matches(token, COMMANDS, n=1, cutoff=0.5)
        hint = f"did you mean {match[0]}? " if match else ""
        return f"unknown command {token!r}; {hint}(commands: {', '.join(COMMANDS)})"
    return None


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: the path, what went wrong, what to do."""
    reason = exc.strerror or str(exc)
    fix = OS_FIXES.get(exc.errno, "check the path and try again")
    if exc.filename is None:  # a failed write() names no file
        return f"a write or read failed: {reason}; {fix}"
    path = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return f"cannot use {path}: {reason}; {fix}"


# errno -> what the user can do about it
OS_FIXES = {
    errno.EACCES: "check its permissions, or choose a path you can write to (e.g. --train.run_dir)",
    errno.EPERM: "check its permissions, or choose a path you can write to (e.g. --train.run_dir)",
    errno.EROFS: "the file system is read-only: choose a writable place (e.g. --train.run_dir /tmp/run)",
    errno.ENOSPC: "the disk is full: free some space or write elsewhere (e.g. --train.run_dir)",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.ENOENT: "check that the path and the folder it is in exist",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ELOOP: "it is a loop of symbolic links: give the real path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) or open fewer",
}


def _quiet_broken_pipe() -> int:
    """stdout's reader went away (`| head`): point stdout at /dev/null so the interpreter's last
    flush has nowhere to fail, and end with status 1, as Python's documentation and rich do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rnnscope` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    mistyped = unknown_command(argv)
    if mistyped:
        print(f"rnnscope: error: {mistyped}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
    )
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, where it can be caught, not at exit
        return status
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except UserError as exc:
        print(f"rnnscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the user named: not found, not allowed, disk full
        logging.debug("the operating system's error", exc_info=True)  # the traceback, with -v
        print(f"rnnscope {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnscope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
