"""Shared test helpers: relative error, and a skip marker for tests that need a GPU."""

from __future__ import annotations

import pytest
import torch


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ (absolute error when expected is all zeros)."""
    diff = (actual - expected).norm().item()
    scale = expected.norm().item()
    return diff / scale if scale > 0 else diff


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
