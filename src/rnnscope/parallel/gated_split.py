"""Hidden-unit split of gated layers (--model.cell lstm, gru): K ranks, H/K units of every gate each.

The gates of a layer are stacked as torch stacks them (W_ih (G·H, I), W_hh (G·H, H), G = 4 for
LSTM, 3 for GRU). Rank k owns units k·H/K … (k+1)·H/K − 1 of *every* gate: in each gate's block
of H rows, those H/K rows (views (G, H/K, …) of the model's own tensors). Per time step:

  forward   a_t^k = x_t W_ih^kᵀ + b_ih^k  +  h_{t−1} W_hh^kᵀ + b_hh^k     (B, G·H/K) its gates
            LSTM  c_t^k = f ⊙ c_{t−1}^k + i ⊙ g,  h_t^k = o ⊙ tanh(c_t^k)  (c_t never leaves the rank)
            GRU   n = tanh(a_n^x + r ⊙ (h_{t−1} W_hn^kᵀ + b_hn^k)),  h_t^k = (1 − z) ⊙ n + z ⊙ h_{t−1}^k
            h_t = all-gather_k(h_t^k)                        (tag hs-act, B·H·b: Elman's exchange)
  backward  ∂L/∂h_{t−1} = Σ_k (the step's partial over the whole h_{t−1}), reduce-scattered
            (tag hs-grad, B·H·b); ∂L/∂c_{t−1}^k stays local; the weight adjustments are local.

The reset gate multiplies h_{t−1} W_hnᵀ + b_hn, which needs the whole h_{t−1}: the all-gather has
it already, so a GRU sends what an LSTM or an Elman layer sends. Between stacked layers the input
gradient (T, B, H) is reduce-scattered once per boundary, as for Elman, and the readout sits on
the gathered top h, replicated. The traffic is therefore `costs.traffic.hidden_split_traffic`'s
for every cell.

Each step's cell arithmetic runs through torch's autograd on small local tensors (one graph per
step whose inputs are leaves: the step's input projection, the whole h_{t−1}, c_{t−1}^k), so the
backward can stop after every step to exchange ∂L/∂h_{t−1}; the input projections of all steps
are one matmul before the loop and their weight adjustments one matmul after it, as in the engine.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from rnnscope.costs.layout import split_hidden
from rnnscope.engine import GATES
from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.hidden_exchange import HiddenExchange
from rnnscope.parallel.pipeline import layer_weights


def _lstm_step(xw, h_prev, c_prev, W_hh, b_hh):
    """One LSTM step of this rank's units: (h_t^k, c_t^k), each (B, Hk)."""
    a = xw + h_prev @ W_hh.t()  # (B, 4Hk) gates i, f, g, o of this rank's units
    if b_hh is not None:
        a = a + b_hh
    i, f, g, o = a.chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru_step(xw, h_prev, W_hh, b_hh, units):
    """One GRU step of this rank's units: h_t^k (B, Hk), torch.nn.GRU's formulation."""
    hh = h_prev @ W_hh.t()  # (B, 3Hk) the recurrent parts of r, z, n
    if b_hh is not None:
        hh = hh + b_hh
    x_r, x_z, x_n = xw.chunk(3, dim=1)
    h_r, h_z, h_n = hh.chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)  # the reset gate scales the whole h_{t−1}'s W_hn product
    return (1 - z) * n + z * h_prev[:, units]


