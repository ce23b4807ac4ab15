"""Run directories the report tests read: one single-process run with diagnostics, one pipeline run.

Both are trained once per session (the pipeline run starts 2 gloo processes on 127.0.0.1).
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def single_run(tmp_path_factory):
    """A 60-step sine run with a diagnostics record every 10 steps."""
    from rnnscope.train import load_config, train

    run_dir = tmp_path_factory.mktemp("report") / "single"
    cfg = load_config(None, ["--train.run_dir", str(run_dir), "--train.max_steps", "60",
                             "--diagnostics.every", "10", "--train.progress", "false",
                             "--data.samples", "128", "--data.seq_len", "30", "--model.layers", "2"])
    train(cfg)
    return run_dir


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    """A 12-step, 2-stage pipeline run (chunks of 5 steps): traffic.jsonl and compute.jsonl."""
    run_dir = tmp_path_factory.mktemp("report") / "pipeline"
    cmd = [sys.executable, "-m", "rnnscope", "train", "--parallel.strategy", "pipeline",
           "--parallel.nproc", "2", "--model.layers", "2", "--parallel.chunk", "5",
           "--train.max_steps", "12", "--train.epochs", "0", "--train.progress", "false",
           "--data.samples", "128", "--data.seq_len", "20", "--train.run_dir", str(run_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return run_dir
