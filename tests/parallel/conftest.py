"""Fixtures of the model-parallel tests: `ranks` runs a function on real gloo processes."""

from __future__ import annotations

import pytest
from mp_ranks import run_ranks


@pytest.fixture
def ranks():
    """The `run_ranks` helper."""
    return run_ranks
