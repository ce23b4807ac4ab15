"""Figure 5-4's facts, and the chapter's misplaced 0.0998."""

import pytest

from rnnscope.explain.curve import curve_facts, default_z


def _row(result, z):
    return next(row for row in result["rows"] if row["z"] == z)


def test_sigmoid_facts_at_the_chapter_values():
    result = curve_facts()
    assert {-7.0, -5.5, -5.0, -2.2, 2.2, 5.5} <= {row["z"] for row in result["rows"]}
    assert _row(result, -5.0)["f"] == pytest.approx(0.0067, abs=5e-5)
    assert _row(result, -2.2)["f"] == pytest.approx(0.0998, abs=5e-5)
    assert _row(result, -7.0)["f"] == pytest.approx(0.0009, abs=5e-5)
    assert _row(result, 2.2)["derivative"] == pytest.approx(0.090, abs=5e-4)
    assert _row(result, 5.5)["derivative"] == pytest.approx(0.0040, abs=1e-4)
    assert _row(result, 0.0)["ratio"] == 1.0
    assert _row(result, -7.0)["zone"] == "saturated"
    assert _row(result, -5.0)["zone"] == "slow learning"
    assert _row(result, 0.0)["zone"] == "learns"
    assert _row(result, 2.2)["zone"].startswith("threshold")
    note = " ".join(result["notes"])
    assert "0.0998" in note and "σ(−2.2)" in note and "σ(−5) = 0.0067" in note


def test_tanh_gets_the_same_ratios_at_half_the_z():
    result = curve_facts(activation="tanh")
    assert result["slow_z"] == pytest.approx(1.1, abs=1e-9)
    assert result["saturated_z"] == pytest.approx(2.75, abs=1e-9)
    assert 1.1 in default_z("tanh") and -2.75 in default_z("tanh")
    assert _row(result, 1.1)["ratio"] == pytest.approx(result["slow_ratio"], rel=1e-9)
    assert not any("0.0998" in note for note in result["notes"])


def test_relu_has_no_slow_zone():
    result = curve_facts((-1.0, 1.0), activation="relu")
    assert [row["zone"] for row in result["rows"]] == ["saturated", "learns"]
    assert result["slow_z"] is None
