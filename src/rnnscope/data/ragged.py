"""Windows of different lengths: a series of several (data/many.py) too short for a full window.

A series with no complete window of --data.seq_len rows in one of its splits is not dropped: it
gives that split one shorter window, as long as its rows allow (at least MIN_STEPS rows), ending
at the split's last forecast origin. When any split holds such a window, the split's windows come
as padded batches with their lengths, and the model runs them as a PackedSequence:

    batch = dataset.x_train[idx]        # PaddedWindows: x (B, L, I), zero past each length
    packed = batch.packed()             # pack_padded_sequence(..., enforce_sorted=False)

Each window then stops at its own last row: the forecast is read there (many-to-one), and with a
target at every step the targets past a window's length are NaN, which the loss leaves out
(train/metrics.loss_fn), so no padded step reaches a gradient. data/csv.py picks the shorter
window's origin; evaluate and predict forecast short series through train/forecasting.py's
shorter_span and every_span.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnnscope.errors import UserError

MIN_STEPS = 2  # the fewest rows a shorter window may have


def window_lengths(origins: np.ndarray, offsets, seq_len: int, difference: int) -> np.ndarray:
    """The rows of the window that ends at each origin (rows of the stacked series): seq_len, or
    fewer where its series begins less than seq_len rows before it."""
    series = np.searchsorted(np.asarray(offsets), origins, side="right") - 1
    first = np.asarray(offsets)[series] + difference  # a differenced series' first row has no input
    return np.minimum(seq_len, origins - first + 1)


def _whole_steps(key: tuple, seq_len: int):
    """The batch part of windows[rows, steps], where steps must be every step: a window of fewer
    rows than the others cannot be cut in time (truncated BPTT's pieces would not line up)."""
    steps = key[1] if len(key) > 1 else slice(None)
    whole = isinstance(steps, slice) and (steps.start or 0) == 0 and steps.step in (None, 1) and (
        steps.stop is None or steps.stop >= seq_len)
    if not whole or len(key) > 2:
        raise UserError("windows of different lengths (a series shorter than --data.seq_len) run whole; "
                        "--train.tbptt_k1 cuts them into pieces: set it to 0, or give every series at "
                        "least --data.seq_len rows")
    return key[0]


class PaddedWindows:
    """A batch of windows of different lengths: x (B, L, F) zero past each window's length, and
    lengths (B,). Shaped and sliced along the batch like a tensor, so the training loop, the
    evaluation and data-parallel sharding take it in place of one; a model calls packed()."""

    def __init__(self, x: torch.Tensor, lengths: torch.Tensor) -> None:
        self.x, self.lengths = x, lengths  # lengths: int64 on the CPU (pack_padded_sequence wants them there)

    @property
    def shape(self) -> torch.Size:
        return self.x.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def device(self) -> torch.device:
        return self.x.device

    def __len__(self) -> int:
        return self.x.shape[0]

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def __getitem__(self, key) -> PaddedWindows:
        """Windows along the batch (batch[a:b], batch[idx]); batch[:, 0:L] (every step) is itself."""
        if isinstance(key, tuple):
            rows = _whole_steps(key, self.x.shape[1])
            return self if rows == slice(None) else self[rows]
        return PaddedWindows(self.x[key], self.lengths[key])

    def to(self, *args, **kwargs) -> PaddedWindows:
        return PaddedWindows(self.x.to(*args, **kwargs), self.lengths)

    def contiguous(self) -> PaddedWindows:
        return self

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """A torch function on the whole batch (the model-split strategies cut batches with
        torch.tensor_split) is refused in one line: these batches feed a model that packs them."""
        raise UserError(f"windows of different lengths (a series shorter than --data.seq_len) reached "
                        f"torch.{getattr(func, '__name__', func)}, which wants plain tensors: they train on one "
                        "process or with --parallel.strategy data; give every series at least --data.seq_len "
                        "rows for the other strategies")

    def packed(self) -> PackedSequence:
        """The windows as a PackedSequence (batch first, any order of lengths)."""
        return pack_padded_sequence(self.x, self.lengths, batch_first=True, enforce_sorted=False)


class RaggedRows:
    """The windows of one split, read only when indexed: each window's first row in the stacked
    series (base (R, F)) and its length. `rows[idx]` is a PaddedWindows (inputs) or, for targets
    at every step, a tensor (B, L, F) that is NaN past each window's length."""

    def __init__(self, base: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, seq_len: int,
                 targets: bool) -> None:
        self.base, self.starts, self.lengths = base, starts, lengths
        self.seq_len, self.targets = seq_len, targets

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.starts), self.seq_len, *self.base.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    def __len__(self) -> int:
        return len(self.starts)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def __getitem__(self, key):
        if isinstance(key, tuple):  # rows[idx, every step]: still lazy
            rows = _whole_steps(key, self.seq_len)
            return RaggedRows(self.base, self.starts[rows], self.lengths[rows], self.seq_len, self.targets)
        starts, lengths = self.starts[key], self.lengths[key]
        if starts.dim() == 0:
            starts, lengths = starts[None], lengths[None]
        steps = torch.arange(self.seq_len)
        real = steps[None, :] < lengths[:, None]  # (B, L)
        rows = torch.where(real, starts[:, None] + steps[None, :], 0)  # padded steps read row 0, then blanked
        windows = self.base[rows]  # (B, L, F): a copy of just these windows
        fill = float("nan") if self.targets else 0.0
        windows = windows.masked_fill(~real.reshape(*real.shape, *[1] * (windows.dim() - 2)), fill)
        return windows if self.targets else PaddedWindows(windows, lengths)

    def to(self, device, *args, **kwargs):
        """Itself on the CPU (nothing is copied); every window, gathered, on another device."""
        if torch.device(device).type == "cpu" and not args and not kwargs:
            return self
        return self[:].to(device, *args, **kwargs)

    def contiguous(self):
        return self[:]


def ragged_splits(x: np.ndarray, t: np.ndarray, offsets, starts: list, seq_len: int, difference: int,
                  every_step: bool) -> list[tuple] | None:
    """(inputs, targets) per split as RaggedRows when some window is shorter than seq_len; None
    when every window is whole (the caller's fixed-length windows serve then).

    Args:
        x, t: the stacked series' inputs (R, I') and targets (R, O').
        offsets: each series' first row in the stack (and the stack's end).
        starts: per split, a list of arrays of forecast origins (rows of the stack).
    """
    origins = [np.concatenate(o).astype(np.int64) for o in starts]
    lengths = [window_lengths(o, offsets, seq_len, difference) for o in origins]
    if all(bool((n == seq_len).all()) for n in lengths):
        return None
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    splits = []
    for o, n in zip(origins, lengths):
        first, n = torch.from_numpy(o - n + 1), torch.from_numpy(n)
        y = RaggedRows(tt, first, n, seq_len, targets=True) if every_step else tt[torch.from_numpy(o)]
        splits.append((RaggedRows(xt, first, n, seq_len, targets=False), y))
    return splits

