"""Benchmark: one training step of rnnscope.nn.RNN against torch.nn.RNN and an unrolled RNNCell loop.

A step is forward + backward of a many-to-one MSE with a linear readout, float32, tanh, on CPU
(or, with --device cuda, on a GPU against cuDNN's torch.nn.RNN). --cell lstm or gru compares
rnnscope.nn.LSTM / GRU with torch.nn.LSTM (oneDNN's fused kernel on CPU) / torch.nn.GRU and an
LSTMCell / GRUCell loop instead.
Prints a table and JSON: median seconds per step of each, ratios (torch.nn.RNN / rnnscope: above
1 means rnnscope is faster), achieved GFLOP/s (training ≈ 6·T·B·H·(I+H) FLOPs per layer) and the
machine's fp32 matmul throughput measured in the same run, plus the cost of the Trace feature
when it is off (the same step on a build of the engine with tracing compiled out).

    python benchmarks/engine.py            # the four configurations of the issue
    python benchmarks/engine.py --quick    # fewer repeats
    python benchmarks/engine.py --device cuda   # on a GPU (each step ends in a synchronize), then
                                                # the fused Triton time loops (benchmarks/fused_cuda.py)
    python benchmarks/engine.py --cell gru      # the gated cells: lstm or gru
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable

import torch
from rich.console import Console
from rich.table import Table

import rnnscope.nn
from rnnscope.engine import ElmanBPTT, elman_layer

CONFIGS = [(64, 100, 8, 128), (32, 1000, 1, 32), (256, 50, 32, 512), (1, 200, 1, 16)]  # (B, T, I, H)


# cell -> (rnnscope's module, torch's module, torch's one-step cell)
CELLS = {
    "rnn": (rnnscope.nn.RNN, torch.nn.RNN, torch.nn.RNNCell),
    "lstm": (rnnscope.nn.LSTM, torch.nn.LSTM, torch.nn.LSTMCell),
    "gru": (rnnscope.nn.GRU, torch.nn.GRU, torch.nn.GRUCell),
}
GATE_COUNT = {"rnn": 1, "lstm": 4, "gru": 3}


class CellLoop(torch.nn.Module):
    """The unrolled baseline: torch.nn.RNNCell (or LSTMCell, GRUCell) called once per time step under autograd."""

    def __init__(self, input_size: int, hidden_size: int, cell: str = "rnn") -> None:
        super().__init__()
        self.cell = CELLS[cell][2](input_size, hidden_size)
        self.lstm = cell == "lstm"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.new_zeros(x.shape[1], self.cell.hidden_size)
        state = (h, h) if self.lstm else h
        for x_t in x:  # x (T, B, I)
            state = self.cell(x_t, state)
        h = state[0] if self.lstm else state
        return h, h.unsqueeze(0)


def make_step(rnn: torch.nn.Module, readout: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor):
    """A closure running one forward + backward of a many-to-one MSE."""
    params = list(rnn.parameters()) + list(readout.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        _, h_n = rnn(x)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: (h_n, c_n)
        loss = torch.nn.functional.mse_loss(readout(h_n[-1]), y)
        loss.backward()
        if x.is_cuda:  # GPU work is asynchronous: a step ends when the device is done
            torch.cuda.synchronize()

    return step


def interleaved_times(fns: dict, repeats: int, min_seconds: float,
                      before: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds of every call of each function, timed in alternating rounds.

    Every round calls each function once, so a burst of load on this shared machine slows all
    of them alike instead of one of them; the ratios stay meaningful. The order flips every
    round, so that no function always runs right after the same other one. `before`, if given,
    runs before every call, outside the timing.
    """
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or (time.perf_counter() - start < min_seconds and rounds < 4 * repeats):
        order = list(fns.items())
        for name, fn in order if rounds % 2 == 0 else reversed(order):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return times


