"""Start N local workers with torch's own launcher: torch.distributed.run, the torchrun agent.

`rnnscope train --parallel.strategy data --parallel.nproc 2 [...]` calls `launch(cfg, argv)`,
which runs, in this process, the same elastic agent as

    torchrun --nnodes 1 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 \
        --local-addr 127.0.0.1 --max-restarts R -m rnnscope train [...] --train.run_dir DIR

Every worker re-runs the train command, finds RANK in its environment and joins the group
(`rnnscope.parallel.context.from_env`). Everything stays on 127.0.0.1: the rendezvous store,
MASTER_ADDR, and gloo's sockets (GLOO_SOCKET_IFNAME=lo, gloo's own setting, for local runs only).

The agent watches the workers: when one dies, it stops the others and, with
--parallel.max_restarts R > 0, starts them all again (they resume from the last checkpoint,
`ctx.resume`); once restarts are used up, `launch` reports which worker failed and how, names the
last checkpoint, and returns 1 (2 when every failure was a user error, which the worker printed).

Across machines run torchrun yourself; rnnscope only reads what torchrun sets:

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
        -m rnnscope train --parallel.strategy data --data.batch_size 64
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import torch

from rnnscope.errors import UserError

log = logging.getLogger(__name__)

MAX_WORKERS_PER_CORE = 4  # past it, start-up alone outlasts the rendezvous (64 workers on 2 cores)


def check_launch(cfg) -> None:
    """Refuse impossible parallel settings before starting anyone, showing the arithmetic."""
    p = cfg.parallel
    if p.strategy == "none":
        raise UserError("--parallel.strategy none starts no workers; choose data (or run "
                        "without --parallel.nproc)")
    n = p.nproc
    if p.strategy == "data" and cfg.data.batch_size % n:
        below = cfg.data.batch_size - cfg.data.batch_size % n
        raise UserError(
            f"--data.batch_size {cfg.data.batch_size} does not split over --parallel.nproc {n} "
            f"workers ({cfg.data.batch_size} / {n} = {cfg.data.batch_size / n:.2f}); use a "
            f"multiple of {n}, such as {below or n} or {below + n}")
    if p.strategy in ("pipeline", "tensor"):
        from rnnscope.parallel.model_parallel import check_config

        check_config(cfg, n)  # the workers check again; here it costs no start-up
    if p.backend == "nccl" and (cfg.train.device == "cpu" or not torch.cuda.is_available()):
        where = "--train.device cpu" if cfg.train.device == "cpu" else "this machine, where torch sees no CUDA device"
        raise UserError(f"--parallel.backend nccl carries CUDA tensors only, and training runs on CPU "
                        f"({where}); use --parallel.backend gloo or auto")
    wants_cuda = p.backend == "nccl" or cfg.train.device == "cuda" or (
        cfg.train.device == "auto" and torch.cuda.is_available())
    if wants_cuda and torch.cuda.device_count() < n:
        raise UserError(f"--parallel.nproc {n} workers on CUDA need {n} GPUs, torch sees "
                        f"{torch.cuda.device_count()}; lower --parallel.nproc or train on cpu")
    cores = os.cpu_count() or 1
    if not wants_cuda and n > MAX_WORKERS_PER_CORE * cores:
        raise UserError(f"--parallel.nproc {n} workers on {cores} CPU cores: at most "
                        f"{MAX_WORKERS_PER_CORE} per core ({MAX_WORKERS_PER_CORE * cores}) start and meet in "
                        f"time; lower --parallel.nproc")
    if n > cores:
        log.warning("%d workers on %d CPU cores: oversubscribed, steps will be slower", n, cores)


def torchrun_args(cfg, argv: list[str], run_dir: Path) -> list[str]:
    """The torchrun command line (without `torchrun`) that starts this training's workers.

    `argv` is the rnnscope command line after `rnnscope` (`["train", ...]`; a leading "train"
    is added when missing); the run directory is pinned unless argv already does (or resumes).
    """
    command = list(argv) if argv[:1] == ["train"] else ["train", *argv]
    if not any(a in ("--resume", "--train.run_dir") or a.startswith(("--resume=", "--train.run_dir="))
               for a in command):
        command += ["--train.run_dir", str(run_dir)]
    return ["--nnodes", "1", "--nproc-per-node", str(cfg.parallel.nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0",
            "--local-addr", "127.0.0.1", "--max-restarts", str(cfg.parallel.max_restarts),
            "--role", "rnnscope", "-m", "rnnscope", *command]


def worker_threads(cfg) -> str:
    """OMP_NUM_THREADS for each worker: the user's own when set, else --train.threads, else the
    cores shared out (torchrun sets 1 and prints a banner about it when the variable is missing)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return os.environ["OMP_NUM_THREADS"]
    if cfg.train.threads > 0:
        return str(cfg.train.threads)
    return str(max(1, (os.cpu_count() or 1) // cfg.parallel.nproc))


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the workers, restoring the old values afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _how(failure) -> str:
    if failure.exitcode < 0:
        return f"was killed by {failure.signal_name()}"
    return f"exited with status {failure.exitcode}"


def describe_failure(exc, run_dir: Path, restarts: int) -> str:
    """One paragraph: which worker failed first and how, who was stopped, the last checkpoint."""
    # timestamps are whole seconds: on a tie, a worker the agent stopped (SIGTERM) or one that
    # aborted (SIGABRT: gloo's reaction when a peer's connection is reset) came later
    first_rank, first = min(exc.failures.items(), key=lambda kv: (
        kv[1].timestamp, kv[1].exitcode in (-signal.SIGTERM, -signal.SIGABRT), kv[0]))
    text = (f"worker rank {first_rank} (pid {first.pid}) {_how(first)} at "
            f"{first.timestamp_isoformat()}")
    others = [f"rank {rank} {_how(f)}" for rank, f in sorted(exc.failures.items())
              if rank != first_rank]
    stopped = f"; then {', '.join(others)}" if others else ""
    latest = run_dir / "checkpoints" / "latest.pt"
    kept = (f"the last checkpoint is {latest} (continue with --resume {run_dir})"
            if latest.is_file() else "no checkpoint was written")
    tried = f" after {restarts} restart(s)" if restarts else ""
    return (f"distributed training failed{tried}: {text}{stopped}; the launcher stopped every "
            f"worker; {kept}")


def launch(cfg, argv: list[str]) -> int:
    """Start cfg.parallel.nproc workers running `rnnscope *argv`; return the exit status.

    Args:
        cfg: the resolved Config (its [parallel] section says how many workers and restarts).
        argv: the command line after `rnnscope`, e.g. `["train", "--parallel.nproc", "2"]`.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from rnnscope.train.memory import check_memory
    from rnnscope.train.setup import default_run_dir

    check_launch(cfg)
    check_memory(cfg)  # every worker's share, before any of them starts
    # one run directory for every worker and every restart, fixed before anyone starts
    run_dir = Path(cfg.train.run_dir) if cfg.train.run_dir else default_run_dir()
    args = get_args_parser().parse_args(torchrun_args(cfg, argv, run_dir))
    log.info("starting %d workers (%s parallel) with torch.distributed.run; run directory %s",
             cfg.parallel.nproc, cfg.parallel.strategy, run_dir)
    try:
        with _environment(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS=worker_threads(cfg)):
            run(args)
    except ChildFailedError as exc:
        message = describe_failure(exc, run_dir, cfg.parallel.max_restarts)
        log.error("rnnscope train: error: %s", message)
        user_errors = all(f.exitcode == 2 for f in exc.failures.values())
        return 2 if user_errors else 1
    return 0
