"""The planner's pictures: one panel per layout family, one utilization row per family."""

import pytest

from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link
from rnnscope.plan.compute import get_device
from rnnscope.plan.recommend import plan_workers
from rnnscope.plan.simulate import PlanInputs
from rnnscope.costs.traffic import RNNShape
from rnnscope.plan.topology import Topology
from rnnscope.report.plan_plots import write_plan_plots

INPUTS = PlanInputs(RNNShape(hidden=64, layers=2, seq_len=40, batch=8), get_device("a100"),
                    Topology(Link.simple(5e-6, 50e9), 4, Link.simple(1e-6, 300e9)), chunk=8)


def test_writes_the_breakdown_and_one_utilization_plot_per_worker_count(tmp_path):
    plans = [plan_workers(INPUTS, n) for n in (4, 8)]
    paths = write_plan_plots(INPUTS, plans, tmp_path / "plots")
    assert [p.name for p in paths] == ["plan_step_time.png", "plan_link_utilization_4.png",
                                       "plan_link_utilization_8.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_unwritable_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create the folder"):
        write_plan_plots(INPUTS, [plan_workers(INPUTS, 4)], blocker / "plots")
