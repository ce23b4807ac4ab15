"""What torch's model tooling meets in a drop-in module, where it cannot simply work.

docs/compatibility.md lists every feature and the test behind it; this file holds the refusals
that must say why and what to use instead, shared by every drop-in module.
"""

from __future__ import annotations

from torch import nn


def refuse_script(module: nn.Module) -> nn.Module:
    """torch.jit.script's hook (`__prepare_scriptable__ = refuse_script`): a clear refusal.

    TorchScript cannot compile a Python autograd.Function (the hand-written BPTT) and is in
    maintenance in torch; torch.export and torch.compile see the engine as one custom operator.
    """
    name = type(module).__name__
    raise RuntimeError(
        f"torch.jit.script cannot compile rnnscope.nn.{name}: its BPTT engine is Python (an "
        f"autograd.Function). Use torch.export.export(model, args) for a deployable graph, "
        f"torch.compile(model) for speed, or torch.jit.trace(model, x) for one fixed sequence length")
