"""Nobody let in: local runs listen on loopback only, and no pickle crosses the wire."""

from __future__ import annotations

import math
import os
import pickle
import signal
import time

import pytest
import torch

from procs import alive, listening, start, tree, wait_for, worker_pids
from rnnscope.parallel.objects import ObjectFormatError, decode, encode


def test_objects_round_trip_data_and_tensors_bit_for_bit():
    obj = {"a": [1, 2.5, None, True, "x", (3, 4)], "nan": math.nan, "inf": -math.inf,
           "t": torch.randn(3, 4), "i": torch.arange(5), "b": torch.tensor([True, False]),
           "empty": torch.empty(0, 2), "h": torch.randn(2).to(torch.bfloat16),
           "step": torch.tensor(3.0)}  # 0-dim, like Adam's step in an optimizer state
    back = decode(encode(obj))
    assert back["a"] == [1, 2.5, None, True, "x", [3, 4]]
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf
    for key in ("t", "i", "b", "empty", "h", "step"):
        assert back[key].dtype == obj[key].dtype and torch.equal(back[key], obj[key]), key


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/rnnscope-pwned",))


def test_a_pickle_from_a_peer_is_refused_and_never_run():
    with pytest.raises(ObjectFormatError):
        decode(pickle.dumps(Evil()))
    with pytest.raises(ObjectFormatError, match="cannot be sent"):
        encode(Evil())
    with pytest.raises(ObjectFormatError, match="keys must be strings"):
        encode({1: 2})


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_a_local_run_listens_on_loopback_only_and_its_workers_die_with_a_killed_launcher(tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "--train.max_steps", "1000000", "--train.checkpoint_every", "5")
    workers: list[int] = []
    seen: set[str] = set()
    try:
        # the stores exist from the start, gloo's sockets once the workers joined
        def workers_listen_and_checkpointed():
            seen.update(listening(tree(proc.pid)))
            return len(seen) >= 4 and (run_dir / "checkpoints" / "latest.pt").exists()
        wait_for(workers_listen_and_checkpointed, 60, "the sockets and a checkpoint", proc)
        assert all(a.startswith("127.0.0.1:") for a in seen), seen
        workers = list(worker_pids(proc.pid).values())
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not any(alive(p) for p in workers), 5, "the workers to die")
        before = (run_dir / "checkpoints" / "latest.pt").stat().st_mtime_ns
        time.sleep(1.0)
        assert (run_dir / "checkpoints" / "latest.pt").stat().st_mtime_ns == before
    finally:
        for pid in tree(proc.pid) + workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
