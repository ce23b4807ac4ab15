"""Data × model process groups: the 2-D mesh that combines data parallelism with a model strategy.

The layout (`rnnscope.costs.layout.ParallelLayout`) says which world ranks form each group,
model index fastest: the M ranks of one model replica are neighbours, and each data group
holds the same model piece of every replica. This module creates those process groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist

from rnnscope.costs.layout import ParallelLayout
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.ledger import Ledger


@dataclass
class Mesh:
    """This process's place in the mesh and a communicator for each of its two groups."""

    layout: ParallelLayout
    rank: int
    data_index: int
    model_index: int
    model_comm: Communicator
    data_comm: Communicator | None  # None when there is one data replica


def build_mesh(layout: ParallelLayout, ledger: Ledger) -> Mesh:
    """Create the process groups (every rank creates every group, in the same order).

    Both communicators record into `ledger`, so one traffic file covers both dimensions.
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    layout.check_world(world)
    d, m = layout.coords(rank)
    model_comm = data_comm = None
    for k in range(layout.data):
        group = dist.new_group(layout.model_group(k)) if layout.data > 1 else None
        if k == d:
            model_comm = Communicator(group, ledger=ledger)
    if layout.data > 1:
        for k in range(layout.model):
            group = dist.new_group(layout.data_group(k))
            if k == m:
                data_comm = Communicator(group, ledger=ledger)
    return Mesh(layout, rank, d, m, model_comm, data_comm)
