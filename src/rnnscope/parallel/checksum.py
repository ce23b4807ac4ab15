"""Weights stay synchronized: a checksum of every parameter, compared across ranks.

Data parallelism keeps one model in N copies: every rank starts from the same weights, applies
the same averaged gradient with the same optimizer, and so holds *bit for bit* the same
parameters after every step. The checksum is a SHA-256 of the parameters' bytes (in
`named_parameters` order), so any divergence, even in the last bit, is caught; the float64 sum
of the parameters rides along so a mismatch can be read by a person.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from rnnscope.parallel.comm import Communicator

TAG = "dp-check"


class WeightMismatchError(RuntimeError):
    """The ranks' copies of the model no longer agree."""


def weight_checksum(model: nn.Module) -> tuple[int, int, float]:
    """(first 8 bytes of the SHA-256 as int64, next 8 bytes, float64 sum) of the parameters."""
    digest = hashlib.sha256()
    total = 0.0
    for name, param in model.named_parameters():
        data = param.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
        total += float(data.double().sum())
    raw = digest.digest()
    return (int.from_bytes(raw[:8], "little", signed=True),
            int.from_bytes(raw[8:16], "little", signed=True), total)


def check_weights(comm: Communicator, model: nn.Module, step: int) -> list[tuple[int, int, float]]:
    """Compare this rank's weight checksum with every other rank's; raise on any difference.

    Every rank gathers every checksum (one all-gather of 24 bytes per rank, tag `dp-check`), so
    all ranks find the same mismatch at the same step and stop together.

    Returns:
        The checksums of all ranks, in rank order.
    """
    high, low, total = weight_checksum(model)
    mine = torch.tensor([high, low, 0], dtype=torch.int64)
    mine[2] = torch.tensor([total], dtype=torch.float64).view(torch.int64)[0]  # the sum's bits
    gathered = torch.empty(comm.world_size * 3, dtype=torch.int64, device=comm.device)
    comm.all_gather(gathered, mine.to(comm.device), tag=TAG)
    rows = gathered.cpu().view(comm.world_size, 3)
    sums = rows[:, 2].clone().view(torch.float64)
    checksums = [(int(rows[k, 0]), int(rows[k, 1]), float(sums[k]))
                 for k in range(comm.world_size)]
    if any(c[:2] != checksums[0][:2] for c in checksums):
        lines = ", ".join(f"rank {k}: sha256 {c[0] & (2**64 - 1):016x}… sum {c[2]:.17g}"
                          for k, c in enumerate(checksums))
        raise WeightMismatchError(
            f"weights differ across ranks after step {step} ({lines}); the copies of the model "
            "diverged, so gradients were not averaged identically (a non-deterministic op, a "
            "rank that skipped a step, or parameters changed outside the optimizer)")
    return checksums
