"""A drop-in module's whole stack of layers as one operator, while torch.compile or export traces.

    if stacked(module):
        output, finals = run_stack(module, x, states)   # one rnnscope::<cell>_stack_forward call

Each layer and direction entering the graph as its own operator cost a compiled step a fixed
overhead per call (the dispatcher, the Python kernel, the compiled graph's checks of every
output): at T = 50 that made a compiled 2-layer step slower than eager. The stack operator runs
the same one-layer functions layer after layer (engine/op.py), forward and backward, so the
numbers are the engine's and the gradients the hand-written BPTT's. Dropout between layers in
training draws random numbers, which an operator should not hide from the compiler: that case
keeps one operator per layer, with the dropout in the graph between them.
"""

from __future__ import annotations

import torch

from rnnscope.engine.bptt import ELMAN_OP
from rnnscope.engine.gru import GRU_OP
from rnnscope.engine.lstm import LSTM_OP
from rnnscope.engine.op import opaque

OPS = {"elman": ELMAN_OP, "lstm": LSTM_OP, "gru": GRU_OP}


def stacked(module) -> bool:
    """Whether the module's layers run as one stack operator: a compiler is tracing and no
    dropout is drawn between the layers."""
    return opaque() and not (module.dropout > 0 and module.training and module.num_layers > 1)


def _cell(module) -> tuple[str, str]:
    """(cell, the cell operator's options string) of a drop-in module."""
    cell = getattr(module, "cell", "elman")
    if cell == "elman":
        return cell, f"{module.nonlinearity} {module.time_reduction}"
    return cell, module.time_reduction


def run_stack(module, x: torch.Tensor, states: tuple[torch.Tensor, ...]):
    """Every layer and direction of `module` over x (T, B, I) from the initial states (each
    (D·layers, B, H)): the output (T, B, D·H) and the final states, each (D·layers, B, H)."""
    cell, options = _cell(module)
    D = 2 if module.bidirectional else 1
    layers = []
    for layer in range(module.num_layers):
        for direction in range(D):
            suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            weights = [getattr(module, kind + suffix) if module.bias or kind.startswith("weight") else None
                       for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            layers.append([s[layer * D + direction] for s in states] + weights)
    output, finals = OPS[cell].stack(x.contiguous(), layers, module.num_layers, D, options)
    return output, tuple(torch.stack([f[i] for f in finals]) for i in range(len(states)))
