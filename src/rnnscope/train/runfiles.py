"""The files of a run directory, written so that a kill at any moment loses nothing, and its lock.

- `write_atomic`: temporary file in the same folder, fsync, os.replace, fsync of the folder: a
  reader sees the old file or the new one, never an empty or half-written one (config.toml, the
  rewritten metrics.jsonl on resume). Checkpoints use the same steps (train/checkpoint.py).
- `RunLock`: one process trains in a run directory at a time. A POSIX record lock
  (fcntl.lockf) on RUN_DIR/.lock: the kernel drops it when its process ends, however it ends, so
  a dead run never blocks a resume; the file holds the holder's pid for the refusal's message.
  rnnscope's parallel launcher holds it for its workers (they see its pid in
  RNNSCOPE_LAUNCHER_PID, rnnscope.parallel.lifeline).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from rnnscope.errors import UserError

LOCK_FILE = ".lock"
LAUNCHER_PID = "RNNSCOPE_LAUNCHER_PID"  # the launcher's pid, in its workers' environment


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace `path` by `data` atomically (temporary file, fsync, os.replace)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only still there when writing failed
    fsync_dir(path.parent)


class RunLock:
    """An exclusive lock on a run directory for the life of a run (see the module docstring)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise a UserError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            if holder == os.environ.get(LAUNCHER_PID) and holder == str(os.getppid()):
                return self  # our own launcher holds it for us
            raise UserError(f"run directory {self.path.parent} is in use by process {holder} "
                            "(a run still training there); wait for it to end or stop it "
                            f"(kill {holder}), or choose another --train.run_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (also done by the kernel when the process ends)."""
        if self.fd is not None:
            os.close(self.fd)  # closing drops the process's record locks on the file
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def absolute_paths(cfg) -> None:
    """Store the run directory and the CSV as absolute paths, so that config.toml and the
    checkpoints still name them when a later command runs from another directory."""
    if cfg.train.run_dir:
        cfg.train.run_dir = str(Path(cfg.train.run_dir).absolute())
    if cfg.data.csv:
        cfg.data.csv = str(Path(cfg.data.csv).absolute())
