"""Figure 5-5: how little a small h_1 still changes the later steps."""

import math

import pytest

from rnnscope.errors import UserError
from rnnscope.explain.forgetting import ForgettingSetting, forgetting


def test_default_reproduces_the_chapters_0_0008():
    rows = forgetting(ForgettingSetting())["rows"]
    assert [row["t"] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[1]["difference"] == pytest.approx(0.0008, abs=1e-5)
    differences = [row["difference"] for row in rows[1:]]
    assert all(b < a / 2 for a, b in zip(differences, differences[1:]))  # forgotten step by step


def test_product_of_derivatives_by_hand():
    setting = ForgettingSetting(h1=0.0007, steps=4, inputs=(0.5, -1.0, 2.0), w_x=0.7, w_h=1.5, b=-0.2)
    rows = forgetting(setting)["rows"]
    h, product = 0.0007, 1.0
    for row, x in zip(rows[1:], setting.inputs):
        z = 0.7 * x + 1.5 * h - 0.2
        h = 1 / (1 + math.exp(-z))
        product *= 1.5 * h * (1 - h)
        assert row["z"] == pytest.approx(z, rel=1e-12)
        assert row["h"] == pytest.approx(h, rel=1e-12)
        assert row["product"] == pytest.approx(product, rel=1e-12)
        assert row["difference"] == pytest.approx(row["linear_estimate"], rel=0.05)


@pytest.mark.parametrize("change,words", [
    ({"steps": 1}, "--steps"),
    ({"inputs": (1.0, 2.0)}, "--sequence"),
    ({"h1": float("nan")}, "finite"),
])
def test_bad_settings_are_user_errors(change, words):
    with pytest.raises(UserError, match=words):
        forgetting(ForgettingSetting(**change))
