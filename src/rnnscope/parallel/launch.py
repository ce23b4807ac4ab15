"""Start N local workers with torch's own launcher: torch.distributed.run, the torchrun agent.

`rnnscope train --parallel.strategy data --parallel.nproc 2 [...]` calls `launch(cfg, argv)`,
which runs, in this process, the same elastic agent as

    torchrun --nnodes 1 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 \
        --local-addr 127.0.0.1 --max-restarts R -m rnnscope train [...] --train.run_dir DIR

Every worker re-runs the train command, finds RANK in its environment and joins the group
(`rnnscope.parallel.context.from_env`). Everything stays on 127.0.0.1: the rendezvous store,
MASTER_ADDR, and gloo's sockets (GLOO_SOCKET_IFNAME=lo, gloo's own setting, for local runs only).
torch's TCPStore listens on every interface whatever host it is given, so `listening_on` hands it
a socket already bound to 127.0.0.1 (TCPStore's own `master_listen_fd`): no store of a local run
can be reached from another machine.

The agent watches the workers: when one dies, it stops the others and, with
--parallel.max_restarts R > 0, starts them all again (they resume from the last checkpoint,
`ctx.resume`); once restarts are used up, `launch` reports which worker failed and how, names the
last checkpoint, and returns 1 (2 when every failure was a user error, which the worker printed).

Across machines start one torchrun per node through `node_main`, which keeps its stores on the
private address you name (docs/reliability.md: who writes what, what is exposed):

    python -m rnnscope.parallel.launch --bind ADDR --nnodes 2 --node-rank K --nproc-per-node 4 \
        --rdzv-backend static --master-addr ADDR0 --master-port 29400 --local-addr ADDR \
        -m rnnscope train --parallel.strategy data --data.batch_size 64

Workers die with their launcher (`rnnscope.parallel.lifeline`), the launcher holds the run
directory's lock for them, and a signal to it ends the run in one line (exit 128 + signal).
A hung (stopped) worker ends the run within --parallel.timeout_s: the collectives time out
earlier (`context.collective_timeout`), and the launcher then stops every worker within a second.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

import torch

from rnnscope.costs.layout import MODEL_STRATEGIES
from rnnscope.errors import UserError
from rnnscope.parallel.lifeline import LAUNCHER_PID
from rnnscope.parallel.model_parallel import check_config
from rnnscope.train.checkpoint import checkpoint_dir, load_checkpoint
from rnnscope.train.resume import resume_hint

log = logging.getLogger(__name__)
# seconds a worker has to end after SIGTERM before SIGKILL (torchrun's default is 30): enough to
# finish a batch and write its checkpoint; a stopped or hung worker is killed after it
SHUTDOWN_GRACE_S = 5
# the same once a worker has failed: its peers cannot finish a collective any more, so they are
# given only the time to act on the signal (their checkpoints are atomic: SIGKILL loses nothing)
FAILURE_GRACE_S = 1

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
    if p.strategy in MODEL_STRATEGIES:
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


def torchrun_args(cfg, argv: list[str], run_dir: Path, agent_dir: Path | None = None) -> list[str]:
    """The torchrun command line (without `torchrun`) that starts this training's workers.

    `argv` is the rnnscope command line after `rnnscope` (`["train", ...]`; a leading "train"
    is added when missing); the run directory is pinned unless argv already does (or resumes).
    `agent_dir`: where torchrun's agent keeps its per-worker files (the workers' error files);
    without it the agent makes a /tmp/torchelastic_* directory that nobody removes.
    """
    command = list(argv) if argv[:1] == ["train"] else ["train", *argv]
    if not any(a in ("--resume", "--train.run_dir") or a.startswith(("--resume=", "--train.run_dir="))
               for a in command):
        command += ["--train.run_dir", str(run_dir)]
    return ["--nnodes", "1", "--nproc-per-node", str(cfg.parallel.nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0",
            "--local-addr", "127.0.0.1", "--max-restarts", str(cfg.parallel.max_restarts),
            "--shutdown-timeout", str(SHUTDOWN_GRACE_S),
            *(["--log-dir", str(agent_dir)] if agent_dir is not None else []),
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


def _bound_store(make_store, bind_host: str):
    """A TCPStore constructor whose server listens on `bind_host` only (clients are unchanged)."""
    def make(*args, **kwargs):
        names = ("host_name", "port", "world_size", "is_master", "timeout", "wait_for_workers",
                 "multi_tenant", "master_listen_fd", "use_libuv")  # TCPStore's own order
        given = dict(zip(names, args)) | kwargs
        if not given.get("is_master") or given.get("master_listen_fd") is not None:
            return make_store(*args, **kwargs)
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind((bind_host, int(given.get("port") or 0)))
            except OSError as exc:  # torch's rendezvous then joins as a client (as TCPStore would)
                raise RuntimeError(f"cannot listen on {bind_host}:{given.get('port')}: {exc}") from None
            listener.listen(512)
            given["port"] = listener.getsockname()[1]
            given["master_listen_fd"] = listener.detach()
            return make_store(**given)
        finally:
            listener.close()  # after detach() this closes nothing; on an error, the socket
    return make


@contextlib.contextmanager
def listening_on(bind_host: str):
    """Inside the block, every TCPStore server torch's launcher starts (the c10d rendezvous
    store and the workers' MASTER_ADDR store) listens on `bind_host` only, e.g. 127.0.0.1."""
    import torch.distributed as dist
    from torch.distributed.elastic.rendezvous import c10d_rendezvous_backend as c10d
    from torch.distributed.elastic.rendezvous import static_tcp_rendezvous as static

    modules = (dist, c10d, static)
    originals = [m.TCPStore for m in modules]
    for module, original in zip(modules, originals):
        module.TCPStore = _bound_store(original, bind_host)
    try:
        yield
    finally:
        for module, original in zip(modules, originals):
            module.TCPStore = original


