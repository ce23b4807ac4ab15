"""`rnnscope train` on the command line: runs, one-line errors, --help, resume."""

from __future__ import annotations

import json

import pytest

from rnnscope.cli import main
from rnnscope.train.config import all_keys, iter_fields, load_config

SMALL = ["--data.samples", "120", "--data.seq_len", "10", "--model.hidden", "8", "--data.batch_size", "16",
         "--train.log_every", "4"]


def run_cli(*argv: str) -> int:
    return main(list(argv))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_train_writes_the_run_and_prints_the_summary(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("train", *SMALL, "--train.epochs", "2", "--train.run_dir", str(run)) == 0
    out = capsys.readouterr().out
    assert "train loss" in out and "validation loss" in out and str(run) in out
    assert (run / "config.toml").exists() and (run / "checkpoints" / "best.pt").exists()
    # the resolved config.toml is loadable with --config and gives the same run
    cfg = load_config(run / "config.toml")
    assert cfg.model.hidden == 8 and cfg.train.run_dir == str(run)
    assert run_cli("train", "--config", str(run / "config.toml"), "--train.run_dir", str(tmp_path / "again")) == 0
    first = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line)["loss"] for line in (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()]
    assert first == again


def test_default_run_dir_is_runs_date_time(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli("train", *SMALL, "--train.max_steps", "2") == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name[:8].isdigit() and (run / "metrics.jsonl").exists()


def test_help_lists_every_field_with_default_and_description(capsys):
    with pytest.raises(SystemExit) as exit:
        run_cli("train", "--help")
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    for section, name, _, default, help, _ in iter_fields():
        assert f"--{section}.{name}" in text
        assert " ".join(help.split()[:3]) in text, f"{section}.{name}"
    assert text.count("(default: ") >= len(all_keys())
    assert "(default: sigmoid)" in text and "(default: sgd)" in text


@pytest.mark.parametrize("argv, message", [
    (["--model.hiden", "4"], "unknown option --model.hiden; did you mean --model.hidden?"),
    (["--optim.learning_rate", "4"], "did you mean --optim.lr?"),
    (["--model.hidden", "four"], "model.hidden from --model.hidden must be int, got 'four'"),
    (["--model.hidden", "0"], "--model.hidden must be ≥ 1, got 0"),
    (["--data.csv", "missing.csv"], "missing.csv does not exist; check the --data.csv path"),
    (["--config", "nope.toml"], "config file nope.toml does not exist"),
    (["--resume", "nowhere"], "nowhere/config.toml does not exist"),
])
def test_mistakes_get_one_line_and_status_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        status = run_cli("train", *argv)
    except SystemExit as exit:  # argparse's own refusals exit from parse_args
        status = exit.code
    assert status == 2
    assert message in one_line_error(capsys)


def test_csv_errors_reach_the_user_as_one_line(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("t,v\n1,2\n2,oops\n")
    assert run_cli("train", "--data.csv", str(path), "--train.run_dir", str(tmp_path / "r")) == 2
    assert f"{path} line 3, column 'v': 'oops' is not a number" in one_line_error(capsys)


def test_divergence_exits_non_zero_with_one_line(tmp_path, capsys):
    status = run_cli("train", *SMALL, "--optim.lr", "1e30", "--train.run_dir", str(tmp_path / "r"))
    assert status == 2
    assert "training diverged at step" in one_line_error(capsys)


def test_resume_continues_a_stopped_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli("train", *SMALL, "--train.max_steps", "5", "--train.run_dir", str(run)) == 0
    assert run_cli("train", "--resume", str(run), "--train.max_steps", "12") == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 12 and load_config(run / "config.toml").train.max_steps == 12
