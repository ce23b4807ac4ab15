"""The DistContext: what a worker reads from torchrun, which backend it chooses, and how a run
that ended early keeps every rank's ledger rows."""

import json

import pytest

from rnnscope.errors import UserError
from rnnscope.parallel.context import (PHASES_FILE, TRAFFIC_FILE, WorkerEnv, choose_backend,
                                       collective_timeout, merge_rank_parts, rank_part,
                                       remove_rank_parts, write_phases)
from rnnscope.parallel.ledger import read_jsonl, write_jsonl
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


def _rows(rank: int, steps: int) -> list[dict]:
    return [{"step": k, "phase": "step", "rank": rank, "tag": "dp-grad", "op": "all_reduce",
             "wire_bytes_sent": 8} for k in range(1, steps + 1)]


def test_the_launcher_merges_each_ranks_part_of_a_run_that_ended_early(tmp_path):
    """Rank 0 wrote traffic.jsonl and compute.jsonl alone, ranks 1 and 2 their parts (rank 2
    stopped a step later): one file each again, every rank's rows in order, the parts gone."""
    write_jsonl(_rows(0, 3), tmp_path / TRAFFIC_FILE)
    write_phases([(0, [["step 1", 1.0, 2.0]])], tmp_path / PHASES_FILE)
    for rank, steps in ((2, 4), (1, 3)):
        write_jsonl(_rows(rank, steps), rank_part(tmp_path, TRAFFIC_FILE, rank))
        write_phases([(rank, [["step 1", 1.5, 2.5]])], rank_part(tmp_path, PHASES_FILE, rank))
    assert rank_part(tmp_path, TRAFFIC_FILE, 2).name == "traffic.rank2.jsonl"

    merged = merge_rank_parts(tmp_path)

    assert sorted(p.name for p in merged) == ["compute.rank1.jsonl", "compute.rank2.jsonl",
                                              "traffic.rank1.jsonl", "traffic.rank2.jsonl"]
    rows = read_jsonl(tmp_path / TRAFFIC_FILE)
    assert [(r["step"], r["rank"]) for r in rows] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2),
                                                      (3, 0), (3, 1), (3, 2), (4, 2)]
    phases = [json.loads(line) for line in (tmp_path / PHASES_FILE).read_text().splitlines()]
    assert [p["rank"] for p in phases] == [0, 1, 2] and phases[1]["phases"] == [["step 1", 1.5, 2.5]]
    assert not list(tmp_path.glob("*.rank*.jsonl"))


def test_a_part_that_cannot_be_read_stays_and_the_rest_is_merged(tmp_path, caplog):
    write_jsonl(_rows(0, 2), tmp_path / TRAFFIC_FILE)
    rank_part(tmp_path, TRAFFIC_FILE, 1).write_text('{"step": 1, "phase"')  # cut off mid-line
    write_phases([(0, [])], tmp_path / PHASES_FILE)
    write_phases([(1, [])], rank_part(tmp_path, PHASES_FILE, 1))

    merged = merge_rank_parts(tmp_path)

    assert [p.name for p in merged] == ["compute.rank1.jsonl"]
    assert "could not merge" in caplog.text and rank_part(tmp_path, TRAFFIC_FILE, 1).exists()
    assert [r["rank"] for r in read_jsonl(tmp_path / TRAFFIC_FILE)] == [0, 0]  # rank 0's, untouched
    remove_rank_parts(tmp_path)
    assert not list(tmp_path.glob("*.rank*.jsonl")) and (tmp_path / TRAFFIC_FILE).exists()
