"""Training across the lab: the same weights as over loopback, and the ledger matches the links."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnscope.cli import main
from rnnscope.errors import UserError
from rnnscope.lab.sweep import LabPlan, check_plan

# a small model and a short run: two workers, four steps, 266 kB of gradients per step
# (enough that start-up chatter — rendezvous, connection set-up — stays below 5% of the bytes)
TRAIN = ["--model.hidden", "256", "--data.samples", "96", "--data.seq_len", "12",
         "--data.batch_size", "16", "--train.log_every", "2",
         "--train.checkpoint_every", "100", "--train.seed", "3", "--parallel.timeout_s", "60"]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The model's parameters in the run's last checkpoint."""
    state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    return state["model"]


def start_loopback_run(run_dir: Path) -> subprocess.Popen:
    """The same training with `rnnscope train` on 127.0.0.1 (the project's own launcher)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "rnnscope", "train", *TRAIN, "--train.max_steps", "4",
         "--parallel.strategy", "data",
         "--parallel.nproc", "2", "--train.run_dir", str(run_dir), "--train.progress", "false"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_data_parallel_over_the_lab_ends_with_the_loopback_weights(lab_ready, tmp_path, capsys):
    loopback = start_loopback_run(tmp_path / "loopback")  # runs beside the lab's run
    plot = tmp_path / "sweep.png"
    try:
        status = main(["lab", "--hosts", "2", "--sweep-link", "50Mbit", "--steps", "4",
                       "--out", str(tmp_path / "lab"), "--timeout", "180", "--json",
                       "--plot", str(plot), *TRAIN])
        output, _ = loopback.communicate(timeout=180)
    finally:
        if loopback.poll() is None:
            loopback.kill()
            loopback.wait()
    assert loopback.returncode == 0, output[-3000:]
    assert status == 0
    [result] = json.loads(capsys.readouterr().out)

    over_lab = final_weights(Path(result["run_dir"]))
    over_loopback = final_weights(tmp_path / "loopback")
    assert over_lab.keys() == over_loopback.keys()
    for name, tensor in over_loopback.items():
        torch.testing.assert_close(over_lab[name], tensor, rtol=1e-6, atol=1e-7, msg=name)

    # the ledger saw every step and every byte: the interfaces agree within 5%
    prediction = result["prediction"]
    assert [s["step"] for s in result["steps"]] == [1, 2, 3, 4]
    assert all(s["wire_bytes"] == prediction["network_bytes"] for s in result["steps"])
    assert all(s["messages"] == prediction["network_messages"] for s in result["steps"])
    assert result["summary"]["bytes_ratio"] == pytest.approx(1.0, abs=0.05)
    for sent, counters in zip(result["ledger_sent"], result["interface"]):
        assert counters["tx_bytes"] > sent > 0  # frames carry headers on top of the payload
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "lab" / "lab.json").read_text()) == [result]


def test_plan_is_checked_before_any_namespace_exists(tmp_path):
    def plan(**changes) -> LabPlan:
        fields = dict(hosts=3, rates_bps=[10e6], strategies=["data"], config_path=None,
                      overrides=[], out_dir=tmp_path)
        return LabPlan(**{**fields, **changes})

    with pytest.raises(UserError, match="--data.batch_size 32 does not split over --hosts 3"):
        check_plan(plan())
    with pytest.raises(UserError, match="--strategy 'ring' is not a parallel strategy"):
        check_plan(plan(hosts=2, strategies=["ring"]))
    with pytest.raises(UserError, match="did you mean model.hidden"):
        check_plan(plan(hosts=2, overrides=["--model.hiden", "3"]))
    (tmp_path / "data-10Mbit").mkdir()
    with pytest.raises(UserError, match="already exists"):
        check_plan(plan(hosts=2))
