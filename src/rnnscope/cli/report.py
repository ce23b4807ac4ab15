"""`rnnscope report`: one self-contained HTML page for a run, or its timeline as a trace.

    rnnscope report runs/2026-01-01_120000                 # writes RUN_DIR/report.html
    rnnscope report RUN_DIR -o /tmp/run.html
    rnnscope report --trace RUN_DIR                        # writes RUN_DIR/trace.json

The page needs nothing but a browser (no network): the run's config, loss curves, diagnostics
and, for parallel runs, traffic, the ledger beside the formula and the communication timeline.
The trace (Chrome trace event format) opens in Perfetto or chrome://tracing: one process per
rank, each communication call and compute phase a slice with its tag, bytes, algorithm, busbw.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rnnscope.errors import UserError

log = logging.getLogger(__name__)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `report` parser: RUN_DIR, -o, --trace."""
    parser = subparsers.add_parser(
        "report", help="write one HTML page with everything a run knows (or its trace with --trace)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of `rnnscope train`")
    parser.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="where to write (default: RUN_DIR/report.html, or RUN_DIR/trace.json "
                        "with --trace)")
    parser.add_argument("--trace", action="store_true",
                        help="write the communication and compute timeline as a Chrome-trace / "
                        "Perfetto JSON instead of the page")
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the page (or the trace) and say where it is."""
    run_dir = Path(args.run_dir)
    if args.trace:
        from rnnscope.report.timeline import read_phases, write_trace
        from rnnscope.parallel.ledger import read_jsonl

        traffic = run_dir / "traffic.jsonl"
        if not traffic.exists():
            raise UserError(f"{traffic} does not exist: only parallel runs (--parallel.strategy "
                            "data, pipeline or hidden_split) have a communication timeline")
        rows = read_jsonl(traffic)
        if not any(row.get("spans") for row in rows):
            raise UserError(f"{traffic} has no per-call timestamps (spans): it was written by an "
                            "older rnnscope; train the run again to get a trace")
        path = write_trace(rows, read_phases(run_dir), args.output or run_dir / "trace.json")
        print(f"wrote {path}: open it in Perfetto (ui.perfetto.dev, Open trace file) or chrome://tracing")
        return 0
    from rnnscope.report.run_page import build_run_page

    page = build_run_page(run_dir)
    path = page.write(args.output or run_dir / "report.html")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): open it in any browser")
    return 0
