"""BPTT over a packed batch of sequences of different lengths (torch's PackedSequence layout).

A packed batch stores the rows of every time step one after the other, longest sequences first:
step t holds batch_sizes[t] rows, the sequences still running at t (batch_sizes never grows).
So the active rows of step t are the first batch_sizes[t] rows of step t−1, and the engine does
one matmul per step on exactly them: a sequence stops at its own length, and h_n of a sequence
is h at its last real step. Nothing is computed for padding, and nothing flows back from it.

    z_t[:n_t] = xw_t + h_{t-1}[:n_t] W_hhᵀ,   h_t = f(z_t)               (n_t = batch_sizes[t])
    dh_t      = output error at t (+ ∂L/∂h_n for the sequences ending at t)
                + δ_{t+1} W_hh on the first n_{t+1} rows                   (for t = T … 1)
    δ_t       = dh_t ⊙ f'(z_t)

`PackedLayout` holds the row bookkeeping every cell needs (offsets, last rows, the rows of h_{t-1},
the reversal of each sequence, the padded positions); a gated cell's packed loop reuses it.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from rnnscope.engine.bptt import TIME_REDUCTIONS, _record_backward, _summed_bias
from rnnscope.engine.cells import get_activation
from rnnscope.engine.trace import LayerTrace, active_trace
from rnnscope.errors import UserError


class PackedLayout:
    """Where each (time step, sequence) lives among the rows of a packed batch.

    Args:
        batch_sizes: (T,) int64 on the CPU, non-increasing: rows of each time step.
        device: where the row indices live (the device of the packed data).
    """

    def __init__(self, batch_sizes: torch.Tensor, device: torch.device | str = "cpu") -> None:
        sizes = [int(n) for n in batch_sizes]
        assert sizes and all(a >= b for a, b in zip(sizes, sizes[1:])), "batch_sizes must not grow"
        self.batch_sizes = sizes
        self.steps, self.batch, self.rows = len(sizes), sizes[0], sum(sizes)
        self.offsets = [0]
        for n in sizes[:-1]:
            self.offsets.append(self.offsets[-1] + n)  # first row of each step
        counts = torch.tensor(sizes)
        step_of_row = torch.repeat_interleave(torch.arange(self.steps), counts)  # (N,)
        seq_of_row = torch.arange(self.rows) - torch.tensor(self.offsets).repeat_interleave(counts)  # (N,)
        self.lengths = (counts.unsqueeze(1) > torch.arange(self.batch)).sum(0)  # (B,) steps per sequence
        starts = torch.tensor(self.offsets)
        self.last_rows = starts[self.lengths - 1] + torch.arange(self.batch)  # (B,) row of h_n
        # the row of h_{t-1} for every row of steps t ≥ 1 (steps 0's rows read h_0)
        self.prev_rows = starts[step_of_row[self.batch:] - 1] + seq_of_row[self.batch:]  # (N − B,)
        # each sequence reversed within its own length: row (t, b) <-> row (len_b − 1 − t, b)
        self.reverse_rows = starts[self.lengths[seq_of_row] - 1 - step_of_row] + seq_of_row  # (N,)
        self.padded_rows = step_of_row * self.batch + seq_of_row  # (N,) position in (T·B)
        for name in ("last_rows", "prev_rows", "reverse_rows", "padded_rows"):
            setattr(self, name, getattr(self, name).to(device))

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(N, F) rows -> one (n_t, F) view per step."""
        return rows.split(self.batch_sizes)

    def previous(self, rows: torch.Tensor) -> torch.Tensor:
        """(N − B, F): for every row of steps t ≥ 1, the row of the same sequence at t − 1."""
        return rows[self.prev_rows]

    def last(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, F): each sequence's row at its last real step."""
        return rows[self.last_rows]

    def add_at_last(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """rows[last step of sequence b] += values[b], in place (∂L/∂h_n joins the output error)."""
        rows.index_add_(0, self.last_rows, values)

    def pad(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, F) packed rows -> (T, B, F), zeros at the padded steps."""
        padded = packed.new_zeros(self.steps * self.batch, packed.shape[1])
        padded[self.padded_rows] = packed
        return padded.view(self.steps, self.batch, packed.shape[1])

    def mask(self) -> torch.Tensor:
        """(T, B) True at each sequence's real steps, False at padding."""
        return torch.arange(self.steps).unsqueeze(1) < self.lengths.unsqueeze(0)


class DenseLayout:
    """T steps of the same B rows, a padded batch's (T·B, F) rows, with PackedLayout's interface:
    the gated engines run one loop over either (views and slices here, no gathers).

    Args:
        steps: T.
        batch: B.
    """

    def __init__(self, steps: int, batch: int) -> None:
        self.steps, self.batch, self.rows = steps, batch, steps * batch
        self.batch_sizes = [batch] * steps

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(T·B, F) rows -> T views (B, F)."""
        return rows.split(self.batch)

    def previous(self, rows: torch.Tensor) -> torch.Tensor:
        """((T − 1)·B, F): steps 1 … T−1's h_{t-1} are steps 0 … T−2's rows (a view)."""
        return rows[: self.rows - self.batch]

    def last(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, F) the last step's rows (a view)."""
        return rows[self.rows - self.batch :]

    def add_at_last(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """The last step's rows += values (B, F), in place."""
        rows[self.rows - self.batch :].add_(values)

    def pad(self, rows: torch.Tensor) -> torch.Tensor:
        """(T·B, F) -> (T, B, F), a view."""
        return rows.view(self.steps, self.batch, rows.shape[1])

    def mask(self) -> None:
        """None: every step is real (a Trace of a padded batch has no mask)."""
        return None


def as_rows(x: torch.Tensor, layout):
    """(x as (N, F) rows, their layout): a padded (T, B, F) batch when layout is None (a
    DenseLayout: the autograd.Function's arguments hold no Python object then, which
    torch.jit.trace could not record), else packed rows and their PackedLayout."""
    if layout is None:
        return x.reshape(-1, x.shape[2]), DenseLayout(x.shape[0], x.shape[1])
    return x, layout


def output_errors(layout, grad_out: torch.Tensor | None, grad_last: torch.Tensor | None,
                  like: torch.Tensor) -> torch.Tensor:
    """(N, H) ∂L/∂h_t from outside the layer: the error on every output row, plus ∂L/∂h_n at each
    sequence's last step (a new tensor the backward loop may add to in place). grad_out is (N, H)
    or, for a padded batch, (T, B, H) with any strides (one copy either way)."""
    if grad_out is None:
        dh = torch.zeros_like(like)
    else:
        dh = torch.empty_like(like)  # (N, H) contiguous
        dh.view(grad_out.shape).copy_(grad_out)
    if grad_last is not None:
        layout.add_at_last(dh, grad_last)
    return dh


class ElmanPackedBPTT(torch.autograd.Function):
    """One Elman layer over a packed batch, with hand-written BPTT as its backward."""

    @staticmethod
    def forward(ctx, x, h0, W_ih, W_hh, b_ih, b_hh, layout, activation, time_reduction, record):
        act = get_activation(activation)
        bias = _summed_bias(b_ih, b_hh)
        # the input projection of every row at once; h starts out holding it
        h = torch.mm(x, W_ih.t()) if bias is None else torch.addmm(bias, x, W_ih.t())  # (N, H)
        z = torch.empty_like(h) if record is not None else None
        W_hh_t, h_prev = W_hh.t(), h0
        for offset, n in zip(layout.offsets, layout.batch_sizes):
            h_t = h[offset : offset + n]  # (n_t, H): the sequences still running at t
            h_t.addmm_(h_prev[:n], W_hh_t)  # z_t = x_t W_ihᵀ + b + h_{t-1} W_hhᵀ
            if z is not None:
                z[offset : offset + n].copy_(h_t)
            act.forward_(h_t)  # h_t = f(z_t), in place
            h_prev = h_t
        if record is not None:
            record.z, record.h = layout.pad(z), layout.pad(h.detach())
        ctx.act, ctx.layout, ctx.time_reduction, ctx.record = act, layout, time_reduction, record
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, h0, W_ih, W_hh, h)
        return h, h[layout.last_rows]  # (N, H), (B, H) each sequence's last real step

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_h_last):
        x, h0, W_ih, W_hh, h = ctx.saved_tensors
        layout: PackedLayout = ctx.layout
        B, H = h0.shape
        # dh holds every row's output error, then receives what flows back from step t+1:
        # after the loop it is ∂L/∂h_t for every row (what a Trace records as dh)
        dh = grad_out.clone() if grad_out is not None else torch.zeros_like(h)  # (N, H)
        if grad_h_last is not None:
            dh.index_add_(0, layout.last_rows, grad_h_last)  # ∂L/∂h_n at each sequence's last step
        delta = torch.empty_like(h)  # (N, H) local error terms δ_t
        delta_next = None
        for offset, n in reversed(list(zip(layout.offsets, layout.batch_sizes))):
            dh_t = dh[offset : offset + n]  # (n_t, H)
            if delta_next is not None:
                dh_t[: delta_next.shape[0]].addmm_(delta_next, W_hh)  # + δ_{t+1} W_hh, running rows only
            delta_next = ctx.act.error_term(dh_t, h[offset : offset + n], out=delta[offset : offset + n])

        needs = ctx.needs_input_grad
        dx = dh0 = dW_ih = dW_hh = db_ih = db_hh = None
        if needs[0]:
            dx = torch.mm(delta, W_ih)  # (N, I) ∂L/∂x_t = δ_t W_ih
        if needs[1]:
            dh0 = torch.mm(delta[:B], W_hh)  # (B, H) ∂L/∂h_0 = δ_1 W_hh (every sequence runs at t = 1)
        # weight adjustments over every real step, one matmul each
        if needs[2]:
            dW_ih = torch.mm(delta.t(), x)  # (H, I) Σ δ_tᵀ x_t
        if needs[3]:
            dW_hh = torch.mm(delta[:B].t(), h0)  # (H, H) δ_1ᵀ h_0
            if layout.rows > B:
                dW_hh.addmm_(delta[B:].t(), h[layout.prev_rows])  # + Σ_{t≥2} δ_tᵀ h_{t-1}
        has_b_ih, has_b_hh = ctx.has_bias
        if (needs[4] and has_b_ih) or (needs[5] and has_b_hh):
            db = delta.sum(0)  # (H,)
            db_ih = db if needs[4] and has_b_ih else None
            db_hh = db.clone() if needs[5] and has_b_hh else None
        if ctx.time_reduction == "mean":  # divided by T, the longest sequence's steps
            for grad in (dW_ih, dW_hh, db_ih, db_hh):
                if grad is not None:
                    grad.div_(layout.steps)
        if ctx.record is not None:
            padded_h = layout.pad(h)
            _record_backward(ctx.record, layout.pad(dh), layout.pad(delta), layout.pad(x), h0, padded_h)
        return dx, dh0, dW_ih, dW_hh, db_ih, db_hh, None, None, None, None


