"""Workers in the lab: the torchrun command each host runs, and a failing worker's report."""

from pathlib import Path

import pytest

from rnnscope.lab.netns import Lab
from rnnscope.lab.run import MASTER_PORT, run_workers, worker_argv, worker_env
from rnnscope.lab.system import LabError


def test_each_host_runs_torchrun_with_the_rendezvous_on_host_0(monkeypatch):
    lab = Lab(3, 10e6)  # not built: only its names and addresses are needed
    argv = worker_argv(lab, 2, ["--model.hidden", "8"], Path("run/lab/agent2"))
    flags = dict(zip(argv[3:-5:2], argv[4:-5:2]))
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    assert flags == {"--nnodes": "3", "--node_rank": "2", "--nproc_per_node": "1",
                     "--max_restarts": "0", "--master_addr": lab.hosts[0].address,
                     "--master_port": str(MASTER_PORT), "--log_dir": "run/lab/agent2"}
    assert argv[-5:] == ["-m", "rnnscope", "train", "--model.hidden", "8"]
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    env = worker_env(lab.hosts[2].ifname)
    assert env["GLOO_SOCKET_IFNAME"] == lab.hosts[2].ifname and "RANK" not in env


def test_a_failing_worker_is_reported_with_its_log(lab_ready, tmp_path):
    with Lab(2, 100e6) as lab:
        with pytest.raises(LabError, match="exited with status") as info:
            run_workers(lab, ["--model.hidden", "0"], tmp_path, timeout_s=120)
    assert "--model.hidden must be ≥ 1, got 0" in str(info.value)  # the worker's own words
    assert (tmp_path / "lab" / "host0.log").is_file()
