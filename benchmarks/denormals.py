"""Training steps with subnormal floats flushed to zero (the default) against kept (the baseline).

Over a long sequence the error terms shrink at every step (σ'(z) ≤ 0.25 for the sigmoid) and
fall below float32's smallest normal number (1.2e-38); a CPU computes such subnormal numbers
up to ~100× slower. `--train.flush_denormal` (on by default) flushes them to zero; this prints
the step time of `rnnscope.train.loop.train` with it off and on, side by side, and the ratio.

    python benchmarks/denormals.py            # sigmoid and tanh, T = 50, 100, 200; 2 layers
    python benchmarks/denormals.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from rnnscope.calibrate.looptime import loop_step_seconds
from rnnscope.train.config import load_config

CASES = [(activation, T) for activation in ("sigmoid", "tanh") for T in (50, 100, 200)]


def measure(activation: str, seq_len: int, batch: int, layers: int, hidden: int,
            repeats: int) -> dict:
    """Mean step seconds of the training loop with flushing off and on (alternating, twice)."""
    seconds = {False: [], True: []}
    for _ in range(2):  # alternate, so a burst of load hits both alike
        for flush in (False, True):
            cfg = load_config(None, ["--model.activation", activation, "--data.seq_len",
                                     str(seq_len), "--train.flush_denormal", str(flush).lower()])
            seconds[flush].append(loop_step_seconds(cfg, batch, layers, hidden, repeats))
    kept, flushed = min(seconds[False]), min(seconds[True])
    return {"activation": activation, "T": seq_len, "B": batch, "layers": layers, "H": hidden,
            "kept_s": kept, "flushed_s": flushed, "speedup": kept / flushed}


def main() -> int:
    """Measure every case; print the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="sequences per batch (default 64)")
    parser.add_argument("--layers", type=int, default=2, help="layers (default 2)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (default 128)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    rows = [measure(a, T, args.batch, args.layers, args.hidden, args.repeats) for a, T in CASES]
    table = Table(title=f"training step, B={args.batch}, {args.layers} layers, H={args.hidden}, "
                        "1 thread: subnormals kept (baseline) vs flushed")
    for name in ("activation", "T", "kept ms", "flushed ms", "kept / flushed"):
        table.add_column(name, justify="left" if name == "activation" else "right")
    for r in rows:
        table.add_row(r["activation"], str(r["T"]), f"{r['kept_s'] * 1e3:.1f}",
                      f"{r['flushed_s'] * 1e3:.1f}", f"{r['speedup']:.2f}×")
    Console(width=120).print(table)
    text = json.dumps({"results": rows})
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
