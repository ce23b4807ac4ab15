"""Events of one step on the busiest worker, and utilization over the step."""

import pytest

from rnnscope.plan.alphabeta import Link
from rnnscope.plan.compute import Device
from rnnscope.costs.layout import ParallelLayout
from rnnscope.plan.simulate import PlanInputs, simulate
from rnnscope.costs.traffic import RNNShape
from rnnscope.plan.events import step_events
from rnnscope.plan.timeline import utilization
from rnnscope.plan.topology import Topology

DEVICE = Device("test", {4: 1e12}, utilization=1.0, step_overhead_s=1e-5)
SHAPE = RNNShape(input_size=4, hidden=64, layers=3, seq_len=30, batch=8)
BW = 1e9


@pytest.mark.parametrize("layout", [ParallelLayout(data=4), ParallelLayout(hidden_split=4), ParallelLayout(pipeline=3),
                                    ParallelLayout(data=2, pipeline=3), ParallelLayout(data=2, hidden_split=2)])
def test_events_carry_the_plans_bytes_inside_the_step(layout):
    inp = PlanInputs(SHAPE, DEVICE, Topology(Link.simple(2e-5, BW)), chunk=7)
    plan = simulate(inp, layout)
    events = step_events(inp, plan)
    if layout.pipeline == 1 or layout.pipeline > 2:
        assert sum(e.inter_bytes for e in events) == plan.inter_bytes
    assert all(0 <= e.start <= e.end <= plan.step_s * (1 + 1e-9) for e in events)
    t, util = utilization(events, plan.step_s, BW, bins=100)
    mean = sum(util) / len(util)
    assert mean == pytest.approx(sum(e.inter_bytes for e in events) / plan.step_s / BW)
    assert max(util) <= 1.0 + 1e-9  # one link never carries more than its bandwidth
