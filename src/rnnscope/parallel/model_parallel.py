"""Model parallelism inside the ordinary training loop: the DistContext of pipeline and hidden split.

    ctx = from_env(cfg)              # PipelineParallel or HiddenSplitParallel (rnnscope.parallel.worker)
    train(cfg, distributed=ctx)      # the one training loop, unchanged

The world is a D × M mesh (rnnscope.costs.layout, rnnscope.parallel.mesh): D data replicas, each a model group of M
ranks that hold one piece of the model (a block of layers, or H/M neurons of every layer).

- `wrap_model(net)` builds this rank's stage and returns a module whose forward runs the
  strategy's distributed forward and whose backward (one autograd.Function) runs its distributed
  backward, then all-reduces the piece's gradients over the data group (tag `dp-grad`). ŷ is the
  same on every rank of a model group, so the loss, its logging and the divergence check of the
  loop work as they are. The loop evaluates `net` itself, so `net`'s forward becomes the
  distributed one too: every rank takes part in validation.
- `shard(batch)` gives each data replica its slice of the global batch (the whole slice to
  every rank of its model group).
- `on_step_end` closes the ledger step, and before every log and checkpoint (and in `close`)
  gathers the pieces so that every rank's `net` holds the whole model (phase "sync", tag
  `mp-sync`): checkpoints are complete models, loadable by a single process.
- `close` writes `model_parallel.json` into the run directory: each rank's measured idle share
  (the pipeline's wait for its neighbours) for `rnnscope compare`.

Refused, with the reason: --optim.clip (the loop's clip sees only this rank's piece),
--train.tbptt_k1 (checkpoints are synchronized at batch ends), --diagnostics.every (the
diagnostics probe runs the model on rank 0 alone), and resuming or --parallel.max_restarts
(a checkpoint holds only rank 0's optimizer state).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from rnnscope.data import batch_order, build_dataset
from rnnscope.errors import UserError
from rnnscope.costs.layout import ParallelLayout
from rnnscope.parallel.context import ParallelContext
from rnnscope.parallel.mesh import build_mesh

SYNC_TAG, DATA_TAG = "mp-sync", "dp-grad"
STATS_FILE = "model_parallel.json"


class _DistributedForward(torch.autograd.Function):
    """ŷ from the distributed forward; its backward is the distributed backward."""

    @staticmethod
    def forward(ctx, owner, x, h0, *params):
        with torch.enable_grad():
            y_local, h_n = owner.stage.forward(x, h0, build_graph=True)
        y_hat = owner.share_output(y_local, x)
        ctx.owner, ctx.y_local = owner, y_local
        ctx.mark_non_differentiable(h_n)
        return y_hat.detach(), h_n

    @staticmethod
    def backward(ctx, grad_y_hat, grad_h_n):
        owner = ctx.owner
        if grad_y_hat is None:
            grad_y_hat = torch.zeros_like(ctx.y_local) if ctx.y_local is not None else None
        owner.stage.backward(ctx.y_local, grad_y_hat)
        owner.reduce_data_grads()
        ctx.y_local = None
        return (None, None, None) + (None,) * len(owner.stage.parameters())


class ModelParallelModule(nn.Module):
    """What the loop trains: this rank's parameters, the strategy's forward and backward."""

    def __init__(self, owner: ModelParallelContext) -> None:
        super().__init__()
        self.pieces = nn.ParameterList(owner.stage.parameters())
        self._owner = owner

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        """(ŷ, h_n) as SequenceModel's, computed by the model group together."""
        owner = self._owner
        if h0 is not None:
            h0 = h0.detach()
        if torch.is_grad_enabled():
            owner.begin_step()
            return _DistributedForward.apply(owner, x, h0, *self.pieces)
        owner.evaluating = True
        y_local, h_n = owner.stage.forward(x, h0, build_graph=False)
        return owner.share_output(y_local, x), h_n


