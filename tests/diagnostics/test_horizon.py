"""The memory horizon's chain of Jacobians equals autograd through the engine."""

import pytest
import torch

from rnnscope.diagnostics.horizon import jacobian_chain, memory_horizon
from rnnscope.engine.bptt import elman_layer
from rnnscope.engine.trace import Trace


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_chain_equals_autograd_jacobian_of_the_engine(activation):
    torch.manual_seed(0)
    T, B, I, H = 6, 2, 3, 4
    x = torch.randn(T, B, I, dtype=torch.float64)
    h0 = torch.randn(B, H, dtype=torch.float64)
    W_ih, W_hh = torch.randn(H, I, dtype=torch.float64), torch.randn(H, H, dtype=torch.float64)
    b = torch.randn(H, dtype=torch.float64) * 0.1
    with Trace() as trace:
        out, _ = elman_layer(x, h0, W_ih, W_hh, b, None, activation=activation)
    chain = jacobian_chain(trace.layer("layer"))  # (T, B, H, H)
    for k in range(T):
        start = T - 1 - k  # ∂h_{T-1}/∂h_{start}: rerun the engine from h_start over the last k steps
        for sample in range(B):
            def last_state(h_start):
                if k == 0:
                    return h_start
                return elman_layer(x[start + 1:, sample:sample + 1], h_start.unsqueeze(0), W_ih, W_hh, b, None,
                                   activation=activation)[1][0]
            expected = torch.autograd.functional.jacobian(last_state, out[start, sample].detach())
            torch.testing.assert_close(chain[k, sample], expected, rtol=1e-10, atol=1e-12)


def test_horizon_is_the_largest_k_above_epsilon():
    T, H = 30, 1
    with Trace() as trace:  # a linear-ish decay: tanh near 0 with w_h = 0.5 → ×0.5 per step
        elman_layer(torch.zeros(T, 1, 1, dtype=torch.float64), torch.zeros(1, H, dtype=torch.float64),
                    torch.zeros(H, 1, dtype=torch.float64), torch.full((H, H), 0.5, dtype=torch.float64),
                    activation="tanh")
    horizon = memory_horizon(trace.layer("layer"), epsilon=1e-3)
    assert horizon.relative[:3] == pytest.approx([1.0, 0.5, 0.25])
    assert horizon.horizon == 9  # 0.5^9 ≈ 0.00195 > 1e-3 > 0.5^10
    assert not horizon.reached_start and horizon.steps == T
