"""PackedSequence in and out of a drop-in module, exactly as torch.nn's recurrent modules do it.

    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    output, h_n = rnn(packed)        # output: a PackedSequence; h_n: each sequence's last real step

The module's state (h, or (h, c) for an LSTM) comes in and goes out in the user's batch order;
inside, the packed batch is sorted longest first (sorted_indices), as the engine wants it. The
reverse direction runs each sequence backwards within its own length: a fixed permutation of the
packed rows (PackedLayout.reverse_rows), so the same forward engine serves both directions.

A cell plugs in with one function, run_layer(x, state0, layout, layer, direction) -> (out, state_n)
over packed rows (N, F) and a (B, H) state (or a tuple of them), and calls forward_packed.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence

from rnnscope.engine.packed import PackedLayout

State = Union[torch.Tensor, tuple]  # h (L·D, B, H), or (h, c) for an LSTM


def _map(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """fn applied to h, or to each of (h, c)."""
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def _stack(finals: list) -> State:
    """Per-layer-and-direction final states -> one (L·D, B, H) tensor (or a tuple of them)."""
    if isinstance(finals[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*finals))
    return torch.stack(finals)


@torch.compiler.disable  # batch_sizes decide the loop: under torch.compile this part runs eagerly
def forward_packed(
    packed: PackedSequence,
    hx: State | None,
    zero_state: Callable[[int], State],
    run_layer: Callable,
    input_size: int,
    num_layers: int,
    bidirectional: bool,
    dropout: float,
    training: bool,
) -> tuple[PackedSequence, State]:
    """Run a stack of recurrent layers over a PackedSequence, as torch.nn.RNN/LSTM/GRU do.

    Args:
        packed: the input; its batch_sizes say which rows run at each step.
        hx: the initial state in the user's batch order, or None for zeros.
        zero_state: B -> the zero state for a batch of B sequences.
        run_layer: (x (N, F), state0 (B, H)…, layout, layer, direction) -> (out (N, H), state_n).
        input_size, num_layers, bidirectional, dropout, training: the module's settings.

    Returns:
        output, a PackedSequence with the same batch_sizes and indices; the final state (each
        sequence's last real step) in the user's batch order.
    """
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    if data.shape[-1] != input_size:
        raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {input_size}, got {data.shape[-1]}")
    layout = PackedLayout(batch_sizes, data.device)
    B, D = layout.batch, 2 if bidirectional else 1
    if hx is None:
        state = zero_state(B)
    else:
        for s in hx if isinstance(hx, tuple) else (hx,):
            if tuple(s.shape[:2]) != (num_layers * D, B):
                raise RuntimeError(f"Expected hidden size {(num_layers * D, B, *s.shape[2:])}, "
                                   f"got {tuple(s.shape)} (the packed batch holds {B} sequences)")
        # torch's permute_hidden: the state follows the batch into its sorted order
        state = hx if sorted_indices is None else _map(hx, lambda s: s.index_select(1, sorted_indices))

    layer_input = data  # (N, I)
    finals = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(D):
            state0 = _map(state, lambda s: s[layer * D + direction])  # (B, H)
            x = layer_input if direction == 0 else layer_input[layout.reverse_rows]
            out, state_n = run_layer(x, state0, layout, layer, direction)  # (N, H)
            outputs.append(out if direction == 0 else out[layout.reverse_rows])
            finals.append(state_n)
        layer_input = outputs[0] if D == 1 else torch.cat(outputs, dim=1)  # (N, D·H)
        if dropout > 0 and training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, p=dropout, training=True)
    h_n = _stack(finals)
    if unsorted_indices is not None:
        h_n = _map(h_n, lambda s: s.index_select(1, unsorted_indices))
    return PackedSequence(layer_input, batch_sizes, sorted_indices, unsorted_indices), h_n
