"""Drop-in recurrent modules: torch.nn's constructor, call signature and state_dict, rnnscope's engine.

    rnn = rnnscope.nn.RNN(8, 128, num_layers=2, batch_first=True)   # was torch.nn.RNN(...)
    rnn.load_state_dict(torch_rnn.state_dict())                     # same names and shapes
    output, h_n = rnn(x)

What torch.nn.RNN lacks: nonlinearity="sigmoid" (the chapter's Elman network), per-step Traces
(rnnscope.engine.Trace) and time_reduction="mean".
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.engine import ACTIVATIONS, TIME_REDUCTIONS
from rnnscope.engine.fused_triton import elman_layer_for
from rnnscope.engine.packed import elman_packed_layer
from rnnscope.nn.compat import TorchRNNModule, check_sizes
from rnnscope.nn.packed import forward_packed
from rnnscope.nn.precision import autocast_dtype, run_in_autocast_dtype
from rnnscope.nn.stack import run_stack, stacked


class RNN(TorchRNNModule):
    """An Elman RNN, a drop-in for torch.nn.RNN whose backward is rnnscope's hand-written BPTT.

    Args:
        input_size: features per time step of the input x.
        hidden_size: features of the hidden state h.
        num_layers: stacked recurrent layers.
        nonlinearity: "tanh", "relu" or "sigmoid".
        bias: use b_ih and b_hh.
        batch_first: input and output are (B, T, F) instead of (T, B, F).
        dropout: dropout on the outputs of every layer but the last, in training mode.
        bidirectional: run a second set of layers over the reversed sequence.
        time_reduction: "sum" (torch's and Keras's behaviour: the weight adjustments of all time
            steps are added) or "mean" (divided by T, the option the chapter describes).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        time_reduction: str = "sum",
        proj_size: int = 0,
    ) -> None:
        super().__init__()
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}; choose one of {sorted(ACTIVATIONS)}")
        if time_reduction not in TIME_REDUCTIONS:
            raise ValueError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
        if proj_size:
            raise ValueError("proj_size is an LSTM option; torch.nn.RNN and rnnscope.nn.RNN do not support it")
        check_sizes(hidden_size, num_layers, dropout, stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.batch_first = nonlinearity, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, 0
        self.time_reduction = time_reduction
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else f"RNN_{nonlinearity.upper()}"
        factory = {"device": device, "dtype": dtype}
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        # registered in torch.nn.RNN's order, so the same seed gives the same initial weights
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input = input_size if layer == 0 else hidden_size * num_directions
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (hidden_size, layer_input), "weight_hh": (hidden_size, hidden_size)}
                if bias:
                    shapes.update({"bias_ih": (hidden_size,), "bias_hh": (hidden_size,)})
                for kind, shape in shapes.items():
                    setattr(self, kind + suffix, nn.Parameter(torch.empty(shape, **factory)))
                    self._flat_weights_names.append(kind + suffix)
        self.reset_parameters()

    def forward(self, input: torch.Tensor, hx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the sequence: returns output (T, B, D·H) or (B, T, D·H), and h_n (D·layers, B, H)."""
        low = autocast_dtype(input)
        if low is not None:  # torch.nn.RNN's autocast policy: everything in the low dtype
            return run_in_autocast_dtype(self, low, input, hx)
        num_directions = 2 if self.bidirectional else 1
        if isinstance(input, nn.utils.rnn.PackedSequence):  # output: a PackedSequence too
            zeros = lambda B: input.data.new_zeros(self.num_layers * num_directions, B, self.hidden_size)
            return forward_packed(input, hx, zeros, self._packed_layer, self.input_size, self.num_layers,
                                  self.bidirectional, self.dropout, self.training)
        batched = input.dim() == 3
        if input.dim() not in (2, 3):
            raise ValueError(f"RNN: Expected input to be 2D or 3D, got {input.dim()}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.shape[-1]}")
        if not batched:
            input = input.unsqueeze(1)  # (T, 1, I)
            if hx is not None:
                if hx.dim() != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
                hx = hx.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)  # (T, B, I)
        T, B = input.shape[0], input.shape[1]
        expected_hx = (self.num_layers * num_directions, B, self.hidden_size)
        if hx is None:
            hx = input.new_zeros(expected_hx)
        elif tuple(hx.shape) != expected_hx:
            raise RuntimeError(f"Expected hidden size {expected_hx}, got {tuple(hx.shape)}")
        if stacked(self):  # torch.compile / export: every layer and direction as one operator
            output, (h_n,) = run_stack(self, input, (hx,))
            if not batched:
                return output.squeeze(1), h_n.squeeze(1)
            return (output.transpose(0, 1) if self.batch_first else output), h_n

        layer_input = input  # (T, B, I)
        layer_fn = elman_layer_for(input, self.hidden_size)  # Triton's fused time loops on CUDA (docs/engine.md)
        h_n = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                x = layer_input if direction == 0 else layer_input.flip(0)
                out, h_last = layer_fn(
                    x,
                    hx[layer * num_directions + direction],
                    getattr(self, "weight_ih" + suffix),
                    getattr(self, "weight_hh" + suffix),
                    getattr(self, "bias_ih" + suffix) if self.bias else None,
                    getattr(self, "bias_hh" + suffix) if self.bias else None,
                    activation=self.nonlinearity,
                    time_reduction=self.time_reduction,
                    trace_name=f"layer{layer}" + ("_reverse" if direction == 1 else ""),
                )  # out (T, B, H)
                outputs.append(out if direction == 0 else out.flip(0))
                h_n.append(h_last)
            layer_input = outputs[0] if num_directions == 1 else torch.cat(outputs, dim=2)  # (T, B, D·H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, p=self.dropout, training=True)
        output, h_n = layer_input, torch.stack(h_n)  # (T, B, D·H), (D·layers, B, H)
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)
        if self.batch_first:
            output = output.transpose(0, 1)  # (B, T, D·H)
        return output, h_n

    def _packed_layer(self, x, h0, layout, layer: int, direction: int):
        """One layer and direction over packed rows (nn/packed.py's run_layer)."""
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        return elman_packed_layer(
            x, h0, layout, getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix),
            getattr(self, "bias_ih" + suffix) if self.bias else None,
            getattr(self, "bias_hh" + suffix) if self.bias else None,
            activation=self.nonlinearity, time_reduction=self.time_reduction,
            trace_name=f"layer{layer}" + ("_reverse" if direction == 1 else ""),
        )
