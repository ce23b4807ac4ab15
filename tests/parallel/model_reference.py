"""A small stacked RNN + readout in float64 and its single-process gradients (the reference)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from rnnscope.train.metrics import loss_fn
from rnnscope.train.model import SequenceModel


def make_net(layers: int, hidden: int, activation: str, every_step: bool = True,
             time_reduction: str = "sum", input_size: int = 3, output_size: int = 2,
             seed: int = 0, cell: str = "elman") -> SequenceModel:
    """The same float64 model on every rank (same seed); `cell` elman, lstm or gru."""
    torch.manual_seed(seed)
    cfg = SimpleNamespace(hidden=hidden, layers=layers, activation=activation,
                          time_reduction=time_reduction, cell=cell)
    return SequenceModel(input_size, output_size, cfg, every_step).double()


def make_batch(batch: int, seq_len: int, every_step: bool, input_size: int = 3,
               output_size: int = 2, seed: int = 1):
    """x (B, T, I) and regression targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, seq_len, input_size, generator=g, dtype=torch.float64)
    shape = (batch, seq_len, output_size) if every_step else (batch, output_size)
    return x, torch.randn(*shape, generator=g, dtype=torch.float64)


def reference_grads(net: SequenceModel, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """name -> gradient of one single-process forward and backward; leaves net's .grad clean."""
    net.zero_grad(set_to_none=True)
    y_hat, _ = net(x)
    loss_fn("regression", y_hat, y).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    return grads
