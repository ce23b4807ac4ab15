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
    """One column per layout family: stacked compute, bubble and exposed comm per worker count
    (top), and samples per second (bottom), the quantity the recommendation (★) is chosen by."""
    families = [f for f in FAMILIES + ("single",) if any(f in wp.best for wp in plans)]
    fig, axes = plt.subplots(2, len(families), figsize=(3.2 * len(families) + 1, 6.4),
                             sharey="row", sharex="col", squeeze=False,
                             gridspec_kw={"height_ratios": (3, 2)})
    for top, bottom, family in zip(axes[0], axes[1], families):
        labels = []
        for i, wp in enumerate(plans):
            labels.append(f"{wp.workers:,}")
            plan = wp.best.get(family)
            base = 0.0
            for attr, name, color in PARTS:
                value = getattr(plan, attr) * 1e3 if plan else 0.0
                top.bar(i, value, bottom=base, color=color, label=name if i == 0 else None)
                base += value
            if plan is None:
                top.annotate("n/a", (i, 0), ha="center", va="bottom", fontsize=8, color="gray")
                continue
            bottom.bar(i, plan.samples_per_s, color="#55A868")
            if plan is wp.recommended:
                bottom.annotate("★", (i, plan.samples_per_s), ha="center", va="bottom", fontsize=12)
        bottom.set_xticks(range(len(labels)), labels)
        bottom.set_xlabel("workers")
        top.set_title(family)
    axes[0][0].set_ylabel("step time (ms)")
    axes[1][0].set_ylabel("samples per second")
    axes[0][0].legend(fontsize=8, loc="upper left")
    for ax in axes[1]:
        ax.set_yscale("log")  # worker counts span orders of magnitude, and so does throughput
        ax.margins(y=0.15)  # room for the ★ above the tallest bar
    fig.suptitle("One training step, best layout of each family\n"
                 "★ = recommended: the most samples per second for that worker count")
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
