"""A cell's engine as a torch custom operator: what torch.compile and torch.export see.

The compiler cannot usefully trace the engine: it would unroll the Python time loop (T steps of
ops, minutes of compile time for long sequences) and differentiate it with its own autograd,
not with the hand-written BPTT. So while a compiler traces, the engine enters the graph as one
opaque operator `rnnscope::<name>_forward` whose gradient is a second opaque operator
`rnnscope::<name>_backward`, registered as its autograd formula. Both run the same Python
functions as the eager engine; the compiler only sees their inputs' and outputs' shapes.

In eager mode the engine does not go through these operators: the dispatcher's per-call
overhead buys nothing there, and only the eager path can attach a Trace (a Python object the
operator schema cannot carry). `opaque()` tells a caller which path to take.

A cell plugs in by writing three plain functions over lists of tensors and one string of
options (custom operator schemas take tensors, numbers and strings, not Python objects):

    forward(inputs, options)  -> outputs            # the engine's tensors, residuals included
    backward(inputs, outputs, grads, needs, options) -> one gradient (or None) per input
    fake(inputs, options)     -> outputs' shapes    # empty tensors, for the compiler

    GRU_OP = EngineOp("gru", forward, backward, fake)
    outputs = GRU_OP(inputs, "tanh sum")            # differentiable, opaque to the compiler
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

Inputs = Sequence[Optional[Tensor]]


def opaque() -> bool:
    """Whether the engine must enter the graph as its custom operator: torch.compile or
    torch.export is tracing the caller. False in eager mode (and under torch.jit.trace)."""
    return torch.compiler.is_compiling()


def _empty_like(reference: Tensor) -> Tensor:
    """The stand-in for "no gradient" in an operator that must return tensors."""
    return reference.new_empty(0)


class EngineOp:
    """A cell's forward and backward registered as the custom operators rnnscope::<name>_forward
    and rnnscope::<name>_backward, the second being the first's autograd formula.

    Args:
        name: the operator's name in the rnnscope namespace ("elman", "lstm", "gru").
        forward: (inputs, options) -> list of output tensors; the backward gets them all, so
            return every residual it needs among them (an output may not alias an input or
            another output).
        backward: (inputs, outputs, grads, needs, options) -> a gradient or None per input;
            grads holds one entry per output (None when that output got no gradient), needs
            one bool per input.
        fake: (inputs, options) -> outputs of the right shape and dtype (their values unused).
    """

    def __init__(self, name: str, forward: Callable, backward: Callable, fake: Callable) -> None:
        self.name = name
        qualname = f"rnnscope::{name}_forward"

        # The schema carries the present tensors and a mask of which inputs they are: autograd
        # does not look inside a list of optional tensors for ones that want a gradient.
        @torch.library.custom_op(qualname, mutates_args=())
        def forward_op(tensors: list[Tensor], present: list[bool], options: str) -> list[Tensor]:
            return [t.contiguous() for t in forward(_with_nones(tensors, present), options)]

        @forward_op.register_fake
        def _(tensors, present, options):
            return fake(_with_nones(tensors, present), options)

        @torch.library.custom_op(f"rnnscope::{name}_backward", mutates_args=())
        def backward_op(
            tensors: list[Tensor],
            present: list[bool],
            outputs: list[Tensor],
            grads: list[Optional[Tensor]],
            needs: list[bool],
            options: str,
        ) -> list[Tensor]:
            inputs = _with_nones(tensors, present)
            result = backward(inputs, outputs, grads, [need and p for need, p in zip(needs, present)], options)
            # one tensor per present input; an empty one where no gradient is wanted
            return [_empty_like(outputs[0]) if g is None else g.contiguous()
                    for g, p in zip(result, present) if p]

        @backward_op.register_fake
        def _(tensors, present, outputs, grads, needs, options):
            wanted = [need for need, p in zip(needs, present) if p]
            return [torch.empty_like(t) if want else _empty_like(outputs[0]) for t, want in zip(tensors, wanted)]

        def setup_context(ctx, inputs, output):
            tensors, present, options = inputs
            ctx.present, ctx.options = present, options
            ctx.num_tensors = len(tensors)
            ctx.wanted = [t.requires_grad for t in tensors]  # per present input
            ctx.save_for_backward(*tensors, *output)

        def backward_formula(ctx, grads):
            saved = ctx.saved_tensors
            tensors, outputs = list(saved[: ctx.num_tensors]), list(saved[ctx.num_tensors :])
            needs = [p and w for p, w in zip(ctx.present, _with_nones(ctx.wanted, ctx.present))]
            grads_in = backward_op(tensors, ctx.present, outputs, list(grads), needs, ctx.options)
            return [g if want else None for g, want in zip(grads_in, ctx.wanted)], None, None

        forward_op.register_autograd(backward_formula, setup_context=setup_context)
        self.forward_op, self.backward_op = forward_op, backward_op

    def __call__(self, inputs: Inputs, options: str) -> list[Tensor]:
        """Run the forward operator on `inputs` (differentiable through the backward operator)."""
        present = [t is not None for t in inputs]
        return self.forward_op([t for t in inputs if t is not None], present, options)


def _with_nones(tensors: Sequence[Tensor], present: Sequence[bool]) -> list[Tensor | None]:
    """The inputs list again, None where an input was absent."""
    it = iter(tensors)
    return [next(it) if p else None for p in present]
