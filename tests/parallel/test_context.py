"""The DistContext: what a worker reads from torchrun, and which backend it chooses."""

import pytest

from rnnscope.errors import UserError
from rnnscope.parallel.context import WorkerEnv, choose_backend, collective_timeout
from rnnscope.parallel.worker import from_env
from rnnscope.train.config import load_config


def test_worker_env_reads_torchrun_variables(monkeypatch):
    for key, value in {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1234",
                       "TORCHELASTIC_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(key, value)
    assert WorkerEnv.read() == WorkerEnv(rank=3, world_size=4, local_rank=1, local_world_size=2,
                                         restart_count=1)


def test_outside_torchrun_the_error_says_how_to_start_workers(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UserError, match="not started by torchrun.*--parallel.nproc"):
        WorkerEnv.read()


def test_backend_is_gloo_on_cpu_and_nccl_needs_cuda():
    cfg = load_config(None, ["--parallel.strategy", "data"])
    assert choose_backend(cfg)[0] == "gloo"
    cfg.parallel.backend = "nccl"
    with pytest.raises(UserError, match="nccl needs CUDA"):
        choose_backend(cfg)


def test_unknown_or_unbuilt_strategy_is_refused():
    cfg = load_config(None, [])
    with pytest.raises(UserError, match="no distributed context"):
        from_env(cfg)


def test_the_collective_timeout_leaves_the_teardown_a_reserve_inside_timeout_s():
    # a quarter of --parallel.timeout_s, at least 2 s and at most 10 s; never under 1 s
    seconds = {t: collective_timeout(t).total_seconds() for t in (1, 2, 3, 5, 8, 10, 40, 60, 3600)}
    assert seconds == {1: 1, 2: 1, 3: 1, 5: 3, 8: 6, 10: 7.5, 40: 30, 60: 50, 3600: 3590}
