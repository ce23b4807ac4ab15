"""Benchmark: what recording diagnostics during training costs (`--diagnostics.every N`).

Trains the same run with diagnostics off (the baseline) and with a record every N optimizer
steps, in this process, with the settings interleaved (off, 50, 10, 1, off, 50, …) so that a
change in the machine's load hits all of them alike. Reports the median CPU time of this process
(training runs on one thread, so on a shared machine CPU time is what the run itself cost) and the
median wall time, each with the overhead relative to the baseline. Each record is one extra traced forward and backward pass on up to 32 sequences of
the batch, plus saturation, dead units, gradient flow and the memory horizon (a chain of
Jacobians), written as one line of diagnostics.jsonl. `--train.tensorboard true` is measured
too, alone and with the recommended diagnostics (scalars per metrics line, histograms per record;
the writer's import, once per process, is paid in the warm-up).

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


def time_run(overrides: list[str], every: int, tensorboard: bool = False, *, steps: int) -> tuple[float, float, int]:
    """CPU and wall seconds of one training run of `steps` steps, and how many records it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, overrides + [
            "--train.max_steps", str(steps), "--train.epochs", "1000", "--train.progress", "false",
            "--train.checkpoint_every", str(10 * steps), "--train.run_dir", str(Path(tmp) / "run"),
            "--diagnostics.every", str(every), "--train.tensorboard", str(tensorboard).lower()])
        cpu, wall = time.process_time(), time.perf_counter()
        train(cfg)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        path = Path(tmp) / "run" / "diagnostics.jsonl"
        records = len(path.read_text().splitlines()) if path.exists() else 0
    return cpu, wall, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats of 100 steps instead of 5 of 200")
    args = parser.parse_args()
    repeats, steps = (3, 100) if args.quick else (5, 200)
    rows = []
    for name, overrides in RUNS.items():
        time_run(overrides, 0, True, steps=10)  # warm-up: imports, allocator, data generation
        settings = [(0, False)] + [(every, False) for every in INTERVALS] + [(0, True), (DEFAULT_EVERY, True)]
        cpu: dict[tuple, list[float]] = {key: [] for key in settings}
        wall: dict[tuple, list[float]] = {key: [] for key in settings}
        records: dict[tuple, int] = {}
        for _ in range(repeats):
            for key in settings:  # interleaved: load changes hit every setting alike
                c, w, records[key] = time_run(overrides, *key, steps=steps)
                cpu[key].append(c)
                wall[key].append(w)
        base_cpu, base_wall = statistics.median(cpu[(0, False)]), statistics.median(wall[(0, False)])
        for key in settings:
            every, tensorboard = key
            med_cpu, med_wall = statistics.median(cpu[key]), statistics.median(wall[key])
            rows.append({"run": name, "every": every, "tensorboard": tensorboard, "steps": steps,
                         "records": records[key],
                         "cpu_s": med_cpu, "wall_s": med_wall, "cpu_times_s": cpu[key], "wall_times_s": wall[key],
                         "cpu_ratio_to_off": med_cpu / base_cpu, "wall_ratio_to_off": med_wall / base_wall,
                         "cpu_overhead_pct": 100 * (med_cpu / base_cpu - 1),
                         "wall_overhead_pct": 100 * (med_wall / base_wall - 1)})

    table = Table(title=f"Diagnostics overhead ({steps} training steps, median of {repeats}, interleaved)")
    for column in ("run", "--diagnostics.every", "records", "CPU s", "CPU × off", "wall s", "wall × off"):
        table.add_column(column, justify="right")
    for row in rows:
        every = "off (baseline)" if row["every"] == 0 else str(row["every"])
        if row["every"] == 0 and row["tensorboard"]:
            every = "off"
        if row["every"] == DEFAULT_EVERY:
            every += " (recommended)"
        if row["tensorboard"]:
            every += " + tensorboard"
        table.add_row(row["run"], every, str(row["records"]), f"{row['cpu_s']:.3f}",
                      f"{row['cpu_ratio_to_off']:.3f}", f"{row['wall_s']:.3f}", f"{row['wall_ratio_to_off']:.3f}")
    Console().print(table)
    print(json.dumps({"benchmark": "diagnostics_overhead", "default_every": DEFAULT_EVERY, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
