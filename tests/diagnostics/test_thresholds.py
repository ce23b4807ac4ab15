"""The derivative-ratio rule reproduces the chapter's sigmoid thresholds and carries them to tanh."""

import pytest

from rnnscope.diagnostics.thresholds import SATURATED_RATIO, SLOW_RATIO, thresholds


def test_ratios_are_the_sigmoid_derivative_at_the_chapter_thresholds():
    assert SLOW_RATIO == pytest.approx(0.0898 / 0.25, rel=1e-3)
    assert SATURATED_RATIO == pytest.approx(0.004054 / 0.25, rel=1e-3)


def test_thresholds_per_activation():
    sigmoid, tanh, relu = thresholds("sigmoid"), thresholds("tanh"), thresholds("relu")
    assert (sigmoid.slow_z, sigmoid.saturated_z) == pytest.approx((2.2, 5.5), abs=1e-9)
    assert (tanh.slow_z, tanh.saturated_z) == pytest.approx((1.1, 2.75), abs=1e-9)  # tanh(z) = 2σ(2z) − 1
    assert relu.slow_z is None and relu.describe("saturated") == "z ≤ 0"
    assert sigmoid.describe("saturated") == "|z| > 5.5"
