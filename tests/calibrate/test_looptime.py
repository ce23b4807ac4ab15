"""The training loop timed by its own steps: warm-up left out, every process started together."""

import dataclasses
import datetime

import pytest
import torch.distributed as dist

from rnnscope.calibrate.looptime import WARMUP_STEPS, StepClock, ddp_step_seconds, loop_step_seconds
from rnnscope.calibrate.loopback import free_port
from rnnscope.train.config import load_config

TINY = ["--model.hidden", "8", "--model.layers", "2", "--data.seq_len", "6",
        "--data.samples", "64", "--data.batch_size", "8"]


def test_the_clock_starts_after_the_warmup_and_syncs_once():
    synced = []
    clock = StepClock(2, sync=lambda: synced.append(True))
    for step in range(1, 6):
        clock.on_step_end(step, None)
    assert synced == [True] and len(clock.steps) == 3 and all(t >= 0 for t in clock.steps)


def test_loop_steps_are_timed_without_touching_the_config():
    cfg = load_config(None, TINY + ["--train.max_steps", "1000", "--train.log_every", "1"])
    synced = []
    seconds = loop_step_seconds(cfg, batch=4, layers=1, hidden=8, repeats=4,
                                sync=lambda: synced.append(True))
    assert 0 < seconds < 1 and synced == [True]
    assert cfg.train.max_steps == 1000 and cfg.data.batch_size == 8  # a copy was changed


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_ddp_steps_on_a_group_of_one_rank():
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0,
                            world_size=1, timeout=datetime.timedelta(seconds=60))
    try:
        cfg = load_config(None, TINY)
        seconds = ddp_step_seconds(cfg, 8, 2, 8, repeats=3, group=dist.group.WORLD)
    finally:
        dist.destroy_process_group()
    assert 0 < seconds < 1
    assert WARMUP_STEPS >= 2  # DDP rebuilds its buckets after the first step: not timed


def _strategy_rank(rank: int, port: int, out: str) -> None:
    """One of two calibration processes timing the three strategies' own loops, then using the
    group."""
    import json

    import torch

    from rnnscope.calibrate.looptime import strategy_step_seconds

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=60))
    cfg = load_config(None, TINY + ["--parallel.chunk", "2", "--train.max_steps", "1000"])
    synced = []

    def sync():
        synced.append(True)
        dist.barrier()

    seconds = {strategy: dataclasses.asdict(strategy_step_seconds(cfg, strategy, rank, 2, repeats=4,
                                                                  sync=sync))
               for strategy in ("data", "pipeline", "hidden_split")}
    alive = torch.ones(1)
    dist.all_reduce(alive)  # the calibration's group is still there for what comes next
    with open(f"{out}.{rank}", "w") as f:
        json.dump({"seconds": seconds, "synced": len(synced), "alive": float(alive),
                   "strategy": cfg.parallel.strategy, "max_steps": cfg.train.max_steps}, f)
    dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_the_strategies_steps_are_their_own_training_loops_on_the_calibrations_group(tmp_path):
    import json

    import torch.multiprocessing as mp

    out = str(tmp_path / "rank")
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_strategy_rank, args=(r, port, out), daemon=True) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(150)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung and all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    for rank in range(2):
        got = json.loads(open(f"{out}.{rank}").read())
        assert set(got["seconds"]) == {"data", "pipeline", "hidden_split"}
        # each step, and the part of it during which a message or collective was in flight
        assert all(0 < real["comm_s"] < real["step_s"] < 1 for real in got["seconds"].values())
        assert got["synced"] == 3  # every rank starts each loop's timed steps together, once
        assert got["alive"] == 2.0  # the group was not torn down by the loop's close
        assert got["strategy"] == "none" and got["max_steps"] == 1000  # a copy was changed


def test_every_strategy_and_only_a_strategy_has_a_real_group_step_to_time():
    from rnnscope.calibrate.looptime import STRATEGY_STEPS, strategy_step_seconds
    from rnnscope.costs.layout import STRATEGIES

    assert set(STRATEGY_STEPS) == set(STRATEGIES)
    with pytest.raises(ValueError, match="no real-group step"):
        strategy_step_seconds(load_config(None, TINY), "none", 0, 2)
