"""The training loop: it learns, resumes bitwise, stops on divergence, honours DistContext."""

from __future__ import annotations

import json

import pytest
import torch

from rnnscope.errors import UserError
from rnnscope.train import loop
from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import DivergenceError, train
from rnnscope.train.metrics import METRIC_FIELDS

SMALL = ["--data.samples", "120", "--data.seq_len", "12", "--model.hidden", "8", "--data.batch_size", "16",
         "--train.progress", "false", "--train.log_every", "5", "--train.checkpoint_every", "5"]


def cfg_for(tmp_path, *overrides: str, name: str = "run"):
    return load_config(None, SMALL + ["--train.run_dir", str(tmp_path / name), *overrides])


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def final_weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "latest.pt")["model"]


@pytest.mark.slow
def test_the_default_setting_learns(tmp_path):
    # the chapter's setting as `rnnscope train` runs it (sigmoid, MSE, plain SGD, sine), 150 steps
    cfg = load_config(None, ["--train.max_steps", "150", "--train.progress", "false",
                             "--train.run_dir", str(tmp_path / "default")])
    result = train(cfg)
    assert result.steps == 150
    assert result.val_loss < 0.3 * metrics(tmp_path / "default")[0]["val_loss"]


def test_run_directory_holds_config_metrics_and_checkpoints(tmp_path):
    result = train(cfg_for(tmp_path, "--train.epochs", "2"))
    run = tmp_path / "run"
    assert result.run_dir == run and result.steps == 2 * 6
    assert (run / "checkpoints" / "latest.pt").exists() and (run / "checkpoints" / "best.pt").exists()
    assert load_config(run / "config.toml") == cfg_for(tmp_path, "--train.epochs", "2")
    lines = metrics(run)
    assert [m["step"] for m in lines] == [5, 10, 12]
    assert METRIC_FIELDS == ("step", "epoch", "loss", "val_loss", "grad_norm", "lr", "samples_per_s")
    for field in METRIC_FIELDS:
        assert all(isinstance(m[field], (int, float)) for m in lines), field


def test_a_second_run_on_the_same_directory_is_refused(tmp_path):
    train(cfg_for(tmp_path, "--train.max_steps", "2"))
    with pytest.raises(UserError, match="already holds a run; continue it with --resume"):
        train(cfg_for(tmp_path, "--train.max_steps", "2"))


@pytest.mark.parametrize("extra", [
    [],
    ["--optim.name", "adam", "--optim.lr", "0.01", "--optim.clip", "0.5"],
    ["--optim.name", "momentum", "--train.tbptt_k1", "4", "--train.tbptt_k2", "8"],
    ["--data.task", "copy", "--data.seq_len", "9", "--train.tbptt_k1", "3", "--optim.name", "adam",
     "--optim.lr", "0.01"],
])
def test_resume_gives_bitwise_the_uninterrupted_weights(tmp_path, extra):
    whole_result = train(cfg_for(tmp_path, "--train.max_steps", "23", *extra, name="whole"))
    train(cfg_for(tmp_path, "--train.max_steps", "9", *extra, name="parts"))  # stops mid-epoch
    resumed = cfg_for(tmp_path, "--train.max_steps", "23", *extra, name="parts")
    result = train(resumed, resume=True)
    assert result.steps == whole_result.steps >= 23  # TBPTT: several steps per batch, stop at its end
    whole, parts = final_weights(tmp_path / "whole"), final_weights(tmp_path / "parts")
    assert all(torch.equal(whole[k], parts[k]) for k in whole)
    # the stopped run logged its last step (9) too; every step of the whole run is there once
    steps = [m["step"] for m in metrics(tmp_path / "parts")]
    assert steps == sorted(set(steps)) and {m["step"] for m in metrics(tmp_path / "whole")} <= set(steps)


def test_divergence_stops_naming_step_and_quantity_and_keeps_the_last_good_checkpoint(tmp_path):
    # README's example: lr 50 throws the weights so far that a later loss is inf
    cfg = cfg_for(tmp_path, "--optim.lr", "50", "--train.checkpoint_every", "1", "--train.epochs", "5")
    with pytest.raises(DivergenceError, match=r"diverged at step (\d+): the (loss|gradient norm) is (nan|inf)"
                       r".*last good checkpoint is .*latest\.pt.*Lower --optim\.lr") as info:
        train(cfg)
    step = int(info.value.args[0].split("step ")[1].split(":")[0])
    kept = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    # the checkpoint of step - 1 holds the weights whose loss (at `step`) was inf: not kept
    assert kept["step"] == step - 2
    assert all(torch.isfinite(t).all() for t in kept["model"].values())


