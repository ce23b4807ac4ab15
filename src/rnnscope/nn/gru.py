"""rnnscope.nn.GRU: a drop-in for torch.nn.GRU whose backward is rnnscope's hand-written BPTT.

    gru = rnnscope.nn.GRU(8, 128, num_layers=2, batch_first=True)   # was torch.nn.GRU(...)
    gru.load_state_dict(torch_gru.state_dict())                     # same names and shapes
    output, h_n = gru(x)

torch's formulation: the reset gate scales W_hn h_{t-1} + b_hn (engine/gru.py). What torch.nn.GRU
lacks: per-step Traces of every gate and error term, and time_reduction="mean".
"""

from __future__ import annotations

import torch
from torch import nn

from rnnscope.engine import gru_layer
from rnnscope.engine.gru import gru_packed_layer
from rnnscope.engine.fused_gru import gru_layer_for
from rnnscope.nn.gated import GatedRNNBase
from rnnscope.nn.precision import autocast_dtype, cpu_input_dtype, run_in_autocast_dtype


class GRU(GatedRNNBase):
    """Gated recurrent unit layers (gates r, z, n), torch.nn.GRU's constructor and call.

    Args: those of torch.nn.GRU (input_size, hidden_size, num_layers, bias, batch_first,
    dropout, bidirectional, device, dtype) and keyword time_reduction.
    """

    cell = "gru"
    mode = "GRU"

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__(*args, **kwargs)

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None):
        """Run the sequence: output (T, B, D·H) or (B, T, D·H), and h_n (D·layers, B, H)."""
        low = autocast_dtype(input)
        if low is not None:  # torch.nn.GRU's autocast policy: the low dtype, fp32 results on the CPU
            return run_in_autocast_dtype(self, low, input, hx, result_dtype=cpu_input_dtype(input))
        if isinstance(input, nn.utils.rnn.PackedSequence):  # output: a PackedSequence too
            return self._forward_packed(input, hx)
        x, batched = self._check_input(input)  # (T, B, I)
        h0 = self._check_state(hx, x, batched, "hidden")
        output, (h_n,) = self._run_layers(x, (h0,))
        return self._output(output, batched), (h_n if batched else h_n.squeeze(1))

    def _run_layer(self, x, states, weights, trace_name):
        (h0,) = states
        layer = gru_layer_for(x, self.hidden_size)  # Triton's fused time loops on CUDA (docs/engine.md)
        return layer(x, h0, *weights, time_reduction=self.time_reduction, trace_name=trace_name)

    def _packed_layer(self, x, h0, layout, layer: int, direction: int):
        return gru_packed_layer(x, h0, layout, *self._layer_weights(layer, direction),
                                time_reduction=self.time_reduction,
                                trace_name=f"layer{layer}" + ("_reverse" if direction == 1 else ""))
