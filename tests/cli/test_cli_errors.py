"""Issue 16 at the command line: OS errors, broken pipes, mistyped commands and options, launcher
messages. Each is one line on stderr and exit 2 (or a quiet 1 for a closed pipe), never a traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from rnnscope.cli import main, os_error_message
from rnnscope.errors import UserError
from rnnscope.parallel import launch
from rnnscope.train import lastgood
from rnnscope.train.config import load_config

TINY = ["--data.samples", "40", "--data.seq_len", "6", "--model.hidden", "4", "--data.batch_size", "8",
        "--train.max_steps", "2", "--train.progress", "false"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def rnnscope(*argv: str, close_stdout: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m rnnscope ...` in a subprocess; with close_stdout its reader is gone before it writes."""
    command = [sys.executable, "-m", "rnnscope", *argv]
    if not close_stdout:
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc.stdout.close()  # like `| head -0`: every write to stdout fails with EPIPE
    _, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(command, proc.returncode, "", err)


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A tiny trained CSV run, for predict and evaluate."""
    root = tmp_path_factory.mktemp("csvrun")
    data = root / "series.csv"
    data.write_text("t,a\n" + "".join(f"{i},{(i * 7) % 11 / 10}\n" for i in range(60)))
    run = root / "run"
    assert main(["train", *TINY, "--data.csv", str(data), "--train.run_dir", str(run)]) == 0
    return run


# --- item 4: operating-system errors --------------------------------------------------------------------

def test_a_run_dir_below_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", *TINY, "--train.run_dir", str(blocker / "run")]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"rnnscope train: error: cannot use {blocker / 'run'}")
    assert "Not a directory; a part of the path is a file, not a folder" in err


@pytest.mark.parametrize("named", [True, False])  # a failed write() names no file
def test_a_full_disk_while_checkpointing_is_one_line(tmp_path, capsys, monkeypatch, named):
    def full(path, state):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if named else []))

    monkeypatch.setattr(lastgood, "save_checkpoint", full)  # where the loop's checkpoints are written
    assert main(["train", *TINY, "--train.run_dir", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys)
    assert "No space left on device; the disk is full: free some space" in err
    assert ("best.pt" in err) if named else ("a write or read failed" in err)


@pytest.mark.parametrize("code, fix", [(errno.EROFS, "the file system is read-only"),
                                       (errno.EACCES, "check its permissions"),
                                       (errno.ENOENT, "check that the path and the folder it is in exist"),
                                       (errno.EIO, "check the path and try again")])
def test_os_error_messages_name_the_path_and_the_fix(code, fix):
    message = os_error_message(OSError(code, os.strerror(code), "/some/where"))
    assert message.startswith(f"cannot use /some/where: {os.strerror(code)}; ") and fix in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes regardless of permissions")
def test_unreadable_config_and_read_only_run_dir(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[model]\nhidden = 4\n")
    config.chmod(0)
    assert main(["train", "--config", str(config)]) == 2
    assert "cannot be read (Permission denied)" in one_line_error(capsys)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["train", *TINY, "--train.run_dir", str(locked / "run")]) == 2
    assert "Permission denied; check its permissions" in one_line_error(capsys)


def test_predict_to_a_directory_or_a_missing_folder_is_one_line(csv_run, tmp_path, capsys):
    assert main(["predict", str(csv_run), "-o", str(tmp_path)]) == 2
    assert f"-o {tmp_path} is a directory; give a file name" in one_line_error(capsys)
    assert main(["predict", str(csv_run), "-o", str(tmp_path / "no" / "such" / "p.csv")]) == 2
    assert "no" in one_line_error(capsys)


# --- item 7: broken pipes end quietly -----------------------------------------------------------------

@pytest.mark.parametrize("argv", [["explain", "--json"], ["env"]])  # print, and rich's Console
def test_a_closed_stdout_ends_quietly(argv):
    done = rnnscope(*argv, close_stdout=True)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 1


def test_predict_to_a_closed_stdout_ends_quietly(csv_run):
    done = rnnscope("predict", str(csv_run), "-o", "-", close_stdout=True)
    assert "Traceback" not in done.stderr and done.returncode == 1, done.stderr


# --- item 9: misleading messages --------------------------------------------------------------------

def test_a_mistyped_command_gets_did_you_mean(capsys):
    assert main(["trian"]) == 2
    assert one_line_error(capsys).startswith("rnnscope: error: unknown command 'trian'; did you mean train? "
                                             "(commands: train, ")
    assert main(["-v", "evalute", "runs/x"]) == 2
    assert "did you mean evaluate?" in one_line_error(capsys)


def test_a_train_option_given_to_evaluate_is_not_did_you_mean_itself(csv_run, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["evaluate", str(csv_run), "--model.hidden", "8"])
    assert exit.value.code == 2
    err = one_line_error(capsys)
    assert "did you mean" not in err
    assert err.startswith("rnnscope evaluate: error: --model.hidden is a train option, not one of rnnscope "
                          "evaluate's; of those it takes --data.csv")
    assert err.endswith("; see rnnscope evaluate --help")


@pytest.mark.parametrize("option", ["--foo", "--model.hiden"])
def test_unknown_option_errors_say_see_help_once(option, capsys):
    with pytest.raises(SystemExit):
        main(["train", option, "1"])
    assert one_line_error(capsys).count("--help") == 1


def test_nproc_without_a_strategy_is_refused(capsys):
    assert main(["train", *TINY, "--parallel.nproc", "2"]) == 2
    assert one_line_error(capsys) == (
        "rnnscope train: error: --parallel.nproc 2 needs a --parallel.strategy to split the work "
        "(data, pipeline or hidden_split); without one a single process trains")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the message for a machine without CUDA")
def test_nccl_on_cpu_names_the_backend_not_gpus():
    cfg = load_config(None, ["--parallel.strategy", "data", "--parallel.nproc", "2", "--parallel.backend", "nccl",
                             "--train.device", "auto"])
    with pytest.raises(UserError, match=r"^--parallel.backend nccl carries CUDA tensors only, and training runs "
                                        r"on CPU \(this machine, .*\); use --parallel.backend gloo or auto$"):
        launch.check_launch(cfg)
    cfg.train.device = "cpu"
    with pytest.raises(UserError, match=r"\(--train.device cpu\)"):
        launch.check_launch(cfg)


def test_more_workers_than_cores_can_start_is_refused(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cfg = load_config(None, ["--parallel.strategy", "data", "--parallel.nproc", "64", "--data.batch_size", "64",
                             "--parallel.backend", "gloo", "--train.device", "cpu"])
    with pytest.raises(UserError, match=r"^--parallel.nproc 64 workers on 2 CPU cores: at most 4 per core \(8\)"):
        launch.check_launch(cfg)
    cfg.parallel.nproc = 8
    launch.check_launch(cfg)  # oversubscribed, but it starts: a warning only


def test_workers_get_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    cfg = load_config(None, ["--parallel.strategy", "data", "--parallel.nproc", "2"])
    assert launch.worker_threads(cfg) == "1"  # --train.threads (1 by default)
    cfg.train.threads = 0
    assert launch.worker_threads(cfg) == "4"  # torch's default, the cores shared out
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launch.worker_threads(cfg) == "3"  # the user's own


@pytest.mark.distributed
def test_a_parallel_run_prints_no_omp_banner(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = rnnscope("train", *TINY, "--parallel.strategy", "data", "--parallel.nproc", "2",
                    "--train.run_dir", str(tmp_path / "run"), env=env)
    assert done.returncode == 0, done.stderr
    assert "OMP_NUM_THREADS" not in done.stderr, done.stderr
