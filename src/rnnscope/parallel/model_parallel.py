"""Model parallelism inside the ordinary training loop: the DistContext of pipeline and hidden split.

    ctx = from_env(cfg)              # PipelineParallel or HiddenSplitParallel (rnnscope.parallel.worker)
    train(cfg, distributed=ctx)      # the one training loop, unchanged

The world is a D × M mesh (`rnnscope.costs.layout.ParallelLayout`, `rnnscope.parallel.mesh`):
D data replicas, each a model group of M ranks that hold one piece of the model (a block of
layers, or H/M neurons of every layer).

- `wrap_model(net)` builds this rank's stage and returns a module whose forward runs the
  strategy's distributed forward and whose backward (one autograd.Function) runs its distributed
  backward, then all-reduces the piece's gradients over the data group (tag `dp-grad`) and, with
  --optim.clip, clips them by the whole model's norm: Σ‖g‖² of the pieces, one 8-byte
  all-reduce in the model group (tag `grad-norm`), the scale torch's clip_grad_norm_ uses. ŷ is
  the same on every rank of a model group, so the loss, its logging and the divergence check of
  the loop work as they are; TBPTT's windows are forwards like any other.
- `shard(batch)` gives each data replica its slice of the global batch (the whole slice to
  every rank of its model group).
- `before_snapshot` (every rank, before the loop logs or checkpoints) gathers the pieces so that
  every rank's `net` holds the whole model, and every rank's optimizer state into the whole
  model's (phase "sync", tag `mp-sync`): the loop then validates `net` locally, and checkpoints
  are complete models with one process's optimizer state, so a run resumes (`--resume`, or a
  restart by --parallel.max_restarts) bitwise, each rank taking its share back
  (`local_optimizer_state`). On a --diagnostics.every step `before_diagnostics` gathers the
  pieces too, so that rank 0's probe runs the whole model.
- `close` writes `model_parallel.json` into the run directory: each rank's measured idle share
  (the pipeline's wait for its neighbours) for `rnnscope compare`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from rnnscope.costs.layout import ParallelLayout
from rnnscope.errors import UserError
from rnnscope.parallel.context import ParallelContext
from rnnscope.parallel.mesh import build_mesh

SYNC_TAG, DATA_TAG, NORM_TAG = "mp-sync", "dp-grad", "grad-norm"
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
        owner.clip_grads()
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
            return _DistributedForward.apply(owner, x, h0, *self.pieces)
        y_local, h_n = owner.stage.forward(x, h0, build_graph=False)  # TBPTT's carried steps
        return owner.share_output(y_local, x), h_n


class ModelParallelContext(ParallelContext):
    """Shared by PipelineParallel and HiddenSplitParallel; a subclass supplies `make_stage`."""

    def __init__(self, cfg, comm, device, env) -> None:
        super().__init__(cfg, comm, device, env)
        self.layout = check_config(cfg, env.world_size)
        self.mesh = build_mesh(self.layout, self.ledger)
        self.net = self.stage = None
        self._weight = 1.0  # this replica's share of the global batch
        self.idle: list[tuple[float, float]] = []  # (idle seconds, step seconds) per step
        self._step_start = time.perf_counter()
        self.step_norm: float | None = None  # the whole gradient's norm before clipping
        self._optimizer_state: dict | None = None  # the whole model's, at the last snapshot

    def make_stage(self, net: nn.Module, comm):
        """This rank's piece of the model (PipelineStage or HiddenSplitStage)."""
        raise NotImplementedError

    def share_output(self, y_local: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """ŷ on every rank of the model group (the hidden split has it everywhere already)."""
        return y_local

    # -- the DistContext protocol ------------------------------------------------------------

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Build the stage; the module returned trains this rank's pieces of `model`."""
        self.net = model
        self.stage = self.make_stage(model, self.mesh.model_comm)
        return ModelParallelModule(self)

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
        the same gradients after their all-reduce. When clipping, the last step's norm before
        clipping (as one process logs it), which the clip has summed already."""
        if self.step_norm is not None:
            return self.step_norm
        squares = self._squares()
        comm = self.mesh.model_comm
        if comm.world_size > 1:
            squares = self.sum_for_log(comm, squares)
        return squares ** 0.5

    def _squares(self) -> float:
        """Σ‖g‖² of the gradients this rank counts for the whole model's norm."""
        return sum(float(p.grad.detach().double().pow(2).sum())
                   for p in self.stage.counted_once() if p.grad is not None)

    def clip_grads(self) -> None:
        """With --optim.clip, scale this piece's gradients by the whole model's norm: the norm
        needs every piece's Σ‖g‖², one all-reduce of 8 bytes in the model group (tag
        `grad-norm`); the scale is clip_grad_norm_'s, max_norm / (norm + 1e-6) when below 1.
        The loop's own clip then sees a norm within the limit and leaves the gradients as
        they are."""
        clip = self.cfg.optim.clip
        if clip <= 0:
            return
        squares = torch.tensor([self._squares()], dtype=torch.float64, device=self.device)
        if self.mesh.model_comm.world_size > 1:
            self.mesh.model_comm.all_reduce(squares, tag=NORM_TAG)
        self.step_norm = float(squares.sqrt())
        scale = clip / (self.step_norm + 1e-6)
        if scale < 1:
            for p in self.stage.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)

    def reduce_data_grads(self) -> None:
        """Average this piece's gradients over the data replicas: one flat all-reduce per step."""
        if self.mesh.data_comm is None:
            return
        grads = [p.grad for p in self.stage.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self._weight)  # weighted by batch share
        self.mesh.data_comm.all_reduce(flat, tag=DATA_TAG)
        for g, part in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    def on_step_end(self, step: int, model: nn.Module) -> None:
        """Note the step's idle share and close its ledger rows."""
        now = time.perf_counter()
        self.idle.append((getattr(self.stage, "idle_s", 0.0), now - self._step_start))
        super().on_step_end(step, model)
        self._step_start = time.perf_counter()

    def before_diagnostics(self, step: int) -> None:
        """Before rank 0's diagnostics probe: every rank's `net` gets the whole model (tag
        mp-sync, phase "sync", kept out of the step's own rows)."""
        self.sync()
        self.ledger.close_step(step, "sync")
        self._step_start = time.perf_counter()

    def before_snapshot(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        """Before a log or checkpoint: every rank's `net` gets the whole model, and the whole
        model's optimizer state is assembled from every rank's (tag mp-sync, phase "sync")."""
        self.sync()
        gathered = self.mesh.model_comm.all_gather_object(
            wire_optimizer_state(optimizer.state_dict(), self.piece_names()), tag=SYNC_TAG)
        self._optimizer_state = whole_optimizer_state(
            [(state, [(name, from_wire_rows(rows)) for name, rows in names])
             for state, names in gathered], self.net)
        self.ledger.close_step(step, "sync")
        self._step_start = time.perf_counter()

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict:
        """The whole model's optimizer state, as one process would hold it (from the last
        `before_snapshot`, which the loop calls before every checkpoint)."""
        assert self._optimizer_state is not None, "before_snapshot comes before a checkpoint"
        return self._optimizer_state

    def local_optimizer_state(self, state: dict) -> dict:
        """This rank's pieces of a whole model's optimizer state (a checkpoint's)."""
        return local_optimizer_state(state, self.piece_names(), self.net)

    def piece_names(self) -> list[tuple[str, slice | None]]:
        """(name in `net`, rows or None for the whole tensor) of each of this rank's trained
        parameters, in the optimizer's order."""
        raise NotImplementedError

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
            self.sync()
            stats = self.mesh.model_comm.all_gather_object(self.idle_summary(), tag="mp-stats")
            if self.is_main and run_dir is not None:
                (Path(run_dir) / STATS_FILE).write_text(json.dumps(
                    {"strategy": self.strategy, "layout": vars(self.layout), "ranks": stats},
                    indent=1) + "\n")
        super().close(run_dir)

    def idle_summary(self) -> dict:
        """This rank's measured idle share (steps after the first) and the strategy's model."""
        rows = self.idle[1:] or self.idle
        idle, total = sum(r[0] for r in rows), sum(r[1] for r in rows)
        measured = hasattr(self.stage, "idle_s") and total > 0  # the hidden split has no bubble
        return {"rank": self.rank, "model_index": self.mesh.model_index,
                "idle_fraction": idle / total if measured else None, "steps": len(rows)}


def wire_optimizer_state(state: dict, names: list[tuple[str, object]]) -> tuple[dict, list]:
    """(state_dict, piece_names) as `all_gather_object` carries them (no pickles: string keys,
    no slices): the state's parameter indices as strings, a slice of rows as [start, stop]."""
    state = {"state": {str(i): entry for i, entry in state["state"].items()},
             "param_groups": state["param_groups"]}
    return state, [(name, [rows.start, rows.stop] if isinstance(rows, slice) else rows)
                   for name, rows in names]


def from_wire_rows(rows):
    """The rows a peer sent back as `whole_optimizer_state` indexes with: [start, stop] is a
    slice, a tensor of row indices (a gated layer's units in every gate) stays one."""
    return slice(*rows) if isinstance(rows, list) else rows


def whole_optimizer_state(gathered: list[tuple[dict, list]], net: nn.Module) -> dict:
    """One optimizer state dict for `net`'s parameters (in `net.parameters()` order, as a
    single process's optimizer holds it) from every rank's (state_dict, piece_names).

    A piece of rows puts its per-parameter tensors (momentum, Adam's moments) into those rows;
    a whole tensor (a stage's layer, the hidden split's replicated readout) is taken from the
    first rank that has it; scalars (Adam's step) likewise.
    """
    params = dict(net.named_parameters())
    index = {name: k for k, name in enumerate(params)}
    state: dict[int, dict] = {}
    for rank_state, names in gathered:
        for i, entry in rank_state["state"].items():
            name, rows = names[int(i)]
            slot = state.setdefault(index[name], {})
            for key, value in entry.items():
                if rows is not None and torch.is_tensor(value) and value.dim() > 0:
                    whole = slot.setdefault(key, torch.zeros_like(params[name]))
                    whole[rows] = value
                else:
                    slot.setdefault(key, value)
    group = {k: v for k, v in gathered[0][0]["param_groups"][0].items() if k != "params"}
    return {"state": state, "param_groups": [group | {"params": list(range(len(params)))}]}


def local_optimizer_state(state: dict, names: list[tuple[str, slice | None]],
                          net: nn.Module) -> dict:
    """This rank's optimizer state dict from a whole model's: each piece's entries, its rows
    cut out of the whole tensors."""
    index = {name: k for k, (name, _) in enumerate(net.named_parameters())}
    local = {}
    for i, (name, rows) in enumerate(names):
        entry = state["state"].get(index[name], state["state"].get(str(index[name])))
        if entry is not None:
            local[i] = {key: value[rows].clone() if rows is not None and torch.is_tensor(value)
                        and value.dim() > 0 else value for key, value in entry.items()}
    group = {k: v for k, v in state["param_groups"][0].items() if k != "params"}
    return {"state": local, "param_groups": [group | {"params": list(range(len(names)))}]}


def check_config(cfg, world_size: int) -> ParallelLayout:
    """The layout of this model-parallel run; refuse, before any process starts, what it
    cannot do with this config.

    The launcher may call it with --parallel.nproc; the workers call it again with WORLD_SIZE.
    """
    layout = ParallelLayout.for_strategy(cfg.parallel.strategy, world_size,
                                         cfg.parallel.data_degree)
    if cfg.data.batch_size < layout.data:
        raise UserError(f"--data.batch_size {cfg.data.batch_size} cannot feed {layout.data} "
                        f"data replicas; use ≥ {layout.data}")
    layout.check_model(cfg.model.layers, cfg.model.hidden)
    return layout
