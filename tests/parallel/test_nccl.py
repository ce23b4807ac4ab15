"""Data parallel on NCCL (CUDA tensors): the run trains and its ledger records the gradients.

One GPU runs one NCCL worker (NCCL refuses two ranks on one device), so with a single GPU this
checks the whole CUDA path (process group, DDP with device_ids, the communication hook, the
ledger) at world size 1, where a ring all-reduce sends nothing. Skipped without CUDA (CI).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from testing_utils import requires_cuda

from rnnscope.parallel.ledger import read_jsonl

pytestmark = [requires_cuda, pytest.mark.distributed]

ARGS = ["--data.samples", "64", "--data.seq_len", "10", "--model.hidden", "16",
        "--data.batch_size", "8", "--train.max_steps", "4", "--train.progress", "false",
        "--train.device", "cuda", "--parallel.strategy", "data"]


def rnnscope(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnscope", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_data_parallel_on_nccl_records_every_step(tmp_path):
    n = torch.cuda.device_count()
    done = rnnscope("train", *ARGS, "--parallel.nproc", str(n), "--train.run_dir",
                    str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    grads = [r for r in read_jsonl(tmp_path / "run" / "traffic.jsonl") if r["tag"] == "dp-grad"]
    assert sorted({r["step"] for r in grads}) == [1, 2, 3, 4]
    assert {r["rank"] for r in grads} == set(range(n))
    for row in grads:
        # ring all-reduce: each rank sends 2(n−1)/n of the payload (docs/architecture.md)
        assert row["wire_bytes_sent"] == pytest.approx(2 * (n - 1) / n * row["payload_bytes"],
                                                       rel=1e-6, abs=8 * row["calls"])


def test_more_workers_than_gpus_is_refused_before_starting(tmp_path):
    n = torch.cuda.device_count() + 1
    done = rnnscope("train", *ARGS, "--data.batch_size", str(8 * n), "--parallel.nproc", str(n),
                    "--train.run_dir", str(tmp_path / "run"), timeout=120)
    assert done.returncode != 0
    assert f"need {n} GPUs, torch sees {n - 1}" in done.stderr
    assert "Traceback" not in done.stderr
