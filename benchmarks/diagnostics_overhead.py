"""Benchmark: what recording diagnostics during training costs (`--diagnostics.every N`).

Trains the same run with diagnostics off (the baseline) and with a record every N optimizer
steps, in this process, and reports the median wall time of each and the overhead relative to
the baseline. Each record is one extra traced forward and backward pass on up to 32 sequences of
the batch, plus saturation, dead units, gradient flow and the memory horizon (a chain of
Jacobians), written as one line of diagnostics.jsonl.

    python benchmarks/diagnostics_overhead.py            # the default run and the adding problem
    python benchmarks/diagnostics_overhead.py --quick    # fewer repeats and steps
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rnnscope.train import load_config, train

DEFAULT_EVERY = 50  # the interval recommended when diagnostics are switched on
INTERVALS = (DEFAULT_EVERY, 10, 1)
RUNS = {  # name -> config overrides (on top of `rnnscope train`'s defaults)
    "default (sine, T=40)": [],
    "adding, T=200, many-to-one": ["--data.task", "adding", "--data.seq_len", "200", "--data.samples", "512"],
}


def time_run(overrides: list[str], every: int, steps: int) -> tuple[float, int]:
    """Seconds for one training run of `steps` steps; and how many records it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, overrides + [
            "--train.max_steps", str(steps), "--train.epochs", "1000", "--train.progress", "false",
            "--train.checkpoint_every", str(10 * steps), "--train.run_dir", str(Path(tmp) / "run"),
            "--diagnostics.every", str(every)])
        start = time.perf_counter()
        train(cfg)
        seconds = time.perf_counter() - start
        path = Path(tmp) / "run" / "diagnostics.jsonl"
        records = len(path.read_text().splitlines()) if path.exists() else 0
    return seconds, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats of 100 steps instead of 5 of 200")
    args = parser.parse_args()
    repeats, steps = (3, 100) if args.quick else (5, 200)
    rows = []
    for name, overrides in RUNS.items():
        time_run(overrides, 0, 10)  # warm-up: imports, allocator, data generation code paths
        for every in (0,) + INTERVALS:
            times, records = [], 0
            for _ in range(repeats):
                seconds, records = time_run(overrides, every, steps)
                times.append(seconds)
            rows.append({"run": name, "every": every, "steps": steps, "records": records,
                         "median_s": statistics.median(times), "times_s": times})
        base = next(r["median_s"] for r in rows if r["run"] == name and r["every"] == 0)
        for row in rows:
            if row["run"] == name:
                row["ratio_to_off"] = row["median_s"] / base
                row["overhead_pct"] = 100 * (row["ratio_to_off"] - 1)

    table = Table(title=f"Diagnostics overhead ({steps} training steps, median of {repeats})")
    for column in ("run", "--diagnostics.every", "records", "median s", "× off (baseline)", "overhead"):
        table.add_column(column, justify="right")
    for row in rows:
        every = "off (baseline)" if row["every"] == 0 else str(row["every"])
        if row["every"] == DEFAULT_EVERY:
            every += " (recommended)"
        table.add_row(row["run"], every, str(row["records"]), f"{row['median_s']:.3f}",
                      f"{row['ratio_to_off']:.3f}", f"{row['overhead_pct']:+.1f}%")
    Console().print(table)
    print(json.dumps({"benchmark": "diagnostics_overhead", "default_every": DEFAULT_EVERY, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
