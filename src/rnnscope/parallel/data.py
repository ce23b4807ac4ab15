"""Data parallelism: torch's DistributedDataParallel, its gradients sent through the communicator.

The chapter's recipe: input batches are distributed across workers, each runs BPTT on its share,
the gradients are synchronized by averaging, and the weights stay identical everywhere.

- **Sampler.** Every rank draws the same global batch (the loop's `batch_order`, a permutation
  seeded by (seed, epoch)), and `shard` gives rank r the contiguous rows
  [r·B/N, (r+1)·B/N) of it. So N workers see exactly the sequences one worker would see with
  batch B, and the averaged gradient equals the single-worker gradient of the batch mean loss.
- **Start.** DDP's own start-up sync is turned off (`init_sync=False`) and done here instead,
  through the communicator (tag `dp-init`): the parameter shapes are compared, then rank 0's
  weights and buffers are broadcast, so that not even the first bytes escape the ledger.
- **Gradients.** DDP groups gradients into buckets of `bucket_mb` MiB (on the first step into
  one first bucket of 1 MiB, then rebuilt in the order gradients arrived) and, as each bucket fills
  during backward, calls the communication hook `ledgered_allreduce_hook`: divide by N, then an
  asynchronous all-reduce through the communicator (tag `dp-grad`), overlapping the rest of
  backward. Buffers are not re-broadcast every forward (rnnscope's RNNs have none).

What stays outside the ledger: DDP's one-time broadcast of its bucket order after the first
step (tens of bytes, sent by DDP's C++ reducer straight to the process group).
"""

# no `from __future__ import annotations`: DDP checks the hook's annotations as real objects
import inspect

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rnnscope.errors import UserError
from rnnscope.parallel.checksum import check_weights
from rnnscope.parallel.comm import CommError, Communicator
from rnnscope.parallel.context import ParallelContext, WorkerEnv

# no buffer broadcast before every forward: torch 2.13 calls it forward_sync_buffers (and
# deprecates broadcast_buffers); the releases before it know only broadcast_buffers
NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                  if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                  else {"broadcast_buffers": False})
TAG_GRAD = "dp-grad"
TAG_INIT = "dp-init"


def ledgered_allreduce_hook(comm: Communicator,
                            bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: average one gradient bucket across ranks through `comm`.

    Same arithmetic as torch's default hook (divide by N, then sum), so results agree with it.
    """
    grads = bucket.buffer()  # (numel of the bucket,) flat gradients
    grads.div_(comm.world_size)
    handle = comm.all_reduce(grads, tag=TAG_GRAD, async_op=True)
    return handle.get_future().then(lambda fut: fut.value()[0])


def sync_initial_state(comm: Communicator, module: nn.Module) -> None:
    """Check that every rank built the same parameter shapes, then broadcast rank 0's state."""
    tensors = [p for p in module.parameters()] + [b for b in module.buffers()]
    shapes = [(name, tuple(t.shape), str(t.dtype))
              for name, t in list(module.named_parameters()) + list(module.named_buffers())]
    every = comm.all_gather_object(shapes, tag=TAG_INIT)
    for rank, theirs in enumerate(every):
        if theirs != every[0]:
            diff = next((a, b) for a, b in zip(every[0] + [None], theirs + [None]) if a != b)
            raise CommError(f"rank {rank} built a different model than rank 0: rank 0 has "
                            f"{diff[0]}, rank {rank} has {diff[1]}; every rank must use the "
                            "same --model and --data settings")
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    with torch.no_grad():
        for group in by_dtype.values():  # one broadcast per dtype: (sum of numels,)
            flat = torch.cat([t.detach().reshape(-1) for t in group])
            comm.broadcast(flat, src=0, tag=TAG_INIT)
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()


def wrap_ddp(module: nn.Module, comm: Communicator, bucket_mb: float,
             device: torch.device) -> DistributedDataParallel:
    """`module` in DistributedDataParallel, started in sync, its gradients averaged via `comm`."""
    sync_initial_state(comm, module)
    ddp = DistributedDataParallel(
        module,
        device_ids=[device.index] if device.type == "cuda" else None,
        process_group=comm.group,
        bucket_cap_mb=bucket_mb,
        init_sync=False,  # done above, through the ledger
        **NO_BUFFER_SYNC,
    )
    ddp.register_comm_hook(comm, ledgered_allreduce_hook)
    return ddp


def shard_rows(batch: tuple[torch.Tensor, ...], rank: int,
               world_size: int) -> tuple[torch.Tensor, ...]:
    """Rows [rank·B/N, (rank+1)·B/N) of every tensor of a global batch (batch on dim 0)."""
    sizes = {t.shape[0] for t in batch}
    if len(sizes) != 1:
        raise ValueError(f"the tensors of one batch disagree on the batch size: {sorted(sizes)}")
    B = sizes.pop()
    if B % world_size:
        raise UserError(
            f"a global batch of {B} sequences does not split over {world_size} workers "
            f"({B} / {world_size} = {B / world_size:.2f}); set --data.batch_size to a multiple "
            f"of {world_size} (and keep at least one full batch of training sequences)")
    share = B // world_size
    return tuple(t[rank * share : (rank + 1) * share] for t in batch)


class DataParallel(ParallelContext):
    """The DistContext of `--parallel.strategy data`: DDP, row shards, weight checksums."""

    strategy = "data"

    def __init__(self, cfg, comm: Communicator, device: torch.device, env: WorkerEnv) -> None:
        super().__init__(cfg, comm, device, env)
        self.check_every = cfg.parallel.check_every
        self.model: nn.Module | None = None
        self.last_check = 0  # the step of the last weight checksum

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """DDP around `model`, started from rank 0's weights; gradients through the ledger."""
        self.model = wrap_ddp(model, self.comm, self.cfg.parallel.bucket_mb, self.device)
        self.ledger.close_step(None, "setup")
        return self.model

    def shard(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """This rank's rows of the global batch (see the module docstring)."""
        return shard_rows(batch, self.comm.rank, self.comm.world_size)

    def on_step_end(self, step: int, model: nn.Module) -> None:
        """Every --parallel.check_every steps compare weight checksums; close the ledger step."""
        if step % self.check_every == 0:
            check_weights(self.comm, model, step)
            self.last_check = step
        super().on_step_end(step, model)

    def finish(self) -> None:
        """A last checksum at the end, unless the last step was just checked."""
        if self.model is not None and self.last_step and self.last_check != self.last_step:
            check_weights(self.comm, self.model, self.last_step)
            self.last_check = self.last_step