def is_stopped(pid: int) -> bool:
    """True when `pid` is stopped (SIGSTOP, SIGTSTP, a debugger): state T or t in /proc (Linux;
    False elsewhere or when the process is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


@contextlib.contextmanager
def short_shutdown(grace_s: int, failure_grace_s: int = FAILURE_GRACE_S):
    """Inside the block, torchrun gives workers `grace_s` seconds between SIGTERM and SIGKILL
    when the launcher is signalled (--shutdown-timeout), and `failure_grace_s` when a worker has
    failed: there the process context stops the others itself, with a fixed 30 s, so a hung
    (stopped) peer would hold the run 30 s past its collective timeout. Stopped workers are
    continued first, so that they end on the signal instead of waiting for SIGKILL.

    Yields the set of pids that were found stopped at that moment: the hung workers, which
    `describe_failure` names first."""
    from torch.distributed.elastic.multiprocessing.api import PContext

    original = PContext.close
    stopped: set[int] = set()

    def close(self, death_sig=None, timeout=grace_s, *args, **kwargs):
        # no signal given: the context is closing itself because a worker failed (or all ended)
        limit = failure_grace_s if death_sig is None else grace_s
        for pid in self.pids().values():  # a stopped worker could not act on the signal
            if is_stopped(pid):
                stopped.add(pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        return original(self, death_sig, min(timeout, limit), *args, **kwargs)

    PContext.close = close
    try:
        yield stopped
    finally:
        PContext.close = original


def _how(failure) -> str:
    if failure.exitcode < 0:
        return f"was killed by {failure.signal_name()}"
    return f"exited with status {failure.exitcode}"


def last_checkpoint(run_dir: Path) -> str:
    """"the last checkpoint is DIR/checkpoints/latest.pt (step N); continue with: ...", or "no
    checkpoint was written"."""
    latest = checkpoint_dir(run_dir) / "latest.pt"
    if not latest.is_file():
        return "no checkpoint was written"
    try:
        step = f" (step {load_checkpoint(latest)['step']})"
    except (UserError, KeyError, TypeError):
        step = ""
    return f"the last checkpoint is {latest}{step}{resume_hint(run_dir)}"


