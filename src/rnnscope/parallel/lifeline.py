"""A worker dies with the process that started it.

torchrun's agent stops its workers when it ends normally or by a signal it can catch; a launcher
killed with SIGKILL gets no such chance, and its workers would go on training (and writing the
run directory) as orphans. Linux's parent-death signal (prctl PR_SET_PDEATHSIG) has the kernel
send SIGKILL to the worker the moment its parent exits, however it exits. Checkpoints are written
atomically, so a worker killed this way never leaves half a file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

from rnnscope.train.runfiles import LAUNCHER_PID  # set by rnnscope's launcher for its workers

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Ask the kernel to send `sig` to this process when its parent exits; False where the
    platform has no such signal (not Linux). Exits at once if the parent is already gone: if
    this process's parent is not `parent` (by default the launcher's pid its environment
    names; without either, if init has adopted it)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d): this worker will outlive a "
                    "killed launcher", ctypes.get_errno())
        return False
    # the parent may have died between our start and the prctl: then nobody will signal us.
    # Reparented (to init or a subreaper) means gone; but pid 1 can be the parent itself (a
    # launcher in a container), so where the parent is known it is compared instead
    if parent is None:
        named = os.environ.get(LAUNCHER_PID, "")
        parent = int(named) if named.isdigit() else None
    actual = os.getppid()
    gone = (actual != parent) if parent is not None else (actual == 1)
    if gone:
        os.kill(os.getpid(), sig)
    return True
