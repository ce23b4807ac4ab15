"""What rnnscope.nn.LSTM and rnnscope.nn.GRU share: torch.nn.RNNBase's constructor, parameters,
initialization and input handling, with the engine's gated layers doing the sequence work.

A subclass names its cell (`cell`: "lstm" or "gru") and runs one layer in `_run_layer` (padded
input) and `_packed_layer` (a PackedSequence, through nn/packed.py). Autocast follows torch.nn's
policy (nn/precision.py) and torch.jit.script is refused with a line (nn/compat.py), as for RNN.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.engine import GATES, TIME_REDUCTIONS
from rnnscope.nn.compat import TorchRNNModule, check_sizes
from rnnscope.nn.packed import forward_packed
from rnnscope.nn.stack import run_stack, stacked


class GatedRNNBase(TorchRNNModule):
    """torch.nn.LSTM / torch.nn.GRU's interface over rnnscope's hand-written BPTT.

    Args:
        input_size: features per time step of the input x.
        hidden_size: features of the hidden state h.
        num_layers: stacked recurrent layers.
        bias: use b_ih and b_hh.
        batch_first: input and output are (B, T, F) instead of (T, B, F).
        dropout: dropout on the outputs of every layer but the last, in training mode.
        bidirectional: run a second set of layers over the reversed sequence.
        time_reduction: "sum" (torch's behaviour) or "mean" (weight adjustments divided by T).
    """

    cell = ""  # "lstm" or "gru", set by the subclass
    mode = ""  # torch.nn.RNNBase's mode string ("LSTM", "GRU")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        time_reduction: str = "sum",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if proj_size:
            raise ValueError(f"proj_size={proj_size}: rnnscope.nn.{name} does not support projections "
                             "(torch.nn.LSTM's proj_size); leave proj_size=0")
        if time_reduction not in TIME_REDUCTIONS:
            raise ValueError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
        # the warning points at the user's call, past a subclass's own __init__ where it has one
        check_sizes(hidden_size, num_layers, dropout,
                    stacklevel=3 + (type(self).__init__ is not GatedRNNBase.__init__))
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size, self.time_reduction = bidirectional, 0, time_reduction
        gate_rows = len(GATES[self.cell]) * hidden_size
        factory = {"device": device, "dtype": dtype}
        self._flat_weights_names: list[str] = []
        # registered in torch.nn.RNNBase's order, so the same seed gives the same initial weights
        for layer in range(num_layers):
            for direction in range(self.num_directions):
                layer_input = input_size if layer == 0 else hidden_size * self.num_directions
                shapes = {"weight_ih": (gate_rows, layer_input), "weight_hh": (gate_rows, hidden_size)}
                if bias:
                    shapes.update({"bias_ih": (gate_rows,), "bias_hh": (gate_rows,)})
                for kind, shape in shapes.items():
                    name = kind + self._suffix(layer, direction)
                    setattr(self, name, nn.Parameter(torch.empty(shape, **factory)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        """2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def _layer_weights(self, layer: int, direction: int) -> tuple:
        """(W_ih, W_hh, b_ih, b_hh) of one layer and direction (biases None without bias)."""
        suffix = self._suffix(layer, direction)
        W_ih, W_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        if not self.bias:
            return W_ih, W_hh, None, None
        return W_ih, W_hh, getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)

    def _check_input(self, input) -> tuple[torch.Tensor, bool]:
        """(input as (T, B, I), whether it came batched); refuses what torch refuses."""
        name = type(self).__name__
        if input.dim() not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")
        batched = input.dim() == 3
        if not batched:
            return input.unsqueeze(1), False  # (T, 1, I)
        return (input.transpose(0, 1) if self.batch_first else input), True  # (T, B, I)

    def _check_state(self, state: torch.Tensor | None, x: torch.Tensor, batched: bool, what: str) -> torch.Tensor:
        """An initial state as (D·layers, B, H): zeros when None; unbatched states get their batch axis."""
        expected = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if state is None:
            return x.new_zeros(expected)
        if not batched:
            if state.dim() != 2:
                raise RuntimeError(f"For unbatched 2-D input, {what} should also be 2-D but got {state.dim()}-D tensor")
            state = state.unsqueeze(1)
        if tuple(state.shape) != expected:
            raise RuntimeError(f"Expected {what} size {expected}, got {tuple(state.shape)}")
        return state

    def _run_layers(self, x: torch.Tensor, states: tuple[torch.Tensor, ...]):
        """Every layer and direction in turn: output (T, B, D·H) and the final states, each (D·layers, B, H)."""
        if stacked(self):  # torch.compile / export: every layer and direction as one operator
            return run_stack(self, x, states)
        layer_input = x  # (T, B, I)
        finals: list[list[torch.Tensor]] = [[] for _ in states]
        D = self.num_directions
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(D):
                k = layer * D + direction
                seq = layer_input if direction == 0 else layer_input.flip(0)
                out, *last = self._run_layer(seq, tuple(s[k] for s in states), self._layer_weights(layer, direction),
                                             f"layer{layer}" + ("_reverse" if direction == 1 else ""))
                outputs.append(out if direction == 0 else out.flip(0))  # (T, B, H)
                for final, value in zip(finals, last):
                    final.append(value)
            layer_input = outputs[0] if D == 1 else torch.cat(outputs, dim=2)  # (T, B, D·H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, p=self.dropout, training=True)
        return layer_input, tuple(torch.stack(final) for final in finals)

    def _run_layer(self, x, states, weights, trace_name):
        raise NotImplementedError

    def _forward_packed(self, input: nn.utils.rnn.PackedSequence, hx):
        """A PackedSequence through every layer (nn/packed.py): output packed, the state at each
        sequence's last real step."""
        D, H = self.num_directions, self.hidden_size
        zero = lambda B: input.data.new_zeros(self.num_layers * D, B, H)
        zero_state = (lambda B: (zero(B), zero(B))) if self.cell == "lstm" else zero
        return forward_packed(input, hx, zero_state, self._packed_layer, self.input_size, self.num_layers,
                              self.bidirectional, self.dropout, self.training)

    def _packed_layer(self, x, state0, layout, layer: int, direction: int):
        """One layer and direction over packed rows (nn/packed.py's run_layer)."""
        raise NotImplementedError

    def _output(self, output: torch.Tensor, batched: bool) -> torch.Tensor:
        """The output laid out as the input was: (T, B, ·), (B, T, ·) or unbatched (T, ·)."""
        if not batched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output
