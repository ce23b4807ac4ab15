"""How fast and how lean the user's series is loaded, trained on and forecast.

    python benchmarks/data_loading.py                 # 10 M rows, 4 columns (a time index + 3 values)
    python benchmarks/data_loading.py --rows 1000000 --json out.json
    python benchmarks/data_loading.py --phases "bare read" load --repeat 5   # medians, on a busy machine

Writes a CSV (pyarrow's writer), then runs each phase in a fresh Python process and reads its
peak resident memory (VmHWM) and the memory right after imports (the baseline):

    bare read    pyarrow.csv.read_csv alone: the floor for reading
    load         rnnscope's build_dataset: read, check, time index, gaps, normalize, window (views)
    train        rnnscope train for a few steps on the file (--train.max_steps)
    predict      rnnscope predict over every window of the file, written to a CSV

With --repeat N the phases run N times, interleaved (bare read, load, bare read, load, …), and
the table shows each phase's median, and the load's median ratio over the N side-by-side pairs:
on a machine shared with other work the ratio of neighbouring runs is steadier than either time.

"CPU seconds" is the process's CPU time over the phase, all its threads together: the work done,
apart from the waiting that a busy machine adds to the seconds.

"loaded data" is the numeric data at 8 bytes a cell (rows × columns × 8), what the file holds
once read; each phase's extra memory (peak − baseline) is shown as a multiple of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = {
    "bare read": """
import pyarrow.csv as c
c0 = time.process_time(); t0 = time.perf_counter(); table = c.read_csv(PATH); seconds = time.perf_counter() - t0
""",
    "load": """
from rnnscope.data import build_dataset
from rnnscope.train.config import load_config
cfg = load_config(None, ["--data.csv", PATH, "--data.seq_len", "16"])
c0 = time.process_time(); t0 = time.perf_counter(); ds = build_dataset(cfg.data, 0); seconds = time.perf_counter() - t0
assert ds.x_train.shape[0] > 0
""",
    "train": """
from rnnscope.cli import main
c0 = time.process_time(); t0 = time.perf_counter()
assert main(["train", "--data.csv", PATH, "--data.seq_len", "16", "--model.hidden", "8",
             "--train.max_steps", "20", "--train.log_every", "1000", "--train.progress", "false",
             "--data.predict", "last_step", "--train.run_dir", RUN]) == 0
seconds = time.perf_counter() - t0
""",
    "predict": """
from rnnscope.cli import main
c0 = time.process_time(); t0 = time.perf_counter()
assert main(["predict", RUN, "-o", OUT]) == 0
seconds = time.perf_counter() - t0
""",
}

PROLOGUE = """
import json, re, sys, time
def hwm():
    text = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+)", text).group(1)) * 1024
import numpy, torch, pyarrow.csv, pyarrow.compute, rnnscope.data.series, rnnscope.train.loop  # imports first
torch.set_num_threads(1)
baseline = hwm()
PATH, RUN, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
"""

EPILOGUE = """
print(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - c0, "baseline": baseline, "peak": hwm()}))
"""


def write_csv(path: Path, rows: int) -> None:
    """rows × (t, a, b, c): an integer time index and three float columns."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    t = np.arange(rows, dtype=np.int64)
    a = np.sin(t / 50.0) + 0.1 * rng.standard_normal(rows)
    b = np.cos(t / 17.0) + 0.1 * rng.standard_normal(rows)
    c = 0.001 * t + rng.standard_normal(rows)
    pacsv.write_csv(pa.table({"t": t, "a": a.round(5), "b": b.round(5), "c": c.round(5)}), path)


def run_phase(name: str, path: Path, run: Path, out: Path) -> dict:
    """One phase in a fresh interpreter: its seconds and memory."""
    code = PROLOGUE + PHASES[name] + EPILOGUE
    proc = subprocess.run([sys.executable, "-c", code, str(path), str(run), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=list(PHASES))
    parser.add_argument("--repeat", type=int, default=1, help="run the phases N times, interleaved; report medians")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, run, out = Path(tmp) / "series.csv", Path(tmp) / "run", Path(tmp) / "forecast.csv"
        t0 = time.perf_counter()
        write_csv(path, args.rows)
        print(f"wrote {args.rows:,} rows × 4 columns ({path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.1f} s")
        data_bytes = args.rows * 4 * 8
        runs = {name: [] for name in args.phases}
        for _ in range(args.repeat):  # interleaved: neighbouring runs see the same machine
            for name in args.phases:
                runs[name].append(run_phase(name, path, run, out))
        results = {}
        for name, rs in runs.items():
            r = dict(rs[0]) | {k: statistics.median(x[k] for x in rs) for k in ("seconds", "cpu_seconds", "peak", "baseline")}
            extra = r["peak"] - r["baseline"]
            r |= {"extra_bytes": extra, "x_loaded_data": extra / data_bytes, "runs": [x["seconds"] for x in rs]}
            results[name] = r
        bare = results.get("bare read", {}).get("seconds")
        if bare and "load" in results:  # the median of the side-by-side ratios
            pairs = [a / b for a, b in zip(results["load"]["runs"], results["bare read"]["runs"])]
            results["load"] |= {"x_bare_read": statistics.median(pairs), "x_bare_read_runs": pairs}
        print(f"\nloaded data: {data_bytes / 2**20:.0f} MiB (rows × 4 columns × 8 bytes); "
              f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}"
              + (f"; medians of {args.repeat} interleaved runs" if args.repeat > 1 else ""))
        print("| phase | seconds | × bare read | CPU seconds | peak − baseline MiB | × loaded data |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, r in results.items():
            ratio = f"{r['x_bare_read']:.2f}×" if "x_bare_read" in r else "—"
            print(f"| {name} | {r['seconds']:.2f} | {ratio} | {r['cpu_seconds']:.2f} | {r['extra_bytes'] / 2**20:.0f} | "
                  f"{r['x_loaded_data']:.2f}× |")
        if args.repeat > 1 and "x_bare_read_runs" in results.get("load", {}):
            print("load ÷ bare read, run by run: " + ", ".join(f"{x:.2f}" for x in results["load"]["x_bare_read_runs"]))
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": args.rows, "data_bytes": data_bytes,
                                                   "phases": results}, indent=2))


if __name__ == "__main__":
    main()
