"""Choosing a layout for N workers, and the one-sentence reason."""

from rnnscope.plan.alphabeta import Link
from rnnscope.plan.compute import get_device
from rnnscope.plan.recommend import layouts, plan_workers
from rnnscope.costs.layout import ParallelLayout
from rnnscope.plan.simulate import PlanInputs
from rnnscope.costs.traffic import RNNShape
from rnnscope.plan.topology import Topology

SHAPE = RNNShape(input_size=1, hidden=1024, layers=4, seq_len=1000, batch=32)


def inputs(**kw):
    return PlanInputs(SHAPE, get_device("h100"), Topology(Link.simple(5e-6, 50e9)), **kw)


def test_layouts_enumerate_every_family_that_fits():
    found = layouts(inputs(), 8)
    assert ParallelLayout(8, 1, 1) in found["data"]
    assert ParallelLayout(1, 1, 8) in found["hidden_split"]
    assert found["pipeline"] == []  # 8 stages > 4 layers
    assert ParallelLayout(2, 4, 1) in found["data×pipeline"]
    assert all(layout.world == 8 for family in found.values() for layout in family)


def test_weak_scaling_picks_data_parallel_and_says_why():
    result = plan_workers(inputs(), 512)
    assert result.recommended.layout == ParallelLayout(512, 1, 1)
    assert result.recommended.efficiency > 0.9
    assert result.reason.startswith("data (d=512) is fastest on 512 workers")
    assert result.reason.count(".") >= 1 and "\n" not in result.reason
    assert "pipeline: 512 stages > 4 layer(s)" in "; ".join(
        f"{k}: {v}" for k, v in result.infeasible.items())


def test_hidden_split_is_held_back_by_latency_bound_collectives():
    result = plan_workers(inputs(scaling="strong"), 64)
    hidden = result.best["hidden_split"]
    assert hidden.exposed_comm_s > hidden.compute_s  # 2·T·L collectives on the critical path
    assert "data" in result.infeasible  # 64 replicas > global batch 32


def test_a_reason_warns_when_no_layout_beats_one_device():
    result = plan_workers(inputs(scaling="strong"), 4096)
    assert "slower than one device" in result.reason


def test_plans_4096_workers_with_a_thousand_steps():
    result = plan_workers(inputs(), 4096)
    assert result.recommended.layout == ParallelLayout(4096, 1, 1)
    assert set(result.best) == {"data", "data×pipeline", "data×hidden_split"}
    assert result.infeasible["hidden_split"] == "4096 does not divide hidden 1024"


def test_one_worker_is_the_single_device_held_back_by_its_sequence():
    result = plan_workers(inputs(), 1)
    assert result.recommended.layout == ParallelLayout()
    assert "only layout that fits" in result.reason
    assert "time steps run one after the other" in result.reason


def test_reason_names_the_runner_ups_exposed_gradient_all_reduces():
    slow = PlanInputs(RNNShape(hidden=16, layers=1, seq_len=40, batch=32), get_device("h100"),
                      Topology(Link.simple(5e-6, 50e9)))
    result = plan_workers(slow, 64)
    assert "gradient all-reduces" in result.reason and "exposed" in result.reason
