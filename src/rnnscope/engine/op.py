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
    out, finals = GRU_OP.stack(x, layers, 2, 1, "sum")   # a whole module: one call (nn/stack.py)
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
    """A cell's forward and backward registered as custom operators, in two shapes:

    - one layer: rnnscope::<name>_forward, whose gradient is rnnscope::<name>_backward;
    - a whole module (every layer and direction, nn/stack.py): rnnscope::<name>_stack_forward and
      rnnscope::<name>_stack_backward, the same functions composed layer by layer (stack()), so a
      compiled module makes one operator call forward and one backward, whatever its depth.

    Args:
        name: the operator's name in the rnnscope namespace ("elman", "lstm", "gru").
        forward: (inputs, options) -> list of output tensors; the backward gets them all, so
            return every residual it needs among them (an output may not alias an input or
            another output). The first output is the layer's out (T, B, H), the next ones its
            final states, as many as it takes initial states (inputs: x, states..., W_ih, W_hh,
            b_ih, b_hh).
        backward: (inputs, outputs, grads, needs, options) -> a gradient or None per input;
            grads holds one entry per output (None when that output got no gradient), needs
            one bool per input.
        fake: (inputs, options) -> outputs of the right shape and dtype (their values unused).
    """

    def __init__(self, name: str, forward: Callable, backward: Callable, fake: Callable) -> None:
        self.name = name
        self.forward_op, self.backward_op = _define(name, forward, backward, fake)
        stacked = _Stack(forward, backward, fake)
        self.stack_forward_op, self.stack_backward_op = _define(f"{name}_stack", stacked.forward,
                                                                stacked.backward, stacked.fake)

    def __call__(self, inputs: Inputs, options: str) -> list[Tensor]:
        """Run the forward operator on `inputs` (differentiable through the backward operator)."""
        present = [t is not None for t in inputs]
        return self.forward_op([t for t in inputs if t is not None], present, options)

    def stack(self, x: Tensor, layers: Sequence[Inputs], num_layers: int, directions: int,
              options: str) -> tuple[Tensor, list[list[Tensor]]]:
        """Every layer and direction of a module as one operator call.

        Args:
            x: (T, B, I) the first layer's input.
            layers: per layer and direction (layer-major), [states..., W_ih, W_hh, b_ih, b_hh].
            num_layers, directions: the module's stack (direction 1 runs over the reversed time).
            options: the cell's options string.
        Returns:
            the last layer's output (T, B, D·H), and per layer and direction its final states.
        """
        inputs = [x, *(t for layer in layers for t in layer)]
        present = [t is not None for t in inputs]
        outputs = self.stack_forward_op([t for t in inputs if t is not None], present,
                                        f"{num_layers} {directions};{options}")
        plan = _StackPlan(num_layers, directions, len(layers[0]) - 4, len(outputs))
        finals = [outputs[plan.block(k) + 1 : plan.block(k) + 1 + plan.states]
                  for k in range(num_layers * directions)]
        return outputs[plan.layer_output(num_layers - 1)], finals


def _define(name: str, forward: Callable, backward: Callable, fake: Callable):
    """Register rnnscope::<name>_forward (differentiable) and rnnscope::<name>_backward (its
    gradient); returns the two operators."""
    fwd, bwd = f"{name}_forward", f"{name}_backward"
    # Defined with torch.library.Library rather than the custom_op decorator: a compiled
    # graph calls the operator below autograd, and the decorator's Python autograd layer
    # costs ~80 µs a call there (about a third of a compiled step at T = 50, H = 32);
    # this path costs ~15 µs. The schema carries the present tensors and a mask saying
    # which inputs they are (an absent bias is None). The forward is defined twice: the
    # differentiable entry (its Autograd kernel below), and the same kernel without one
    # (<name>_forward_raw), which is what a compiled graph calls: there no Python autograd
    # kernel runs at each step only to find that nothing is to be differentiated.
    _LIB.define(f"{fwd}(Tensor[] tensors, bool[] present, str options) -> Tensor[]")
    _LIB.define(f"{fwd}_raw(Tensor[] tensors, bool[] present, str options) -> Tensor[]")
    _LIB.define(f"{bwd}(Tensor[] tensors, bool[] present, Tensor[] outputs, Tensor?[] grads, "
                f"bool[] needs, str options) -> Tensor[]")

    # AOT autograd runs a compiled graph with view replay on: every view then records how to
    # replay itself, and the engine makes several views per time step (unbind, select, t), so
    # inside a compiled step the same loops ran ~6 % slower. The outputs are buffers the kernel
    # allocated itself (never views of its inputs), so the kernels run with view replay off.
    def forward_kernel(tensors, present, options):
        with torch.autograd._force_original_view_tracking(False):
            return [t.contiguous() for t in forward(_with_nones(tensors, present), options)]

    def backward_kernel(tensors, present, outputs, grads, needs, options):
        with torch.autograd._force_original_view_tracking(False):
            result = backward(_with_nones(tensors, present), outputs, grads,
                              [n and p for n, p in zip(needs, present)], options)
            # one tensor per present input; an empty one where no gradient is wanted
            return [_empty_like(outputs[0]) if g is None else g.contiguous()
                    for g, p in zip(result, present) if p]

    def backward_fake(tensors, present, outputs, grads, needs, options):
        wanted = [n for n, p in zip(needs, present) if p]
        return [torch.empty_like(t) if w else _empty_like(outputs[0]) for t, w in zip(tensors, wanted)]

    def forward_fake(tensors, present, options):
        return fake(_with_nones(tensors, present), options)

    for op in (fwd, f"{fwd}_raw"):
        _LIB.impl(op, forward_kernel, "CompositeExplicitAutograd")
        torch.library.register_fake(f"rnnscope::{op}", forward_fake, lib=_LIB)
    _LIB.impl(bwd, backward_kernel, "CompositeExplicitAutograd")
    torch.library.register_fake(f"rnnscope::{bwd}", backward_fake, lib=_LIB)
    forward_op = getattr(torch.ops.rnnscope, fwd).default
    raw_op = getattr(torch.ops.rnnscope, f"{fwd}_raw").default
    backward_op = getattr(torch.ops.rnnscope, bwd).default

    class Formula(torch.autograd.Function):
        """The backward operator as the forward operator's gradient (torch.compile traces
        this Function: its forward and backward are one operator call each)."""

        @staticmethod
        def forward(ctx, present, options, *tensors):
            outputs = raw_op(list(tensors), present, options)
            ctx.present, ctx.options, ctx.num_tensors = present, options, len(tensors)
            ctx.set_materialize_grads(False)  # an output nothing used (a residual): None, not zeros to add
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
        return raw_op(tensors, present, options)  # nothing to differentiate

    _LIB.impl(fwd, autograd_kernel, "Autograd")
    return forward_op, backward_op