def matmul_gflops(n: int = 1024, repeats: int = 20, device: str = "cpu") -> tuple[float, float]:
    """The device's fp32 matmul throughput (GFLOP/s) on n×n×n products: (best, median)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        if a.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    flops = 2 * n**3
    return flops / min(times) / 1e9, flops / statistics.median(times) / 1e9


def trace_off_overhead(B: int, T: int, I: int, H: int, rounds: int = 150,
                       device: str = "cpu") -> dict:
    """What the Trace feature costs when no Trace is active.

    A: the engine as shipped (rnnscope.engine.elman_layer: looks for an active Trace, then runs
    with record=None). B: ElmanBPTT.apply called directly with record=None, skipping the lookup.
    The per-step `record is None` checks run in both (two pointer compares per step). A and B
    alternate round by round so that machine noise hits both alike, and the fastest call of each
    is compared: noise only ever adds time, and the two differ by a few pointer compares.
    """
    torch.manual_seed(0)
    x, h0 = torch.randn(T, B, I, device=device), torch.zeros(B, H, device=device)
    rnn = rnnscope.nn.RNN(I, H).to(device)
    W_ih, W_hh, b_ih, b_hh = (p.detach().requires_grad_(True) for p in rnn.all_weights[0])

    def shipped() -> None:
        out, _ = elman_layer(x, h0, W_ih, W_hh, b_ih, b_hh, "tanh")
        out[-1].sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    def bypassed() -> None:
        out, _ = ElmanBPTT.apply(x, h0, W_ih, W_hh, b_ih, b_hh, "tanh", "sum", None)
        out[-1].sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    times = interleaved_times({"shipped": shipped, "bypassed": bypassed}, rounds, 0.0)
    a, b = min(times["shipped"]), min(times["bypassed"])
    return {"B": B, "T": T, "I": I, "H": H, "trace_off_seconds": a, "no_lookup_seconds": b,
            "overhead_fraction": a / b - 1}


def names(cell: str) -> tuple[str, str]:
    """The table's names of torch's module and of the cell loop, e.g. ("torch.nn.GRU", "GRUCell loop")."""
    module = CELLS[cell][1].__name__
    return f"torch.nn.{module}", f"{module}Cell loop"


def run(repeats: int, min_seconds: float, device: str = "cpu", cell: str = "rnn") -> dict:
    """Measure every configuration; returns the JSON-able results."""
    torch.manual_seed(0)
    peak, typical = matmul_gflops(device=device)
    ours_cls, theirs_cls, _ = CELLS[cell]
    torch_name, loop_name = names(cell)
    rows = []
    for B, T, I, H in CONFIGS:
        x, y = torch.randn(T, B, I, device=device), torch.randn(B, 1, device=device)
        readout = torch.nn.Linear(H, 1).to(device)
        ours = ours_cls(I, H).to(device)
        theirs = theirs_cls(I, H).to(device)
        theirs.load_state_dict(ours.state_dict())
        loop = CellLoop(I, H, cell).to(device)
        times = interleaved_times(
            {
                "rnnscope": make_step(ours, readout, x, y),
                torch_name: make_step(theirs, readout, x, y),
                loop_name: make_step(loop, readout, x, y),
            },
            repeats,
            min_seconds,
        )
        times = {name: statistics.median(ts) for name, ts in times.items()}
        flops = 6 * T * B * GATE_COUNT[cell] * H * (I + H)
        rows.append(
            {
                "B": B, "T": T, "I": I, "H": H,
                "seconds": times,
                "speedup_vs_torch_rnn": times[torch_name] / times["rnnscope"],
                "speedup_vs_cell_loop": times[loop_name] / times["rnnscope"],
                "rnnscope_gflops": flops / times["rnnscope"] / 1e9,
                "fraction_of_matmul_peak": flops / times["rnnscope"] / 1e9 / peak,
            }
        )
        print(f"({B}, {T}, {I}, {H}): {torch_name} / rnnscope = {rows[-1]['speedup_vs_torch_rnn']:.2f}x",
              file=sys.stderr, flush=True)  # progress: a loaded machine can take minutes per row
    peak_after, typical_after = matmul_gflops(device=device)  # the best of before and after: load only lowers it
    typical = max(typical, typical_after)
    if peak_after > peak:
        peak = peak_after
        for r in rows:
            r["fraction_of_matmul_peak"] = r["rnnscope_gflops"] / peak
    for r in rows:
        r["fraction_of_matmul_median"] = r["rnnscope_gflops"] / typical
    speedups = [r["speedup_vs_torch_rnn"] for r in rows]
    overheads = [trace_off_overhead(*cfg, device=device)
                 for cfg in ((1, 200, 1, 16), (64, 100, 8, 128))] if cell == "rnn" else []
    return {
        "cell": cell,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "matmul_gflops": peak,  # the best 1024³ product: the "% of matmul" column's reference
        "matmul_gflops_median": typical,
        "configs": rows,
        "median_speedup_vs_torch_rnn": statistics.median(speedups),
        "min_speedup_vs_torch_rnn": min(speedups),
        "trace_off_overhead": overheads,
    }


def print_table(result: dict) -> None:
    """The results as a rich table."""
    where = (result["device"] if result["device"] != "cpu"
             else f"CPU, {result['threads']} threads")
    torch_name, loop_name = names(result["cell"])
    table = Table(title=f"one training step of {result['cell']}, {where}, fp32, fp32 matmul "
                  f"{result['matmul_gflops']:.1f} GFLOP/s best, {result['matmul_gflops_median']:.1f} median")
    for col in ("B, T, I, H", "rnnscope ms", f"{torch_name} ms", f"{loop_name} ms",
                f"{torch_name} / rnnscope", "cell loop / rnnscope", "GFLOP/s", "% of best matmul",
                "% of median matmul"):
        table.add_column(col, justify="right")
    for r in result["configs"]:
        s = r["seconds"]
        table.add_row(
            f"{r['B']}, {r['T']}, {r['I']}, {r['H']}",
            f"{s['rnnscope'] * 1e3:.2f}", f"{s[torch_name] * 1e3:.2f}", f"{s[loop_name] * 1e3:.2f}",
            f"{r['speedup_vs_torch_rnn']:.2f}x", f"{r['speedup_vs_cell_loop']:.2f}x",
            f"{r['rnnscope_gflops']:.1f}", f"{100 * r['fraction_of_matmul_peak']:.0f}%",
            f"{100 * r['fraction_of_matmul_median']:.0f}%",
        )
    Console(width=160).print(table)
    print(f"median speedup vs {torch_name}: {result['median_speedup_vs_torch_rnn']:.2f}x "
          f"(min {result['min_speedup_vs_torch_rnn']:.2f}x)")
    for o in result["trace_off_overhead"]:
        print(f"Trace feature, no Trace active, (B, T, I, H) = ({o['B']}, {o['T']}, {o['I']}, {o['H']}): "
              f"{100 * o['overhead_fraction']:+.2f}% vs the engine called without the Trace lookup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON to PATH")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to run (cuda: against cuDNN's torch.nn.RNN)")
    parser.add_argument("--cell", choices=tuple(CELLS), default="rnn",
                        help="rnn (Elman), lstm or gru: rnnscope's module against torch's")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benchmarks/engine.py: --device cuda, but torch sees no CUDA device here; "
                         "run it on a GPU machine (tools/gpu_checks.sh runs it with the GPU tests)")
    result = run(repeats=3 if args.quick else 15, min_seconds=0.2 if args.quick else 2.0,
                 device=args.device, cell=args.cell)
    print_table(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    if args.device == "cuda" and args.cell == "rnn":  # the fused Triton time loops (benchmarks/fused_cuda.py)
        import fused_cuda

        fused_cuda.main((["--quick"] if args.quick else [])
                        + (["--json", args.json.removesuffix(".json") + "_fused.json"] if args.json else []))


if __name__ == "__main__":
    main()
