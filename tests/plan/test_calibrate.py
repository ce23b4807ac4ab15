"""Calibration: regime fitting on known curves, the engine timing, a real gloo run."""

import pytest

from rnnscope.plan.alphabeta import Link, Regime
from rnnscope.plan.calibrate import _cut_points, fit_network, fit_regimes, measure_compute, \
    measure_network
from rnnscope.plan.strategies import RNNShape
from rnnscope.train.config import load_config


def test_one_straight_line_is_one_regime():
    points = {m: 40e-6 + m / 2e9 for m in (4, 64, 1024, 16384, 262144, 4194304)}
    (regime,) = fit_regimes(points).regimes
    assert regime.alpha_s == pytest.approx(40e-6, rel=1e-6)
    assert regime.bandwidth_Bps == pytest.approx(2e9, rel=1e-6)


def test_small_and_large_messages_get_their_own_regimes():
    truth = Link((Regime(2048, 50e-6, 1e9), Regime(float("inf"), 600e-6, 2e9)))
    sizes = (4, 64, 256, 1024, 4096, 16384, 65536, 1 << 20)
    link = fit_regimes({m: truth.message_time(m) for m in sizes})
    assert len(link.regimes) == 2
    for m in sizes:
        assert link.message_time(m) == pytest.approx(truth.message_time(m), rel=1e-6)


def test_cut_points_respect_the_minimum_group():
    assert _cut_points(9, 3, 3) == [(3, 6)]
    assert _cut_points(5, 2, 2) == [(2,), (3,)]
    assert _cut_points(4, 3, 2) == []


def test_fit_network_divides_by_the_critical_path():
    # a ring all-reduce on 2 ranks is 2 steps of S/2: per-step time = measured / 2
    measured = {"all_reduce": {S: 2 * (1e-4 + S / 2 / 1e9) for S in (8, 1024, 65536, 1 << 20)}}
    link = fit_network(measured, 2)["all_reduce"]
    assert link.message_time(512) == pytest.approx(1e-4 + 512 / 1e9, rel=1e-6)


def test_engine_speed_is_fitted_from_whole_training_steps():
    cfg = load_config(None, ["--model.hidden", "32", "--model.layers", "2",
                             "--data.seq_len", "10", "--data.batch_size", "16"])
    shape = RNNShape(input_size=1, hidden=32, layers=2, seq_len=10, batch=16)
    compute = measure_compute(shape, cfg, repeats=2)
    assert compute["flops_per_s"] > 0
    assert compute["step_overhead_s"] >= 0 and compute["step_fixed_s"] >= 0
    assert {(b, l, h) for b, l, h, _ in compute["points"]} == {
        (16, 2, 32), (8, 2, 32), (4, 2, 32), (16, 1, 32), (16, 2, 64)}


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_gloo_micro_benchmark_on_loopback():
    measured = measure_network(2, budget_s=0.01, timeout_s=200, sizes=(4, 4096))
    assert set(measured) == {"send", "all_reduce", "all_gather"}
    for op, times in measured.items():
        assert set(times) == {4, 4096}
        assert all(0 < t < 5 for t in times.values()), (op, times)
