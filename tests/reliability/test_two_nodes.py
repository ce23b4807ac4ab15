"""Two nodes on loopback: two launcher invocations (node ranks 0 and 1, static rendezvous),
every store and socket on 127.0.0.1, rank 0 (node 0) writes the run directory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from procs import SMALL_DATA, listening, tree
from rnnscope.train.checkpoint import load_checkpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_a_two_node_launch_on_loopback(tmp_path):
    port, run_dir, tmp = free_port(), tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "TMPDIR": str(tmp)}
    nodes = []
    for node_rank in (0, 1):
        argv = [sys.executable, "-m", "rnnscope.parallel.launch", "--bind", "127.0.0.1",
                "--nnodes", "2", "--node-rank", str(node_rank), "--nproc-per-node", "1",
                "--rdzv-backend", "static", "--master-addr", "127.0.0.1", "--master-port", str(port),
                "--local-addr", "127.0.0.1", "-m", "rnnscope", "train", "--parallel.strategy", "data",
                *SMALL_DATA, "--train.max_steps", "20", "--train.run_dir", str(run_dir)]
        nodes.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))
    seen: set[str] = set()
    try:
        while any(n.poll() is None for n in nodes):
            seen.update(listening([p for n in nodes for p in tree(n.pid)]))
            time.sleep(0.05)
        outs = [n.communicate(timeout=120) for n in nodes]
    finally:
        for n in nodes:
            n.kill()
    assert [n.returncode for n in nodes] == [0, 0], [o[1][-2000:] for o in outs]
    assert seen and all(a.startswith("127.0.0.1:") for a in seen), seen
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"] == 20
    assert "dp-grad" in outs[0][0]  # node 0's rank 0 printed the traffic summary
    assert not list(tmp.iterdir())  # each node's torchrun agent files went with it (no torchelastic_*)
