"""`rnnscope train` on a CUDA device: it learns, and resume is still bitwise.

Skipped where torch sees no CUDA device (CI).
"""

from __future__ import annotations

import torch
from testing_utils import requires_cuda

from rnnscope.train.checkpoint import load_checkpoint
from rnnscope.train.config import load_config
from rnnscope.train.loop import train

pytestmark = requires_cuda

SMALL = ["--data.samples", "120", "--data.seq_len", "12", "--model.hidden", "16",
         "--data.batch_size", "16", "--train.progress", "false", "--train.log_every", "5",
         "--train.checkpoint_every", "5", "--train.device", "cuda", "--optim.name", "adam",
         "--optim.lr", "0.01"]


def test_training_on_cuda_learns_and_resumes_bitwise(tmp_path):
    def run(name: str, steps: int, resume: bool = False):
        cfg = load_config(None, SMALL + ["--train.run_dir", str(tmp_path / name),
                                         "--train.max_steps", str(steps)])
        return train(cfg, resume=resume)

    whole = run("whole", 30)
    assert whole.val_loss < whole.first_loss
    run("parts", 13)
    resumed = run("parts", 30, resume=True)
    assert resumed.steps == whole.steps == 30
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")["model"]
    b = load_checkpoint(tmp_path / "parts" / "checkpoints" / "latest.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