@torch.compiler.disable  # data-dependent steps: under torch.compile this runs eagerly (a graph break)
def elman_packed_layer(
    x: torch.Tensor,
    h0: torch.Tensor,
    layout: PackedLayout,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    activation: str = "tanh",
    time_reduction: str = "sum",
    trace_name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Elman layer over a packed batch with hand-written BPTT.

    Args:
        x: (N, I) the packed rows (PackedSequence.data), N = Σ batch_sizes.
        h0: (B, H) initial hidden state, in the packed batch's (sorted) order.
        layout: the batch's PackedLayout (from its batch_sizes).
        W_ih, W_hh, b_ih, b_hh, activation, time_reduction, trace_name: as for elman_layer;
            "mean" divides the weight adjustments by T, the longest sequence's steps.

    Returns:
        out (N, H), h_t of every real step, packed; and h_n (B, H), each sequence's last h_t.
        A Trace records (T, B, ·) tensors with zeros at the padded steps and `mask` (T, B).
    """
    if time_reduction not in TIME_REDUCTIONS:
        raise UserError(f"time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")
    record = None
    trace = active_trace()
    if trace is not None:
        record = LayerTrace(
            name=trace_name or "layer", activation=activation, time_reduction=time_reduction,
            x=layout.pad(x.detach()), h0=h0.detach().clone(), W_ih=W_ih.detach().clone(),
            W_hh=W_hh.detach().clone(), weight_adjustments=trace.weight_adjustments, mask=layout.mask(),
        )
        trace.layers.append(record)
    return ElmanPackedBPTT.apply(x.contiguous(), h0.contiguous(), W_ih, W_hh, b_ih, b_hh, layout,
                                 activation, time_reduction, record)
