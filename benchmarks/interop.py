"""Benchmark: torch.compile of a model with rnnscope.nn.RNN (LSTM, GRU): compile time, eager vs compiled step.

The model is the training loop's (a 2-layer rnnscope.nn.RNN, or LSTM / GRU with --cell, H = 32
and B = 16 unless --hidden / --batch say otherwise, and a linear readout of the last step), one
step is forward + backward of an MSE, float32 on CPU. Each row runs in a fresh process with an
empty inductor cache (what a new user's first run pays; --warm keeps one cache):
- "opaque op": the engine as it ships, one custom operator for the whole stack of layers
  (nn/stack.py, engine/op.py): one call forward, one backward;
- "op per layer": one operator per layer and direction (what shipped before the stack operator;
  nn/stack.py's stacked patched to return False);
- "traced through": the engine as it was before, the compiler tracing its Python time loop
  (the engine module's opaque patched to return False), at short lengths only: its cost grows with T;
- "linear only": the readout alone, the compiler's fixed cost on this machine;
- "torch.nn": the same model with torch.nn.RNN (LSTM, GRU), the reference: torch.compile does not
  trace torch's RNN modules (torch._dynamo.config.allow_rnn is off), it runs them eagerly
  between compiled regions, so this row is what a drop-in should match.
Prints a table and JSON: compile seconds (the first compiled step), then the median eager and
compiled step times, timed in alternating rounds: the fastest round of each (on a shared machine
noise only ever adds time) and the median (compiled / eager: below 1 the compiled is faster).

    python benchmarks/interop.py                 # inductor, T = 50 and 1000
    python benchmarks/interop.py --backend aot_eager --quick
    python benchmarks/interop.py --cell lstm --backend aot_eager --quick
    python benchmarks/interop.py --warm --variants "opaque op" --lengths 1 10 50 200   # the gap against T
    python benchmarks/interop.py --warm --variants "opaque op" --lengths 200 1000 --forward-only --backend eager
    python benchmarks/interop.py --warm --variants "linear only" --lengths 1 --evict-mb 16   # compile's own cost, caches cold
    python benchmarks/interop.py --warm --variants torch.nn "opaque op" --lengths 100 --hidden 128 --batch 64   # a model's size
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

ROWS = [("linear only", 50), ("torch.nn", 50), ("opaque op", 50), ("op per layer", 50), ("torch.nn", 1000),
        ("opaque op", 1000), ("op per layer", 1000), ("traced through", 50)]
B, I, H = 16, 4, 32  # the defaults; --batch and --hidden change B and H


CELLS = {"rnn": ("RNN", "bptt"), "lstm": ("LSTM", "lstm"), "gru": ("GRU", "gru")}  # module, engine file


def measure(variant: str, T: int, backend: str, repeats: int, cell: str = "rnn",
            forward_only: bool = False, evict_mb: float = 0.0, hidden: int = H, batch: int = B) -> dict:
    """One row, in this process: compile time and step times (eager, compiled); with
    forward_only a step is the forward under torch.no_grad (inference); with evict_mb, a buffer
    of that many MB is written before every timed step (outside the timing), pushing what the
    step touches out of the caches, as a model's own large tensors do."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from engine import interleaved_times

    import importlib

    import rnnscope.nn

    module, engine_file = CELLS[cell]
    if variant == "traced through":  # the engine before it became an operator
        importlib.import_module(f"rnnscope.engine.{engine_file}").opaque = lambda: False
        importlib.import_module("rnnscope.nn.rnn").stacked = lambda module: False
        importlib.import_module("rnnscope.nn.gated").stacked = lambda module: False
    if variant == "op per layer":  # each layer and direction its own operator call
        importlib.import_module("rnnscope.nn.rnn").stacked = lambda module: False
        importlib.import_module("rnnscope.nn.gated").stacked = lambda module: False
    torch.manual_seed(0)
    torch.set_num_threads(1)
    modules = torch.nn if variant == "torch.nn" else rnnscope.nn
    rnn = getattr(modules, module)(I, hidden, 2, batch_first=True) if variant != "linear only" else None
    readout = torch.nn.Linear(hidden if rnn is not None else I, 1)

    def model(x):
        if rnn is None:
            return readout(x[:, -1])
        out, _ = rnn(x)
        return readout(out[:, -1])

    compiled = torch.compile(model, backend=backend)
    x, y = torch.randn(batch, T, I), torch.randn(batch, 1)
    params = list(readout.parameters()) + (list(rnn.parameters()) if rnn is not None else [])

    def step(fn):
        def run() -> None:
            for p in params:
                p.grad = None
            torch.nn.functional.mse_loss(fn(x), y).backward()

        def infer() -> None:
            with torch.no_grad():
                fn(x)
        return infer if forward_only else run

    t0 = time.perf_counter()
    step(compiled)()
    compile_s = time.perf_counter() - t0
    junk = torch.empty(int(evict_mb * 2**20) // 4)
    times = interleaved_times({"eager": step(model), "compiled": step(compiled)}, repeats, 0.0,
                              before=(lambda: junk.fill_(1.0)) if evict_mb > 0 else None)
    eager, comp = min(times["eager"]), min(times["compiled"])
    median_eager, median_comp = statistics.median(times["eager"]), statistics.median(times["compiled"])
    return {"variant": variant, "cell": cell, "T": T, "H": hidden, "B": batch, "backend": backend,
            "forward_only": forward_only,
            "evict_mb": evict_mb, "compile_seconds": compile_s,
            "eager_step_seconds": eager, "compiled_step_seconds": comp, "compiled_over_eager": comp / eager,
            "median_eager_step_seconds": median_eager, "median_compiled_step_seconds": median_comp,
            "median_compiled_over_eager": median_comp / median_eager}


def run_row(variant: str, T: int, backend: str, repeats: int, cache: str | None, timeout: float,
            cell: str = "rnn", forward_only: bool = False, evict_mb: float = 0.0, hidden: int = H,
            batch: int = B) -> dict:
    """One row in a fresh process (a cold inductor cache unless `cache` names one)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as fresh:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache or fresh
        cmd = [sys.executable, __file__, "--one", variant, str(T), "--backend", backend,
               "--repeats", str(repeats), "--cell", cell, "--evict-mb", str(evict_mb),
               "--hidden", str(hidden), "--batch", str(batch)] + (
                   ["--forward-only"] if forward_only else [])
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"variant": variant, "T": T, "backend": backend, "error": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        return {"variant": variant, "T": T, "backend": backend, "error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict], cell: str = "rnn", hidden: int = H, batch: int = B) -> None:
    """The rows as a rich table."""
    from rich.console import Console
    from rich.table import Table

    what = "forward under no_grad" if rows and rows[0].get("forward_only") else "step"
    if rows and rows[0].get("evict_mb"):
        what += f", {rows[0]['evict_mb']:g} MB written before each"
    table = Table(title=f"torch.compile of {CELLS[cell][0]}(I={I}, H={hidden}, 2 layers) + Linear, B = {batch}, CPU fp32, 1 thread "
                        f"({what} ms: the fastest of the interleaved rounds)")
    for col in ("engine", "T", "backend", "compile s", "eager step ms", "compiled step ms", "compiled / eager",
                "median compiled / eager"):
        table.add_column(col, justify="right")
    for r in rows:
        if "error" in r:
            table.add_row(r["variant"], str(r["T"]), r["backend"], r["error"], "", "", "", "")
            continue
        table.add_row(r["variant"], str(r["T"]), r["backend"], f"{r['compile_seconds']:.1f}",
                      f"{r['eager_step_seconds'] * 1e3:.2f}", f"{r['compiled_step_seconds'] * 1e3:.2f}",
                      f"{r['compiled_over_eager']:.2f}", f"{r['median_compiled_over_eager']:.2f}")
    Console(width=140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--warm", action="store_true", help="share one inductor cache between the rows")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per row before giving up")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON to PATH")
    parser.add_argument("--variants", nargs="+", default=sorted({v for v, _ in ROWS}),
                        help="which rows to run (default: all)")
    parser.add_argument("--cell", choices=sorted(CELLS), default="rnn",
                        help="the recurrent module (default rnn)")
    parser.add_argument("--lengths", type=int, nargs="+", metavar="T",
                        help="run every chosen variant at these sequence lengths instead of the "
                             "default rows (the compiled step's extra time against T)")
    parser.add_argument("--forward-only", action="store_true",
                        help="time the forward under torch.no_grad (inference) instead of a "
                             "training step")
    parser.add_argument("--evict-mb", type=float, default=0.0, metavar="MB",
                        help="write a buffer of MB megabytes before every timed step, outside the "
                             "timing: what the step touches starts out of the caches, as after a "
                             "model's own large tensors (torch.compile's wrappers are sensitive to it)")
    parser.add_argument("--hidden", type=int, default=H, help=f"hidden units H (default {H})")
    parser.add_argument("--batch", type=int, default=B, help=f"batch size B (default {B})")
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.backend, args.repeats, args.cell,
                                 args.forward_only, args.evict_mb, args.hidden, args.batch)))
        return
    repeats = 20 if args.quick else 100
    chosen = ([(v, T) for v in args.variants for T in args.lengths] if args.lengths
              else [(v, T) for v, T in ROWS if v in args.variants])
    with tempfile.TemporaryDirectory() as shared:
        rows = [run_row(v, T, args.backend, repeats, shared if args.warm else None, args.timeout, args.cell,
                        args.forward_only, args.evict_mb, args.hidden, args.batch)
                for v, T in chosen]
    print_table(rows, args.cell, args.hidden, args.batch)
    text = json.dumps({"cache": "warm" if args.warm else "cold", "rows": rows}, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
