"""Pooled calibrations: several measurements of one configuration, fitted from their medians."""

import dataclasses
import statistics

import pytest

from rnnscope.calibrate import machine
from rnnscope.calibrate.fit import ComputeFit, fit_compute
from rnnscope.calibrate.loopback import OPS, SIZES, Measured, pooled
from rnnscope.calibrate.pattern import Patterns, payload_sizes
from rnnscope.calibrate.speed import compute_shapes
from rnnscope.plan.from_config import shape_from_config
from rnnscope.train.config import load_config

CFG = load_config(None, ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "10",
                         "--data.batch_size", "8", "--parallel.chunk", "5"])
SHAPE = shape_from_config(CFG)


def sample(pace: float, sizes=(4, 1024, 65536), ways: int = 2) -> Measured:
    """A calibration of SHAPE on a machine `pace` times as slow as the first: every figure
    scales with it (the engine's steps, the code paths, the messages)."""
    network = {op: {size: pace * (2e-4 + size / 1e9) for size in sizes} for op in OPS}
    points = [[b, l, h, pace * (1e-3 + 2e-6 * b * l * h)] for b, l, h in compute_shapes(SHAPE)]
    compute = fit_compute([tuple(p) for p in points], SHAPE)
    patterns = Patterns(split_ways=ways, split_s=pace * 0.02, stages=2, chunk=5,
                        stage_s=pace * 0.006, whole_s=pace * 0.005, ddp_s=pace * 0.0045,
                        plain_s=pace * 0.004, split_real_s=pace * 0.05,
                        split_real_comm_s=pace * 0.03, pipe_real_s=pace * 0.01,
                        data_real_s=pace * 0.006, data_real_comm_s=pace * 0.001)
    return Measured(network, dataclasses.replace(compute, points=points), patterns)


def test_one_calibration_is_its_own_pool():
    one = sample(1.0)
    assert pooled([one], SHAPE) is one


def test_every_figure_is_the_median_of_the_calibrations():
    paces = (1.0, 1.6, 1.1)  # a slow minute in the middle
    pool = pooled([sample(p) for p in paces], SHAPE)
    typical = sample(1.1)  # the median pace
    assert all(pool.network[op] == pytest.approx(typical.network[op]) for op in OPS)
    assert [p[3] for p in pool.compute.points] == pytest.approx(
        [p[3] for p in typical.compute.points])
    # the engine is refitted from the median points, not the median of three fits
    refit = fit_compute([tuple(p) for p in pool.compute.points], SHAPE)
    assert pool.compute.flops_per_s == pytest.approx(refit.flops_per_s)
    assert dataclasses.asdict(pool.patterns) == pytest.approx(dataclasses.asdict(typical.patterns))
    assert pool.patterns.split_ways == 2 and pool.patterns.chunk == 5


def test_the_median_ignores_one_wild_calibration_where_a_mean_would_not():
    pool = pooled([sample(1.0), sample(1.05), sample(3.0)], SHAPE)
    assert pool.patterns.data_real_s == pytest.approx(1.05 * 0.006)
    assert statistics.mean([1.0, 1.05, 3.0]) * 0.006 > 1.5 * pool.patterns.data_real_s


def test_untimed_figures_stay_untimed():
    samples = [dataclasses.replace(sample(p), patterns=dataclasses.replace(
        sample(p).patterns, ddp_s=None, plain_s=None)) for p in (1.0, 2.0)]
    pool = pooled(samples, SHAPE)
    assert pool.patterns.ddp_s is None and pool.patterns.plain_s is None
    network_only = pooled([Measured(s.network) for s in samples])
    assert network_only.compute is None and network_only.patterns is None
    assert network_only.network["send"][4] == pytest.approx(1.5 * 2e-4 + 6e-9)


@pytest.mark.parametrize("other, what", [
    (sample(1.0, sizes=(4, 1024)), "message sizes"),
    (sample(1.0, ways=4), "splits, stages or chunks"),
    (dataclasses.replace(sample(1.0), compute=ComputeFit([[1, 1, 8, 1e-3]], 1e-6, 1e9, 1e-3)),
     "engine shapes"),
])
def test_calibrations_of_different_configurations_are_not_pooled(other, what):
    with pytest.raises(ValueError, match=what):
        pooled([sample(1.0), other], SHAPE)


def test_pooling_needs_calibrations_and_a_shape_to_refit_at():
    with pytest.raises(ValueError, match="no calibration"):
        pooled([])
    with pytest.raises(ValueError, match="shape"):
        pooled([sample(1.0), sample(2.0)])


def test_calibrated_inputs_fits_the_median_of_earlier_and_new_measurements(monkeypatch):
    paces = iter([1.6, 1.1])  # measured now, one after another
    calls = []

    def measure(world, budget_s, timeout_s, sizes, compute_args):
        calls.append((world, compute_args[0]))
        return sample(next(paces), sizes)

    monkeypatch.setattr(machine, "measure_network", measure)
    sizes = set(SIZES) | set(payload_sizes(SHAPE, CFG.parallel.chunk, CFG.parallel.bucket_mb))
    earlier = [sample(1.0, tuple(sorted(sizes)))]  # as the calibration measures them
    inputs, workers, calibration = machine.calibrated_inputs(SHAPE, CFG, world=2, repeats=2,
                                                             earlier=earlier)
    assert len(calls) == 2 and workers == [2, 4]
    assert len(calibration.samples) == 3 and calibration.samples[0] is earlier[0]
    assert "the median of 3 calibrations" in calibration.summary
    assert calibration.to_dict()["calibrations"] == 3
    assert calibration.patterns.pipe_real_s == pytest.approx(1.1 * 0.01)
    assert inputs.device.source == "rnnscope plan --calibrate"
    # one measurement and no earlier ones: its own figures, as before pooling
    paces = iter([1.6])
    _, _, alone = machine.calibrated_inputs(SHAPE, CFG, world=2)
    assert alone.patterns.pipe_real_s == pytest.approx(1.6 * 0.01)
    assert "median" not in alone.summary and alone.to_dict()["calibrations"] == 1
    with pytest.raises(ValueError, match="repeats must be ≥ 1"):
        machine.calibrated_inputs(SHAPE, CFG, repeats=0)
