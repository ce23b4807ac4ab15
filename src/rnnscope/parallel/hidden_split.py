"""Hidden-unit split: each of K ranks owns H/K neurons of every layer, synchronized every step.

Rank k owns rows k·H/K … (k+1)·H/K − 1 of W_ih, W_hh, b_ih and b_hh of every layer (views of
the model's own tensors, so the optimizer's update lands in place). Per time step, in the
chapter's words, the forward pass synchronizes *activation values* and backpropagation
synchronizes *gradients*:

  forward   z_t^k = x_t W_ih^kᵀ + b^k + h_{t−1} W_hh^kᵀ,  h_t^k = f(z_t^k)
            h_t = all-gather_k(h_t^k)                          (tag hs-act, B·H·b)
  backward  δ_t^k = ∂L/∂h_t^k ⊙ f'(z_t^k)                     local error term
            ∂L/∂h_{t−1} = Σ_k δ_t^k W_hh^k, reduce-scattered  (tag hs-grad, B·H·b)
            dW_ih^k = Σ_t δ_t^kᵀ x_t,  dW_hh^k = Σ_t δ_t^kᵀ h_{t−1},  db^k = Σ_t δ_t^k   (local)

and, between stacked layers, the input gradient Σ_k δ^k W_ih^k (T, B, H) is reduce-scattered
once per layer boundary (tag hs-grad). The readout sits on the all-gathered top h and is
replicated; its gradient is the same on every rank, so it needs no traffic. Per step and layer:
T all-gathers and T reduce-scatters of B·H·b bytes each, (K−1)/K of it sent by every rank.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from rnnscope.costs.layout import split_hidden
from rnnscope.engine import get_activation
from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.gated_split import GatedHiddenSplitStage
from rnnscope.parallel.hidden_exchange import HiddenExchange
from rnnscope.parallel.model_parallel import ModelParallelContext
from rnnscope.parallel.pipeline import layer_weights


class HiddenSplitStage(HiddenExchange):
    """This rank's H/K neurons of every layer, plus the replicated readout.

    Args:
        net: a SequenceModel (`rnn` an rnnscope.nn.RNN, `readout`, `every_step`); every rank
            builds the same one, and this rank trains views of its rows.
        comm: the communicator of the model group; its rank is k, its size K.
    """

    def __init__(self, net: nn.Module, comm: Communicator) -> None:
        rnn = net.rnn
        if getattr(rnn, "bidirectional", False):
            raise UserError("a hidden split needs a unidirectional RNN (bidirectional=False)")
        self.comm, self.k, self.K = comm, comm.rank, comm.world_size
        self.hidden, self.num_layers = rnn.hidden_size, rnn.num_layers
        self.Hk = split_hidden(self.hidden, self.K)
        rows = slice(self.k * self.Hk, (self.k + 1) * self.Hk)
        self.rows = rows
        self.act = get_activation(rnn.nonlinearity)
        self.time_reduction, self.every_step = rnn.time_reduction, net.every_step
        # views of the model's tensors: [W_ih^k (Hk, I), W_hh^k (Hk, H), b_ih^k, b_hh^k]
        self.weights = [[None if w is None else nn.Parameter(w.data[rows]) for w in
                         layer_weights(rnn, layer)] for layer in range(self.num_layers)]
        self.readout = net.readout
        self._saved: list = []

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None, build_graph: bool):
        """Forward of one batch: every layer step by step, h_t all-gathered every step.

        Args:
            x: (B, T, I) inputs (every rank has the whole batch of its model group).
            h0: (L, B, H) initial states or None for zeros.
            build_graph: keep what `backward` needs.

        Returns:
            (ŷ, h_n): ŷ (B, T, O) or (B, O), the same on every rank; h_n (L, B, H).
        """
        B, T = x.shape[0], x.shape[1]
        inp = x.transpose(0, 1)  # (T, B, I)
        self._saved, h_n = [], []
        for layer, (W_ih, W_hh, b_ih, b_hh) in enumerate(self.weights):
            started = time.perf_counter()  # the layer's forward, all-gathers included, for the timeline
            h_prev = h0[layer] if h0 is not None else torch.zeros(
                B, self.hidden, dtype=W_hh.dtype, device=x.device)  # (B, H)
            h_start = h_prev
            with torch.no_grad():
                xw = inp.reshape(T * B, -1) @ W_ih.t()  # (T·B, Hk) all input projections at once
                for b in (b_ih, b_hh):
                    if b is not None:
                        xw += b
                h_k = xw.view(T, B, self.Hk)  # becomes h^k in place, step by step
                h_full = torch.empty(T, B, self.hidden, dtype=xw.dtype, device=x.device)
                for t in range(T):
                    h_k[t].addmm_(h_prev, W_hh.t())  # z_t^k
                    self.act.forward_(h_k[t])  # h_t^k = f(z_t^k)
                    h_full[t] = h_prev = self._gather(h_k[t])  # (B, H)
            if build_graph:
                self._saved.append((inp, h_start, h_k, h_full))
            h_n.append(h_full[-1])
            inp = h_full
            self._phase(f"{'forward' if build_graph else 'eval'} l{layer}", started)
        return self._read_out(inp, build_graph), torch.stack(h_n)

    def backward(self, y_hat: torch.Tensor, grad_y_hat: torch.Tensor) -> None:
        """Backward after `forward(..., build_graph=True)`; gradients go into .grad."""
        dout = self._output_error(y_hat, grad_y_hat, self.rows)  # (T, B, Hk) this rank's output error
        for layer in reversed(range(self.num_layers)):
            started = time.perf_counter()
            W_ih, W_hh, b_ih, b_hh = self.weights[layer]
            inp, h_start, h_k, h_full = self._saved[layer]
            T, B = h_k.shape[0], h_k.shape[1]
            delta = self.act.derivative_from_output(h_k)  # (T, B, Hk) f'(z_t), δ_t in place
            dh = dout[T - 1]
            for t in reversed(range(T)):
                delta[t].mul_(dh)  # error term δ_t^k = ∂L/∂h_t^k ⊙ f'(z_t^k)
                dh_prev = self._scatter(delta[t] @ W_hh)  # (B, Hk) slice of Σ_k δ_t^k W_hh^k
                if t > 0:
                    dh = dout[t - 1] + dh_prev
            # weight adjustments, accumulated over the time steps (local: this rank's rows)
            delta2d = delta.view(T * B, self.Hk)
            scale = 1.0 / T if self.time_reduction == "mean" else 1.0
            h_prev = torch.cat([h_start.unsqueeze(0), h_full[:-1]])  # (T, B, H) h_{t−1}
            grads = [delta2d.t() @ inp.reshape(T * B, -1),  # (Hk, I) Σ_t δ_tᵀ x_t
                     delta2d.t() @ h_prev.reshape(T * B, -1),  # (Hk, H) Σ_t δ_tᵀ h_{t−1}
                     delta2d.sum(0), delta2d.sum(0)]  # (Hk,) Σ_t δ_t, for b_ih and b_hh
            for w, g in zip((W_ih, W_hh, b_ih, b_hh), grads):
                if w is not None:
                    g = g * scale
                    w.grad = g if w.grad is None else w.grad + g
            if layer > 0:  # the layer below's output error: Σ_k δ^k W_ih^k, reduce-scattered
                dout = self._scatter(delta2d @ W_ih).view(T, B, self.Hk)
            self._phase(f"backward l{layer}", started)
        self._saved, self._top = [], None


def hidden_split_stage(net: nn.Module, comm) -> HiddenSplitStage:
    """This rank's stage for `net`'s cell: HiddenSplitStage (Elman) or GatedHiddenSplitStage."""
    if getattr(net, "cell", "elman") == "elman":
        return HiddenSplitStage(net, comm)
    return GatedHiddenSplitStage(net, comm)


class HiddenSplitParallel(ModelParallelContext):
    """`--parallel.strategy hidden_split`: the training loop's DistContext (see model_parallel)."""

    strategy = "hidden_split"

    def make_stage(self, net: nn.Module, comm: Communicator) -> HiddenSplitStage:
        """This rank's H/K neurons of every layer (of every gate, for --model.cell lstm, gru)."""
        return hidden_split_stage(net, comm)

    def piece_names(self) -> list[tuple[str, slice | None]]:
        """This rank's rows of every RNN tensor, then the replicated readout, whole."""
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        rows = [(f"rnn.{kind}_l{layer}", self.stage.rows)
                for layer, ws in enumerate(self.stage.weights)
                for kind, w in zip(kinds, ws) if w is not None]
        return rows + [(f"readout.{n}", None) for n, _ in self.net.readout.named_parameters()]

    def local_pieces(self) -> dict[str, torch.Tensor]:
        """This rank's rows of every RNN tensor; the replicated readout from rank 0 only."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        pieces = {f"rnn.{kind}_l{layer}": w.detach().clone()
                  for layer, ws in enumerate(self.stage.weights)
                  for kind, w in zip(names, ws) if w is not None}
        if self.stage.k == 0:
            pieces.update({f"readout.{n}": p.detach().clone()
                           for n, p in self.net.readout.named_parameters()})
        return pieces

    def assemble(self, pieces: list[dict[str, torch.Tensor]]) -> None:
        """Stack every rank's rows back into `net`'s whole tensors, in rank order (a gated
        layer's in each of its G gate blocks)."""
        params = dict(self.net.named_parameters())
        Hk, G = self.stage.Hk, getattr(self.stage, "gates", 1)
        for k, part in enumerate(pieces):
            for name, value in part.items():
                target = params[name]
                if name.startswith("rnn."):
                    target = target.view(G, -1, *target.shape[1:])[:, k * Hk:(k + 1) * Hk]
                target.copy_(value.view_as(target))
