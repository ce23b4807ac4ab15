"""What each torch.distributed backend runs for each op, as (the formula's op, its algorithm).

Measured on loopback (tests/parallel/test_wire.py): gloo's all-reduce and all-gather are rings,
its broadcast moves (n−1)·S in all, and its reduce-scatter is an all-reduce whose result each
rank cuts, so it costs 2(n−1)/n·S per rank, twice a ring reduce-scatter. The communicator
records by this table, the comparison and the lab predict by it, and the calibration fits each
op's α and β to the steps of what it runs.
"""

from __future__ import annotations

from rnnscope.errors import UserError

BACKEND_ALGORITHMS: dict[str, dict[str, tuple[str, str]]] = {
    "gloo": {"all_reduce": ("all_reduce", "ring"), "all_gather": ("all_gather", "ring"),
             "reduce_scatter": ("all_reduce", "ring"), "broadcast": ("broadcast", "ring"),
             "send": ("send", "direct"), "recv": ("recv", "direct")},
    "nccl": {"all_reduce": ("all_reduce", "ring"), "all_gather": ("all_gather", "ring"),
             "reduce_scatter": ("reduce_scatter", "ring"), "broadcast": ("broadcast", "ring"),
             "send": ("send", "direct"), "recv": ("recv", "direct")},
}
GLOO = BACKEND_ALGORITHMS["gloo"]


def backend_algorithms(backend: str) -> dict[str, tuple[str, str]]:
    """op -> (formula op, algorithm) for `backend`; a miss lists the backends."""
    if backend not in BACKEND_ALGORITHMS:
        raise UserError(f"backend {backend!r} has no algorithm table; choose one of "
                        f"{', '.join(BACKEND_ALGORITHMS)}")
    return BACKEND_ALGORITHMS[backend]
