"""Benchmark: the fused Triton time loops (engine/fused_triton.py) on a GPU against cuDNN and the loop.

One training step (forward + backward of a many-to-one MSE, as in benchmarks/engine.py) of
rnnscope.nn.RNN with the fused kernels (RNNSCOPE_FUSED unset: automatic on CUDA), of the same
module on the Python loop (RNNSCOPE_FUSED=0) and of cuDNN's torch.nn.RNN, on the four
configurations of benchmarks/engine.py plus T = 10,000; tanh against cuDNN, sigmoid (which
cuDNN lacks) against the loop; and the loop's whole step captured as a CUDA graph ("loop graph",
the issue's alternative to kernels). Then the fused LSTM and GRU layers (engine/fused_lstm.py,
fused_gru.py, H ≤ 64) against cuDNN's torch.nn.LSTM / GRU and the loop's lstm_layer / gru_layer. Two precisions: "fp32" (torch's "highest" matmul precision,
cuDNN's TF32 off: the kernels' tl.dot in IEEE fp32) and "tf32" (torch's "high", cuDNN's default
TF32: tl.dot in TF32). Ratios above 1 mean the fused engine is faster.

    python benchmarks/fused_cuda.py [--quick] [--json PATH]    # or: benchmarks/engine.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch
from engine import CONFIGS, interleaved_times, make_step

import rnnscope.nn
from rnnscope.engine import gru_layer, lstm_layer
from rnnscope.engine.fused_gru import fused_gru_layer
from rnnscope.engine.fused_lstm import MAX_HIDDEN as GATED_MAX_HIDDEN
from rnnscope.engine.fused_lstm import fused_lstm_layer
from rnnscope.engine.fused_triton import elman_layer_for, fused_elman_layer

LONG = (32, 10_000, 1, 32)  # (B, T, I, H): the long sequence of the issue
GATED_EXTRA = (64, 100, 8, 64)  # the largest H the fused LSTM and GRU take in fp32
PRECISIONS = {"fp32": ("highest", False), "tf32": ("high", True)}  # torch matmul precision, cudnn.allow_tf32


def with_fused(step, setting: str | None):
    """`step` run with RNNSCOPE_FUSED=setting (None: unset, the automatic choice)."""

    def run() -> None:
        before = os.environ.pop("RNNSCOPE_FUSED", None)
        if setting is not None:
            os.environ["RNNSCOPE_FUSED"] = setting
        try:
            step()
        finally:
            os.environ.pop("RNNSCOPE_FUSED", None)
            if before is not None:
                os.environ["RNNSCOPE_FUSED"] = before

    return run


def graphed_loop_step(rnn: torch.nn.Module, readout: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor):
    """The loop's training step (RNNSCOPE_FUSED=0) captured once as a CUDA graph and replayed: the
    issue's other way to pay one launch for many steps. Same step as make_step, without its
    synchronize inside (a capture may not synchronize); the replay ends in one."""
    params = list(rnn.parameters()) + list(readout.parameters())

    def body() -> None:
        _, h_n = rnn(x)
        torch.nn.functional.mse_loss(readout(h_n[-1]), y).backward()

    body = with_fused(body, "0")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as torch.cuda.graph's docs ask
        for _ in range(3):
            for p in params:
                p.grad = None
            body()
    torch.cuda.current_stream().wait_stream(side)
    for p in params:
        p.grad = None  # so that the captured backward allocates the gradients in the graph's pool
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()

    def step() -> None:
        graph.replay()
        torch.cuda.synchronize()

    return step


def measure(B: int, T: int, I: int, H: int, nonlinearity: str, repeats: int, min_seconds: float,
            device: str = "cuda") -> dict:
    """Median seconds per step of the fused engine, the loop and (tanh, relu) cuDNN on one configuration."""
    torch.manual_seed(0)
    x, y = torch.randn(T, B, I, device=device), torch.randn(B, 1, device=device)
    readout = torch.nn.Linear(H, 1).to(device)
    ours = rnnscope.nn.RNN(I, H, nonlinearity=nonlinearity).to(device)
    fns = {"fused": with_fused(make_step(ours, readout, x, y), None),
           "loop": with_fused(make_step(ours, readout, x, y), "0")}
    if nonlinearity != "sigmoid":
        theirs = torch.nn.RNN(I, H, nonlinearity=nonlinearity).to(device)
        theirs.load_state_dict(ours.state_dict())
        fns["cuDNN"] = make_step(theirs, readout, x, y)
    graph_error = None
    if device == "cuda":
        try:
            fns["loop graph"] = graphed_loop_step(rnnscope.nn.RNN(I, H, nonlinearity=nonlinearity).to(device),
                                                  torch.nn.Linear(H, 1).to(device), x, y)
        except Exception as error:  # a capture that fails is a finding, not the end of the run
            graph_error = f"{type(error).__name__}: {error}"[:200]
    fused_runs = elman_layer_for(x, H) is fused_elman_layer  # False (H > 256): the loop runs under both names
    times = {name: statistics.median(ts) for name, ts in interleaved_times(fns, repeats, min_seconds).items()}
    row = {"B": B, "T": T, "I": I, "H": H, "nonlinearity": nonlinearity, "fused_runs": fused_runs,
           "seconds": times, "loop_over_fused": times["loop"] / times["fused"]}
    if "cuDNN" in times:
        row["cudnn_over_fused"] = times["cuDNN"] / times["fused"]
    if "loop graph" in times:
        row["graph_over_fused"] = times["loop graph"] / times["fused"]
    if graph_error:
        row["graph_error"] = graph_error
    return row


# cell -> (torch's module, the fused layer, the loop's layer)
GATED = {"lstm": (torch.nn.LSTM, fused_lstm_layer, lstm_layer), "gru": (torch.nn.GRU, fused_gru_layer, gru_layer)}


class OneGatedLayer(torch.nn.Module):
    """torch.nn.LSTM's or GRU's weights run by an engine layer function (fused or the loop's);
    returns (out, h_n) as make_step reads it."""

    def __init__(self, module: torch.nn.Module, layer, cell: str) -> None:
        super().__init__()
        self.module, self.layer, self.cell = module, layer, cell

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = x.new_zeros(x.shape[1], self.module.hidden_size)
        states = (zeros, zeros) if self.cell == "lstm" else (zeros,)
        out, h_T, *_ = self.layer(x, *states, *self.module.all_weights[0])
        return out, h_T.unsqueeze(0)


def measure_gated(cell: str, B: int, T: int, I: int, H: int, repeats: int, min_seconds: float,
                  device: str = "cuda") -> dict:
    """Median seconds per step of the fused LSTM or GRU layer, the loop's, and cuDNN's module."""
    torch.manual_seed(0)
    x, y = torch.randn(T, B, I, device=device), torch.randn(B, 1, device=device)
    readout = torch.nn.Linear(H, 1).to(device)
    torch_module, fused_layer, loop_layer = GATED[cell]
    module = torch_module(I, H).to(device)
    fns = {"fused": make_step(OneGatedLayer(module, fused_layer, cell), readout, x, y),
           "loop": make_step(OneGatedLayer(module, loop_layer, cell), readout, x, y),
           "cuDNN": make_step(module, readout, x, y)}
    times = {name: statistics.median(ts) for name, ts in interleaved_times(fns, repeats, min_seconds).items()}
    return {"B": B, "T": T, "I": I, "H": H, "nonlinearity": cell, "fused_runs": True, "seconds": times,
            "loop_over_fused": times["loop"] / times["fused"], "cudnn_over_fused": times["cuDNN"] / times["fused"]}


def run(repeats: int, min_seconds: float, configs=(*CONFIGS, LONG), device: str = "cuda") -> dict:
    """Every configuration, both precisions, tanh and sigmoid (device "cpu": a smoke run of this code)."""
    matmul_precision = torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    result = {"device": name, "torch": torch.__version__, "precisions": {}}
    try:
        for name, (precision, tf32) in PRECISIONS.items():
            torch.set_float32_matmul_precision(precision)
            torch.backends.cudnn.allow_tf32 = tf32
            rows = []
            for B, T, I, H in configs:
                for nonlinearity in ("tanh", "sigmoid"):
                    long = T >= 10_000  # a loop step there takes a second: fewer rounds
                    rows.append(measure(B, T, I, H, nonlinearity, 2 if long else repeats,
                                        0.0 if long else min_seconds, device))
                    r = rows[-1]
                    print(f"{name} {nonlinearity} ({B}, {T}, {I}, {H}): loop / fused = {r['loop_over_fused']:.2f}x"
                          + (f", cuDNN / fused = {r['cudnn_over_fused']:.2f}x" if "cudnn_over_fused" in r else "")
                          + (f", loop graph / fused = {r['graph_over_fused']:.2f}x" if "graph_over_fused" in r else ""),
                          file=sys.stderr, flush=True)
            for cell in GATED:
                for B, T, I, H in [*configs, GATED_EXTRA]:
                    if H > GATED_MAX_HIDDEN[torch.float32] or T >= 10_000:  # the gated loop at T = 10⁴: too long here
                        continue
                    rows.append(measure_gated(cell, B, T, I, H, repeats, min_seconds, device))
                    print(f"{name} {cell} ({B}, {T}, {I}, {H}): loop / fused = {rows[-1]['loop_over_fused']:.2f}x, "
                          f"cuDNN / fused = {rows[-1]['cudnn_over_fused']:.2f}x", file=sys.stderr, flush=True)
            elman = [r for r in rows if r["nonlinearity"] not in GATED]
            vs_cudnn = [r["cudnn_over_fused"] for r in elman if "cudnn_over_fused" in r]
            small = [r["cudnn_over_fused"] for r in elman if "cudnn_over_fused" in r and r["H"] <= 256]
            result["precisions"][name] = {
                "rows": rows,
                "median_cudnn_over_fused": statistics.median(vs_cudnn),
                "min_cudnn_over_fused_h_le_256": min(small),
                "median_loop_over_fused_sigmoid": statistics.median(
                    [r["loop_over_fused"] for r in rows if r["nonlinearity"] == "sigmoid"]),
                **{f"median_cudnn_over_fused_{cell}": statistics.median(
                    [r["cudnn_over_fused"] for r in rows if r["nonlinearity"] == cell]) for cell in GATED},
            }
    finally:
        torch.set_float32_matmul_precision(matmul_precision)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
    return result


def print_table(result: dict) -> None:
    """One line per configuration and precision (the goal: cuDNN / fused ≥ 1.0 for H ≤ 256)."""
    print(f"fused Triton time loops, {result['device']}, torch {result['torch']}")
    print(f"{'precision':9} {'cell':8} {'B, T, I, H':>20} {'fused ms':>10} {'loop ms':>10} {'cuDNN ms':>10} "
          f"{'cuDNN/fused':>12} {'loop/fused':>11} {'graph/fused':>12}")
    for name, part in result["precisions"].items():
        for r in part["rows"]:
            s = r["seconds"]
            shape = f"{r['B']}, {r['T']}, {r['I']}, {r['H']}"
            cudnn = f"{s['cuDNN'] * 1e3:10.2f}" if "cuDNN" in s else f"{'-':>10}"
            ratio = f"{r['cudnn_over_fused']:11.2f}x" if "cudnn_over_fused" in r else f"{'-':>12}"
            note = "" if r["fused_runs"] else "  (the loop ran: the kernels do not apply, H > 256)"
            graph = f"{r['graph_over_fused']:11.2f}x" if "graph_over_fused" in r else f"{'-':>12}"
            if "graph_error" in r:
                note += f"  (loop graph: {r['graph_error']})"
            print(f"{name:9} {r['nonlinearity']:8} {shape:>20} {s['fused'] * 1e3:10.2f} {s['loop'] * 1e3:10.2f} "
                  f"{cudnn} {ratio} {r['loop_over_fused']:10.2f}x {graph}{note}")
        print(f"{name}: median cuDNN / fused {part['median_cudnn_over_fused']:.2f}x, min over H ≤ 256 "
              f"{part['min_cudnn_over_fused_h_le_256']:.2f}x; sigmoid loop / fused median "
              f"{part['median_loop_over_fused_sigmoid']:.2f}x; cuDNN / fused median LSTM "
              f"{part['median_cudnn_over_fused_lstm']:.2f}x, GRU {part['median_cudnn_over_fused_gru']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the JSON to PATH")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/fused_cuda.py: torch sees no CUDA device here; run it on a GPU machine "
                         "(tools/gpu_checks.sh)")
    result = run(repeats=3 if args.quick else 15, min_seconds=0.2 if args.quick else 2.0)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
