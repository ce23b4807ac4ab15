"""A torchrun worker's entry: join the process group and build the strategy's DistContext.

    ctx = from_env(cfg)                    # inside a worker: RANK, WORLD_SIZE, ... set by torchrun
    train(cfg, distributed=ctx, resume=ctx.resume)

The strategies' names come from `rnnscope.costs.layout.STRATEGIES`; each has one context here.
"""

from __future__ import annotations

import torch

from rnnscope.costs.layout import STRATEGIES, strategy_name
from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.context import (ParallelContext, WorkerEnv, choose_backend,
                                       collective_timeout, init_process_group)
from rnnscope.parallel.data import DataParallel
from rnnscope.parallel.hidden_split import HiddenSplitParallel
from rnnscope.parallel.ledger import Ledger
from rnnscope.parallel.pipeline import PipelineParallel

CONTEXTS: dict[str, type[ParallelContext]] = {
    "data": DataParallel, "pipeline": PipelineParallel, "hidden_split": HiddenSplitParallel}
assert CONTEXTS.keys() == STRATEGIES.keys(), "every strategy of the registry needs a context"


def from_env(cfg) -> ParallelContext:
    """Join the process group torchrun described and return cfg.parallel.strategy's context."""
    if cfg.parallel.strategy == "none":
        raise UserError(f"--parallel.strategy none has no distributed context; choose one of "
                        f"{', '.join(STRATEGIES)}")
    cls = CONTEXTS[strategy_name(cfg.parallel.strategy)]
    env = WorkerEnv.read()
    backend, device_type = choose_backend(cfg)
    device = torch.device("cuda", env.local_rank) if device_type.type == "cuda" else device_type
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = collective_timeout(cfg.parallel.timeout_s)
    try:
        init_process_group(backend, timeout, device if device.type == "cuda" else None)
    except RuntimeError as exc:  # DistStoreError and the like: a peer never joined (hung, dead)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"rank {env.rank}: the process group did not form within "
                        f"{timeout.total_seconds():g} s (--parallel.timeout_s "
                        f"{cfg.parallel.timeout_s} less its teardown reserve): a peer did not start "
                        f"or hung ({first})") from None
    comm = Communicator(ledger=Ledger(env.rank))
    return cls(cfg, comm, device, env)