def describe_failure(exc, run_dir: Path, restarts: int, hung: set[int] = frozenset(),
                     timeout_s: float | None = None) -> str:
    """One paragraph: which worker failed first and how, who was stopped, the last checkpoint.

    `hung` holds the pids the launcher found stopped when it closed the workers: such a worker
    is the cause (its peers only timed out waiting for it), so it is named first."""
    # timestamps are whole seconds: on a tie, a worker the agent stopped (SIGTERM), one that
    # aborted (SIGABRT: gloo's reaction when a peer's connection is reset) or one that exited with
    # a status (its one line about the peer that died) came later than one a signal killed
    first_rank, first = min(exc.failures.items(), key=lambda kv: (
        kv[1].pid not in hung, kv[1].timestamp,
        kv[1].exitcode >= 0 or kv[1].exitcode in (-signal.SIGTERM, -signal.SIGABRT), kv[0]))
    if first.pid in hung:
        within = f" within --parallel.timeout_s {timeout_s:g}" if timeout_s is not None else ""
        text = (f"worker rank {first_rank} (pid {first.pid}) was stopped (hung) and did not "
                f"answer{within}, so the launcher ended it")
    else:
        text = (f"worker rank {first_rank} (pid {first.pid}) {_how(first)} at "
                f"{first.timestamp_isoformat()}")
    others = [f"rank {rank} {_how(f)}" for rank, f in sorted(exc.failures.items())
              if rank != first_rank]
    stopped = f"; then {', '.join(others)}" if others else ""
    kept = last_checkpoint(run_dir)
    tried = f" after {restarts} restart(s)" if restarts else ""
    return (f"distributed training failed{tried}: {text}{stopped}; the launcher stopped every "
            f"worker; {kept}")


AGENT_DIR_PREFIX = "rnnscope-torchrun-"