class _StackPlan:
    """Where each layer's outputs sit in a stack operator's flat output list: per layer, its
    directions' outputs (out, final states, residuals: `per` tensors each), then, for a
    bidirectional stack, the layer's output (both directions side by side), which is also the
    next layer's input."""

    def __init__(self, num_layers: int, directions: int, states: int, total: int) -> None:
        self.L, self.D, self.states = num_layers, directions, states
        self.extra = 1 if directions == 2 else 0
        self.per = (total - num_layers * self.extra) // (num_layers * directions)

    def block(self, k: int) -> int:
        """Index of the first output (out) of layer k // D, direction k % D."""
        layer, direction = divmod(k, self.D)
        return layer * (self.D * self.per + self.extra) + direction * self.per

    def layer_output(self, layer: int) -> int:
        """Index of the layer's output (T, B, D·H)."""
        return self.block(layer * self.D) + self.D * self.per if self.D == 2 else self.block(layer)


def _parse(options: str) -> tuple[int, int, str]:
    head, cell = options.split(";", 1)
    num_layers, directions = (int(v) for v in head.split())
    return num_layers, directions, cell


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else a if b is None else a + b


class _Stack:
    """A cell's one-layer forward, backward and fake composed over a module's layers and
    directions (inputs: x, then per layer and direction states..., W_ih, W_hh, b_ih, b_hh)."""

    def __init__(self, forward: Callable, backward: Callable, fake: Callable) -> None:
        self.layer_forward, self.layer_backward, self.layer_fake = forward, backward, fake

    def forward(self, inputs, options: str) -> list[Tensor]:
        return self._run(self.layer_forward, inputs, options)

    def fake(self, inputs, options: str) -> list[Tensor]:
        return self._run(self.layer_fake, inputs, options)

    @staticmethod
    def _run(layer_fn: Callable, inputs, options: str) -> list[Tensor]:
        num_layers, D, cell = _parse(options)
        per_input = (len(inputs) - 1) // (num_layers * D)
        x, outputs = inputs[0], []
        for layer in range(num_layers):
            outs = []
            for direction in range(D):
                j = 1 + (layer * D + direction) * per_input
                seq = x if direction == 0 else x.flip(0)
                result = layer_fn([seq, *inputs[j : j + per_input]], cell)
                outputs.extend(result)
                outs.append(result[0] if direction == 0 else result[0].flip(0))
            if D == 2:
                x = torch.cat(outs, dim=2)  # (T, B, 2H): the next layer's input, kept for its backward
                outputs.append(x)
            else:
                x = outs[0]
        return outputs

    def backward(self, inputs, outputs, grads, needs, options: str) -> list[Tensor | None]:
        num_layers, D, cell = _parse(options)
        per_input = (len(inputs) - 1) // (num_layers * D)
        plan = _StackPlan(num_layers, D, per_input - 4, len(outputs))
        result: list[Tensor | None] = [None] * len(inputs)
        grad_below = None  # the gradient of the current layer's output from the layer above
        for layer in reversed(range(num_layers)):
            top = plan.layer_output(layer)
            g_layer = _add(grads[top], grad_below)  # (T, B, D·H) or None
            x = inputs[0] if layer == 0 else outputs[plan.layer_output(layer - 1)]
            need_x = layer > 0 or needs[0]
            grad_below = None
            for direction in range(D):
                k = layer * D + direction
                first, j = plan.block(k), 1 + k * per_input
                layer_outputs = outputs[first : first + plan.per]
                layer_grads = list(grads[first : first + plan.per])
                if D == 1:
                    layer_grads[0] = g_layer
                elif g_layer is not None:
                    H = layer_outputs[0].shape[-1]
                    part = g_layer[..., direction * H : (direction + 1) * H]
                    layer_grads[0] = _add(layer_grads[0], part if direction == 0 else part.flip(0))
                seq = x if direction == 0 else x.flip(0)
                got = self.layer_backward([seq, *inputs[j : j + per_input]], layer_outputs, layer_grads,
                                          [need_x, *needs[j : j + per_input]], cell)
                result[j : j + per_input] = got[1:]
                if need_x and got[0] is not None:
                    grad_below = _add(grad_below, got[0] if direction == 0 else got[0].flip(0))
        result[0] = grad_below if needs[0] else None
        return result


def _with_nones(tensors: Sequence[Tensor], present: Sequence[bool]) -> list[Tensor | None]:
    """The inputs list again, None where an input was absent."""
    it = iter(tensors)
    return [next(it) if p else None for p in present]
