"""Collectives on flat and hierarchical topologies."""

import pytest

from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link, collective_time
from rnnscope.costs.collectives import collective_cost
from rnnscope.plan.topology import Topology, group_collective

NET = Link.simple(5e-6, 50e9)
NODE = Link.simple(1e-6, 900e9)


def test_flat_group_uses_the_network_and_the_fastest_algorithm():
    topo = Topology(NET)
    S = 64 * 2**20
    cost = group_collective(topo, "all_reduce", S, 8)
    fastest = min(collective_time("all_reduce", S, 8, NET, a)
                  for a in ("ring", "tree", "halving_doubling"))
    assert cost.seconds == pytest.approx(fastest)
    assert cost.intra_bytes == 0 and cost.inter_bytes > 0


def test_group_inside_a_node_uses_the_intra_link():
    topo = Topology(NET, 8, NODE)
    cost = group_collective(topo, "all_gather", 8 * 4096, 8)
    assert cost.inter_bytes == 0
    assert cost.intra_bytes == collective_cost("all_gather", 8 * 4096, 8, "ring").sent_bytes


def test_hierarchical_all_reduce_is_node_reduce_scatter_net_all_reduce_node_all_gather():
    topo = Topology(NET, 8, NODE)
    S, size = 8 * 2**20, 64  # 8 nodes of 8
    fixed = {op: (op, "ring") for op in ("all_reduce", "reduce_scatter", "all_gather")}
    cost = group_collective(topo, "all_reduce", S, size, algorithms=fixed)
    expected = (collective_time("reduce_scatter", S, 8, NODE)
                + collective_time("all_reduce", S // 8, 8, NET)
                + collective_time("all_gather", S, 8, NODE))
    assert cost.seconds == pytest.approx(expected)
    assert cost.inter_bytes == collective_cost("all_reduce", S // 8, 8).sent_bytes


def test_stride_puts_one_member_per_node_on_the_network():
    topo = Topology(NET, 8, NODE)
    cost = group_collective(topo, "all_reduce", 4096, 4, stride=8)
    assert cost.intra_bytes == 0 and cost.inter_bytes > 0


def test_fixed_backend_algorithms_count_gloo_reduce_scatter_as_all_reduce():
    topo = Topology(NET)
    gloo = {"reduce_scatter": ("all_reduce", "ring")}
    cost = group_collective(topo, "reduce_scatter", 4096, 4, algorithms=gloo)
    assert cost.inter_bytes == collective_cost("all_reduce", 4096, 4).sent_bytes


def test_calibrated_op_links_replace_the_network_link():
    slow = Link.simple(1e-3, 1e6)
    topo = Topology(NET, op_links={"send": slow})
    assert group_collective(topo, "send", 1000, 2).seconds == pytest.approx(1e-3 + 1000 / 1e6)


def test_per_call_links_time_gloo_s_reduce_scatter_on_its_own():
    gloo = {"reduce_scatter": ("all_reduce", "ring")}
    ar, rs = Link.simple(1e-4, 1e9), Link.simple(5e-4, 1e9)
    links = {"all_reduce": ar, "reduce_scatter": rs}
    by_formula = group_collective(Topology(NET, op_links=links), "reduce_scatter", 8000, 2,
                                  element_size=4, algorithms=gloo)
    by_call = group_collective(Topology(NET, op_links=links, per_call=True), "reduce_scatter",
                               8000, 2, element_size=4, algorithms=gloo)
    assert by_formula.seconds == pytest.approx(2 * (1e-4 + 4000 / 1e9))  # ring: 2 steps of S/2
    assert by_call.seconds == pytest.approx(2 * (5e-4 + 4000 / 1e9))
    assert by_call.messages == by_formula.messages


def test_gpus_per_node_needs_intra():
    with pytest.raises(UserError, match="needs --intra"):
        Topology(NET, 8)