def agent_directory() -> tempfile.TemporaryDirectory:
    """A temporary directory for torchrun's agent files, named after this process
    (rnnscope-torchrun-<pid>-…) and removed with the launch. A launcher killed with SIGKILL cannot
    remove its own, so the ones of launchers that are gone are removed here first."""
    for path in Path(tempfile.gettempdir()).glob(f"{AGENT_DIR_PREFIX}*-*"):
        pid = path.name[len(AGENT_DIR_PREFIX):].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and path.is_dir() and path.stat().st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{AGENT_DIR_PREFIX}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def launch(cfg, argv: list[str]) -> int:
    """Start cfg.parallel.nproc workers running `rnnscope *argv`; return the exit status.

    Args:
        cfg: the resolved Config (its [parallel] section says how many workers and restarts).
        argv: the command line after `rnnscope`, e.g. `["train", "--parallel.nproc", "2"]`.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from rnnscope.parallel.context import PHASES_FILE, TRAFFIC_FILE, merge_rank_parts, remove_rank_parts
    from rnnscope.train.memory import check_memory
    from rnnscope.train.runfiles import RunLock
    from rnnscope.train.setup import default_run_dir

    check_launch(cfg)
    check_memory(cfg)  # every worker's share, before any of them starts
    _quiet_torchrun_agent()
    # one run directory for every worker and every restart, fixed before anyone starts
    run_dir = Path(cfg.train.run_dir) if cfg.train.run_dir else default_run_dir()
    lock = RunLock(run_dir).acquire()  # held for every worker and restart (they see our pid)
    remove_rank_parts(run_dir)  # a previous launch's; this one's workers write their own
    # the agent's per-worker files live as long as this launch (they name a failed worker's error)
    agent_dir = agent_directory()
    try:
        args = get_args_parser().parse_args(torchrun_args(cfg, argv, run_dir, Path(agent_dir.name)))
        log.info("starting %d workers (%s parallel) with torch.distributed.run; run directory %s",
                 cfg.parallel.nproc, cfg.parallel.strategy, run_dir)
        with _environment(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS=worker_threads(cfg),
                          **{LAUNCHER_PID: str(os.getpid())}), \
                listening_on("127.0.0.1"), short_shutdown(SHUTDOWN_GRACE_S) as hung:
            run(args)
    except ChildFailedError as exc:
        message = describe_failure(exc, run_dir, cfg.parallel.max_restarts, hung,
                                   cfg.parallel.timeout_s)
        log.error("rnnscope train: error: %s", message)
        user_errors = all(f.exitcode == 2 for f in exc.failures.values())
        return 2 if user_errors else 1
    except SignalException as exc:  # Ctrl-C or SIGTERM: torchrun stopped the workers first
        name = signal.Signals(exc.sigval).name
        log.error("rnnscope train: stopped by %s; %s", name,
                  last_checkpoint(run_dir))
        return 128 + int(exc.sigval)
    finally:
        # workers of a run that ended early (a signal, a failure) each wrote their own ledger
        # rows: one traffic.jsonl again, now that every worker is gone
        for part in merge_rank_parts(run_dir):
            log.debug("merged %s into %s", part.name, TRAFFIC_FILE if "traffic" in part.name else PHASES_FILE)
        lock.release()
        agent_dir.cleanup()
        # the interpreter's last garbage collection at exit walks everything torch and the agent
        # allocated (2 s on the loaded 2-core box, the larger part of a hung run's teardown);
        # frozen objects are left out of it, and the process ends right after this anyway
        gc.freeze()
        atexit.register(_silence_leak_reports)
    return 0


def _quiet_torchrun_agent() -> None:
    """torchrun's agent logs lines of its own when a run stops or a worker fails ("Received 2
    death signal, shutting down workers", "Sending process … closing signal SIGINT", "failed
    (exitcode: 1) local_rank: 0 (pid: …) of binary: …"); the launcher says what happened in one
    line (which worker, how, the last checkpoint), so the agent's are shown with -v only. Its
    loggers set their own level when created (LOGLEVEL, default WARNING), so each is set here."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher")):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _silence_leak_reports() -> None:
    """At interpreter exit, after every line of ours: stderr to /dev/null. Where triton is installed,
    torch imports it, and its nanobind bindings print dozens of lines at exit calling each object
    the freeze above left to the OS a leak (it is not one: the process is ending)."""
    if "triton" not in sys.modules:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)


def node_main(argv: list[str] | None = None) -> int:
    """`python -m rnnscope.parallel.launch --bind ADDR [torchrun options] -m rnnscope train ...`:
    torchrun for one node of a multi-node run, its stores listening on ADDR only (the address of
    the private interface the nodes share; see docs/reliability.md)."""

    from torch.distributed.run import main as torchrun_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "--bind":
        print("usage: python -m rnnscope.parallel.launch --bind ADDR [torchrun options] "
              "-m rnnscope train ...", file=sys.stderr)
        return 2
    bind = argv[1]
    # the agent's per-worker files in a directory removed with this node (unless the user names one)
    options = argv[2:argv.index("-m")] if "-m" in argv[2:] else argv[2:]  # torchrun's, not the program's
    named = any(a.split("=")[0] in ("--log-dir", "--log_dir") for a in options)
    agent_dir = agent_directory()
    logs = [] if named else ["--log-dir", agent_dir.name]
    with agent_dir, _environment(**{LAUNCHER_PID: str(os.getpid())}), listening_on(bind), \
            short_shutdown(SHUTDOWN_GRACE_S):
        try:
            torchrun_main(["--shutdown-timeout", str(SHUTDOWN_GRACE_S), *logs, *argv[2:]])
        except Exception as exc:  # ChildFailedError and friends: torchrun printed the details
            print(f"rnnscope node: error: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
                  if str(exc).strip() else f"rnnscope node: error: {type(exc).__name__}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(node_main())
