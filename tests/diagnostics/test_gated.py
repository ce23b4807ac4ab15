"""Diagnostics of LSTM and GRU layers: the state Jacobian chain equals autograd through the engine;
per-gate saturation, the carry gate, dead units and gradient flow read the right trace fields."""

import math

import pytest
import torch

from rnnscope.diagnostics import summarize, traced_pass
from rnnscope.diagnostics.gated_flow import cell_flow, gated_horizon, gated_jacobian_chain, hidden_flow
from rnnscope.diagnostics.gates import carry_gate, gate_saturation
from rnnscope.engine import GATES, Trace, gru_layer, lstm_layer

T, B, I, H = 6, 2, 3, 4


def weights(cell: str, scale: float = 1.0):
    G = len(GATES[cell])
    torch.manual_seed(0)
    return [scale * torch.randn(G * H, n, dtype=torch.float64) for n in (I, H)] + [
        0.3 * torch.randn(G * H, dtype=torch.float64) for _ in range(2)]


def run(cell: str, x, h0, c0, W, trace_name=None):
    """The engine's layer: (out, state at the end as one vector per sample)."""
    if cell == "lstm":
        out, h_T, c_T = lstm_layer(x, h0, c0, *W, trace_name=trace_name)
        return out, torch.cat([h_T, c_T], dim=1)  # (B, 2H)
    out, h_T = gru_layer(x, h0, *W, trace_name=trace_name)
    return out, h_T


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_jacobian_chain_equals_autograd_through_the_engine(cell):
    torch.manual_seed(1)
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    W = weights(cell)
    with Trace() as trace:
        run(cell, x, h0, c0, W)
    layer = trace.layer("layer")
    chain = gated_jacobian_chain(layer)  # (T, B, N, N)
    states = torch.cat([layer.h, layer.c], dim=2) if cell == "lstm" else layer.h  # (T, B, N)
    assert chain.shape == (T, B, states.shape[2], states.shape[2])
    for k in range(T):
        start = T - 1 - k  # ∂s_{T-1}/∂s_start: rerun the engine from s_start over the last k steps
        for sample in range(B):
            def last_state(s_start):
                if k == 0:
                    return s_start
                h, c = s_start[:H].unsqueeze(0), s_start[H:].unsqueeze(0)
                return run(cell, x[start + 1:, sample:sample + 1], h, c if cell == "lstm" else None, W)[1][0]
            expected = torch.autograd.functional.jacobian(last_state, states[start, sample].clone())
            torch.testing.assert_close(chain[k, sample], expected, rtol=1e-10, atol=1e-12)


def test_lstm_with_open_forget_gates_remembers_the_whole_sequence():
    x = torch.zeros(50, 1, 1, dtype=torch.float64)
    W_ih, W_hh = torch.zeros(4, 1, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
    for forget_bias, remembers in ((8.0, True), (-8.0, False)):  # f = σ(±8): 0.9997 or 0.0003 per step
        b = torch.tensor([0.0, forget_bias, 0.0, 0.0], dtype=torch.float64)
        with Trace() as trace:
            lstm_layer(x, torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64),
                       W_ih, W_hh, b, None)
        layer = trace.layer("layer")
        assert gated_horizon(layer).reached_start is remembers
        carry = carry_gate(layer)
        assert carry.gate == "f" and carry.name == "forget gate"
        assert (carry.carrying_fraction, carry.forgetting_fraction) == ((1.0, 0.0) if remembers else (0.0, 1.0))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_flows_are_the_norms_of_the_traced_errors_and_direct_shares_split_them(cell):
    torch.manual_seed(2)
    x = torch.randn(T, B, I, dtype=torch.float64)
    W = [w.requires_grad_(True) for w in weights(cell)]
    zeros = torch.zeros(B, H, dtype=torch.float64)
    for every_step in (False, True):
        with Trace() as trace:
            out, _ = run(cell, x, zeros, zeros, W)
            (out.pow(2).sum() if every_step else out[-1].pow(2).sum()).backward()
        layer = trace.layer("layer")
        flow = hidden_flow(layer)
        assert flow.norms == pytest.approx([float(n) for n in layer.dh.flatten(1).norm(dim=1)])
        # loss on the last step only: everything before T-1 came back from t+1 (direct share 0)
        assert (flow.direct_share > 0.1) is every_step, flow.direct_share
        cell_errors = cell_flow(layer)
        if cell == "gru":
            assert cell_errors is None
        else:
            assert cell_errors.norms == pytest.approx([float(n) for n in layer.dc.flatten(1).norm(dim=1)])
            assert 0 < cell_errors.direct_share < 1


