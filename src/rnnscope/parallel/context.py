"""What every strategy's DistContext shares (docs/contracts.md); `worker.from_env` builds one.

    ctx = from_env(cfg)                    # inside a worker: RANK, WORLD_SIZE, ... set by torchrun
    train(cfg, distributed=ctx, resume=ctx.resume)

`from_env` (rnnscope.parallel.worker) joins the process group (gloo on CPU, NCCL when training on CUDA; the collective
timeout is --parallel.timeout_s less a teardown reserve, `collective_timeout`), builds the process's one `Communicator` and `Ledger`, and
returns the strategy's context. Every context closes a ledger step in `on_step_end` and, in
`close`, gathers every rank's rows to rank 0, which writes `traffic.jsonl` and prints the
summary table. (The gather itself, tag `ledger`, happens after the rows are taken: it is the one
transfer that traffic.jsonl does not list.)

After a restart by the launcher (--parallel.max_restarts), `ctx.resume` is True when the run
directory holds a checkpoint to continue from; the caller passes it to `train(..., resume=)`.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.exit import is_torchrun_worker
from rnnscope.parallel.ledger import read_jsonl, write_jsonl
from rnnscope.parallel.summary import print_summary
from rnnscope.train.checkpoint import checkpoint_dir
from rnnscope.train.distributed import WholeModel

log = logging.getLogger(__name__)

TRAFFIC_FILE = "traffic.jsonl"
PHASES_FILE = "compute.jsonl"  # each rank's compute spans (Ledger.phases), one line per rank
TAG_METRICS = "metrics"  # the loss averaged over the data replicas before a metrics line

# A hung peer must end the whole run within --parallel.timeout_s, not only its collective: after
# the collective times out, the survivor still has to say its line and exit, the launcher has to
# notice (every 0.1 s), stop the hung worker (SIGCONT, SIGTERM, 1 s, SIGKILL) and print its own
# line. The collective timeout leaves this reserve for it: a quarter of timeout_s, at least 2 s
# and at most 10 s (about 1 s of teardown was measured on the idle 2-core box, 2-4 s loaded).
TEARDOWN_SHARE = 0.25
TEARDOWN_MIN_S = 2.0
TEARDOWN_MAX_S = 10.0
MIN_COLLECTIVE_S = 1.0  # below this, start-up skew alone would look like a hang


def collective_timeout(timeout_s: float) -> datetime.timedelta:
    """The process group's timeout for --parallel.timeout_s: what is left of it after the
    teardown reserve (`TEARDOWN_SHARE` of it, clamped to [TEARDOWN_MIN_S, TEARDOWN_MAX_S]),
    never under MIN_COLLECTIVE_S. 60 s gives 50 s, 8 s gives 6 s, 5 s gives 3 s; below 3 s the
    reserve cannot fit and a hung peer ends the run about 1 s past timeout_s."""
    reserve = min(TEARDOWN_MAX_S, max(TEARDOWN_MIN_S, TEARDOWN_SHARE * timeout_s))
    return datetime.timedelta(seconds=max(MIN_COLLECTIVE_S, timeout_s - reserve))


@dataclass(frozen=True)
class WorkerEnv:
    """What torchrun tells a worker through its environment."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    restart_count: int  # how many times the launcher has restarted the workers

    @classmethod
    def read(cls) -> WorkerEnv:
        """Parse RANK, WORLD_SIZE, LOCAL_RANK, ... or explain that this is not a worker."""
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if k not in os.environ]
        if missing:
            raise UserError(f"{', '.join(missing)} not set: this process was not started by "
                            "torchrun; run `rnnscope train --parallel.strategy data "
                            "--parallel.nproc N` or `torchrun ... -m rnnscope train ...`")
        world = int(os.environ["WORLD_SIZE"])
        return cls(rank=int(os.environ["RANK"]), world_size=world,
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                   local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
                   restart_count=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")))


def choose_backend(cfg) -> tuple[str, torch.device]:
    """(backend, device type) from --parallel.backend and --train.device."""
    cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        raise UserError("--train.device cuda, but torch sees no CUDA device; use cpu or auto")
    backend = cfg.parallel.backend
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    if backend == "nccl" and not cuda:
        raise UserError("--parallel.backend nccl needs CUDA tensors; set --train.device cuda "
                        "or use --parallel.backend gloo (or auto)")
    if not dist.is_backend_available(backend):
        raise UserError(f"--parallel.backend {backend} is not available in this torch build")
    return backend, torch.device("cuda" if cuda else "cpu")


class ParallelContext(WholeModel):
    """What every strategy shares: the process group, the communicator, the ledger, the close.

    The hooks that gather a model (before_diagnostics, grad_norm, before_snapshot, the optimizer
    state) are WholeModel's, as data parallel needs them; a strategy that splits the model
    overrides them.
    """

    strategy = "none"

    def __init__(self, cfg, comm: Communicator, device: torch.device, env: WorkerEnv) -> None:
        self.cfg = cfg
        self.comm = comm
        self.ledger = comm.ledger
        self.device = device
        self.env = env
        self.rank = env.rank
        self.world_size = env.world_size
        self.is_main = env.rank == 0
        self.last_step = 0
        self.resume = env.restart_count > 0 and self._checkpoint_everywhere()

    def _checkpoint_everywhere(self) -> bool:
        """After a restart: does every rank see rank 0's latest checkpoint? (tag `restart`)."""
        latest = checkpoint_dir(Path(self.cfg.train.run_dir or ".")) / "latest.pt"
        seen = self.comm.all_gather_object(bool(self.cfg.train.run_dir) and latest.is_file(),
                                           tag="restart")
        if seen[0] and not all(seen):
            raise UserError(f"after a restart, ranks {[k for k, s in enumerate(seen) if not s]} "
                            f"cannot see {latest}; restarts across machines need the run "
                            "directory on a shared filesystem")
        return seen[0]

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The module this rank trains; each strategy defines it."""
        raise NotImplementedError

    def shard(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """This rank's share of a global batch; each strategy defines it."""
        raise NotImplementedError

    def on_step_end(self, step: int, model: nn.Module) -> None:
        """Close the ledger's record of this step (its rows get this step number)."""
        self.ledger.close_step(step)
        self.last_step = step

    def data_comm(self) -> Communicator | None:
        """The communicator over this rank's data replicas (None: this rank is the only one)."""
        return self.comm if self.world_size > 1 else None

    def average(self, value: float) -> float:
        """The mean of `value` over the data replicas: one all-reduce of 8 bytes (tag `metrics`),
        kept out of the training steps' traffic as its own ledger phase, "log"."""
        comm = self.data_comm()
        return value if comm is None else self.sum_for_log(comm, value) / comm.world_size

    def sum_for_log(self, comm: Communicator, value: float) -> float:
        """The sum of `value` over `comm`'s ranks for a metrics line: an 8-byte all-reduce
        (tag `metrics`), closed as its own ledger phase, "log", apart from the training steps."""
        total = torch.tensor([value], dtype=torch.float64, device=comm.device)
        comm.all_reduce(total, tag=TAG_METRICS)
        self.ledger.close_step(self.last_step, "log")
        return float(total)

    def finish(self) -> None:
        """Strategy-specific last checks before the ledger is gathered (none by default)."""

    def close(self, run_dir: Path | None) -> None:
        """Gather every rank's ledger rows; rank 0 writes traffic.jsonl and prints the summary.

        When an exception is on its way out (a peer died, a check failed), no collective is
        attempted: rank 0 writes its own rows and the process group is torn down.
        """
        failing = sys.exc_info()[0] is not None
        try:
            if failing:
                self.ledger.close_step(None, "close")
                if run_dir is not None:
                    self.write_own_rows(Path(run_dir))
            else:
                self.finish()
                self.ledger.close_step(None, "close")
                rows = self.comm.all_gather_object(self.ledger.rows, tag="ledger")
                phases = self.comm.all_gather_object(self.ledger.phases, tag="ledger")
                if self.is_main and run_dir is not None:
                    rows = [row for part in rows for row in part]
                    path = write_jsonl(rows, Path(run_dir) / TRAFFIC_FILE)
                    write_phases(enumerate(phases), Path(run_dir) / PHASES_FILE)
                    remove_rank_parts(Path(run_dir))  # an earlier attempt's: these rows are whole
                    print_summary(rows, path)
        finally:
            # a torchrun worker keeps its group until it leaves through exit_worker: destroying it
            # here can deadlock with gloo's thread (parallel/exit.py says how)
            if dist.is_initialized() and not is_torchrun_worker():
                dist.destroy_process_group()


    def write_own_rows(self, run_dir: Path) -> None:
        """A failed or stopped run's ledger, written without a collective (a peer may be gone):
        rank 0 its rows into traffic.jsonl and compute.jsonl, every other rank into its own
        part beside them (traffic.rank<k>.jsonl, compute.rank<k>.jsonl), which the launcher
        folds into those files when the workers are gone (`merge_rank_parts`)."""
        if self.is_main:
            path = write_jsonl(self.ledger.rows, run_dir / TRAFFIC_FILE)
            write_phases([(self.rank, self.ledger.phases)], run_dir / PHASES_FILE)
            log.debug("the run ended early: wrote rank 0's traffic to %s; the other ranks write "
                      "theirs beside it (traffic.rank<k>.jsonl), which the launcher merges", path)
        else:
            write_jsonl(self.ledger.rows, rank_part(run_dir, TRAFFIC_FILE, self.rank))
            write_phases([(self.rank, self.ledger.phases)], rank_part(run_dir, PHASES_FILE, self.rank))


def write_phases(phases, path: Path) -> None:
    """compute.jsonl: {"rank": k, "phases": [[name, start, end], ...]} per (rank, spans) pair of
    `phases`, Unix seconds; written whole or not at all."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for rank, spans in phases:
            f.write(json.dumps({"rank": rank, "phases": spans}) + "\n")
    tmp.replace(path)


def rank_part(run_dir: Path, name: str, rank: int) -> Path:
    """Where rank `rank` of a run that ended early writes its own rows of `name`
    (traffic.jsonl → traffic.rank1.jsonl)."""
    stem, _, suffix = name.partition(".")
    return Path(run_dir) / f"{stem}.rank{rank}.{suffix}"


def _parts(run_dir: Path, name: str) -> list[Path]:
    stem, _, suffix = name.partition(".")
    return sorted(Path(run_dir).glob(f"{stem}.rank*.{suffix}"))


def remove_rank_parts(run_dir: Path) -> None:
    """Remove the rank parts in run_dir (left by an earlier attempt or launch)."""
    for name in (TRAFFIC_FILE, PHASES_FILE):
        for part in _parts(run_dir, name):
            part.unlink(missing_ok=True)


def merge_rank_parts(run_dir: Path) -> list[Path]:
    """Fold the rank parts of a run that ended early into traffic.jsonl and compute.jsonl (the
    launcher calls it once every worker is gone), then remove them; returns the parts merged.
    A part that cannot be read is left where it is, with a warning."""
    merged = []
    for name in (TRAFFIC_FILE, PHASES_FILE):
        parts = _parts(run_dir, name)
        if not parts:
            continue
        whole = Path(run_dir) / name
        try:
            rows = [row for path in [whole, *parts] if path.exists() for row in read_jsonl(path)]
            if name == TRAFFIC_FILE:
                write_jsonl(rows, whole)
            else:
                write_phases(sorted(((row["rank"], row["phases"]) for row in rows), key=lambda pair: pair[0]),
                             whole)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # the files stay as they are
            log.warning("could not merge the ranks' parts into %s: %s", whole, exc)
            continue
        for part in parts:
            part.unlink(missing_ok=True)
        merged += parts
    return merged


def init_process_group(backend: str, timeout: datetime.timedelta, device_id) -> None:
    """dist.init_process_group from torchrun's environment, with each restart's keys kept apart.

    torchrun's agent serves one store for the whole job, and the default group's keys (each
    rank's gloo address among them) are not prefixed by attempt: after a restart a worker can
    read the address of a peer that died in the previous attempt and fail with "Connection
    refused" (seen here about one restart in three). A prefix per TORCHELASTIC_RESTART_COUNT
    gives every attempt its own keys.
    """
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if restart is None:  # not started by torchrun: plain env:// initialization
        dist.init_process_group(backend, timeout=timeout, device_id=device_id)
        return
    store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
    store = dist.PrefixStore(f"rnnscope/attempt_{restart}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout,
                            device_id=device_id)
