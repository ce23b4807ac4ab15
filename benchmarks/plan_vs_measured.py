"""The planner against real runs on this machine: bytes, messages and step time, side by side.

    python benchmarks/plan_vs_measured.py                          # data, pipeline, hidden_split; N = 2, 4
    python benchmarks/plan_vs_measured.py --nproc 2 --json out.json --hidden 128
    python benchmarks/plan_vs_measured.py --cell lstm              # a gated configuration

For each N it first calibrates with N processes sharing the cores as the runs' workers do
(`rnnscope.calibrate.network`: gloo's α/β per op and message size through the Communicator on
127.0.0.1, the engine's speed and the strategies' code-path overheads on one thread each).
Then, for each strategy, it predicts the
step from the model and data shapes alone (`rnnscope.costs.traffic` for bytes and messages,
`rnnscope.plan.simulate` for the time) and runs `rnnscope train --parallel.strategy S
--parallel.nproc N` (one thread per worker). The measured side is the run's ledger
(traffic.jsonl, phase "step", the steps after --warmup): wire bytes and messages summed over
ranks, and the median step time (a step being the mean of the ranks' step_seconds), with the
mean step beside it. The prediction is the baseline of the ratios. Bytes and messages must match exactly; the step time within --tolerance (25 %). The
verdict is printed, not asserted: this is a measurement. N = 4 on 2 cores is oversubscribed,
in the calibration as in the runs. A busy machine (other jobs on the cores) moves both sides.
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

from rnnscope.calibrate.machine import calibrated_inputs
from rnnscope.costs.backends import GLOO
from rnnscope.costs.layout import STRATEGIES, ParallelLayout
from rnnscope.costs.traffic import strategy_traffic
from rnnscope.costs.units import format_bytes, format_seconds
from rnnscope.plan.from_config import shape_from_config
from rnnscope.plan.simulate import simulate
from rnnscope.train.config import load_config


def config_overrides(args) -> list[str]:
    """The train keys both the plan and the runs use."""
    return ["--model.hidden", str(args.hidden), "--model.layers", str(args.layers),
            "--data.seq_len", str(args.seq_len), "--data.batch_size", str(args.batch),
            "--parallel.chunk", str(args.chunk), "--model.cell", args.cell]


def run_train(strategy: str, nproc: int, args, folder: Path) -> dict:
    """One training run; per step (after the first two): bytes, messages, step seconds."""
    run_dir = folder / f"{strategy}-n{nproc}"
    argv = [sys.executable, "-m", "rnnscope", "train", *config_overrides(args),
            "--train.max_steps", str(args.steps), "--train.run_dir", str(run_dir),
            "--train.progress", "false", "--train.log_every", "100000",
            "--train.checkpoint_every", "100000", "--parallel.strategy", strategy,
            "--parallel.nproc", str(nproc), "--parallel.check_every", "100000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{strategy} N={nproc} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in (run_dir / "traffic.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["phase"] == "step" and r["step"] > args.warmup]
    steps = sorted({r["step"] for r in rows})
    per_step = lambda key, k: sum(r[key] for r in rows if r["step"] == k)  # noqa: E731
    # a rank's step_seconds is its time from one step's end to the next. The ranks' steps end
    # at different moments (a pipeline's first stage finishes its backward last), so one step
    # is the mean over the ranks (a max would add up their jitter); the typical step is the
    # median over the steps, which the simulation (no stragglers, no OS hiccups) predicts.
    # The mean over the steps (wall time / steps: throughput, hiccups included) is shown too.
    seconds = {(r["rank"], r["step"]): r["step_seconds"] for r in rows}
    ranks = sorted({rank for rank, _ in seconds})
    step_s = [statistics.mean(seconds[rank, k] for rank in ranks if (rank, k) in seconds)
              for k in steps]
    return {"step_s": statistics.median(step_s), "mean_step_s": statistics.mean(step_s),
            "bytes": statistics.median(per_step("wire_bytes_sent", k) for k in steps),
            "messages": statistics.median(per_step("messages", k) for k in steps),
            "tags": sorted({r["tag"] for r in rows})}


def predict(strategy: str, nproc: int, inputs) -> dict:
    """Bytes and messages (all ranks) and step time that the planner predicts."""
    traffic = strategy_traffic(strategy, inputs.shape, nproc, chunk=inputs.chunk,
                               bucket_mb=inputs.bucket_mb, algorithms=GLOO)
    plan = simulate(inputs, ParallelLayout.for_strategy(strategy, nproc))
    return {"step_s": plan.step_s, "bytes": traffic.network_bytes,
            "messages": traffic.network_messages}


def print_table(results: list[dict], tolerance: float) -> None:
    """Predicted beside measured, with ratios and the verdict."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rnnscope plan: predicted vs measured (per training step, all ranks)")
    for name in ("strategy", "N", "bytes pred", "bytes meas", "msgs pred", "msgs meas",
                 "step pred", "step meas", "meas/pred", "mean meas", "mean/pred", "verdict"):
        table.add_column(name, justify="left" if name in ("strategy", "verdict") else "right")
    for r in results:
        p, m = r["predicted"], r["measured"]
        ratio = m["step_s"] / p["step_s"] if m["step_s"] and p["step_s"] else None
        table.add_row(r["strategy"], str(r["nproc"]), format_bytes(p["bytes"]),
                      format_bytes(m["bytes"]), f"{p['messages']:,.0f}", f"{m['messages']:,.0f}",
                      format_seconds(p["step_s"]), format_seconds(m["step_s"]),
                      f"{ratio:.2f}" if ratio else "—", format_seconds(m["mean_step_s"]),
                      f"{m['mean_step_s'] / p['step_s']:.2f}" if p["step_s"] else "—",
                      r["verdict"])
    Console(width=150).print(table)
    print(f"bytes and messages: exact match required; step time (the median step, each the "
          f"mean over the ranks): within {tolerance:.0%}; the mean step (hiccups included) is "
          f"shown beside it")


