"""Pipeline and hidden split inside the real training loop (train(cfg, distributed=from_env(cfg)))."""

from __future__ import annotations

import os

import pytest
import torch

from testing_utils import rel_err
from rnnscope.errors import UserError
from rnnscope.parallel.comm import CommError
from rnnscope.parallel.ledger import read_jsonl
from rnnscope.costs.layout import ParallelLayout
from rnnscope.costs.traffic import RNNShape, pipeline_traffic, strategy_traffic

ARGS = ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "12",
        "--data.samples", "80", "--data.batch_size", "16", "--train.max_steps", "6",
        "--train.log_every", "3", "--train.checkpoint_every", "3", "--train.progress", "false",
        "--model.activation", "tanh", "--parallel.timeout_s", "20"]


def _cfg(run_dir, extra=()):
    from rnnscope.train.config import load_config
    return load_config(None, ARGS + ["--train.run_dir", str(run_dir), *extra])


def _train_worker(rank, world, runs):
    """Train each (run_dir, overrides, port) in turn, each in a fresh process group."""
    from rnnscope.parallel.worker import from_env
    from rnnscope.train.loop import train
    for run_dir, extra, port in runs:
        os.environ["MASTER_PORT"] = str(port)
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
    return Reference(_final_weights(run_dir), run_dir)


class Reference(dict):
    """The single process's final weights, and where its run directory is."""

    def __init__(self, weights: dict, run_dir) -> None:
        super().__init__(weights)
        self.run_dir = run_dir


