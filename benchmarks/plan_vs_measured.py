"""The planner against real runs on this machine: bytes, messages and step time, side by side.

    python benchmarks/plan_vs_measured.py                          # data, pipeline, hidden_split; N = 2, 4
    python benchmarks/plan_vs_measured.py --nproc 2 --json out.json --hidden 128
    python benchmarks/plan_vs_measured.py --cell lstm              # a gated configuration
    python benchmarks/plan_vs_measured.py --nproc 2 --cell elman lstm --repeats 6 --steps 20 \
        --warmup 8 --recalibrate --calibrations 3 --pool 3                   # the validation

With --repeats R every strategy runs R times per cell and N after one calibration (the order of
the strategies rotated every round, so that a drift in the machine's load does not always hit
the same one; --recalibrate calibrates again every round, and --pool K predicts from the median
of the last K measurements, --calibrations C of them made before the first round), and a
summary gives, per strategy, how many runs came within --tolerance and, per cell, the mean and
max absolute error of the step time, |measured / predicted − 1|, over all its strategy runs.

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
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rnnscope.calibrate.machine import calibrated_inputs, fitted_inputs
from rnnscope.costs.backends import GLOO
from rnnscope.costs.layout import STRATEGIES, ParallelLayout
from rnnscope.costs.traffic import strategy_traffic
from rnnscope.costs.units import format_bytes, format_seconds
from rnnscope.parallel.ledger import read_jsonl
from rnnscope.parallel.summary import median_step_comm_seconds
from rnnscope.plan.from_config import shape_from_config
from rnnscope.plan.simulate import simulate
from rnnscope.report.stalls import stalls_of
from rnnscope.report.timeline import read_phases
from rnnscope.train.config import load_config


MAX_MEASURED_STEPS = 1000


def config_overrides(args) -> list[str]:
    """The train keys both the plan and the runs use."""
    return ["--model.hidden", str(args.hidden), "--model.layers", str(args.layers),
            "--data.seq_len", str(args.seq_len), "--data.batch_size", str(args.batch),
            "--parallel.chunk", str(args.chunk), "--model.cell", args.model_cell]


def measured_steps(args, predicted_step_s: float) -> int:
    """Steps a run measures after its warm-up: --steps − --warmup, or more, so that the measured
    steps last at least --min-seconds by the prediction. A data-parallel step here is ~6 ms
    with spikes of 4–10 ms (a thread woken a scheduler tick late): the median of 12 such steps
    moved ±15 % from one run to the next, the median of 300 ±8 %."""
    wanted = math.ceil(args.min_seconds / predicted_step_s) if predicted_step_s > 0 else 0
    return max(args.steps - args.warmup, min(wanted, MAX_MEASURED_STEPS))


def run_train(strategy: str, nproc: int, args, folder: Path, measured: int) -> dict:
    """One training run of --warmup + `measured` steps; per measured step: bytes, messages,
    step seconds."""
    run_dir = folder / f"{strategy}-n{nproc}"
    argv = [sys.executable, "-m", "rnnscope", "train", *config_overrides(args),
            "--train.max_steps", str(args.warmup + measured), "--train.run_dir", str(run_dir),
            "--train.progress", "false", "--train.log_every", "100000",
            "--train.checkpoint_every", "100000", "--parallel.strategy", strategy,
            "--parallel.nproc", str(nproc), "--parallel.check_every", "100000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{strategy} N={nproc} failed:\n{done.stderr[-3000:]}")
    every_row = read_jsonl(run_dir / "traffic.jsonl")
    rows = [r for r in every_row if r["phase"] == "step" and r["step"] > args.warmup]
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
    # a pipeline's wake-up stalls, read off its own timeline (rnnscope.report.stalls): the
    # median step's excess of message deliveries over the typical one
    # (and each rank's median compute and idle time per step, for the JSON)
    stalls = (stalls_of(every_row, read_phases(run_dir), first_step=args.warmup + 1)
              if strategy == "pipeline" else None)
    # a hidden split's exchanges and data parallelism's gradient all-reduces: what its calls
    # took per step, waits included (DDP's: in flight from the bucket's hook to its result; the
    # configurations here have one bucket, all-reduced after the backward, so all exposed)
    exchange = (median_step_comm_seconds(every_row, first_step=args.warmup + 1)
                if strategy in ("hidden_split", "data") else None)
    return {"step_s": statistics.median(step_s), "mean_step_s": statistics.mean(step_s),
            "steps": len(step_s), "stall_s": stalls.median_stall_s if stalls else None,
            "exchange_s": exchange,
            "compute_s": stalls.compute_s if stalls else None, "idle_s": stalls.idle_s if stalls else None,
            "bytes": statistics.median(per_step("wire_bytes_sent", k) for k in steps),
            "messages": statistics.median(per_step("messages", k) for k in steps),
            "tags": sorted({r["tag"] for r in rows})}


def predict(strategy: str, nproc: int, inputs) -> dict:
    """Bytes and messages (all ranks) and step time that the planner predicts."""
    traffic = strategy_traffic(strategy, inputs.shape, nproc, chunk=inputs.chunk,
                               bucket_mb=inputs.bucket_mb, algorithms=GLOO)
    layout = ParallelLayout.for_strategy(strategy, nproc)
    plan = simulate(inputs, layout)
    # the same without the waits timed on a real group: how much of the error they explain
    bare = simulate(dataclasses.replace(inputs, split_wait_s=0.0, chunk_wait_s=0.0,
                                        data_wait_s=0.0), layout)
    return {"step_s": plan.step_s, "step_s_without_waits": bare.step_s,
            # and without any communication: the step's compute, to add a run's measured one to
            "step_s_without_comm": plan.step_s - plan.exposed_comm_s,
            "bytes": traffic.network_bytes, "messages": traffic.network_messages}


def explained_step_s(result: dict) -> float | None:
    """The prediction with the run's own measured waits put in: how much of the error they
    explain. A pipeline: the model without the calibration's waits plus the wake-up stalls read
    off the run's timeline. A hidden split or data parallelism: the model's compute plus the
    time the run's exchanges or gradient all-reduces took. None when nothing was measured."""
    p, m = result["predicted"], result["measured"]
    if m.get("stall_s") is not None:
        return p["step_s_without_waits"] + m["stall_s"]
    if m.get("exchange_s") is not None:
        return p["step_s_without_comm"] + m["exchange_s"]
    return None