def main() -> int:
    """Calibrate, predict, run, and print predicted beside measured."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", type=int, nargs="+", default=[2, 4], help="worker counts")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        choices=list(STRATEGIES), help="strategies to run")
    parser.add_argument("--hidden", type=int, default=64, help="--model.hidden (default 64)")
    parser.add_argument("--layers", type=int, default=4, help="--model.layers (default 4)")
    parser.add_argument("--seq-len", type=int, default=50, help="--data.seq_len (default 50)")
    parser.add_argument("--batch", type=int, default=32, help="global --data.batch_size")
    parser.add_argument("--chunk", type=int, default=10, help="--parallel.chunk (default 10)")
    parser.add_argument("--cell", default="elman", choices=("elman", "lstm", "gru"),
                        help="--model.cell (default elman)")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=20,
                        help="first steps of each run left out of the measured side")
    parser.add_argument("--tolerance", type=float, default=0.25, help="step-time tolerance")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    cfg = load_config(None, config_overrides(args))
    shape = shape_from_config(cfg)
    results, calibrations = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(s, n) for n in args.nproc for s in args.strategies]
        for strategy, nproc in runs:
            if nproc not in calibrations:  # calibrated as N workers share the cores
                inputs, _, calibrations[nproc] = calibrated_inputs(shape, cfg, world=nproc)
                print(f"calibrated with {nproc} processes: {calibrations[nproc].summary}",
                      flush=True)
            predicted = predict(strategy, nproc, inputs)
            measured = run_train(strategy, nproc, args, Path(tmp))
            exact = (predicted["bytes"] == measured["bytes"]
                     and predicted["messages"] == measured["messages"])
            ratio = (measured["step_s"] / predicted["step_s"]
                     if measured["step_s"] and predicted["step_s"] else None)
            in_time = ratio is not None and abs(ratio - 1) <= args.tolerance
            verdict = ("ok" if exact and in_time else
                       ("bytes/messages differ" if not exact else "time off"))
            results.append({"strategy": strategy, "nproc": nproc, "predicted": predicted,
                            "measured": measured, "verdict": verdict})
            print(f"{strategy} N={nproc}: {verdict}", flush=True)
    print_table(results, args.tolerance)
    report = {"calibration": calibrations, "config": config_overrides(args), "results": results}
    print(json.dumps({"results": results}, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
