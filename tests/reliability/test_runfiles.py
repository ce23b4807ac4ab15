"""Run files written atomically, the run-directory lock, the stop signal's bookkeeping."""

from __future__ import annotations

import os
import signal

import pytest

from rnnscope.errors import UserError
from rnnscope.train.metrics import MetricsLog
from rnnscope.train.runfiles import LOCK_FILE, RunLock, write_atomic
from rnnscope.train.stop import Interrupted, SignalStop


def test_a_write_that_fails_half_way_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    write_atomic(path, "[model]\nhidden = 8\n")

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "[model]\nhidden = 16\n")
    assert path.read_text() == "[model]\nhidden = 8\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temporary file left


def test_metrics_history_survives_a_failed_rewrite_on_resume(tmp_path, monkeypatch):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (5, 10, 15):
        log.write({"step": step, "loss": 1.0})
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        log.truncate_after(10)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3  # nothing erased


def test_the_lock_file_names_its_holder(tmp_path):
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    # released: a process may take it again (another process would be refused while held,
    # tests/reliability/test_signals_and_lock.py starts one)
    RunLock(tmp_path).acquire().release()


def test_a_foreign_holder_is_refused_with_its_pid(tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from rnnscope.train.runfiles import RunLock; "
        f"RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"in use by process {holder.pid} .*kill {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    RunLock(tmp_path).acquire().release()  # a dead holder never blocks


def test_a_stop_signal_waits_for_the_batch_and_a_second_one_does_not():
    stop = SignalStop().install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
        with pytest.raises(Interrupted) as info:
            stop.check(7, None)
        assert info.value.exit_code == 143 and "stopped by SIGTERM" in str(info.value)
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)  # the second: at once
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