def print_table(results: list[dict], tolerance: float) -> None:
    """Predicted beside measured, with ratios and the verdict."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rnnscope plan: predicted vs measured (per training step, all ranks)")
    for name in ("cell", "strategy", "N", "bytes pred", "bytes meas", "msgs pred", "msgs meas",
                 "step pred", "step meas", "meas/pred", "mean meas", "mean/pred", "steps", "verdict"):
        table.add_column(name, justify="left" if name in ("cell", "strategy", "verdict") else "right")
    for r in results:
        p, m = r["predicted"], r["measured"]
        ratio = m["step_s"] / p["step_s"] if m["step_s"] and p["step_s"] else None
        table.add_row(r["cell"], r["strategy"], str(r["nproc"]), format_bytes(p["bytes"]),
                      format_bytes(m["bytes"]), f"{p['messages']:,.0f}", f"{m['messages']:,.0f}",
                      format_seconds(p["step_s"]), format_seconds(m["step_s"]),
                      f"{ratio:.2f}" if ratio else "—", format_seconds(m["mean_step_s"]),
                      f"{m['mean_step_s'] / p['step_s']:.2f}" if p["step_s"] else "—",
                      str(m.get("steps", "—")), r["verdict"])
    Console(width=178).print(table)
    print(f"bytes and messages: exact match required; step time (the median step, each the "
          f"mean over the ranks): within {tolerance:.0%}; the mean step (hiccups included) is "
          f"shown beside it; steps: how many were measured, after the warm-up")


def error_summary(results: list[dict], tolerance: float) -> list[dict]:
    """Per (cell, strategy, N) and per cell: the runs, how many are within `tolerance`, and the
    absolute error of the step time, |measured / predicted − 1|, as mean and max in percent
    (how simulator papers report accuracy); one row per group, then one "all" row per cell.

    Beside it, the runs' own spread: |measured / the median of the same group's runs − 1|, the
    error that predicting each group's median run (known only afterwards) would have. The
    machine's drift between runs of the same configuration puts it there, so no prediction made
    before the runs is expected to do better on average."""
    steps_of: dict[tuple, list[float]] = {}
    for r in results:
        steps_of.setdefault((r["cell"], r["strategy"], r["nproc"]), []).append(r["measured"]["step_s"])
    medians = {key: statistics.median(steps) for key, steps in steps_of.items()}

    def row(cell, strategy, nproc, group):
        spread = [abs(r["measured"]["step_s"] / medians[r["cell"], r["strategy"], r["nproc"]] - 1)
                  for r in group]
        errors = [abs(r["ratio"] - 1) for r in group if r["ratio"] is not None]
        bare = [abs(r["measured"]["step_s"] / r["predicted"]["step_s_without_waits"] - 1)
                for r in group if r["ratio"] is not None]
        # from the newest measurement alone (the same as the prediction without --pool)
        newest = [abs(r["measured"]["step_s"] / r["predicted"]["step_s_newest_calibration"] - 1)
                  for r in group if r["ratio"] is not None]
        # with the waits measured in the run itself (the pipeline's stalls, the hidden split's
        # exchanges, data parallelism's all-reduces); a run without them keeps its error
        timed = [(r, explained_step_s(r)) for r in group if r["ratio"] is not None]
        waited = ([abs(r["measured"]["step_s"] / e - 1) if e else abs(r["ratio"] - 1) for r, e in timed]
                  if any(e for _, e in timed) else [])
        return {"cell": cell, "strategy": strategy, "nproc": nproc, "runs": len(group),
                "within": sum(e <= tolerance for e in errors),
                "exact": sum(r["exact"] for r in group),
                "ratios": [round(r["ratio"], 3) for r in group if r["ratio"] is not None],
                "mean_spread_pct": 100 * statistics.mean(spread),
                "max_spread_pct": 100 * max(spread),
                "mean_error_pct": 100 * statistics.mean(errors) if errors else None,
                "max_error_pct": 100 * max(errors) if errors else None,
                "mean_error_newest_calibration_pct": (100 * statistics.mean(newest)
                                                      if newest else None),
                "max_error_newest_calibration_pct": 100 * max(newest) if newest else None,
                "within_newest_calibration": sum(e <= tolerance for e in newest),
                "mean_error_without_waits_pct": 100 * statistics.mean(bare) if bare else None,
                "max_error_without_waits_pct": 100 * max(bare) if bare else None,
                "mean_error_with_measured_waits_pct": 100 * statistics.mean(waited) if waited else None,
                "max_error_with_measured_waits_pct": 100 * max(waited) if waited else None}

    rows = []
    for cell in dict.fromkeys(r["cell"] for r in results):
        mine = [r for r in results if r["cell"] == cell]
        for strategy, nproc in dict.fromkeys((r["strategy"], r["nproc"]) for r in mine):
            rows.append(row(cell, strategy, nproc,
                            [r for r in mine if (r["strategy"], r["nproc"]) == (strategy, nproc)]))
        rows.append(row(cell, "all", None, mine))
    return rows


def print_summary(rows: list[dict], tolerance: float) -> None:
    """The repeated runs' verdict: within-tolerance counts and the mean / max absolute error."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="step time, measured / predicted, over the repeated runs")
    for name in ("cell", "strategy", "N", "runs", f"within {tolerance:.0%}", "bytes+msgs exact",
                 "mean |err|", "max |err|", "newest calibration", "runs' spread",
                 "without waits", "measured waits", "ratios"):
        table.add_column(name, justify="left" if name in ("cell", "strategy", "ratios") else "right")
    for r in rows:
        pct = lambda v: "—" if v is None else f"{v:.1f} %"  # noqa: E731
        table.add_row(r["cell"], r["strategy"], "" if r["nproc"] is None else str(r["nproc"]),
                      str(r["runs"]), str(r["within"]), str(r["exact"]), pct(r["mean_error_pct"]),
                      pct(r["max_error_pct"]),
                      f"{pct(r['mean_error_newest_calibration_pct'])} / "
                      f"{pct(r['max_error_newest_calibration_pct'])}, "
                      f"{r['within_newest_calibration']}",
                      f"{pct(r['mean_spread_pct'])} / {pct(r['max_spread_pct'])}",
                      f"{pct(r['mean_error_without_waits_pct'])} / "
                      f"{pct(r['max_error_without_waits_pct'])}",
                      "" if r["mean_error_with_measured_waits_pct"] is None else
                      f"{pct(r['mean_error_with_measured_waits_pct'])} / "
                      f"{pct(r['max_error_with_measured_waits_pct'])}",
                      ", ".join(f"{x:.2f}" for x in r["ratios"]) if r["strategy"] != "all" else "")
    Console(width=200).print(table)
    print("newest calibration (mean / max, within): the errors of predictions from each round's "
          "newest measurement alone, where --pool fitted the median of several")
    print("runs' spread (mean / max): each run against the median of the same strategy's runs, the "
          "error of a prediction that knew that median; the machine's drift between runs, the floor "
          "under the errors")
    print("measured waits: how much of the error the waits explain, each run's own put into the "
          "model (rnnscope.report.stalls, rnnscope.parallel.summary): a pipeline's, the model "
          "without the waits plus the wake-up stalls read off its timeline; a hidden split's and "
          "data parallelism's, the model's compute plus the time its exchanges or all-reduces "
          "took")


