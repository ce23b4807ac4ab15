"""Real gloo process groups on 127.0.0.1 for the model-parallel tests, always under a timeout.

The spawned processes unpickle `_entry` by its module's name; a module named `conftest` can be
another folder's conftest by then (pytest imports several), so it lives in its own module."""

from __future__ import annotations

import datetime
import os
import socket
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn, world: int, port: int, timeout_s: float, args: tuple) -> None:
    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if fn.__dict__.get("joins_group", True):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=timeout_s))
    fn(rank, world, *args)
    # done: leave without destroying the group, whose gloo teardown can deadlock or abort
    # (rnnscope/parallel/exit.py); an error above propagates to the parent as usual
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_ranks(fn, world: int, *args, timeout_s: float = 60.0) -> None:
    """Run fn(rank, world, *args) in `world` spawned processes; fail on an error or a hang."""
    ctx = mp.start_processes(_entry, args=(fn, world, free_port(), timeout_s / 2, args),
                             nprocs=world, join=False, start_method="spawn")
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout_s)
    try:
        while not ctx.join(timeout=1):
            if datetime.datetime.now() > deadline:
                pytest.fail(f"{fn.__name__} on {world} ranks did not finish in {timeout_s} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
