"""Data × model process groups: the 2-D mesh that combines data parallelism with a model strategy.

World ranks are laid out row-major, model index fastest:

    rank = d · M + m        d ∈ [0, D) data replica, m ∈ [0, M) pipeline stage or hidden slice

so the M ranks of one model replica are neighbours (a pipeline's stages talk to each other every
chunk; a hidden split's slices every time step), and each data group {m, M + m, 2M + m, ...}
holds the same model piece of every replica, whose gradients it all-reduces once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist

from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.ledger import Ledger


@dataclass(frozen=True)
class MeshShape:
    """D data replicas × M model pieces (pipeline stages or hidden slices)."""

    data: int
    model: int

    @property
    def world_size(self) -> int:
        return self.data * self.model

    def coords(self, rank: int) -> tuple[int, int]:
        """(data index d, model index m) of a world rank."""
        return divmod(rank, self.model)

    def model_group(self, d: int) -> list[int]:
        """World ranks of data replica d's model group."""
        return [d * self.model + m for m in range(self.model)]

    def data_group(self, m: int) -> list[int]:
        """World ranks that hold model piece m in every replica."""
        return [d * self.model + m for d in range(self.data)]


def mesh_shape(world_size: int, data_degree: int = 0) -> MeshShape:
    """The mesh for --parallel.data_degree (0 = one data replica, the whole world one model).

    Degrees that do not multiply to the world size are refused with the arithmetic.
    """
    if world_size < 1:
        raise UserError(f"WORLD_SIZE must be ≥ 1, got {world_size}")
    if data_degree < 0:
        raise UserError(f"--parallel.data_degree must be ≥ 0, got {data_degree}")
    data = data_degree or 1
    if world_size % data:
        raise UserError(f"--parallel.data_degree {data} does not divide the world: "
                        f"WORLD_SIZE({world_size}) % data({data}) = {world_size % data}; "
                        f"choose a divisor of {world_size}")
    shape = MeshShape(data, world_size // data)
    assert shape.world_size == world_size, f"data({data}) * model({shape.model}) != {world_size}"
    return shape


@dataclass
class Mesh:
    """This process's place in the mesh and a communicator for each of its two groups."""

    shape: MeshShape
    rank: int
    data_index: int
    model_index: int
    model_comm: Communicator
    data_comm: Communicator | None  # None when there is one data replica


def build_mesh(shape: MeshShape, ledger: Ledger) -> Mesh:
    """Create the process groups (every rank creates every group, in the same order).

    Both communicators record into `ledger`, so one traffic file covers both dimensions.
    """
    world, rank = dist.get_world_size(), dist.get_rank()
    if shape.world_size != world:
        raise UserError(f"data({shape.data}) * model({shape.model}) = {shape.world_size} "
                        f"!= WORLD_SIZE({world})")
    d, m = shape.coords(rank)
    model_comm = data_comm = None
    for k in range(shape.data):
        group = dist.new_group(shape.model_group(k)) if shape.data > 1 else None
        if k == d:
            model_comm = Communicator(group, ledger=ledger)
    if shape.data > 1:
        for k in range(shape.model):
            group = dist.new_group(shape.data_group(k))
            if k == m:
                data_comm = Communicator(group, ledger=ledger)
    return Mesh(shape, rank, d, m, model_comm, data_comm)
