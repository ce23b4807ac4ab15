"""An unrolled Elman RNN built from plain torch ops, differentiated by autograd: the reference."""

from __future__ import annotations

import torch

ACTS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def unrolled_rnn(rnn, x: torch.Tensor, h0: torch.Tensor | None = None):
    """The forward of rnnscope.nn.RNN / torch.nn.RNN, one step at a time under autograd.

    Reads the weights from `rnn` by their torch.nn.RNN names; x is laid out as rnn expects.
    """
    act = ACTS[rnn.nonlinearity]
    batched = x.dim() == 3
    if not batched:
        x = x.unsqueeze(1)
        h0 = None if h0 is None else h0.unsqueeze(1)
    elif rnn.batch_first:
        x = x.transpose(0, 1)
    T, B = x.shape[:2]
    D = 2 if rnn.bidirectional else 1
    if h0 is None:
        h0 = x.new_zeros(rnn.num_layers * D, B, rnn.hidden_size)
    layer_input, h_n = x, []
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
            b = getattr(rnn, "bias_ih" + sfx) + getattr(rnn, "bias_hh" + sfx) if rnn.bias else 0
            h = h0[layer * D + d]
            steps = range(T - 1, -1, -1) if d else range(T)
            hs = [None] * T
            for t in steps:
                h = act(layer_input[t] @ W_ih.T + h @ W_hh.T + b)
                hs[t] = h
            outs.append(torch.stack(hs))
            h_n.append(h)
        layer_input = torch.cat(outs, dim=2)
    out, h_n = layer_input, torch.stack(h_n)
    if not batched:
        return out.squeeze(1), h_n.squeeze(1)
    return (out.transpose(0, 1) if rnn.batch_first else out), h_n
