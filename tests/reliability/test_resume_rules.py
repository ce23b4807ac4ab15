"""Resume: what it may change, what it refuses, malformed checkpoints, paths that moved."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from rnnscope.cli import main
from rnnscope.errors import UserError
from rnnscope.train.checkpoint import load_checkpoint, save_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import DivergenceError, train
from rnnscope.train.restore import load_run

SMALL = ["--data.samples", "120", "--data.seq_len", "12", "--model.hidden", "8", "--data.batch_size", "16",
         "--train.progress", "false", "--train.log_every", "5", "--train.checkpoint_every", "5"]


def run(tmp_path, *extra, name="run"):
    return train(load_config(None, SMALL + ["--train.run_dir", str(tmp_path / name), *extra]))


def cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_resume_applies_a_lower_learning_rate_and_momentum(tmp_path, capsys):
    run(tmp_path, "--optim.name", "momentum", "--train.max_steps", "10")
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"), "--optim.lr", "0.01",
                    "--optim.momentum", "0.5", "--optim.weight_decay", "0.001", "--train.max_steps", "20")
    assert code == 0, err
    group = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["optimizer"]["param_groups"][0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.01, 0.5, 0.001)
    assert load_config(tmp_path / "run" / "config.toml").optim.lr == 0.01


def test_after_a_divergence_a_resume_with_a_lower_lr_trains_on(tmp_path, capsys):
    with pytest.raises(DivergenceError):
        run(tmp_path, "--optim.lr", "50", "--train.checkpoint_every", "1", "--train.epochs", "5")
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"), "--optim.lr", "0.05")
    assert code == 0, err


@pytest.mark.parametrize("option, value", [("--model.hidden", "32"), ("--data.seq_len", "20"),
                                           ("--optim.name", "adam"), ("--train.seed", "3")])
def test_resume_refuses_a_setting_that_cannot_change_in_one_line(tmp_path, capsys, option, value):
    run(tmp_path, "--train.max_steps", "5")
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"), option, value,
                    "--train.max_steps", "10")
    assert code == 2 and err.count("\n") == 1, err
    assert f"{option} cannot change on resume" in err and "--optim.lr" in err


def test_a_config_toml_that_disagrees_with_the_checkpoint_is_refused(tmp_path, capsys):
    run(tmp_path, "--train.max_steps", "5")
    config = tmp_path / "run" / "config.toml"
    config.write_text(config.read_text().replace("seq_len = 12", "seq_len = 13"))
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"), "--train.max_steps", "10")
    assert code == 2 and "--data.seq_len cannot change on resume" in err and "config.toml" in err


@pytest.mark.parametrize("content", ["", "[model]\nhidden = 8\n", "[model\n"])
def test_an_empty_or_cut_config_toml_never_trains_on_defaults(tmp_path, capsys, content):
    run(tmp_path, "--train.max_steps", "5")
    (tmp_path / "run" / "config.toml").write_text(content)
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"), "--train.max_steps", "10")
    assert code == 2 and "config.toml" in err and err.count("\n") == 1, err


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    run(tmp_path, "--train.max_steps", "5")
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"))
    assert code == 2 and "already finished (5 of 5 steps)" in err and "--train.max_steps" in err


def _malformed(state: dict) -> list[tuple[str, dict]]:
    cases = [(f"no {key}", {k: v for k, v in state.items() if k != key})
             for key in ("model", "step", "rng", "config", "normalization", "dataset", "optimizer")]
    cases.append(("config as a list", {**state, "config": [1, 2]}))
    cases.append(("step as text", {**state, "step": "7"}))
    cases.append(("dataset without sizes", {**state, "dataset": {**state["dataset"], "output_size": None}}))
    cases.append(("dataset disagreeing with the model", {**state, "dataset": {**state["dataset"], "output_size": 3}}))
    cases.append(("a model of strings", {**state, "model": {"w": "x"}}))
    return cases


def test_malformed_checkpoints_get_one_line_in_resume_predict_evaluate(tmp_path, capsys):
    run(tmp_path, "--train.max_steps", "5")
    original = tmp_path / "run"
    state = load_checkpoint(original / "checkpoints" / "latest.pt")
    for what, bad in _malformed(state):
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(original, copy)
        for name in ("latest.pt", "best.pt"):
            save_checkpoint(copy / "checkpoints" / name, {k: v for k, v in bad.items() if k != "format"})
        with pytest.raises(UserError, match="malformed"):
            load_run(copy, "latest")
        for argv in (["train", "--resume", str(copy), "--train.max_steps", "10"],
                     ["evaluate", str(copy)], ["predict", str(copy), "-o", str(tmp_path / "p.csv")]):
            code, err = cli(capsys, *argv)
            assert code == 2 and err.count("\n") == 1 and "malformed" in err, (what, argv, err)


def test_a_malicious_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    run(tmp_path, "--train.max_steps", "5")
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"format": 1, "model": Evil()}, latest)
    code, err = cli(capsys, "train", "--resume", str(tmp_path / "run"), "--train.max_steps", "10")
    assert code == 2 and err.count("\n") == 1 and "cannot be read safely" in err, err
    assert not (tmp_path / "pwned").exists()


def test_paths_are_stored_absolute_and_a_run_moved_elsewhere_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "series.csv").write_text("a,b\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(200)))
    assert main(["train", "--data.csv", "series.csv", "--data.seq_len", "10", "--train.max_steps", "5",
                 "--train.run_dir", "rel", "--train.progress", "false"]) == 0
    saved = load_config(tmp_path / "rel" / "config.toml")
    assert saved.data.csv == str(tmp_path / "series.csv") and saved.train.run_dir == str(tmp_path / "rel")
    # the run and its data move; a resume from elsewhere names where they are now
    (tmp_path / "moved").mkdir()
    shutil.move(tmp_path / "rel", tmp_path / "moved" / "rel")
    shutil.move(tmp_path / "series.csv", tmp_path / "moved" / "series.csv")
    monkeypatch.chdir(tmp_path / "moved")
    capsys.readouterr()
    code, err = cli(capsys, "train", "--resume", "rel", "--data.csv", "series.csv", "--train.max_steps", "10")
    assert code == 0, err
    lines = [json.loads(x) for x in (tmp_path / "moved" / "rel" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 10
    # every command that reads the run accepts where its data lives now
    for argv in (["diagnose", "rel", "--data.csv", "series.csv", "--no-plots", "--json"],
                 ["evaluate", "rel", "--data.csv", "series.csv"],
                 ["predict", "rel", "--data.csv", "series.csv", "-o", "out.csv"]):
        code, err = cli(capsys, *argv)
        assert code == 0, (argv, err)


def test_a_run_directory_in_use_hints_at_resume_for_every_strategy(tmp_path):
    from rnnscope.train.setup import check_fresh

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"")
    for strategy in ("pipeline", "data"):  # every strategy resumes, so the hint always works
        (tmp_path / "config.toml").write_text(f'[parallel]\nstrategy = "{strategy}"\n')
        with pytest.raises(UserError, match="continue it with --resume"):
            check_fresh(tmp_path)