class GatedHiddenSplitStage(HiddenExchange):
    """This rank's H/K units of every gate of every layer, plus the replicated readout.

    Args:
        net: a SequenceModel with `cell` "lstm" or "gru" (`rnn` an rnnscope.nn.LSTM / GRU);
            every rank builds the same one, and this rank trains views of its rows.
        comm: the communicator of the model group; its rank is k, its size K.
    """

    def __init__(self, net: nn.Module, comm: Communicator) -> None:
        rnn = net.rnn
        if getattr(rnn, "bidirectional", False):
            raise UserError("a hidden split needs a unidirectional RNN (bidirectional=False)")
        self.cell = net.cell
        self.gates = len(GATES[self.cell])
        self.comm, self.k, self.K = comm, comm.rank, comm.world_size
        self.hidden, self.num_layers = rnn.hidden_size, rnn.num_layers
        self.Hk = split_hidden(self.hidden, self.K)
        self.units = slice(self.k * self.Hk, (self.k + 1) * self.Hk)  # this rank's units
        # the rows of a (G·H, …) tensor this rank owns, (G, Hk): for the optimizer state's pieces
        self.rows = torch.arange(self.gates * self.hidden).view(self.gates, self.hidden)[:, self.units]
        self.time_reduction, self.every_step = rnn.time_reduction, net.every_step
        G, H = self.gates, self.hidden
        # views of the model's tensors: W_ih^k (G, Hk, I), W_hh^k (G, Hk, H), b_ih^k, b_hh^k (G, Hk)
        self.weights = [[None if w is None else nn.Parameter(w.data.view(G, H, *w.shape[1:])[:, self.units])
                         for w in layer_weights(rnn, layer)] for layer in range(self.num_layers)]
        self.readout = net.readout
        self._saved: list = []

    @staticmethod
    def _flat(w: torch.Tensor | None) -> torch.Tensor | None:
        """(G·Hk, …) copy of a (G, Hk, …) piece, the layout the gates are computed in."""
        return None if w is None else w.detach().reshape(-1, *w.shape[2:])

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None, build_graph: bool):
        """Forward of one batch: every layer step by step, h_t all-gathered every step.

        Args:
            x: (B, T, I) inputs (every rank has the whole batch of its model group).
            h0: (L, B, H) initial states, for LSTM (2L, B, H) (h_0 then c_0), or None for zeros.
            build_graph: keep what `backward` needs.

        Returns:
            (ŷ, state): ŷ (B, T, O) or (B, O), the same on every rank; state (L, B, H) h_n, for
            LSTM (2L, B, H) h_n then c_n, c_n holding this rank's units only (zeros elsewhere:
            the cell state never travels, and a carried state comes back to the same rank).
        """
        B, T = x.shape[0], x.shape[1]
        L, H, Hk = self.num_layers, self.hidden, self.Hk
        inp = x.transpose(0, 1)  # (T, B, I)
        self._saved, h_n, c_n = [], [], []
        for layer, (W_ih, W_hh, b_ih, b_hh) in enumerate(self.weights):
            started = time.perf_counter()
            zeros = torch.zeros(B, H, dtype=W_hh.dtype, device=x.device)
            h_prev = h0[layer] if h0 is not None else zeros  # (B, H)
            c_prev = zeros[:, self.units]  # (B, Hk) LSTM: this rank's units of c_{t−1}
            if h0 is not None and self.cell == "lstm":
                c_prev = h0[L + layer][:, self.units]
            W_ih_f, W_hh_f = self._flat(W_ih), self._flat(W_hh).requires_grad_(build_graph)
            b_ih_f = self._flat(b_ih)
            b_hh_f = None if b_hh is None else self._flat(b_hh).requires_grad_(build_graph)
            xw = inp.reshape(T * B, -1) @ W_ih_f.t()  # (T·B, G·Hk) all input projections at once
            if b_ih_f is not None:
                xw += b_ih_f
            xw = xw.view(T, B, -1)
            h_full = torch.empty(T, B, H, dtype=xw.dtype, device=x.device)
            steps = []
            with torch.set_grad_enabled(build_graph):
                for t in range(T):
                    leaves = tuple(v.detach().requires_grad_(build_graph)
                                   for v in (xw[t], h_prev, c_prev))  # this step's inputs
                    if self.cell == "lstm":
                        h_k, c_k = _lstm_step(*leaves, W_hh_f, b_hh_f)
                        c_prev = c_k
                    else:
                        h_k, c_k = _gru_step(leaves[0], leaves[1], W_hh_f, b_hh_f, self.units), None
                    if build_graph:
                        steps.append((leaves, h_k, c_k))
                    h_full[t] = h_prev = self._gather(h_k.detach())  # (B, H)
            if build_graph:
                self._saved.append((inp, h_full, steps, (W_ih_f, W_hh_f, b_ih_f, b_hh_f)))
            h_n.append(h_full[-1])
            if self.cell == "lstm":  # c_n: this rank's units (TBPTT carries it back to this rank)
                c_whole = torch.zeros(B, H, dtype=xw.dtype, device=x.device)
                c_whole[:, self.units] = c_prev.detach()
                c_n.append(c_whole)
            inp = h_full
            self._phase(f"{'forward' if build_graph else 'eval'} l{layer}", started)
        return self._read_out(inp, build_graph), torch.stack(h_n + c_n)

    def backward(self, y_hat: torch.Tensor, grad_y_hat: torch.Tensor) -> None:
        """Backward after `forward(..., build_graph=True)`; gradients go into .grad."""
        dout = self._output_error(y_hat, grad_y_hat, self.units)  # (T, B, Hk) this rank's output error
        for layer in reversed(range(self.num_layers)):
            started = time.perf_counter()
            inp, h_full, steps, (W_ih_f, W_hh_f, b_ih_f, b_hh_f) = self._saved[layer]
            T, B = h_full.shape[0], h_full.shape[1]
            d_xw = torch.empty(T, B, W_ih_f.shape[0], dtype=h_full.dtype, device=h_full.device)
            dh, dc = dout[T - 1], None
            for t in reversed(range(T)):
                (xw_t, h_prev, c_prev), h_k, c_k = steps[t]
                roots, grads = [h_k], [dh]
                if c_k is not None and dc is not None:
                    roots.append(c_k)  # the cell-state error from step t+1 (local)
                    grads.append(dc)
                torch.autograd.backward(roots, grads)  # into W_hh, b_hh, xw_t, h_{t−1}, c_{t−1}^k
                d_xw[t] = xw_t.grad
                partial = h_prev.grad if h_prev.grad is not None else torch.zeros_like(h_prev)
                dh_prev = self._scatter(partial)  # (B, Hk) this rank's ∂L/∂h_{t−1}
                if t > 0:
                    dh = dout[t - 1] + dh_prev
                    dc = c_prev.grad
            steps.clear()
            # weight adjustments of the input projection, accumulated over the steps in one matmul
            d2d = d_xw.view(T * B, -1)  # (T·B, G·Hk)
            grads = [d2d.t() @ inp.reshape(T * B, -1), W_hh_f.grad,  # (G·Hk, I), (G·Hk, H)
                     d2d.sum(0) if b_ih_f is not None else None,
                     None if b_hh_f is None else b_hh_f.grad]
            scale = 1.0 / T if self.time_reduction == "mean" else 1.0
            for w, g in zip(self.weights[layer], grads):
                if w is not None:
                    g = (g * scale).view_as(w)
                    w.grad = g if w.grad is None else w.grad + g
            if layer > 0:  # the layer below's output error: Σ_k d^k W_ih^k, reduce-scattered
                dout = self._scatter(d2d @ W_ih_f).view(T, B, self.Hk)
            self._phase(f"backward l{layer}", started)
        self._saved, self._top = [], None
