"""Data-parallel training on this machine: N = 1, 2, 4 workers side by side.

    python benchmarks/data_parallel.py                    # N = 1 2 4, hidden 512, global batch 64
    python benchmarks/data_parallel.py --nproc 1 2 --hidden 256 --json out.json

For each N it runs `rnnscope train --parallel.strategy data --parallel.nproc N` twice, for K1
and K2 steps, each in a network namespace of its own (`unshare --net`) so that loopback counts
this run alone. Per step it reports, from traffic.jsonl: the step time (median), the share of
the step spent communicating, the gradient bytes the ledger recorded beside the formula
2(n−1)·S (all ranks), algbw = S/t and busbw = algbw·2(n−1)/n (nccl-tests definitions); and what
lo itself counted per step: (lo(K2) − lo(K1)) / (K2 − K1), so that start-up traffic (rendezvous,
the first broadcast) cancels. N = 1 is the baseline of the ratios; N = 4 on 2 cores is
oversubscribed. Nothing is asserted: this is a measurement, printed as a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rnnscope.parallel.ledger import read_jsonl
from rnnscope.parallel.summary import human_bytes, human_rate
from rnnscope.parallel.wire import can_isolate, isolated_command, read_interface


def run_once(nproc: int, steps: int, args, folder: Path, isolate: bool) -> dict:
    """One training run; returns its traffic rows and lo's transmitted bytes (None: shared lo)."""
    run_dir = folder / f"n{nproc}-k{steps}"
    argv = [sys.executable, "-m", "rnnscope", "train", "--parallel.strategy", "data",
            "--parallel.nproc", str(nproc), "--model.hidden", str(args.hidden),
            "--data.batch_size", str(args.batch), "--data.seq_len", str(args.seq_len),
            "--optim.lr", "0.05", "--optim.clip", "1.0", "--train.max_steps", str(steps), "--train.run_dir", str(run_dir),
            "--train.progress", "false", "--train.log_every", "100000",
            "--train.checkpoint_every", "100000", "--parallel.check_every", "100000"]
    counters = folder / f"netdev-n{nproc}-k{steps}"
    if isolate:
        argv = isolated_command(argv, counters)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        raise SystemExit(f"N={nproc} K={steps} failed:\n{done.stderr[-3000:]}")
    lo = read_interface("lo", counters).tx_bytes if isolate else None
    return {"rows": read_jsonl(run_dir / "traffic.jsonl"), "lo_tx": lo}


def measure(nproc: int, args, folder: Path, isolate: bool) -> dict:
    """The per-step figures of N workers (K2 run), with lo's per-step bytes from K2 − K1."""
    short = run_once(nproc, args.k1, args, folder, isolate)
    long = run_once(nproc, args.k2, args, folder, isolate)
    rows = [r for r in long["rows"] if r["phase"] == "step"]
    grad = [r for r in rows if r["tag"] == "dp-grad" and r["step"] > 1]  # step 1 warms up
    steps = sorted({r["step"] for r in grad})
    step_s = [statistics.median(r["step_seconds"] for r in grad if r["step"] == k) for k in steps]
    S = grad[0]["payload_bytes"] // grad[0]["calls"] if grad else 0
    ledger_per_step = sum(r["wire_bytes_sent"] for r in grad) / max(len(steps), 1)
    lo_per_step = (None if long["lo_tx"] is None
                   else (long["lo_tx"] - short["lo_tx"]) / (args.k2 - args.k1))
    busbw = [r["busbw"] for r in grad if r["busbw"] is not None]
    algbw = [r["algbw"] for r in grad if r["algbw"] is not None]
    return {
        "nproc": nproc, "step_seconds": statistics.median(step_s),
        "samples_per_s": args.batch / statistics.median(step_s),
        "comm_fraction": statistics.median(r["step_comm_fraction"] for r in grad),
        "grad_bytes": S, "ledger_bytes_per_step": ledger_per_step,
        "formula_bytes_per_step": 2 * (nproc - 1) * S,
        "lo_bytes_per_step": lo_per_step,
        "algbw": statistics.median(algbw) if algbw else None,
        "busbw": statistics.median(busbw) if busbw else None,
    }


def print_table(results: list[dict]) -> None:
    """The results as a rich table, N = first entry as the baseline."""
    from rich.console import Console
    from rich.table import Table

    base = results[0]
    table = Table(title="data parallel on this machine (gloo, loopback)",
                  caption="bytes per step over all ranks; formula 2(n−1)·S; lo = (lo(K2) − "
                  "lo(K1)) / (K2 − K1); algbw = S/t, busbw = algbw·2(n−1)/n")
    for name in ("N", "step ms", f"× N={base['nproc']}", "samples/s", "comm %", "grad S",
                 "ledger B/step", "formula B/step", "lo B/step", "lo / formula", "algbw", "busbw"):
        table.add_column(name, justify="right")
    for r in results:
        lo = r["lo_bytes_per_step"]
        ratio = (f"{lo / r['formula_bytes_per_step']:.3f}"
                 if lo is not None and r["formula_bytes_per_step"] else "-")
        table.add_row(
            str(r["nproc"]), f"{r['step_seconds'] * 1e3:.1f}",
            f"{r['step_seconds'] / base['step_seconds']:.2f}", f"{r['samples_per_s']:.0f}",
            f"{100 * r['comm_fraction']:.1f}", human_bytes(r["grad_bytes"]),
            human_bytes(r["ledger_bytes_per_step"]), human_bytes(r["formula_bytes_per_step"]),
            "-" if lo is None else human_bytes(lo), ratio,
            human_rate(r["algbw"]), human_rate(r["busbw"]))
    Console(width=180).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2, 4],
                        help="worker counts to compare (the first is the baseline)")
    parser.add_argument("--hidden", type=int, default=512, help="hidden neurons (S ≈ 4·hidden² B)")
    parser.add_argument("--batch", type=int, default=64, help="global batch (split over N)")
    parser.add_argument("--seq-len", type=int, default=40, help="time steps per sequence")
    parser.add_argument("--k1", type=int, default=5, help="steps of the short run")
    parser.add_argument("--k2", type=int, default=15, help="steps of the long run")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    isolate = can_isolate()
    if not isolate:
        print("unshare --net is not permitted here: lo bytes are not measured", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rnnscope-dp-bench-") as tmp:
        results = [measure(n, args, Path(tmp), isolate) for n in args.nproc]
    print_table(results)
    report = {"config": vars(args), "isolated_loopback": isolate, "results": results}
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
