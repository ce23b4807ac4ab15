"""Runs on the lab: one strategy at one rate (`run_one`), or every strategy at every rate (`sweep`).

Each rate gets a fresh lab (new namespaces, fresh counters, empty token buckets); the
strategies run in it one after another, each in its own run directory
`<out>/<strategy>-<rate>/`. Whatever happens, the lab is torn down before the next rate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnscope.costs.layout import ParallelLayout, strategy_name
from rnnscope.errors import UserError
from rnnscope.lab.netns import MAX_HOSTS, Lab
from rnnscope.lab.predict import predict_step
from rnnscope.costs.units import format_rate
from rnnscope.lab.results import LabResult, ledger_sent_by_rank, read_traffic, step_figures
from rnnscope.lab.run import run_workers
from rnnscope.lab.system import LabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabPlan:
    """What to run: the training (config file and overrides) and the lab around it."""

    hosts: int
    rates_bps: list[float]
    strategies: list[str]
    config_path: str | None
    overrides: list[str]  # `--section.key value` pairs for every worker
    out_dir: Path
    delay_ms: float = 0.0
    timeout_s: float = 600.0
    software: dict | None = None  # gloo's per-message cost fitted on loopback (predict.calibrate_software)

    def overrides_for(self, strategy: str, run_dir: Path) -> list[str]:
        """The user's overrides, then the lab's own settings (last, so they win)."""
        return self.overrides + [
            "--parallel.strategy", strategy, "--parallel.nproc", "1",
            "--train.run_dir", str(run_dir), "--train.progress", "false"]

    def train_args(self, strategy: str, run_dir: Path) -> list[str]:
        """The `rnnscope train` arguments of one run."""
        config = ["--config", self.config_path] if self.config_path else []
        return config + self.overrides_for(strategy, run_dir)

    def config(self, strategy: str, run_dir: Path):
        """The resolved training config of one run (raises UserError for a bad key or value)."""
        from rnnscope.train.config import load_config

        cfg = load_config(self.config_path, self.overrides_for(strategy, run_dir))
        if cfg.data.batch_size % self.hosts:
            raise UserError(f"--data.batch_size {cfg.data.batch_size} does not split over "
                            f"--hosts {self.hosts}; use a multiple of {self.hosts}")
        return cfg


def check_plan(plan: LabPlan) -> None:
    """Refuse what cannot run before any namespace exists (names the option and the fix)."""
    if not 2 <= plan.hosts <= MAX_HOSTS:
        raise UserError(f"--hosts must be between 2 and {MAX_HOSTS}, got {plan.hosts}")
    for strategy in plan.strategies:
        layout = ParallelLayout.for_strategy(strategy_name(strategy, "--strategy"), plan.hosts)
        cfg = plan.config(strategy, plan.out_dir / "check")
        layout.check_model(cfg.model.layers, cfg.model.hidden)  # here, not inside N workers
    for path in (plan.out_dir / run_name(s, r) for s in plan.strategies for r in plan.rates_bps):
        if path.exists():
            raise UserError(f"{path} already exists; choose another --out or remove it")


def run_name(strategy: str, rate_bps: float) -> str:
    """`data-100Mbit`: the run directory of one strategy at one rate, inside --out."""
    return f"{strategy}-{format_rate(rate_bps)}"


def run_one(lab: Lab, plan: LabPlan, strategy: str) -> LabResult:
    """Train `strategy` across the built `lab` and compare what it measured with the plan."""
    run_dir = plan.out_dir / run_name(strategy, lab.rate_bps)
    cfg = plan.config(strategy, run_dir)
    prediction = predict_step(cfg, strategy, len(lab.hosts), lab.rate_bps, lab.delay_ms,
                              plan.software)
    log.info("lab: %s on %d hosts at %s -> %s", strategy, len(lab.hosts),
             format_rate(lab.rate_bps), run_dir)
    output = run_workers(lab, plan.train_args(strategy, run_dir), run_dir, plan.timeout_s)
    try:
        rows = read_traffic(run_dir)
    except FileNotFoundError as exc:
        raise LabError(f"{exc}; see {run_dir / 'lab'}") from None
    steps = step_figures(rows)
    if not steps:
        raise LabError(f"{run_dir}/traffic.jsonl has no training steps; raise --steps")
    return LabResult(strategy=strategy, hosts=len(lab.hosts), rate_bps=lab.rate_bps,
                     delay_ms=lab.delay_ms, run_dir=str(run_dir), prediction=prediction,
                     steps=steps, ledger_sent=ledger_sent_by_rank(rows, len(lab.hosts)),
                     interface=output.counters, wall_seconds=output.seconds)


def sweep(plan: LabPlan, on_result: Callable[[LabResult], None] | None = None) -> list[LabResult]:
    """Every strategy at every rate, a fresh lab per rate; `on_result` sees each as it ends."""
    check_plan(plan)
    results = []
    for rate_bps in plan.rates_bps:
        with Lab(plan.hosts, rate_bps, delay_ms=plan.delay_ms) as lab:
            for strategy in plan.strategies:
                result = run_one(lab, plan, strategy)
                results.append(result)
                if on_result is not None:
                    on_result(result)
    return results
