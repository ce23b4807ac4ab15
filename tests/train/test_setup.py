"""Run directory, device, optimizer, progress output."""

from __future__ import annotations

import logging

import pytest
import torch

from rnnscope.errors import UserError
from rnnscope.train.config import load_config
from rnnscope.train.progress import Progress
from rnnscope.train.setup import build_optimizer, check_fresh, default_run_dir, resolve_device


def test_default_run_dir_never_reuses_a_name(tmp_path):
    first = default_run_dir(tmp_path)
    first.mkdir()
    second = default_run_dir(tmp_path)
    assert second != first and second.parent == tmp_path and second.name.startswith(first.name[:8])


def test_check_fresh_refuses_an_existing_run(tmp_path):
    check_fresh(tmp_path)  # an empty folder is fine
    (tmp_path / "metrics.jsonl").write_text("")
    (tmp_path / "checkpoints").mkdir()
    check_fresh(tmp_path)  # stopped before its first checkpoint: nothing to resume, a new start is fine
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"")
    with pytest.raises(UserError, match="--resume"):
        check_fresh(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("name, kind, momentum", [("sgd", torch.optim.SGD, 0), ("momentum", torch.optim.SGD, 0.9),
                                                  ("adam", torch.optim.Adam, None)])
def test_optimizers(name, kind, momentum):
    cfg = load_config(None, ["--optim.name", name, "--optim.lr", "0.3"])
    opt = build_optimizer(cfg.optim, [torch.nn.Parameter(torch.zeros(2))])
    assert type(opt) is kind and opt.param_groups[0]["lr"] == 0.3
    if momentum is not None:
        assert opt.param_groups[0]["momentum"] == momentum


def test_progress_off_a_terminal_logs_about_ten_lines(caplog):
    caplog.set_level(logging.INFO, logger="rnnscope.train.progress")
    progress = Progress(total_steps=1000, enabled=True)
    for step in range(10, 1001, 10):
        progress.update(step, 0, 0.5, 0.4, 100.0)
    progress.close()
    lines = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 10 and "step 1000/1000" in lines[-1].getMessage()


def test_denormals_are_flushed_inside_the_block_only():
    from rnnscope.train.setup import denormals_flushed

    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 subnormal
    with denormals_flushed(True):
        assert float(tiny * 1.0) == 0.0
    assert float(tiny * 1.0) > 0.0
    with denormals_flushed(False):
        assert float(tiny * 1.0) > 0.0
