"""What every hidden-unit split stage shares: its parameters and the two exchanges of a time step.

The Elman stage (`hidden_split.HiddenSplitStage`) and the gated one
(`gated_split.GatedHiddenSplitStage`) both own H/K units of every layer (`weights`, per layer
[W_ih^k, W_hh^k, b_ih^k, b_hh^k]) beside the replicated readout, and trade the same two things
per time step: the slices h_t^k all-gathered into h_t (tag hs-act, B·H·b), and partial sums over
the whole h reduce-scattered into this rank's columns (tag hs-grad).
"""

from __future__ import annotations

import time

import torch
from torch import nn

ACT_TAG, GRAD_TAG = "hs-act", "hs-grad"


class HiddenExchange:
    """Set by a subclass: comm, k (rank), K (ranks), hidden (H), Hk (H/K), weights, readout,
    every_step."""

    def parameters(self) -> list[nn.Parameter]:
        """This rank's rows of every layer, then the (replicated) readout."""
        own = [w for layer in self.weights for w in layer if w is not None]
        return own + list(self.readout.parameters())

    def counted_once(self) -> list[nn.Parameter]:
        """The parameters whose gradients this rank adds to the model's norm: its rows of every
        layer, and the readout (replicated, the same gradient everywhere) on rank 0 only."""
        own = [w for layer in self.weights for w in layer if w is not None]
        return own + (list(self.readout.parameters()) if self.k == 0 else [])

    def _read_out(self, top: torch.Tensor, build_graph: bool) -> torch.Tensor:
        """ŷ from the last layer's whole h (T, B, H), kept as a leaf (every_step: all steps, else
        the last) so that the backward reads ∂L/∂h_top from it."""
        self._top = top.detach().requires_grad_(build_graph)
        with torch.set_grad_enabled(build_graph):
            return self.readout(self._top.transpose(0, 1) if self.every_step else self._top[-1])

    def _output_error(self, y_hat: torch.Tensor, grad_y_hat: torch.Tensor, units) -> torch.Tensor:
        """The readout's gradient (into .grad) and this rank's (T, B, Hk) columns `units` of ∂L/∂h_top."""
        torch.autograd.backward(y_hat, grad_y_hat)
        g_top = self._top.grad if self._top.grad is not None else torch.zeros_like(self._top)
        return g_top[..., units].contiguous()

    def _phase(self, name: str, started: float) -> None:
        """A compute span from `started` to now (compute.jsonl); nothing without a ledger."""
        ledger = getattr(self.comm, "ledger", None)
        if ledger is not None:
            ledger.add_phase(name, started, time.perf_counter())

    def _gather(self, h_k: torch.Tensor) -> torch.Tensor:
        """All-gather the slices (B, Hk) of every rank into the whole state (B, H)."""
        B = h_k.shape[0]
        out = torch.empty(self.K * B * self.Hk, dtype=h_k.dtype, device=h_k.device)
        self.comm.all_gather(out, h_k.contiguous().view(-1), tag=ACT_TAG)
        return out.view(self.K, B, self.Hk).transpose(0, 1).reshape(B, self.hidden)

    def _scatter(self, partial: torch.Tensor) -> torch.Tensor:
        """Sum (..., H) partial gradients over ranks and keep this rank's (..., Hk) columns."""
        lead = partial.shape[:-1]
        split = partial.reshape(-1, self.K, self.Hk).transpose(0, 1).contiguous()  # (K, N, Hk)
        out = torch.empty(split.shape[1] * self.Hk, dtype=partial.dtype, device=partial.device)
        self.comm.reduce_scatter(out, split.view(-1), tag=GRAD_TAG)
        return out.view(*lead, self.Hk)
