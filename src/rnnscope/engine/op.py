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
_LIB = torch.library.Library("rnnscope", "FRAGMENT")  # every cell's operators live here


def opaque() -> bool:
    """Whether the engine must enter the graph as its custom operator: torch.compile or
    torch.export is tracing the caller. False in eager mode (and under torch.jit.trace)."""
    return torch.compiler.is_compiling()


def _empty_like(reference: Tensor) -> Tensor:
    """The stand-in for "no gradient" in an operator that must return tensors."""
    return reference.new_empty(0)


class EngineOp:
    """A cell's forward and backward registered as the custom operators rnnscope::<name>_forward
    and rnnscope::<name>_backward, the second being the first's gradient (an autograd.Function
    whose forward and backward are one operator call each).

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
        fwd, bwd = f"{name}_forward", f"{name}_backward"
        # Defined with torch.library.Library rather than the custom_op decorator: a compiled
        # graph calls the operator below autograd, and the decorator's Python autograd layer
        # costs ~80 µs a call there (about a third of a compiled step at T = 50, H = 32);
        # this path costs ~15 µs. The schema carries the present tensors and a mask saying
        # which inputs they are (an absent bias is None).
        _LIB.define(f"{fwd}(Tensor[] tensors, bool[] present, str options) -> Tensor[]")
        _LIB.define(f"{bwd}(Tensor[] tensors, bool[] present, Tensor[] outputs, Tensor?[] grads, "
                    f"bool[] needs, str options) -> Tensor[]")

        def forward_kernel(tensors, present, options):
            return [t.contiguous() for t in forward(_with_nones(tensors, present), options)]

        def backward_kernel(tensors, present, outputs, grads, needs, options):
            inputs = _with_nones(tensors, present)
            result = backward(inputs, outputs, grads, [n and p for n, p in zip(needs, present)], options)
            # one tensor per present input; an empty one where no gradient is wanted
            return [_empty_like(outputs[0]) if g is None else g.contiguous() for g, p in zip(result, present) if p]

        def backward_fake(tensors, present, outputs, grads, needs, options):
            wanted = [n for n, p in zip(needs, present) if p]
            return [torch.empty_like(t) if w else _empty_like(outputs[0]) for t, w in zip(tensors, wanted)]

        _LIB.impl(fwd, forward_kernel, "CompositeExplicitAutograd")
        _LIB.impl(bwd, backward_kernel, "CompositeExplicitAutograd")
        torch.library.register_fake(f"rnnscope::{fwd}", lambda t, p, o: fake(_with_nones(t, p), o), lib=_LIB)
        torch.library.register_fake(f"rnnscope::{bwd}", backward_fake, lib=_LIB)
        self.forward_op = getattr(torch.ops.rnnscope, fwd).default
        self.backward_op = getattr(torch.ops.rnnscope, bwd).default
        forward_op, backward_op = self.forward_op, self.backward_op

        class Formula(torch.autograd.Function):
            """The backward operator as the forward operator's gradient (torch.compile traces
            this Function: its forward and backward are one operator call each)."""

            @staticmethod
            def forward(ctx, present, options, *tensors):
                with torch._C._AutoDispatchBelowAutograd():  # to the kernel, not back to autograd
                    outputs = forward_op(list(tensors), present, options)
                ctx.present, ctx.options, ctx.num_tensors = present, options, len(tensors)
                ctx.save_for_backward(*tensors, *outputs)
                return tuple(outputs)

            @staticmethod
            def backward(ctx, *grads):
                saved = ctx.saved_tensors
                tensors, outputs = list(saved[: ctx.num_tensors]), list(saved[ctx.num_tensors :])
                wanted = list(ctx.needs_input_grad[2:])  # per present input
                needs = [bool(n) for n in _with_nones(wanted, ctx.present)]  # None (absent): False
                grads_in = backward_op(tensors, ctx.present, outputs, list(grads), needs, ctx.options)
                return (None, None, *[g if w else None for g, w in zip(grads_in, wanted)])

        def autograd_kernel(tensors, present, options):
            if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
                return list(Formula.apply(present, options, *tensors))
            with torch._C._AutoDispatchBelowAutograd():  # nothing to differentiate (a compiled graph)
                return forward_op(tensors, present, options)

        _LIB.impl(fwd, autograd_kernel, "Autograd")

    def __call__(self, inputs: Inputs, options: str) -> list[Tensor]:
        """Run the forward operator on `inputs` (differentiable through the backward operator)."""
        present = [t is not None for t in inputs]
        return self.forward_op([t for t in inputs if t is not None], present, options)


def _with_nones(tensors: Sequence[Tensor], present: Sequence[bool]) -> list[Tensor | None]:
    """The inputs list again, None where an input was absent."""
    it = iter(tensors)
    return [next(it) if p else None for p in present]
