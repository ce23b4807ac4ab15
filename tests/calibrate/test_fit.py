"""Calibration: regime fitting on known curves, the engine timing, a real gloo run."""

import pytest

from rnnscope.plan.alphabeta import Link, Regime
from rnnscope.calibrate.fit import _cut_points, fit_compute, fit_network, fit_regimes, \
    interpolate_regimes
from rnnscope.calibrate.speed import compute_shapes, measure_compute
from rnnscope.costs.traffic import RNNShape
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


def test_interpolated_regimes_go_through_every_point():
    points = {8: 3e-4, 1024: 5e-4, 8192: 4e-4, 65536: 9e-4, 1 << 20: 5e-3}
    link = interpolate_regimes(points)
    for m, t in points.items():
        assert link.message_time(m) == pytest.approx(t, rel=1e-9)
    assert link.message_time(4096) == pytest.approx(5e-4)  # a falling segment is flat
    assert link.message_time(2 << 20) > 5e-3  # the last segment goes on rising
    assert all(r.alpha_s >= 0 and r.bandwidth_Bps > 0 for r in link.regimes)


def test_interpolation_keeps_alpha_non_negative():
    link = interpolate_regimes({100: 1e-6, 200: 1e-3})  # the line would cross zero
    assert link.regimes[0].alpha_s == 0.0
    assert link.message_time(200) == pytest.approx(1e-3)
    (one,) = interpolate_regimes({64: 2e-4}).regimes
    assert one.alpha_s == 2e-4


def test_reduce_scatter_is_fitted_on_gloo_s_all_reduce_steps():
    measured = {"reduce_scatter": {S: 2 * (1e-4 + S / 2 / 1e9) for S in (8, 1024, 65536)}}
    link = fit_network(measured, 2, interpolate=True)["reduce_scatter"]
    assert link.message_time(512) == pytest.approx(1e-4 + 512 / 1e9, rel=1e-6)


def test_engine_speed_is_fitted_from_whole_training_steps():
    cfg = load_config(None, ["--model.hidden", "32", "--model.layers", "2",
                             "--data.seq_len", "10", "--data.batch_size", "16"])
    shape = RNNShape(input_size=1, hidden=32, layers=2, seq_len=10, batch=16)
    compute = measure_compute(shape, cfg, repeats=2)
    assert compute.flops_per_s > 0
    assert compute.step_overhead_s >= 0 and compute.step_fixed_s >= 0
    assert {(b, l, h) for b, l, h, _ in compute.points} == {
        (16, 2, 32), (8, 2, 32), (4, 2, 32), (16, 1, 32), (16, 2, 64)}


def test_compute_fit_recovers_the_terms_that_made_the_points():
    shape = RNNShape(input_size=1, hidden=32, layers=2, seq_len=10, batch=16)
    overhead, rate, fixed = 5e-6, 2e10, 3e-4

    def seconds(b, l, h):
        flops = 10 * sum(6 * b * h * ((1 if k == 0 else h) + h) for k in range(l))
        return 3 * overhead * 10 * l + flops / rate + fixed

    points = [(b, l, h, seconds(b, l, h)) for b, l, h in compute_shapes(shape)]
    fit = fit_compute(points, shape)
    assert fit.step_overhead_s == pytest.approx(overhead, rel=1e-6)
    assert fit.flops_per_s == pytest.approx(rate, rel=1e-6)
    assert fit.step_fixed_s == pytest.approx(fixed, rel=1e-6)


def test_interleaved_seconds_take_turns_and_leave_out_the_bursts(monkeypatch):
    from rnnscope.calibrate import looptime

    calls, now = [], [0.0]
    # each run's calls take these seconds (the first: its warm-up); a's last call is a burst
    elapsed = {"a": iter([0.0] + [1.0] * 9 + [50.0]), "b": iter([0.0] + [2.0] * 10)}

    def runner(name):
        def run():
            calls.append(name)
            now[0] += next(elapsed[name])
        return run

    monkeypatch.setattr(looptime.time, "perf_counter", lambda: now[0])
    seconds = looptime.interleaved_seconds([runner("a"), None, runner("b")], 10,
                                           sync=lambda: calls.append("sync"))
    assert calls[:3] == ["a", "b", "sync"] and calls[3:] == ["a", "b"] * 10
    assert seconds == [1.0, 0.0, 2.0]  # the 50 s burst is trimmed away
