"""The worked example's numbers are the engine's own, and they are right."""

import math

import pytest
import torch

from rnnscope.engine.bptt import elman_layer
from rnnscope.errors import UserError
from rnnscope.explain.walkthrough import Setting, initial_weights, walkthrough


def _as_tensor(value) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


@pytest.mark.parametrize("time_reduction", ["sum", "mean"])
@pytest.mark.parametrize("hidden,readout", [(1, "none"), (1, "linear"), (3, "linear")])
def test_applied_adjustments_equal_lr_times_engine_gradient(time_reduction, hidden, readout):
    setting = Setting(sequence=(0.3, -1.0, 0.7, 0.2), target=0.4, lr=0.3, hidden=hidden, readout=readout,
                      time_reduction=time_reduction, seed=3)
    result = walkthrough(setting)
    # the engine's gradients, computed here independently of the walkthrough
    w = initial_weights(setting)
    x = torch.tensor(setting.sequence, dtype=torch.float64).view(-1, 1, 1)
    _, h_T = elman_layer(x, torch.zeros(1, hidden, dtype=torch.float64), w["W_ih"], w["W_hh"], w["b"], None,
                         activation="sigmoid", time_reduction=time_reduction)
    y_hat = torch.nn.functional.linear(h_T, w["w_y"], w["b_y"]) if readout == "linear" else h_T
    torch.nn.functional.mse_loss(y_hat, torch.full_like(y_hat, 0.4)).backward()
    for name, key in (("w_h", "W_hh"), ("w_x", "W_ih"), ("b", "b")):
        applied = _as_tensor(result["applied"][name])
        torch.testing.assert_close(applied, setting.lr * w[key].grad.reshape(applied.shape), rtol=0, atol=1e-12)
        # the per-step adjustments shown in the backward table add up to the accumulated value
        steps = sum(_as_tensor(row[f"adjust_{name}"]) for row in result["backward"])
        scale = 1 / len(setting.sequence) if time_reduction == "mean" else 1.0
        torch.testing.assert_close(steps * scale, applied, rtol=0, atol=1e-12)
    assert result["check"] <= 1e-12


def test_numbers_match_an_unrolled_autograd_reference():
    setting = Setting()
    result = walkthrough(setting)
    w_x, w_h, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.5, 0.8, 0.1))
    h, zs = torch.tensor(0.0, dtype=torch.float64), []
    for x in setting.sequence:  # forward pass went well?
        z = w_x * x + w_h * h + b
        zs.append(z)
        h = torch.sigmoid(z)
    loss = (h - setting.target) ** 2
    loss.backward()
    for row, z in zip(result["forward"], zs):
        assert row["z"] == pytest.approx(float(z.detach()), abs=1e-15)
    h = h.detach()
    assert result["prediction"] == pytest.approx(float(h), abs=1e-15)
    assert result["loss"] == pytest.approx(float(loss.detach()), abs=1e-15)
    assert result["output_error"] == pytest.approx(2 * (float(h) - setting.target), abs=1e-15)
    for name, param in (("w_x", w_x), ("w_h", w_h), ("b", b)):  # backward pass went well?
        assert result["applied"][name] == pytest.approx(setting.lr * float(param.grad), abs=1e-15)
        assert result["updated"][name] == pytest.approx(float(param.detach() - setting.lr * param.grad), abs=1e-15)


def test_error_term_is_error_times_derivative_last_step_first():
    result = walkthrough(Setting())
    assert [row["t"] for row in result["backward"]] == [3, 2, 1]
    for row, fwd in zip(result["backward"], reversed(result["forward"])):
        sigma = 1 / (1 + math.exp(-fwd["z"]))
        assert row["derivative"] == pytest.approx(sigma * (1 - sigma), rel=1e-12)
        assert row["error_term"] == pytest.approx(row["error"] * row["derivative"], rel=1e-12)
        assert row["adjust_w_x"] == pytest.approx(0.5 * row["error_term"] * fwd["x"], rel=1e-12)
        assert row["adjust_w_h"] == pytest.approx(0.5 * row["error_term"] * fwd["h_prev"], rel=1e-12, abs=1e-300)
    assert result["backward"][0]["error"] == pytest.approx(result["output_error"], rel=1e-12)


def test_mean_is_sum_over_T_and_loss_falls_over_epochs():
    total = walkthrough(Setting(epochs=1))
    mean = walkthrough(Setting(epochs=1, time_reduction="mean"))
    for name in ("w_h", "w_x", "b"):
        assert mean["applied"][name] == pytest.approx(total["applied"][name] / 3, rel=1e-12)
    losses = [row["loss"] for row in walkthrough(Setting(epochs=6))["epochs"]]
    assert all(b < a for a, b in zip(losses, losses[1:]))


@pytest.mark.parametrize("change,words", [
    ({"sequence": ()}, "--sequence"),
    ({"hidden": 2}, "--readout linear"),
    ({"hidden": 20, "readout": "linear"}, "--hidden"),
    ({"lr": -1.0}, "--lr"),
    ({"epochs": 0}, "--epochs"),
    ({"activation": "swish"}, "swish"),
])
def test_bad_settings_are_user_errors(change, words):
    with pytest.raises(UserError, match=words.replace("+", r"\+")):
        walkthrough(Setting(**change))
