"""rnnscope.nn.LSTM: a drop-in for torch.nn.LSTM whose backward is rnnscope's hand-written BPTT.

    lstm = rnnscope.nn.LSTM(8, 128, num_layers=2, batch_first=True)   # was torch.nn.LSTM(...)
    lstm.load_state_dict(torch_lstm.state_dict())                     # same names and shapes
    output, (h_n, c_n) = lstm(x)

What torch.nn.LSTM lacks: per-step Traces of every gate, c_t and the cell-state error
(rnnscope.engine.Trace) and time_reduction="mean". Not supported: proj_size.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnscope.engine import lstm_layer
from rnnscope.engine.lstm import lstm_packed_layer
from rnnscope.engine.fused_lstm import lstm_layer_for
from rnnscope.nn.gated import GatedRNNBase
from rnnscope.nn.precision import autocast_dtype, cpu_input_dtype, run_in_autocast_dtype


class LSTM(GatedRNNBase):
    """Long short-term memory layers (gates i, f, g, o), torch.nn.LSTM's constructor and call.

    Args: those of torch.nn.LSTM (input_size, hidden_size, num_layers, bias, batch_first,
    dropout, bidirectional, proj_size (0 only), device, dtype) and keyword time_reduction.
    """

    cell = "lstm"
    mode = "LSTM"

    def forward(self, input: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Run the sequence: output (T, B, D·H) or (B, T, D·H), and (h_n, c_n), each (D·layers, B, H)."""
        low = autocast_dtype(input)
        if low is not None:  # torch.nn.LSTM's autocast policy: the low dtype (a packed batch on the CPU:
            packed = isinstance(input, nn.utils.rnn.PackedSequence)  # fp32 results, as torch returns them)
            return run_in_autocast_dtype(self, low, input, hx, result_dtype=cpu_input_dtype(input) if packed else None)
        if isinstance(input, nn.utils.rnn.PackedSequence):  # output: a PackedSequence too
            return self._forward_packed(input, hx)
        x, batched = self._check_input(input)  # (T, B, I)
        h0, c0 = (None, None) if hx is None else hx
        h0, c0 = self._check_state(h0, x, batched, "hidden"), self._check_state(c0, x, batched, "cell state")
        output, (h_n, c_n) = self._run_layers(x, (h0, c0))
        if not batched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._output(output, batched), (h_n, c_n)

    def _run_layer(self, x, states, weights, trace_name):
        h0, c0 = states
        layer = lstm_layer_for(x, self.hidden_size)  # Triton's fused time loops on CUDA (docs/engine.md)
        return layer(x, h0, c0, *weights, time_reduction=self.time_reduction, trace_name=trace_name)

    def _packed_layer(self, x, state0, layout, layer: int, direction: int):
        h0, c0 = state0
        return lstm_packed_layer(x, h0, c0, layout, *self._layer_weights(layer, direction),
                                 time_reduction=self.time_reduction,
                                 trace_name=f"layer{layer}" + ("_reverse" if direction == 1 else ""))
