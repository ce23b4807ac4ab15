"""Unrolled LSTM and GRU cells built from plain torch ops, differentiated by autograd: the reference."""

from __future__ import annotations

import torch


def lstm_step(x_t, h, c, W_ih, W_hh, b):
    """One step of torch.nn.LSTM's cell: gates i, f, g, o; returns h_t, c_t and the gates."""
    i, f, g, o = (x_t @ W_ih.T + h @ W_hh.T + b).chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return o * torch.tanh(c), c, (i, f, g, o)


def gru_step(x_t, h, W_ih, W_hh, b_ih, b_hh):
    """One step of torch.nn.GRU's cell (the reset gate scales W_hn h + b_hn); returns h_t and the gates."""
    xr, xz, xn = (x_t @ W_ih.T + b_ih).chunk(3, dim=-1)
    hr, hz, hn = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h, (r, z, n)


def unrolled(rnn, x: torch.Tensor, hx=None):
    """The forward of rnnscope.nn.LSTM/GRU or torch.nn.LSTM/GRU, one step at a time under autograd.

    Reads the weights from `rnn` by their torch names; x and hx are laid out as rnn expects.
    """
    lstm = rnn.mode == "LSTM"
    batched = x.dim() == 3
    h0, c0 = (hx if lstm else (hx, None)) if hx is not None else (None, None)
    if not batched:
        x = x.unsqueeze(1)
        h0 = None if h0 is None else h0.unsqueeze(1)
        c0 = None if c0 is None else c0.unsqueeze(1)
    elif rnn.batch_first:
        x = x.transpose(0, 1)
    T, B = x.shape[:2]
    D = 2 if rnn.bidirectional else 1
    zeros = x.new_zeros(rnn.num_layers * D, B, rnn.hidden_size)
    h0 = zeros if h0 is None else h0
    c0 = zeros if c0 is None else c0
    layer_input, h_n, c_n = x, [], []
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            W_ih, W_hh = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
            zero_b = x.new_zeros(W_hh.shape[0])
            b_ih = getattr(rnn, "bias_ih" + sfx) if rnn.bias else zero_b
            b_hh = getattr(rnn, "bias_hh" + sfx) if rnn.bias else zero_b
            h, c = h0[layer * D + d], c0[layer * D + d]
            hs = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                if lstm:
                    h, c, _ = lstm_step(layer_input[t], h, c, W_ih, W_hh, b_ih + b_hh)
                else:
                    h, _ = gru_step(layer_input[t], h, W_ih, W_hh, b_ih, b_hh)
                hs[t] = h
            outs.append(torch.stack(hs))
            h_n.append(h)
            c_n.append(c)
        layer_input = torch.cat(outs, dim=2)
    out, h_n, c_n = layer_input, torch.stack(h_n), torch.stack(c_n)
    if not batched:
        out, h_n, c_n = out.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
    elif rnn.batch_first:
        out = out.transpose(0, 1)
    return out, ((h_n, c_n) if lstm else h_n)