def test_per_gate_saturation_uses_each_gates_own_activation():
    W = weights("lstm", scale=0.0)
    W[2] = torch.tensor([0, 0, 0, 0, 6.0, 6, 6, 6, 2.0, 2, 2, 2, 0, 0, 0, 0], dtype=torch.float64)  # a_f = 6, a_g = 2
    with Trace() as trace:
        run("lstm", torch.zeros(T, B, I, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64),
            torch.zeros(B, H, dtype=torch.float64), W)
    layer = trace.layer("layer")
    forget, candidate, output = (gate_saturation(layer, g) for g in ("f", "g", "o"))
    assert (forget.activation, forget.saturated_fraction) == ("sigmoid", 1.0)  # |a| = 6 > 5.5
    assert (candidate.activation, candidate.slow_fraction, candidate.saturated_fraction) == ("tanh", 1.0, 0.0)  # 1.1 < 2 < 2.75
    assert output.slow_fraction == 0.0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_summary_of_a_gated_model_is_json_ready_with_every_gate(cell):
    import json

    import rnnscope.nn

    torch.manual_seed(0)
    model = {"lstm": rnnscope.nn.LSTM, "gru": rnnscope.nn.GRU}[cell](2, 5, num_layers=2, batch_first=True)
    trace, loss = traced_pass(model, torch.randn(3, 7, 2), torch.randn(3, 7, 5))
    layers = summarize(trace)
    assert [s["layer"] for s in layers] == ["layer0", "layer1"] and math.isfinite(loss)
    for s in layers:
        assert s["cell"] == cell and set(s["gates"]) == set(GATES[cell])
        assert s["carry"]["gate"] == {"lstm": "f", "gru": "z"}[cell]
        assert (s["cell_gradient_flow"] is None) is (cell == "gru")
        assert len(s["horizon"]["relative"]) <= 7 and s["dead"]["hidden"] == 5
    json.dumps(layers, allow_nan=False)


def test_probe_estimate_of_the_horizon_is_near_the_exact_one(monkeypatch):
    import rnnscope.diagnostics.gated_flow as gated_flow
    import rnnscope.nn

    torch.manual_seed(3)
    model = rnnscope.nn.LSTM(2, 20, batch_first=True)  # N = 40 state numbers
    trace, _ = traced_pass(model, torch.randn(4, 30, 2), torch.randn(4, 30, 20))
    layer = trace.layer("layer0")
    exact = gated_horizon(layer, max_samples=4)
    monkeypatch.setattr(gated_flow, "EXACT_MAX", 8)  # force the probes
    estimate = gated_horizon(layer, max_samples=4)
    assert len(estimate.relative) == len(exact.relative) == 30
    for e, x in zip(estimate.relative, exact.relative):
        assert abs(math.log(e / x)) < math.log(1.5), (e, x)  # within a factor 1.5 at every k


def test_verdict_rows_name_a_forgetting_lstm_and_a_remembering_one():
    from rnnscope.diagnostics.advice import rows_for

    x = torch.randn(40, 2, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    verdicts = {}
    for forget_bias in (-8.0, 8.0):
        W_ih = torch.full((4, 1), 0.5, dtype=torch.float64, requires_grad=True)
        W_hh = torch.full((4, 1), 0.5, dtype=torch.float64, requires_grad=True)
        b = torch.tensor([0.0, forget_bias, 0.0, 0.0], dtype=torch.float64)
        with Trace() as trace:
            out, _, _ = lstm_layer(x, torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64),
                                   W_ih, W_hh, b, None)
            out[-1].sum().backward()
        (summary,) = summarize(trace)
        verdicts[forget_bias] = {row.check: row.verdict for row in rows_for(summary)}
    assert verdicts[-8.0]["carry gate"] == "mostly forgetting"
    assert verdicts[-8.0]["cell-state error"] == "vanishing" and verdicts[-8.0]["memory horizon"] == "short memory"
    assert verdicts[8.0]["carry gate"] == "ok" and verdicts[8.0]["memory horizon"] == "remembers all"
    assert verdicts[8.0]["gate saturation"] == "ok"  # the forget gate's σ(8) is carrying, not a problem
