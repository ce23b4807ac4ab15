"""Run a model once on a batch inside a Trace, without touching its gradients or the RNG stream.

Diagnostics (during training and in `rnnscope diagnose`) need one forward and backward pass with
the engine's Trace attached. This pass must not change training: gradients are taken with
torch.autograd.grad (never accumulated into .grad), the RNG state is forked (dropout draws do not
shift the training's random stream) and a DistributedDataParallel wrapper is stepped around (its
hooks would otherwise expect a matching all-reduce).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from rnnscope.engine.trace import Trace
from rnnscope.errors import UserError
from rnnscope.nn import GRU, LSTM, RNN

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel or DataParallel wrapper (the model itself if none)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def find_rnn(model: nn.Module) -> RNN | LSTM | GRU:
    """The rnnscope.nn.RNN, LSTM or GRU inside a model (the model itself, or its first such submodule)."""
    for module in unwrap(model).modules():
        if isinstance(module, (RNN, LSTM, GRU)):
            return module
    raise UserError(
        f"the model ({type(model).__name__}) has no rnnscope.nn.RNN, LSTM or GRU inside; diagnostics read "
        "the engine's traces, so build the model with rnnscope.nn's modules instead of torch.nn's"
    )


def default_loss(output, targets: torch.Tensor) -> torch.Tensor:
    """MSE for real-valued targets, cross-entropy for class indices; the last step if shapes say so.

    `output` may be a tensor or an (output, h_n) tuple as rnnscope.nn.RNN returns.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if targets.is_floating_point():
        if output.shape != targets.shape and output.dim() == 3 and output[:, -1].shape == targets.shape:
            output = output[:, -1]  # many-to-one: the prediction is the last step's output
        if output.shape != targets.shape:
            raise UserError(
                f"cannot compare the model's output {tuple(output.shape)} with the targets "
                f"{tuple(targets.shape)}; pass loss_fn= to say how the loss is computed"
            )
        return F.mse_loss(output, targets)
    if output.dim() == targets.dim() + 2 and output.dim() == 3:
        output = output[:, -1]  # many-to-one classification
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1))


def traced_pass(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    weight_adjustments: bool = False,
) -> tuple[Trace, float]:
    """One forward and backward pass with a Trace attached; returns the trace and the loss.

    The model's .grad fields, its mode and the global RNG state are left as they were.
    """
    module = unwrap(model)
    find_rnn(module)  # a clear error early if there is nothing to trace
    loss_fn = loss_fn or default_loss
    params = [p for p in module.parameters() if p.requires_grad]
    devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        with Trace(weight_adjustments=weight_adjustments) as trace:
            loss = loss_fn(module(inputs), targets)
            if params and loss.requires_grad:
                torch.autograd.grad(loss, params, allow_unused=True)
    return trace, float(loss.detach())
