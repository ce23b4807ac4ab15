"""Data parallelism: N workers end where one worker with the global batch ends."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dp_worker  # noqa: E402
from testing_utils import rel_err  # noqa: E402

from rnnscope.errors import UserError  # noqa: E402
from rnnscope.parallel.data import shard_rows  # noqa: E402
from rnnscope.parallel.ledger import read_jsonl  # noqa: E402
from rnnscope.costs.collectives import collective_cost  # noqa: E402


def test_shard_rows_gives_each_rank_its_contiguous_share():
    x, y = torch.arange(24).view(6, 2, 2), torch.arange(6)  # (B, T, I), (B,)
    shards = [shard_rows((x, y), r, 3) for r in range(3)]
    assert [s[1].tolist() for s in shards] == [[0, 1], [2, 3], [4, 5]]
    assert torch.equal(torch.cat([s[0] for s in shards]), x)


def test_shard_rows_refuses_a_batch_that_does_not_split():
    with pytest.raises(UserError, match=r"30 / 4 = 7.50.*multiple of 4"):
        shard_rows((torch.zeros(30, 3, 1),), 0, 4)


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_two_workers_match_one_worker_with_the_global_batch():
    """float64, k = 5 SGD steps, global batch 8: relative error <= 1e-10 on every parameter."""
    out = dp_worker.shared_training_run()
    s = dp_worker.SHARED
    model, batches = dp_worker.build(s["hidden"], s["steps"], s["batch"], torch.float64)
    dp_worker.train_steps(model, batches)  # one worker, the whole global batch
    parallel = torch.load(out / "params.pt")
    for name, expected in model.state_dict().items():
        got = parallel[name]
        rel = rel_err(got, expected)
        assert rel <= 1e-10, (name, rel)
    assert not torch.equal(parallel["rnn.weight_hh_l0"], dp_worker.build(
        s["hidden"], 0, s["batch"], torch.float64)[0].rnn.weight_hh_l0)  # training moved it


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_two_workers_match_one_worker_with_a_gated_cell(tmp_path):
    """The same with rnnscope.nn.LSTM (GRU runs the same DDP path): float64, 3 SGD steps, <= 1e-10."""
    cell = "lstm"
    result = dp_worker.torchrun("train", tmp_path, "--steps", "3", "--hidden", "8", "--batch", "8",
                                "--dtype", "float64", "--cell", cell)
    assert result.returncode == 0, result.stderr[-3000:]
    model, batches = dp_worker.build(8, 3, 8, torch.float64, cell=cell)
    dp_worker.train_steps(model, batches)
    parallel = torch.load(tmp_path / "params.pt")
    assert parallel["rnn.weight_hh_l0"].shape == ((4 if cell == "lstm" else 3) * 8, 8)
    for name, expected in model.state_dict().items():
        assert (parallel[name] - expected).norm() / expected.norm() <= 1e-10, name
    assert not torch.equal(parallel["rnn.weight_hh_l0"], dp_worker.build(
        8, 0, 8, torch.float64, cell=cell)[0].rnn.weight_hh_l0)  # training moved it


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_traffic_jsonl_has_every_step_rank_and_tag():
    out = dp_worker.shared_training_run()
    rows = read_jsonl(out / "traffic.jsonl")
    s = dp_worker.SHARED
    grad = [r for r in rows if r["tag"] == "dp-grad"]
    assert sorted((r["step"], r["rank"]) for r in grad) == [
        (k, r) for k in range(1, s["steps"] + 1) for r in range(2)]
    S = sum(p.numel() * 8 for p in dp_worker.build(s["hidden"], 0, 8, torch.float64)[0].parameters())
    for row in grad:
        # 0.1 MiB buckets: W_hh (430 kB) is one of them, the rest another (from step 2 on:
        # DDP's first step uses one first bucket of 1 MiB, then rebuilds them in gradient order)
        assert row["calls"] >= (2 if row["step"] > 1 else 1)
        assert row["op"] == "all_reduce" and row["payload_bytes"] == S
        cost = collective_cost("all_reduce", S, 2, "ring", rank=row["rank"], element_size=8)
        assert row["wire_bytes_sent"] == cost.sent_bytes == S  # 2(n-1)/n * S with n = 2
        assert row["wire_bytes_received"] == cost.received_bytes
        assert row["messages"] == 2 * row["calls"]
        assert 0 < row["comm_fraction"] <= 1 and row["seconds"] > 0
        assert row["busbw"] == pytest.approx(row["algbw"] * 1.0)  # 2(n-1)/n = 1 for n = 2
    checks = [r for r in rows if r["tag"] == "dp-check"]
    assert len(checks) == 2 * s["steps"]  # --check-every 1
    assert {r["phase"] for r in rows if r["tag"] == "dp-init"} == {"setup"}


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_the_logged_loss_is_the_global_batch_loss_as_one_worker_logs_it(tmp_path):
    """metrics.jsonl's loss is averaged over the replicas (tag `metrics`, phase "log"), so two
    workers log what one worker with the global batch logs."""
    import json
    import subprocess

    args = ["--data.samples", "96", "--data.seq_len", "8", "--model.hidden", "8",
            "--data.batch_size", "16", "--train.max_steps", "6", "--train.log_every", "2",
            "--train.progress", "false"]

    def losses(run: str, *extra: str) -> list[float]:
        done = subprocess.run([sys.executable, "-m", "rnnscope", "train", *args, *extra,
                               "--train.run_dir", str(tmp_path / run)],
                              capture_output=True, text=True, timeout=200)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    one = losses("one")
    two = losses("two", "--parallel.strategy", "data", "--parallel.nproc", "2")
    assert len(one) == len(two) == 3
    assert two == pytest.approx(one, rel=1e-5)  # float32: the sums run in another order
    rows = read_jsonl(tmp_path / "two" / "traffic.jsonl")
    metrics = [r for r in rows if r["tag"] == "metrics"]
    assert {r["phase"] for r in metrics} == {"log"} and len(metrics) == 3 * 2  # 3 logs, 2 ranks
    assert all(r["payload_bytes"] == 8 for r in metrics)
