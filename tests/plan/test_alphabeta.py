"""Alpha-beta times: textbook closed forms, regimes, and picking the fastest algorithm."""

import math

import pytest

from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link, Regime, best_algorithm, collective_time, message_schedule

ALPHA, BW = 5e-6, 50e9  # 5 µs, 400 Gbit/s


def test_ring_all_reduce_is_2_n_minus_1_alpha_plus_bandwidth_term():
    S, n = 64 * 2**20, 8
    t = collective_time("all_reduce", S, n, Link.simple(ALPHA, BW))
    assert t == pytest.approx(2 * (n - 1) * ALPHA + 2 * (n - 1) / n * S / BW)


def test_halving_doubling_is_log_latency_same_bandwidth():
    S, n = 64 * 2**20, 16
    t = collective_time("all_reduce", S, n, Link.simple(ALPHA, BW), "halving_doubling")
    assert t == pytest.approx(2 * 4 * ALPHA + 2 * (n - 1) / n * S / BW)


def test_binomial_tree_and_point_to_point():
    link = Link.simple(ALPHA, BW)
    assert collective_time("broadcast", 1000, 8, link, "tree") == pytest.approx(3 * (ALPHA + 1000 / BW))
    assert collective_time("send", 1000, 2, link) == pytest.approx(ALPHA + 1000 / BW)


def test_regimes_pick_alpha_and_beta_by_message_size():
    link = Link((Regime(1024, 1e-4, 1e8), Regime(math.inf, 1e-3, 1e9)))
    assert link.message_time(1000) == pytest.approx(1e-4 + 1000 / 1e8)
    assert link.message_time(4096) == pytest.approx(1e-3 + 4096 / 1e9)
    assert link.alpha_s == 1e-4 and link.bandwidth_Bps == 1e9


def test_schedule_of_uneven_ring_uses_the_largest_chunk():
    assert message_schedule("all_reduce", 10, 4) == [(6, 3)]
    assert message_schedule("all_reduce", 4096, 6, "halving_doubling") == [
        (1, 4096), (1, 2048), (1, 1024), (1, 1024), (1, 2048), (1, 4096)]


def test_best_algorithm_small_messages_at_scale_avoid_the_ring():
    link = Link.simple(ALPHA, BW)
    name, _ = best_algorithm("all_reduce", 4096, 4096, link)
    assert name in ("tree", "halving_doubling")
    name, _ = best_algorithm("all_reduce", 1 << 30, 8, link)
    assert name in ("ring", "halving_doubling")
    name, _ = best_algorithm("all_gather", 1 << 20, 6, link)
    assert name == "ring"  # halving-doubling needs a power of two


def test_bad_link_raises_user_error():
    with pytest.raises(UserError, match="bandwidth > 0"):
        Link.simple(1e-6, 0.0)
