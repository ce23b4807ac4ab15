"""What torch's model tooling meets in a drop-in module, where it cannot simply work.

docs/compatibility.md lists every feature and the test behind it; this file holds the refusals
that must say why and what to use instead, shared by every drop-in module.
"""

from __future__ import annotations

import math
import warnings

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


def check_sizes(hidden_size, num_layers, dropout, stacklevel: int) -> None:
    """The constructor arguments every drop-in checks alike (ValueError naming the value); a
    dropout that cannot act (one layer) is a warning, as in torch. `stacklevel` points the
    warning at the user's constructor call."""
    if not isinstance(hidden_size, int) or hidden_size <= 0:
        raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
    if not isinstance(num_layers, int) or num_layers <= 0:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
        raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            f"dropout={dropout} and num_layers=1: dropout acts between layers, so it does nothing here",
            stacklevel=stacklevel,
        )


class TorchRNNModule(nn.Module):
    """What every drop-in shares with torch.nn.RNNBase around its weights: torch's initialization,
    `all_weights`, the no-op `flatten_parameters` and the TorchScript refusal.

    A subclass registers its parameters in torch's order and names them in `_flat_weights_names`.
    """

    def reset_parameters(self) -> None:
        """torch's initialization: every weight and bias ~ U(−1/√H, 1/√H)."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -stdv, stdv)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Parameters grouped per layer and direction, as torch.nn.RNNBase.all_weights."""
        per_group = 4 if self.bias else 2
        params = [getattr(self, name) for name in self._flat_weights_names]
        return [params[i : i + per_group] for i in range(0, len(params), per_group)]

    def flatten_parameters(self) -> None:
        """No-op, for compatibility (cuDNN's flat weight buffer is not used)."""

    __prepare_scriptable__ = refuse_script  # torch.jit.script: a line saying what to use instead

    def extra_repr(self) -> str:
        """torch's repr: the sizes, then every argument that is not its default (the Elman
        module's nonlinearity too), then rnnscope's time_reduction."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if self.time_reduction != "sum":
            s += f", time_reduction={self.time_reduction!r}"
        return s
