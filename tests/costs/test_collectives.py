"""Wire bytes and messages of each collective: closed forms, sums over ranks, rounding."""

import pytest
from hypothesis import given, settings, strategies as st

from rnnscope.errors import UserError
from rnnscope.costs.collectives import (
    CollectiveCost, bus_factor, chunk_elements, collective_cost, network_bytes, network_messages,
)


def test_ring_all_reduce_matches_design_formula_when_n_divides_s():
    # docs/architecture.md: each rank sends 2(n-1)/n·S in 2(n-1) messages
    S, n = 4 * 1024, 8
    cost = collective_cost("all_reduce", S, n)
    assert cost == CollectiveCost(2 * (n - 1) * S // n, 2 * (n - 1) * S // n, 2 * (n - 1))


@pytest.mark.parametrize("op", ["all_gather", "reduce_scatter"])
def test_ring_gather_and_scatter_send_n_minus_1_chunks(op):
    S, n = 6000, 6
    assert collective_cost(op, S, n) == CollectiveCost(5000, 5000, 5)


def test_chunks_put_the_remainder_first():
    assert chunk_elements(10, 4) == [3, 3, 2, 2]
    assert chunk_elements(3, 5) == [1, 1, 1, 0, 0]


def test_ring_uneven_split_per_rank_and_busiest():
    # 10 elements on 4 ranks: chunks 3,3,2,2; rank k sends all but chunks k and k+1
    sent = [collective_cost("all_reduce", 10, 4, rank=k).sent_bytes for k in range(4)]
    assert sent == [20 - 6, 20 - 5, 20 - 4, 20 - 5]
    assert collective_cost("all_reduce", 10, 4).sent_bytes == 16  # the busiest rank


@settings(max_examples=60, deadline=None)
@given(elements=st.integers(0, 5000), n=st.integers(2, 40), esize=st.sampled_from([1, 2, 4, 8]),
       op=st.sampled_from(["all_reduce", "all_gather", "reduce_scatter"]))
def test_ring_sums_over_ranks_are_exact(elements, n, esize, op):
    S = elements * esize
    costs = [collective_cost(op, S, n, rank=k, element_size=esize) for k in range(n)]
    phases = 2 if op == "all_reduce" else 1
    assert sum(c.sent_bytes for c in costs) == phases * (n - 1) * S
    assert sum(c.received_bytes for c in costs) == phases * (n - 1) * S
    assert all(c.messages == phases * (n - 1) for c in costs)
    busiest = collective_cost(op, S, n, element_size=esize)
    assert busiest.sent_bytes == max(c.sent_bytes for c in costs)


@settings(max_examples=60, deadline=None)
@given(elements=st.integers(0, 3000), n=st.integers(2, 70))
def test_halving_doubling_sums_over_ranks_are_exact(elements, n):
    p = 1 << (n.bit_length() - 1)
    e = n - p
    costs = [collective_cost("all_reduce", elements, n, "halving_doubling", rank=k)
             for k in range(n)]
    # every level moves S·p/2^j bytes among the p participants; each fold moves S twice
    assert sum(c.sent_bytes for c in costs) == 2 * (p - 1) * elements + 2 * e * elements
    assert sum(c.received_bytes for c in costs) == sum(c.sent_bytes for c in costs)
    busiest = collective_cost("all_reduce", elements, n, "halving_doubling")
    assert busiest.sent_bytes == max(c.sent_bytes for c in costs)


def test_halving_doubling_power_of_two_equals_ring_bytes_in_log_messages():
    S, n = 1 << 20, 16
    hd = collective_cost("all_reduce", S, n, "halving_doubling")
    ring = collective_cost("all_reduce", S, n)
    assert hd.sent_bytes == ring.sent_bytes
    assert hd.messages == 2 * 4 and ring.messages == 2 * 15


def test_binomial_tree_root_and_leaf():
    S, n = 100, 8
    assert collective_cost("broadcast", S, n, "tree", rank=0) == CollectiveCost(300, 0, 3)
    assert collective_cost("broadcast", S, n, "tree", rank=7) == CollectiveCost(0, 100, 0)
    assert collective_cost("broadcast", S, n, "tree", rank=4) == CollectiveCost(200, 100, 2)
    broadcasts = [collective_cost("broadcast", S, n, "tree", rank=k) for k in range(n)]
    assert sum(c.sent_bytes for c in broadcasts) == (n - 1) * S  # every rank gets it once
    assert collective_cost("all_reduce", S, n, "tree").messages == 3


def test_point_to_point_counts_each_message_once():
    assert collective_cost("send", 64, 2) == CollectiveCost(64, 0, 1)
    assert collective_cost("irecv", 64, 2) == CollectiveCost(0, 64, 0)


def test_single_rank_sends_nothing():
    assert collective_cost("all_reduce", 4096, 1) == CollectiveCost(0, 0, 0)


def test_bus_factor_follows_nccl_tests():
    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    assert bus_factor("all_gather", 4) == pytest.approx(3 / 4)
    assert bus_factor("reduce_scatter", 4) == pytest.approx(3 / 4)
    assert bus_factor("broadcast", 4) == 1.0 and bus_factor("send", 2) == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: collective_cost("all_to_all", 8, 2), "unknown collective op 'all_to_all'"),
    (lambda: collective_cost("all_gather", 8, 2, "tree"), "not available for all_gather"),
    (lambda: collective_cost("all_reduce", 10, 2, element_size=4), "whole number of 4-byte"),
    (lambda: collective_cost("all_reduce", 8, 0), "world size 0"),
    (lambda: collective_cost("all_reduce", 8, 2, rank=2), "rank 2 is outside"),
    (lambda: collective_cost("all_gather", 8, 6, "halving_doubling"), "power-of-two world size"),
])
def test_bad_input_raises_user_error(call, match):
    with pytest.raises(UserError, match=match):
        call()


@settings(max_examples=40, deadline=None)
@given(elements=st.integers(0, 2000), n=st.integers(1, 40),
       op_alg=st.sampled_from([("all_reduce", "ring"), ("all_gather", "ring"),
                               ("reduce_scatter", "ring"), ("broadcast", "ring"),
                               ("all_reduce", "tree"), ("broadcast", "tree"),
                               ("all_reduce", "halving_doubling"),
                               ("all_gather", "halving_doubling"),
                               ("reduce_scatter", "halving_doubling")]))
def test_network_bytes_is_the_sum_over_ranks(elements, n, op_alg):
    op, algorithm = op_alg
    if algorithm == "halving_doubling" and op != "all_reduce":
        n = 1 << (n.bit_length() - 1)  # these need a power of two
    costs = [collective_cost(op, elements, n, algorithm, rank=k) for k in range(n)]
    assert network_bytes(op, elements, n, algorithm) == sum(c.sent_bytes for c in costs)
    assert network_messages(op, n, algorithm) == sum(c.messages for c in costs)
