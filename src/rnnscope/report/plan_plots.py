"""Pictures of a plan: step-time breakdown against workers, and link utilization over one step."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rnnscope.errors import UserError  # noqa: E402
from rnnscope.plan.events import step_events  # noqa: E402
from rnnscope.plan.recommend import FAMILIES, WorkerPlan  # noqa: E402
from rnnscope.plan.simulate import PlanInputs  # noqa: E402
from rnnscope.plan.timeline import utilization  # noqa: E402

PARTS = (("compute_s", "compute", "#4C72B0"), ("bubble_s", "pipeline bubble", "#DD8452"),
         ("exposed_comm_s", "exposed communication", "#C44E52"))


def step_breakdown(plans: list[WorkerPlan], path: Path) -> Path:
    """One panel per layout family: stacked compute, bubble and exposed comm per worker count."""
    families = [f for f in FAMILIES + ("single",) if any(f in wp.best for wp in plans)]
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families) + 1, 4),
                             sharey=True, squeeze=False)
    for ax, family in zip(axes[0], families):
        labels, bottoms = [], []
        for i, wp in enumerate(plans):
            labels.append(f"{wp.workers:,}")
            plan = wp.best.get(family)
            bottom = 0.0
            for attr, name, color in PARTS:
                value = getattr(plan, attr) * 1e3 if plan else 0.0
                ax.bar(i, value, bottom=bottom, color=color, label=name if i == 0 else None)
                bottom += value
            bottoms.append(bottom)
            if plan is not None and plan is wp.recommended:
                ax.annotate("★", (i, bottom), ha="center", va="bottom", fontsize=12)
            if plan is None:
                ax.annotate("n/a", (i, 0), ha="center", va="bottom", fontsize=8, color="gray")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("workers")
        ax.set_title(family)
    axes[0][0].set_ylabel("step time (ms)")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.suptitle("One training step, best layout of each family (★ = recommended)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def link_utilization(inputs: PlanInputs, wp: WorkerPlan, path: Path) -> Path:
    """Network link utilization of the busiest worker across one step, one row per family."""
    families = [f for f in FAMILIES + ("single",) if f in wp.best]
    fig, axes = plt.subplots(len(families), 1, figsize=(9, 1.9 * len(families) + 0.8),
                             squeeze=False)
    topo = inputs.topology
    for ax, family in zip(axes[:, 0], families):
        plan = wp.best[family]
        events = step_events(inputs, plan)
        t, inter = utilization(events, plan.step_s, topo.inter.bandwidth_Bps, "inter")
        ax.fill_between([x * 1e3 for x in t], [u * 100 for u in inter], step="mid",
                        color="#C44E52", alpha=0.8, label="network link")
        if topo.intra is not None:
            t, intra = utilization(events, plan.step_s, topo.intra.bandwidth_Bps, "intra")
            ax.plot([x * 1e3 for x in t], [u * 100 for u in intra], color="#4C72B0", lw=1,
                    label="inside the node")
        star = "★ " if plan is wp.recommended else ""
        ax.set_title(f"{star}{plan.layout.label}: mean {plan.inter_utilization:.2%} of the "
                     f"network link", fontsize=9, loc="left")
        ax.set_ylabel("% of link")
        ax.set_xlim(0, plan.step_s * 1e3)
        ax.set_ylim(0, max(1.0, max(u * 100 for u in inter) * 1.15))
    axes[-1, 0].set_xlabel("time in the step (ms)")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Link utilization over one step on {wp.workers:,} workers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plan_plots(inputs: PlanInputs, plans: list[WorkerPlan], out_dir: str | Path) -> list[Path]:
    """Write plan_step_time.png and plan_link_utilization_<N>.png (every N) into out_dir."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--plot {out_dir}: cannot create the folder ({exc}); "
                        f"choose a writable path") from None
    paths = [step_breakdown(plans, out / "plan_step_time.png")]
    for wp in plans:
        paths.append(link_utilization(inputs, wp, out / f"plan_link_utilization_{wp.workers}.png"))
    return paths
