"""Shared test helpers: relative error, a skip marker for tests that need a GPU, and the process
tree of a run and its listening sockets (from /proc) for the tests that start, signal and inspect
real runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ (absolute error when expected is all zeros)."""
    diff = (actual - expected).norm().item()
    scale = expected.norm().item()
    return diff / scale if scale > 0 else diff


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def children(pid: int) -> list[int]:
    """The direct children of `pid` (every thread's)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def worker_pids(launcher: int) -> dict[int, int]:
    """rank -> pid of the launcher's workers (its children with RANK in their environment)."""
    pids = {}
    for pid in children(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [e[5:] for e in env if e.startswith(b"RANK=")]
        if ranks:
            pids[int(ranks[0])] = pid
    return pids


def socket_inodes(pids: list[int]) -> set[str]:
    """The inodes of the sockets that `pids` hold open."""
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _address(hex_addr: str) -> str:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def _listen_rows() -> list[list[str]]:
    """The fields of every listening TCP socket's row in /proc/net/tcp and tcp6."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        rows += [fields for fields in (line.split() for line in lines) if fields[3] == "0A"]  # 0A: LISTEN
    return rows


def listening_inodes() -> set[str]:
    """The inodes of every listening TCP socket on this machine."""
    return {fields[9] for fields in _listen_rows()}


def listening(pids: list[int]) -> list[str]:
    """The addresses that TCP sockets of `pids` listen on."""
    inodes = socket_inodes(pids)
    return [_address(fields[1]) for fields in _listen_rows() if fields[9] in inodes]