def _metrics(run_dir) -> list[dict]:
    import json
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _check_run(run_dir, reference, strategy, world):
    weights = _final_weights(run_dir)
    for name, expected in reference.items():
        assert rel_err(weights[name], expected) <= 1e-5, f"{strategy} on {world}: {name}"
    # the logged loss and gradient norm are the whole model's, as one process logs them
    logged, single = _metrics(run_dir), _metrics(reference.run_dir)
    for key in ("loss", "grad_norm"):
        assert [m[key] for m in logged] == pytest.approx([m[key] for m in single], rel=1e-5), key
    rows = [r for r in read_jsonl(run_dir / "traffic.jsonl") if r["phase"] == "step"]
    assert {r["step"] for r in rows} == set(range(1, 7))
    groups = 2 if world == 4 else 1
    for step in range(1, 7):
        mine = [r for r in rows if r["step"] == step]
        if strategy == "pipeline":  # both directions of the boundary: the formula exactly
            plan = pipeline_traffic(RNNShape(1, 8, 2, 12, 16 // groups, 1, 4), 2, 5)
            sent = [r for r in mine if r["op"] == "send"]
            assert {r["tag"] for r in sent} == {"pp-act", "pp-grad"}
            assert sum(r["payload_bytes"] for r in sent) == groups * 2 * 12 * (16 // groups) * 8 * 4
            assert sum(r["calls"] for r in sent) == groups * 2 * 3  # 2(S−1)·ceil(12/5)
            assert sum(r["payload_bytes"] for r in sent) == groups * sum(
                t.payload_bytes * t.count for t in plan.transfers if t.op == "send")
        else:  # T all-gathers per layer, T per layer + 1 per boundary reduce-scatters
            calls = {r["tag"]: r["calls"] for r in mine if r["rank"] == 0}
            assert calls == {"hs-act": 2 * 12, "hs-grad": 2 * 12 + 1}
    if world == 4:
        dp = [r for r in rows if r["tag"] == "dp-grad"]
        assert len(dp) == 6 * 4 and all(r["calls"] == 1 for r in dp), "one flat all-reduce"


@pytest.mark.distributed
def test_pipeline_and_hidden_split_train_like_one_process(ranks, tmp_path, single_process):
    """The training loop with either strategy ends with the single process's weights."""
    from mp_ranks import free_port
    runs = [(tmp_path / s, ["--parallel.strategy", s, "--parallel.nproc", "2", *extra], free_port())
            for s, extra in (("pipeline", ["--parallel.chunk", "5"]), ("hidden_split", []))]
    ranks(_train_worker, 2, runs, timeout_s=120)
    for strategy in ("pipeline", "hidden_split"):
        _check_run(tmp_path / strategy, single_process, strategy, 2)


@pytest.mark.distributed
def test_data_times_pipeline_on_a_2x2_mesh(ranks, tmp_path, single_process):
    """2 data replicas × 2 pipeline stages: the same weights, dp-grad between the replicas."""
    from mp_ranks import free_port
    extra = ["--parallel.strategy", "pipeline", "--parallel.nproc", "4",
             "--parallel.data_degree", "2", "--parallel.chunk", "5"]
    ranks(_train_worker, 4, [(tmp_path / "run", extra, free_port())], timeout_s=120)
    _check_run(tmp_path / "run", single_process, "pipeline", 4)


def test_mesh_degrees_must_multiply_to_the_world():
    assert ParallelLayout.for_strategy("pipeline", 4, 2) == ParallelLayout(2, 2, 1)
    assert ParallelLayout.for_strategy("hidden_split", 4, 0) == ParallelLayout(1, 1, 4)
    layout = ParallelLayout(2, 3, 1)
    assert layout.data_group(1) == [1, 4] and layout.model_group(1) == [3, 4, 5]
    with pytest.raises(UserError, match=r"WORLD_SIZE\(6\) % dp\(4\) = 2"):
        ParallelLayout.for_strategy("pipeline", 6, 4)
    with pytest.raises(UserError, match=r"dp\(2\) \* pp\(3\) \* hs\(1\) = 6 != WORLD_SIZE\(4\)"):
        layout.check_world(4)


def _dies(rank, world, run_dir):
    """Rank 1 leaves after two steps; rank 0 must fail with a CommError, not hang."""
    from rnnscope.parallel.worker import from_env
    from rnnscope.train.loop import train
    cfg = _cfg(run_dir, ["--parallel.strategy", "pipeline", "--parallel.nproc", "2",
                         "--train.max_steps", "1000"])
    ctx = from_env(cfg)
    if rank == 1:
        original = ctx.on_step_end

        def die_after_two(step, model):
            original(step, model)
            if step == 2:
                os._exit(0)  # gone without a word (0, so that rank 0 is left to finish)
        ctx.on_step_end = die_after_two
    try:
        train(cfg, distributed=ctx)
    except CommError as exc:
        (run_dir.parent / "error.txt").write_text(str(exc))


_dies.joins_group = False


@pytest.mark.distributed
def test_dead_peer_is_an_error_not_a_hang(ranks, tmp_path):
    ranks(_dies, 2, tmp_path / "run", timeout_s=90)
    message = (tmp_path / "error.txt").read_text()
    assert "tag='pp-" in message and "rank 0" in message


def _three_ranks(rank, world):
    from test_pipeline import _equivalence as pipeline_case
    from test_hidden_split import _equivalence as hidden_split_case
    pipeline_case(rank, world, 3, "sigmoid", True, 11, 2, "sum")  # an inner stage: both ways
    hidden_split_case(rank, world, 2, "tanh", True, 7, "mean", hidden=6)


@pytest.mark.distributed
def test_three_ranks_oversubscribed(ranks):
    """3 pipeline stages (the middle one sends both ways) and a 3-way hidden split."""
    ranks(_three_ranks, 3, timeout_s=90)


def test_config_is_checked_before_launch():
    from rnnscope.parallel.model_parallel import check_config
    from rnnscope.train.config import load_config
    for extra, match in [
        (["--parallel.strategy", "pipeline", "--model.layers", "1"], r"layers \(1\) < pipeline stages \(2\)"),
        (["--parallel.strategy", "tensor", "--model.hidden", "7"], r"hidden\(7\) % hs\(2\) = 1"),
        (["--parallel.strategy", "pipeline", "--parallel.data_degree", "3"], r"WORLD_SIZE\(2\) % dp\(3\)"),
    ]:
        with pytest.raises(UserError, match=match):
            check_config(load_config(None, extra), 2)


# -- what a model split now supports: resume, clip, TBPTT, diagnostics, restarts ------------

EXTRAS = ["--optim.name", "adam", "--optim.lr", "0.01", "--optim.clip", "0.05",
          "--diagnostics.every", "2"]
TBPTT = ["--train.tbptt_k1", "4", "--train.tbptt_k2", "8"]


def _train_runs(rank, world, runs):
    """Train each (run_dir, overrides, port, resume) in turn, each in a fresh process group."""
    from rnnscope.parallel.worker import from_env
    from rnnscope.train.loop import train
    for run_dir, extra, port, resume in runs:
        os.environ["MASTER_PORT"] = str(port)
        cfg = _cfg(run_dir, extra)
        train(cfg, distributed=from_env(cfg), resume=resume)


_train_runs.joins_group = False


def _reference(run_dir, extra) -> Reference:
    from rnnscope.train.loop import train
    train(_cfg(run_dir, extra))
    return Reference(_final_weights(run_dir), run_dir)


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["pipeline", "hidden_split"])
def test_a_model_split_clips_records_diagnostics_and_resumes_bitwise(ranks, tmp_path, strategy):
    """Adam, --optim.clip and --diagnostics.every like one process; stopped at step 3 and
    resumed, the run ends bitwise where the uninterrupted one does (optimizer state included)."""
    from mp_ranks import free_port
    split = ["--parallel.strategy", strategy, "--parallel.nproc", "2", *EXTRAS]
    whole, part = tmp_path / "whole", tmp_path / "part"
    ranks(_train_runs, 2, [(whole, split, free_port(), False),
                           (part, split + ["--train.max_steps", "3"], free_port(), False),
                           (part, split, free_port(), True)], timeout_s=150)
    reference = _reference(tmp_path / "single", EXTRAS)
    _check_weights_and_logs(whole, reference)
    resumed, uninterrupted = _final_weights(part), _final_weights(whole)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    optim = torch.load(whole / "checkpoints" / "latest.pt", weights_only=True)["optimizer"]
    single = torch.load(reference.run_dir / "checkpoints" / "latest.pt", weights_only=True)
    for k, entry in single["optimizer"]["state"].items():  # the whole model's, as one process's
        assert rel_err(optim["state"][k]["exp_avg"], entry["exp_avg"]) <= 1e-4, k
    # the clip's norm: one 8-byte all-reduce per step in the model group, as the formula says
    rows = [r for r in read_jsonl(whole / "traffic.jsonl") if r["tag"] == "grad-norm"]
    assert {r["step"] for r in rows} == set(range(1, 7)) and all(r["phase"] == "step" for r in rows)
    assert all(r["calls"] == 1 and r["payload_bytes"] == 8 for r in rows)
    shape = RNNShape(1, 8, 2, 12, 16, 1, 4)
    clip_plan = strategy_traffic(strategy, shape, 2, chunk=1, clip=True)
    assert [t.tag for t in clip_plan.transfers][-1] == "grad_norm"
    # diagnostics on rank 0 with the whole model: the single process's records
    records, expected = (_diagnostics(run) for run in (whole, reference.run_dir))
    assert [r["step"] for r in records] == [r["step"] for r in expected] == [2, 4, 6]
    assert [r["loss"] for r in records] == pytest.approx([r["loss"] for r in expected], rel=1e-4)


@pytest.mark.distributed
def test_a_model_split_trains_with_tbptt_like_one_process(ranks, tmp_path):
    """Truncated BPTT (windows of 4, 8 steps backpropagated: steps carried without a graph)."""
    from mp_ranks import free_port
    runs = [(tmp_path / s, ["--parallel.strategy", s, "--parallel.nproc", "2", *TBPTT],
             free_port(), False) for s in ("pipeline", "hidden_split")]
    ranks(_train_runs, 2, runs, timeout_s=120)
    reference = _reference(tmp_path / "single", TBPTT)
    for run_dir, *_ in runs:
        _check_weights_and_logs(run_dir, reference)


def _check_weights_and_logs(run_dir, reference) -> None:
    weights = _final_weights(run_dir)
    for name, expected in reference.items():
        assert rel_err(weights[name], expected) <= 1e-5, f"{run_dir.name}: {name}"
    logged, single = _metrics(run_dir), _metrics(reference.run_dir)
    for key in ("loss", "grad_norm", "val_loss"):
        assert [m[key] for m in logged] == pytest.approx([m[key] for m in single], rel=1e-5), key


def _diagnostics(run_dir) -> list[dict]:
    import json
    return [json.loads(line) for line in (run_dir / "diagnostics.jsonl").read_text().splitlines()]


@pytest.mark.distributed
@pytest.mark.timeout(150)
def test_a_pipeline_restarts_from_its_last_checkpoint(tmp_path):
    """--parallel.max_restarts with a model split: a killed stage, a restart, a finished run."""
    from test_launch import kill_worker_after_first_checkpoint, start_training
    from rnnscope.train.checkpoint import load_checkpoint
    run_dir = tmp_path / "run"
    proc = start_training(run_dir, "--parallel.strategy", "pipeline", "--model.layers", "2",
                          "--optim.name", "momentum", "--train.max_steps", "30",
                          "--parallel.max_restarts", "1")
    try:
        kill_worker_after_first_checkpoint(proc, run_dir, rank=1)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["step"] == 30
    steps = [int(line.split('"step": ')[1].split(",")[0])
             for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 30


# -- gated cells (--model.cell lstm, gru) split across workers --------------------------------

GATED = ["--model.activation", "sigmoid",  # ARGS' tanh is the Elman cell's
         "--optim.name", "adam", "--optim.lr", "0.01", "--optim.clip", "0.05", *TBPTT]


@pytest.mark.distributed
@pytest.mark.parametrize("strategy, cell", [("hidden_split", "lstm"), ("pipeline", "lstm"),
                                            ("hidden_split", "gru")])
def test_a_gated_model_split_clips_tbptt_and_resumes_bitwise(ranks, tmp_path, strategy, cell):
    """LSTM and GRU under a model split, with Adam, --optim.clip and TBPTT (an LSTM's c carried
    from window to window): one process's weights and logs; stopped at step 3 and resumed, the
    run ends bitwise where the uninterrupted one does; the traffic is the Elman formula's."""
    from mp_ranks import free_port
    gated = ["--model.cell", cell, *GATED]
    split = ["--parallel.strategy", strategy, "--parallel.nproc", "2", *gated]
    whole, part = tmp_path / "whole", tmp_path / "part"
    ranks(_train_runs, 2, [(whole, split, free_port(), False),
                           (part, split + ["--train.max_steps", "3"], free_port(), False),
                           (part, split, free_port(), True)], timeout_s=150)
    _check_weights_and_logs(whole, _reference(tmp_path / "single", gated))
    resumed, uninterrupted = _final_weights(part), _final_weights(whole)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    # the traffic is the Elman formula's, window by window (12 steps: windows of 4, 8 and 8
    # backpropagated, the steps before a window's gradient run carried, without a graph)
    from rnnscope.train.tbptt import tbptt_windows
    windows = tbptt_windows(12, 4, 8)
    rows = [r for r in read_jsonl(whole / "traffic.jsonl") if r["phase"] == "step"]
    for step in range(1, 7):
        start, grad_start, _, end = windows[(step - 1) % len(windows)]
        calls = {}
        for r in rows:
            if r["step"] == step and r["rank"] == 0:
                calls[r["tag"]] = calls.get(r["tag"], 0) + r["calls"]
        assert calls.pop("grad-norm") == 1, "the clip's norm: one all-reduce"
        if strategy == "hidden_split":  # 2 layers: one all-gather per step and layer, ...
            assert calls == {"hs-act": 2 * (end - start), "hs-grad": 2 * (end - grad_start) + 1}
        else:  # stage 0: h_t of every step out (chunks of 1), never c_t; ∂L/∂h_t in; ŷ
            assert calls == {"pp-act": end - start, "pp-grad": end - grad_start, "pp-out": 1}