def main() -> int:
    """Calibrate, predict, run (repeatedly), and print predicted beside measured."""
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
    parser.add_argument("--cell", nargs="+", default=["elman"], choices=("elman", "lstm", "gru"),
                        help="--model.cell, one or more (default elman)")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=20,
                        help="first steps of each run left out of the measured side")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="measure more steps than --steps − --warmup where the predicted step "
                             "is short, at least this many seconds of them (default 2; at most "
                             f"{MAX_MEASURED_STEPS} steps)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of every strategy per cell and N (one calibration each, the "
                             "strategies' order rotated every round); the summary counts them")
    parser.add_argument("--recalibrate", action="store_true",
                        help="calibrate again before every round (slower; catches load drift)")
    parser.add_argument("--calibrations", type=int, default=1, metavar="C",
                        help="measurements in the first calibration of a cell and N, one after "
                             "another (about a minute each; default 1)")
    parser.add_argument("--pool", type=int, default=1, metavar="K",
                        help="predict from the median of the last K measurements of the cell "
                             "and N (rnnscope.calibrate.loopback.pooled; default 1: each "
                             "calibration's own); the newest one's own prediction is kept "
                             "beside it in the JSON")
    parser.add_argument("--tolerance", type=float, default=0.25, help="step-time tolerance")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error(f"--steps {args.steps} leaves no step after --warmup {args.warmup}")
    if args.calibrations < 1 or args.pool < 1:
        parser.error("--calibrations and --pool must be ≥ 1")

    results, calibrations = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cell:
            args.model_cell = cell
            cfg = load_config(None, config_overrides(args))
            shape = shape_from_config(cfg)
            for nproc in args.nproc:
                samples = []  # every measurement of this cell and N, in order
                for round_ in range(args.repeats):
                    if round_ == 0 or args.recalibrate:  # as N workers share the cores
                        # the new measurement(s) pooled with the --pool − 1 before them
                        earlier = samples[-(args.pool - 1):] if args.pool > 1 else []
                        inputs, _, calibration = calibrated_inputs(
                            shape, cfg, world=nproc, earlier=earlier,
                            repeats=args.calibrations if round_ == 0 else 1)
                        samples += calibration.samples[len(earlier):]
                        # the newest measurement alone, as without pooling, to compare
                        # (None: the calibration is that measurement)
                        newest = (fitted_inputs(samples[-1:], shape, cfg, nproc)[0]
                                  if len(calibration.samples) > 1 else None)
                        calibrations[f"{cell} N={nproc} round {round_}"] = calibration
                        print(f"{cell}, calibrated with {nproc} processes: {calibration.summary}",
                              flush=True)
                    k = round_ % len(args.strategies)  # rotated: load drift hits each in turn
                    for strategy in args.strategies[k:] + args.strategies[:k]:
                        predicted = predict(strategy, nproc, inputs)
                        predicted["step_s_newest_calibration"] = (
                            predicted["step_s"] if newest is None else
                            simulate(newest, ParallelLayout.for_strategy(strategy, nproc)).step_s)
                        measured = run_train(strategy, nproc, args, Path(tmp) / f"{cell}-r{round_}",
                                             measured_steps(args, predicted["step_s"]))
                        exact = (predicted["bytes"] == measured["bytes"]
                                 and predicted["messages"] == measured["messages"])
                        ratio = (measured["step_s"] / predicted["step_s"]
                                 if measured["step_s"] and predicted["step_s"] else None)
                        in_time = ratio is not None and abs(ratio - 1) <= args.tolerance
                        verdict = ("ok" if exact and in_time else
                                   ("bytes/messages differ" if not exact else "time off"))
                        results.append({"cell": cell, "round": round_, "strategy": strategy,
                                        "nproc": nproc, "predicted": predicted,
                                        "measured": measured, "exact": exact, "ratio": ratio,
                                        "verdict": verdict})
                        print(f"{cell} {strategy} N={nproc} round {round_ + 1}/{args.repeats}: "
                              f"{verdict} ({ratio:.2f})" if ratio else verdict, flush=True)
    print_table(results, args.tolerance)
    summary = error_summary(results, args.tolerance)
    print_summary(summary, args.tolerance)
    report = {"calibration": {k: c.to_dict() for k, c in calibrations.items()},
              "config": config_overrides(args), "results": results, "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