class ModelParallelContext(ParallelContext):
    """Shared by PipelineParallel and HiddenSplitParallel; a subclass supplies `make_stage`."""

    def __init__(self, cfg, comm, device, env) -> None:
        super().__init__(cfg, comm, device, env)
        self.layout = check_config(cfg, env.world_size)
        self.mesh = build_mesh(self.layout, self.ledger)
        self.net = self.stage = None
        self._weight = 1.0  # this replica's share of the global batch
        self._total = _total_steps(cfg)
        self.idle: list[tuple[float, float]] = []  # (idle seconds, step seconds) per step
        self._step_start = time.perf_counter()
        self.evaluating = False  # no-grad forwards (validation) since the last ledger close

    def make_stage(self, net: nn.Module, comm):
        """This rank's piece of the model (PipelineStage or HiddenSplitStage)."""
        raise NotImplementedError

    def share_output(self, y_local: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """ŷ on every rank of the model group (the hidden split has it everywhere already)."""
        return y_local

    # -- the DistContext protocol ------------------------------------------------------------

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Build the stage; `model`'s own forward becomes the distributed one (for evaluation)."""
        latest = Path(self.cfg.train.run_dir or ".") / "checkpoints" / "latest.pt"
        if self.cfg.train.run_dir and latest.is_file():
            raise UserError(f"{latest} exists: --parallel.strategy {self.strategy} cannot resume "
                            "(a checkpoint holds the whole model but only rank 0's optimizer "
                            "state); start a new --train.run_dir, or resume with "
                            "--parallel.strategy data or none")
        self.net = model
        self.stage = self.make_stage(model, self.mesh.model_comm)
        module = ModelParallelModule(self)
        model.forward = module.forward  # the loop evaluates `net` itself: all ranks take part
        return module

    def shard(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Data replica d's slice of the global batch (every rank of its model group gets it)."""
        D, d = self.layout.data, self.mesh.data_index
        n = batch[0].shape[0]
        if n < D:
            raise UserError(f"a global batch of {n} sequences cannot feed {D} data replicas; "
                            f"raise --data.batch_size to ≥ {D}")
        parts = [torch.tensor_split(t, D)[d] for t in batch]
        self._weight = parts[0].shape[0] / n
        return tuple(parts)

    def data_comm(self):
        """The data replicas' communicator (None without data replicas: every rank of a model
        group has the same ŷ, so the same loss)."""
        return self.mesh.data_comm

    def grad_norm(self, model: nn.Module, local: float) -> float:
        """The whole model's gradient norm: Σ‖g‖² of the pieces this rank counts (a tensor that
        every rank of the model group holds, counted on one), summed over the model group by
        one all-reduce of 8 bytes (tag `metrics`, ledger phase "log"). The data replicas hold
        the same gradients after their all-reduce."""
        squares = sum(float(p.grad.detach().double().pow(2).sum())
                      for p in self.stage.counted_once() if p.grad is not None)
        comm = self.mesh.model_comm
        if comm.world_size > 1:
            squares = self.sum_for_log(comm, squares)
        return squares ** 0.5

    def reduce_data_grads(self) -> None:
        """Average this piece's gradients over the data replicas: one flat all-reduce per step."""
        if self.mesh.data_comm is None:
            return
        grads = [p.grad for p in self.stage.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self._weight)  # weighted by batch share
        self.mesh.data_comm.all_reduce(flat, tag=DATA_TAG)
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    def begin_step(self) -> None:
        """A training forward starts: close any evaluation's traffic as phase "eval"."""
        if self.evaluating:
            self.ledger.close_step(self.last_step, "eval")
            self.evaluating = False
            self._step_start = time.perf_counter()

    def on_step_end(self, step: int, model: nn.Module) -> None:
        """Close the step's ledger rows; before a log or checkpoint, gather the whole model."""
        now = time.perf_counter()
        self.idle.append((getattr(self.stage, "idle_s", 0.0), now - self._step_start))
        super().on_step_end(step, model)
        every = (self.cfg.train.log_every, self.cfg.train.checkpoint_every)
        if any(step % e == 0 for e in every) or step >= self._total:
            self.sync()
            self.ledger.close_step(step, "sync")
        self._step_start = time.perf_counter()

    def sync(self) -> None:
        """Every rank's `net` gets every piece (all-gather in the model group, tag mp-sync)."""
        pieces = self.mesh.model_comm.all_gather_object(self.local_pieces(), tag=SYNC_TAG)
        with torch.no_grad():
            self.assemble(pieces)

    def local_pieces(self) -> dict[str, torch.Tensor]:
        """name -> this rank's piece of that parameter of `net`."""
        raise NotImplementedError

    def assemble(self, pieces: list[dict[str, torch.Tensor]]) -> None:
        """Write every rank's pieces into `net` (by default each piece is a whole tensor)."""
        params = dict(self.net.named_parameters())
        for part in pieces:
            for name, value in part.items():
                params[name].copy_(value)

    def close(self, run_dir: Path | None) -> None:
        """Gather the model (the loop evaluates it once more after close), write idle stats."""
        if sys.exc_info()[0] is None and self.stage is not None:
            self.begin_step()  # closes a last validation's traffic as "eval"
            self.sync()
            stats = self.mesh.model_comm.all_gather_object(self.idle_summary(), tag="mp-stats")
            if self.is_main and run_dir is not None:
                (Path(run_dir) / STATS_FILE).write_text(json.dumps(
                    {"strategy": self.strategy, "layout": vars(self.layout), "ranks": stats},
                    indent=1) + "\n")
        if self.net is not None:
            self.net.__dict__.pop("forward", None)  # plain local forward again, full weights
        super().close(run_dir)

    def idle_summary(self) -> dict:
        """This rank's measured idle share (steps after the first) and the strategy's model."""
        rows = self.idle[1:] or self.idle
        idle, total = sum(r[0] for r in rows), sum(r[1] for r in rows)
        measured = hasattr(self.stage, "idle_s") and total > 0  # the hidden split has no bubble
        return {"rank": self.rank, "model_index": self.mesh.model_index,
                "idle_fraction": idle / total if measured else None, "steps": len(rows)}


def _total_steps(cfg) -> int:
    """The optimizer steps the loop will take, computed as it does (no TBPTT here)."""
    dataset = build_dataset(cfg.data, cfg.train.seed)
    n = dataset.x_train.shape[0]
    batches = len(batch_order(n, min(cfg.data.batch_size, n), cfg.train.seed, 0))
    total = cfg.train.epochs * batches
    return min(total, cfg.train.max_steps) if total and cfg.train.max_steps else total or cfg.train.max_steps


def check_config(cfg, world_size: int) -> ParallelLayout:
    """The layout of this model-parallel run; refuse, before any process starts, what it
    cannot do with this config.

    The launcher may call it with --parallel.nproc; the workers call it again with WORLD_SIZE.
    """
    strategy = cfg.parallel.strategy
    name = f"--parallel.strategy {strategy}"
    if cfg.optim.clip > 0:
        raise UserError(f"{name} cannot clip (--optim.clip {cfg.optim.clip}): the training "
                        "loop's clip sees only this rank's piece of the gradient; set "
                        "--optim.clip 0 or use --parallel.strategy data")
    if cfg.train.tbptt_k1 > 0:
        raise UserError(f"{name} trains with full BPTT; drop --train.tbptt_k1 "
                        f"{cfg.train.tbptt_k1} or use --parallel.strategy data")
    if cfg.parallel.max_restarts > 0:
        raise UserError(f"{name} cannot restart workers (--parallel.max_restarts "
                        f"{cfg.parallel.max_restarts}): a restart resumes from a checkpoint, "
                        "which holds only rank 0's optimizer state; set --parallel.max_restarts 0")
    if cfg.diagnostics.every > 0:
        raise UserError(f"{name} cannot record diagnostics (--diagnostics.every "
                        f"{cfg.diagnostics.every}): they run the model on one rank; "
                        "set --diagnostics.every 0")
    layout = ParallelLayout.for_strategy(strategy, world_size, cfg.parallel.data_degree)
    if cfg.data.batch_size < layout.data:
        raise UserError(f"--data.batch_size {cfg.data.batch_size} cannot feed {layout.data} "
                        f"data replicas; use ≥ {layout.data}")
    layout.check_model(cfg.model.layers, cfg.model.hidden)
    return layout
