"""Where ranks sit: flat (every worker on the network link) or nodes × GPUs per node.

Ranks are numbered node by node. A parallel group of `size` ranks spaced `stride` apart has
`per_node` = min(size, max(1, gpus_per_node // stride)) members in each node it touches. A
collective over a group that spans nodes runs hierarchically, the way NCCL and Horovod do on
multi-GPU nodes: reduce-scatter inside each node (intra link), all-reduce of the 1/per_node
shard across nodes (each GPU on its own NIC, every rail at the same time), all-gather inside
the node. Each level picks its fastest algorithm (ring, binomial tree, halving-doubling), as
NCCL's tuner does.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link, best_algorithm, collective_time
from rnnscope.costs.collectives import collective_cost


SHORT = {"ring": "ring", "tree": "tree", "halving_doubling": "hd", "direct": "direct"}


@dataclass(frozen=True)
class Topology:
    """The network: `inter` links between nodes; `intra` links inside a node of `gpus_per_node`."""

    inter: Link
    gpus_per_node: int = 1
    intra: Link | None = None
    # a calibrated flat network: α/β fitted per op (its formula op), used instead of `inter`
    op_links: dict[str, Link] | None = None
    # op_links keyed by the op as called, not its formula op (--calibrate times gloo's
    # reduce-scatter on its own, though its formula is an all-reduce's)
    per_call: bool = False

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise UserError(f"--gpus-per-node must be ≥ 1, got {self.gpus_per_node}")
        if self.gpus_per_node > 1 and self.intra is None:
            raise UserError(f"--gpus-per-node {self.gpus_per_node} needs --intra "
                            f"(the bandwidth inside a node, e.g. 900GB/s)")

    @property
    def flat(self) -> bool:
        """Every worker talks over the inter-node link."""
        return self.gpus_per_node == 1

    def link_for(self, op: str, inside: bool = False) -> Link:
        """The link an op's messages take: intra inside a node, else the op's calibrated link
        or the network link."""
        if inside:
            return self.intra
        return (self.op_links or {}).get(op, self.inter)

    def per_node(self, size: int, stride: int = 1) -> int:
        """Members of a group (of `size` ranks, `stride` apart) inside one node."""
        return min(size, max(1, self.gpus_per_node // stride))


@dataclass(frozen=True)
class CommCost:
    """One collective on the topology: seconds, and bytes one rank sends on each kind of link."""

    seconds: float
    inter_bytes: int
    intra_bytes: int
    algorithm: str
    messages: int


def _choose(op: str, payload_bytes: int, n: int, topology: Topology, inside: bool,
            algorithms: dict[str, tuple[str, str]] | None) -> tuple[str, str, float]:
    """(the op the formula counts, its algorithm, seconds): fixed, or the fastest."""
    if algorithms and op in algorithms:
        formula_op, name = algorithms[op]
        own = topology.per_call and op in (topology.op_links or {})
        link = topology.link_for(op if own else formula_op, inside)
        return formula_op, name, collective_time(formula_op, payload_bytes, n, link, name)
    name, seconds = best_algorithm(op, payload_bytes, n, topology.link_for(op, inside))
    return op, name, seconds


def group_collective(topology: Topology, op: str, payload_bytes: int, size: int,
                     stride: int = 1, element_size: int = 1,
                     algorithms: dict[str, tuple[str, str]] | None = None) -> CommCost:
    """Cost of `op` on S = `payload_bytes` among `size` ranks placed `stride` apart.

    `algorithms` fixes what a backend runs, op -> (formula op, algorithm), e.g. gloo's
    reduce-scatter is an all-reduce: {"reduce_scatter": ("all_reduce", "ring")}; without it
    every level takes its fastest algorithm.
    """
    if size <= 1:
        return CommCost(0.0, 0, 0, "-", 0)
    m = topology.per_node(size, stride)
    nodes = size // m
    if op in ("send", "recv"):
        seconds = topology.link_for("send", m > 1).message_time(payload_bytes)
        inter, intra = (0, payload_bytes) if m > 1 else (payload_bytes, 0)
        return CommCost(seconds, inter, intra, "direct", 1)
    if nodes == 1 or m == 1:  # inside one node, or one member per node on the network
        formula_op, name, seconds = _choose(op, payload_bytes, size, topology, nodes == 1,
                                            algorithms)
        cost = collective_cost(formula_op, payload_bytes, size, name)
        inter, intra = (0, cost.sent_bytes) if nodes == 1 else (cost.sent_bytes, 0)
        return CommCost(seconds, inter, intra, SHORT[name], cost.messages)
    # hierarchical: split S into m rails inside the node, run `op` across nodes on each rail
    shard = -(-payload_bytes // m)
    inside = []
    if op in ("all_reduce", "reduce_scatter"):
        inside.append("reduce_scatter")
    if op in ("all_reduce", "all_gather"):
        inside.append("all_gather")
    if op == "broadcast":
        inside.append("broadcast")
        shard = payload_bytes
    seconds, intra_bytes, messages, names = 0.0, 0, 0, []
    for inner in inside:
        formula_op, name, t = _choose(inner, payload_bytes, m, topology, True, algorithms)
        cost = collective_cost(formula_op, payload_bytes, m, name)
        seconds, intra_bytes, messages = seconds + t, intra_bytes + cost.sent_bytes, \
            messages + cost.messages
        names.append(SHORT[name])
    formula_op, name, t = _choose(op, shard, nodes, topology, False, algorithms)
    cost = collective_cost(formula_op, shard, nodes, name)
    return CommCost(seconds + t, cost.sent_bytes, intra_bytes,
                    f"node {'+'.join(names)}, net {SHORT[name]}", messages + cost.messages)
