"""Pipeline and hidden split inside the real training loop (train(cfg, distributed=from_env(cfg)))."""

from __future__ import annotations

import os

import pytest
import torch

from model_reference import rel_err
from rnnscope.errors import UserError
from rnnscope.parallel.comm import CommError
from rnnscope.parallel.ledger import read_jsonl
from rnnscope.parallel.mesh import MeshShape, mesh_shape
from rnnscope.plan.strategies import RNNShape, pipeline_traffic

ARGS = ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "12",
        "--data.samples", "80", "--data.batch_size", "16", "--train.max_steps", "6",
        "--train.log_every", "3", "--train.checkpoint_every", "3", "--train.progress", "false",
        "--model.activation", "tanh", "--parallel.timeout_s", "20"]


def _cfg(run_dir, extra=()):
    from rnnscope.train.config import load_config
    return load_config(None, ARGS + ["--train.run_dir", str(run_dir), *extra])


def _train_worker(rank, world, run_dir, extra):
    from rnnscope.parallel.context import from_env
    from rnnscope.train.loop import train
    cfg = _cfg(run_dir, extra)
    train(cfg, distributed=from_env(cfg))


_train_worker.joins_group = False  # from_env joins the group itself


def _final_weights(run_dir) -> dict:
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    """The same training on one process: the reference weights."""
    from rnnscope.train.loop import train
    run_dir = tmp_path_factory.mktemp("single") / "run"
    train(_cfg(run_dir))
    return _final_weights(run_dir)


@pytest.mark.distributed
@pytest.mark.parametrize("strategy,world,extra", [
    ("pipeline", 2, ["--parallel.chunk", "5"]),
    ("tensor", 2, []),
    ("pipeline", 4, ["--parallel.data_degree", "2", "--parallel.chunk", "5"]),
])
def test_training_equals_single_process(ranks, tmp_path, single_process, strategy, world, extra):
    """Same weights after 6 steps as one process; traffic rows equal the pipeline formula."""
    run_dir = tmp_path / "run"
    extra = ["--parallel.strategy", strategy, "--parallel.nproc", str(world), *extra]
    ranks(_train_worker, world, run_dir, extra, timeout_s=90)
    weights = _final_weights(run_dir)
    for name, expected in single_process.items():
        assert rel_err(weights[name], expected) <= 1e-5, name
    rows = [r for r in read_jsonl(run_dir / "traffic.jsonl") if r["phase"] == "step"]
    assert {r["step"] for r in rows} == set(range(1, 7))
    if strategy == "pipeline":  # per step, both boundaries' directions: the formula exactly
        shape = RNNShape(1, 8, 2, 12, 16 // (world // 2), 1, 4)
        plan = pipeline_traffic(shape, 2, 5)
        for step in range(1, 7):
            sent = [r for r in rows if r["step"] == step and r["op"] == "send"
                    and r["tag"] in ("pp-act", "pp-grad")]
            groups = world // 2
            assert sum(r["payload_bytes"] for r in sent) == groups * plan.network_bytes
            assert sum(r["calls"] for r in sent) == groups * 2 * 1 * 3  # 2(S−1)·ceil(12/5)
    if world == 4:
        assert any(r["tag"] == "dp-grad" for r in rows), "the data groups all-reduce"


def test_mesh_degrees_must_multiply_to_the_world():
    assert mesh_shape(4, 2) == MeshShape(2, 2)
    assert mesh_shape(4, 0) == MeshShape(1, 4)
    assert MeshShape(2, 3).data_group(1) == [1, 4] and MeshShape(2, 3).model_group(1) == [3, 4, 5]
    with pytest.raises(UserError, match=r"WORLD_SIZE\(6\) % data\(4\) = 2"):
        mesh_shape(6, 4)


def _dies(rank, world, run_dir):
    from rnnscope.parallel.context import from_env
    from rnnscope.train.loop import train
    cfg = _cfg(run_dir, ["--parallel.strategy", "pipeline", "--parallel.nproc", "2",
                         "--train.max_steps", "1000"])
    ctx = from_env(cfg)
    if rank == 1:
        original = ctx.on_step_end

        def die_after_two(step, model):
            original(step, model)
            if step == 2:
                os._exit(3)  # a peer dies mid-training
        ctx.on_step_end = die_after_two
    with pytest.raises((CommError, RuntimeError)) as info:
        train(cfg, distributed=ctx)
    assert "pp-" in str(info.value) or "closed" in str(info.value).lower()


_dies.joins_group = False


@pytest.mark.distributed
def test_dead_peer_is_an_error_not_a_hang(ranks, tmp_path):
    with pytest.raises(Exception, match="exit code 3|exitcode"):
        ranks(_dies, 2, tmp_path / "run", timeout_s=60)