def test_a_first_step_that_diverges_keeps_no_checkpoint(tmp_path):
    cfg = cfg_for(tmp_path, "--optim.lr", "1e30", "--train.checkpoint_every", "1", "--train.epochs", "5")
    with pytest.raises(DivergenceError, match="diverged at step 2: .*no checkpoint was written before it"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints" / "latest.pt").exists()


def test_classification_reports_accuracy(tmp_path):
    result = train(cfg_for(tmp_path, "--data.task", "copy", "--data.seq_len", "9", "--train.epochs", "2"))
    assert 0.0 <= result.val_accuracy <= 1.0 and "val_accuracy" in metrics(tmp_path / "run")[-1]


def test_adding_with_tbptt_makes_one_update_per_batch(tmp_path):
    result = train(cfg_for(tmp_path, "--data.task", "adding", "--train.tbptt_k1", "5", "--train.epochs", "1"))
    assert result.steps == 6  # many-to-one: only the last window has a target


class RecordingContext:
    """A DistContext that records what the loop asks of it."""

    def __init__(self, is_main: bool) -> None:
        self.is_main, self.calls = is_main, []

    def wrap_model(self, model):
        self.calls.append("wrap_model")
        return model

    def shard(self, batch):
        self.calls.append("shard")
        x, y = batch
        return x[: len(x) // 2], y[: len(y) // 2]

    def on_step_end(self, step, model):
        self.calls.append(f"step{step}")

    def before_diagnostics(self, step):
        self.calls.append(f"diagnostics{step}")

    def average(self, value):
        self.calls.append("average")
        return value

    def grad_norm(self, model, local):
        self.calls.append("grad_norm")
        return local

    def before_snapshot(self, step, optimizer):
        self.calls.append(f"snapshot{step}")

    def optimizer_state(self, optimizer):
        return optimizer.state_dict()

    def local_optimizer_state(self, state):
        return state

    def close(self, run_dir):
        self.calls.append(f"close:{run_dir.name}")


@pytest.mark.parametrize("is_main", [True, False])
def test_the_loop_calls_the_dist_context_at_its_seams(tmp_path, monkeypatch, is_main):
    built = []
    real = loop.build_optimizer
    monkeypatch.setattr(loop, "build_optimizer", lambda *a: built.append(len(ctx.calls)) or real(*a))
    ctx = RecordingContext(is_main)
    train(cfg_for(tmp_path, "--train.max_steps", "3"), distributed=ctx)
    # SMALL logs every 5 steps and at the end: every rank snapshots first, then the loss and the
    # gradient norm are reduced; every rank closes with the run directory (a rank of a run that
    # ends early writes its own ledger rows there)
    assert ctx.calls == ["wrap_model", "shard", "step1", "shard", "step2", "shard", "step3",
                         "snapshot3", "average", "grad_norm", "close:run"]
    assert built == [1]  # the optimizer is built after wrap_model
    assert (tmp_path / "run" / "metrics.jsonl").exists() == is_main
    assert (tmp_path / "run" / "checkpoints").exists() == is_main


@pytest.mark.parametrize("is_main", [True, False])
def test_every_rank_hears_before_diagnostics_and_only_the_main_rank_probes(tmp_path, monkeypatch, is_main):
    probed = []
    monkeypatch.setattr(loop, "diagnostics_hook", lambda: lambda model, batch, step, run_dir, **kw: probed.append(step))
    ctx = RecordingContext(is_main)
    train(cfg_for(tmp_path, "--train.max_steps", "5", "--diagnostics.every", "2"), distributed=ctx)
    steps = [c for c in ctx.calls if c.startswith(("step", "diagnostics"))]
    assert steps == ["step1", "step2", "diagnostics2", "step3", "step4", "diagnostics4", "step5"]
    assert probed == ([2, 4] if is_main else [])


def test_diagnostics_are_recorded_every_n_steps(tmp_path, monkeypatch):
    seen = []

    def record_step(model, batch, step, run_dir, **kwargs):
        loss = kwargs["loss_fn"](model(batch[0]), batch[1])
        seen.append((step, run_dir, kwargs["epsilon"], loss.ndim))

    monkeypatch.setattr(loop, "diagnostics_hook", lambda: record_step)
    train(cfg_for(tmp_path, "--train.max_steps", "7", "--diagnostics.every", "3", "--diagnostics.epsilon", "0.01"))
    assert seen == [(3, tmp_path / "run", 0.01, 0), (6, tmp_path / "run", 0.01, 0)]


def test_diagnostics_off_by_default_and_missing_module_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "diagnostics_hook", lambda: None)
    assert train(cfg_for(tmp_path, "--train.max_steps", "4", "--diagnostics.every", "2")).steps == 4


def test_training_flushes_subnormals_and_leaves_them_alone_afterwards(tmp_path, monkeypatch):
    # long sigmoid sequences drive the error terms below float32's smallest normal number
    seen = []
    real = torch.set_flush_denormal
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: seen.append(on) or real(on))
    train(cfg_for(tmp_path, "--train.max_steps", "2"))
    train(cfg_for(tmp_path, "--train.max_steps", "2", "--train.flush_denormal", "false", name="b"))
    assert seen == [True, False, False, False]
    assert float(torch.tensor([1e-40]) * 1.0) > 0.0
