"""Trace of LSTM and GRU layers: gates, c_t, h_t, error terms and the cell-state error equal
autograd's on the unrolled cell, and the per-step weight adjustments add up to the gradients."""

from __future__ import annotations

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn
from rnnscope.engine import GATES, GatedLayerTrace, Trace

T, B, I, H = 5, 3, 2, 4


def traced(cell: str, weight_adjustments=True, time_reduction="sum", layers=2):
    torch.manual_seed(0)
    rnn = {"lstm": rnnscope.nn.LSTM, "gru": rnnscope.nn.GRU}[cell](
        I, H, layers, time_reduction=time_reduction).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    with Trace(weight_adjustments=weight_adjustments) as trace:
        out, _ = rnn(x)
        out.sin().pow(2).sum().backward()
    return rnn, x, out, trace


def autograd_steps(cell: str, rnn, x):
    """The one-layer cell unrolled, with every per-step quantity kept and its gradient retained."""
    W_ih, W_hh, b_ih, b_hh = (p.detach().clone().requires_grad_(True) for p in rnn.all_weights[0])
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    kept = {"h": [], "c": [], "a": []}
    for t in range(T):
        if cell == "lstm":
            a = x[t] @ W_ih.T + h @ W_hh.T + b_ih + b_hh
            a.retain_grad()
            i, f, g, o = a.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            c.retain_grad()
            h = torch.sigmoid(o) * torch.tanh(c)
            kept["c"].append(c)
        else:
            xr, xz, xn = (x[t] @ W_ih.T + b_ih).chunk(3, dim=-1)
            hr, hz, hn = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
            a_rz = torch.cat([xr + hr, xz + hz], dim=-1)
            r, z = torch.sigmoid(a_rz).chunk(2, dim=-1)
            a_n = xn + r * hn
            a_rz.retain_grad()
            a_n.retain_grad()
            a = (a_rz, a_n)
            h = (1 - z) * torch.tanh(a_n) + z * h
        h.retain_grad()
        kept["h"].append(h)
        kept["a"].append(a if cell == "gru" else (a,))
    torch.stack(kept["h"]).sin().pow(2).sum().backward()
    return kept


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_records_gates_states_and_error_terms(cell):
    rnn, x, out, trace = traced(cell, layers=1)
    layer = trace.layer("layer0")
    assert isinstance(layer, GatedLayerTrace) and layer.cell == cell and layer.steps == T
    assert list(layer.gates) == list(GATES[cell]) == list(layer.preactivations)
    assert torch.equal(layer.h, out.detach())
    kept = autograd_steps(cell, rnn, x)
    a = torch.stack([torch.cat(parts, -1).detach() for parts in kept["a"]])  # (T, B, G·H) the weighted sums
    da = torch.stack([torch.cat([p.grad for p in parts], -1) for parts in kept["a"]])  # the error terms
    for k, name in enumerate(GATES[cell]):
        block = slice(k * H, (k + 1) * H)
        assert rel_err(layer.preactivations[name], a[:, :, block]) <= 1e-12, name
        act = torch.tanh if name in ("g", "n") else torch.sigmoid
        assert rel_err(layer.gates[name], act(a[:, :, block])) <= 1e-12, name
        assert rel_err(layer.delta[name], da[:, :, block]) <= 1e-12, name
    assert rel_err(layer.dh, torch.stack([t.grad for t in kept["h"]])) <= 1e-12
    if cell == "lstm":
        assert rel_err(layer.c, torch.stack([t.detach() for t in kept["c"]])) <= 1e-12
        assert rel_err(layer.dc, torch.stack([t.grad for t in kept["c"]])) <= 1e-12
        # the cell-state error flows back through the forget gate: dc_t = dh_t o_t tanh'(c_t) + dc_{t+1} f_{t+1}
        from_h = layer.dh * layer.gates["o"] * (1 - torch.tanh(layer.c) ** 2)
        assert rel_err(layer.dc[:-1], from_h[:-1] + layer.dc[1:] * layer.gates["f"][1:]) <= 1e-12
    else:
        assert layer.c is None and layer.dc is None and layer.hn.shape == (T, B, H)
        assert rel_err(layer.delta["hn"], layer.delta["n"] * layer.gates["r"]) <= 1e-12


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("time_reduction", ["sum", "mean"])
def test_per_step_adjustments_accumulate_to_the_gradients(cell, time_reduction):
    rnn, _, _, trace = traced(cell, time_reduction=time_reduction)
    scale = 1 / T if time_reduction == "mean" else 1.0
    assert [layer.name for layer in trace.layers] == ["layer0", "layer1"]
    assert torch.equal(trace.layer("layer1").x, trace.layer("layer0").h)
    for k in range(2):
        layer = trace.layer(f"layer{k}")
        G = len(GATES[cell])
        assert layer.dW_hh_steps.shape == (T, G * H, H)
        for steps, param in (("dW_hh_steps", "weight_hh"), ("dW_ih_steps", "weight_ih"),
                             ("db_ih_steps", "bias_ih"), ("db_hh_steps", "bias_hh")):
            total = scale * getattr(layer, steps).sum(0)
            assert rel_err(total, getattr(rnn, f"{param}_l{k}").grad) <= 1e-12, (steps, k)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_adjustments_only_on_request_and_nothing_without_a_trace(cell):
    _, _, _, trace = traced(cell, weight_adjustments=False)
    assert trace.layer("layer0").dW_hh_steps is None and trace.layer("layer0").delta
    rnn = {"lstm": rnnscope.nn.LSTM, "gru": rnnscope.nn.GRU}[cell](2, 3, bidirectional=True)
    with Trace() as trace:
        pass
    rnn(torch.randn(4, 1, 2))[0].sum().backward()
    assert trace.layers == []
    with Trace() as trace:
        rnn(torch.randn(4, 1, 2))
    assert [layer.name for layer in trace.layers] == ["layer0", "layer0_reverse"]
