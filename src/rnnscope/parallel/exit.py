"""How a torchrun worker ends: at once, once its work is written, past torch's gloo teardown.

The gloo process group's destructor joins gloo's worker thread while holding the GIL; that thread
may at the same moment be releasing the tensors of a finished collective, which needs the GIL.
The two then wait for each other forever. It happens wherever the last reference to the group
drops: in destroy_process_group, or later, when DDP's Reducer (which holds the group too) is
freed as train() returns (seen as a worker that printed its results and never exited, about one
run in four). So a torchrun worker never destroys its group: once its files are written and
closed, it flushes its streams and leaves with os._exit, and no destructor runs.
"""

from __future__ import annotations

import os
import sys


def is_torchrun_worker() -> bool:
    """True in a process that torch's launcher started (it sets these for every worker)."""
    return "LOCAL_RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ


def exit_worker(status: int | None) -> None:
    """In a torchrun worker: flush stdout and stderr and end the process with `status` at once;
    elsewhere: do nothing (the caller exits normally)."""
    if not is_torchrun_worker():
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(int(status or 0))
