"""What one collective puts on the wire: bytes and messages per rank, by algorithm.

Pure integer arithmetic; the communicator's ledger and the planner call the same functions.

Conventions (docs/architecture.md, "Numbers the code is held to"):
- `payload_bytes` S is the whole array: the tensor all-reduced or broadcast, the *output* of an
  all-gather, the *input* of a reduce-scatter, the tensor sent point-to-point.
- Counts are per rank: `sent_bytes`, `received_bytes`, `messages` (messages *sent*), so that the
  sum over ranks counts every byte and every message on the network exactly once.
- Ring: S (in elements of `element_size` bytes) is cut into n chunks the way gloo and NCCL cut it:
  with S = q·n + r elements, chunks 0..r−1 hold q+1 elements and chunks r..n−1 hold q. Rank k ends
  a reduce-scatter owning chunk k and starts an all-gather holding chunk k. Every rank sends
  n−1 chunks per phase (a chunk of 0 elements is still one message), so all-reduce sends
  2(n−1)/n·S bytes in 2(n−1) messages when n divides S; otherwise ranks differ by a few elements
  and the sum over ranks is still exactly 2(n−1)·S.
- `rank=None` reports the busiest rank (most bytes sent), the one that bounds the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from rnnscope.errors import UserError

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "send", "recv")
ALIASES = {"isend": "send", "irecv": "recv", "allreduce": "all_reduce",
           "allgather": "all_gather", "reducescatter": "reduce_scatter"}
ALGORITHMS: dict[str, tuple[str, ...]] = {
    "all_reduce": ("ring", "tree", "halving_doubling"),
    "all_gather": ("ring", "halving_doubling"),
    "reduce_scatter": ("ring", "halving_doubling"),
    "broadcast": ("ring", "tree"),
    "send": ("ring", "direct"),  # point-to-point has one algorithm; "ring" is accepted for it
    "recv": ("ring", "direct"),
}


@dataclass(frozen=True)
class CollectiveCost:
    """One rank's share of one collective."""

    sent_bytes: int
    received_bytes: int
    messages: int  # messages this rank sends


def canonical_op(op: str) -> str:
    """`"isend"` -> `"send"`; raise a UserError listing the ops for an unknown name."""
    name = ALIASES.get(op, op)
    if name not in OPS:
        raise UserError(f"unknown collective op {op!r}; choose one of {', '.join(OPS)}")
    return name


def check_algorithm(op: str, algorithm: str, world_size: int = 2) -> None:
    """Raise a UserError when `algorithm` is not one that `op` supports on `world_size` ranks."""
    if algorithm not in ALGORITHMS[op]:
        raise UserError(
            f"algorithm {algorithm!r} is not available for {op}; choose one of "
            f"{', '.join(ALGORITHMS[op])}"
        )
    n = int(world_size)
    if algorithm == "halving_doubling" and op != "all_reduce" and n & (n - 1):
        raise UserError(
            f"halving_doubling {op} needs a power-of-two world size, got {n}; use ring"
        )


def chunk_elements(elements: int, parts: int) -> list[int]:
    """Split `elements` into `parts` chunks; the first `elements % parts` get one more."""
    q, r = divmod(elements, parts)
    return [q + 1 if k < r else q for k in range(parts)]


def _elements(payload_bytes: int, element_size: int) -> int:
    if payload_bytes < 0:
        raise UserError(f"payload of {payload_bytes} bytes is negative; give a size ≥ 0")
    if element_size < 1 or payload_bytes % element_size:
        raise UserError(
            f"payload of {payload_bytes} bytes is not a whole number of {element_size}-byte "
            f"elements; pass the tensor's element_size"
        )
    return payload_bytes // element_size


def collective_cost(op: str, payload_bytes: int, world_size: int, algorithm: str = "ring", *,
                    rank: int | None = None, element_size: int = 1) -> CollectiveCost:
    """Bytes sent, bytes received and messages sent by one rank for one collective.

    Args:
        op: all_reduce, all_gather, reduce_scatter, broadcast, send or recv (isend/irecv too).
        payload_bytes: S, the whole array in bytes (see the module docstring).
        world_size: n, ranks taking part (2 for point-to-point).
        algorithm: ring, tree (binomial) or halving_doubling (Rabenseifner); see ALGORITHMS.
        rank: which rank to count (0 is the root of a broadcast); None = the busiest rank.
        element_size: bytes per element; chunks never split an element.
    """
    op = canonical_op(op)
    check_algorithm(op, algorithm, world_size)
    n = int(world_size)
    if n < 1:
        raise UserError(f"world size {world_size} must be ≥ 1")
    if rank is not None and not 0 <= rank < n:
        raise UserError(f"rank {rank} is outside 0..{n - 1} for world size {n}")
    elements = _elements(int(payload_bytes), element_size)
    if op == "send":
        return CollectiveCost(payload_bytes, 0, 1)
    if op == "recv":
        return CollectiveCost(0, payload_bytes, 0)
    if n == 1:
        return CollectiveCost(0, 0, 0)
    if algorithm == "ring":
        cost = _ring(op, elements, n, rank)
    elif algorithm == "tree":
        cost = _binomial(op, elements, n, rank)
    else:
        cost = _halving_doubling(op, elements, n, rank)
    return CollectiveCost(cost[0] * element_size, cost[1] * element_size, cost[2])


def _ring(op: str, elements: int, n: int, rank: int | None) -> tuple[int, int, int]:
    """Ring algorithms, in elements: (sent, received, messages)."""
    c = chunk_elements(elements, n)
    if op == "broadcast":  # a chain 0 -> 1 -> ... -> n-1, the whole array per hop
        r = 0 if rank is None else rank
        return (elements if r < n - 1 else 0, elements if r > 0 else 0, 1 if r < n - 1 else 0)
    if rank is not None:
        ranks = [rank]
    else:  # a rank's cost depends on chunks k-1, k, k+1 only: ranks near 0 and r cover all cases
        r = elements % n
        ranks = sorted({k % n for k in (0, 1, 2, r - 2, r - 1, r, r + 1, r + 2, -3, -2, -1)})
    best = None
    for k in ranks:
        if op == "reduce_scatter":  # never sends its own final chunk, never receives chunk k-1
            cost = (elements - c[k], elements - c[(k - 1) % n], n - 1)
        elif op == "all_gather":  # never sends chunk k+1, never receives its own chunk
            cost = (elements - c[(k + 1) % n], elements - c[k], n - 1)
        else:  # all_reduce = reduce-scatter then all-gather
            cost = (2 * elements - c[k] - c[(k + 1) % n],
                    2 * elements - c[(k - 1) % n] - c[k], 2 * (n - 1))
        if best is None or cost > best:
            best = cost
    return best


def _log2_ceil(n: int) -> int:
    return (n - 1).bit_length()


def _binomial_children(k: int, n: int) -> int:
    """Children of rank k in the binomial tree rooted at 0 (parent of k: k minus its low bit)."""
    low = (k & -k).bit_length() - 1 if k else _log2_ceil(n)
    return sum(1 for j in range(low) if k + (1 << j) < n)


def _binomial(op: str, elements: int, n: int, rank: int | None) -> tuple[int, int, int]:
    """Binomial-tree broadcast, and all-reduce as a binomial reduce then broadcast."""
    k = 0 if rank is None else rank  # the root is (one of) the busiest
    children = _binomial_children(k, n)
    parent = 1 if k else 0
    if op == "broadcast":
        return (children * elements, parent * elements, children)
    return ((children + parent) * elements, (children + parent) * elements, children + parent)


def _halving_doubling(op: str, elements: int, n: int, rank: int | None) -> tuple[int, int, int]:
    """Rabenseifner: recursive-halving reduce-scatter, recursive-doubling all-gather.

    All-gather and reduce-scatter need n a power of two. For an all-reduce on
    n = p + e ranks, p = 2^floor(log2 n), ranks 2i and 2i+1 (i < e) first fold: the even one
    sends its whole array to the odd one and gets the result back at the end; the other p ranks
    run the power-of-two algorithm. Each halving splits a segment of m elements into ceil(m/2)
    (lower half) and floor(m/2) (upper half).
    """
    p = 1 << (n.bit_length() - 1)
    e = n - p
    levels = p.bit_length() - 1
    if rank is not None and rank < 2 * e and rank % 2 == 0:  # folded away
        return (elements, elements, 1)
    if rank is None:
        kept = list(_busiest_path(op, elements, levels))
    else:
        vrank = rank // 2 if rank < 2 * e else rank - e
        kept, m = [], elements
        for bit in reversed(range(levels)):  # the partner differs in this bit
            m = (m + 1) // 2 if not vrank >> bit & 1 else m // 2
            kept.append(m)
    rs_sent, rs_recv = elements - kept[-1], sum(kept)
    ag_sent, ag_recv = sum(kept), elements - kept[-1]
    folded = bool(e) and (rank is None or rank < 2 * e)  # receives the fold partner's array
    extra = elements if folded else 0
    if op == "reduce_scatter":
        return (rs_sent, rs_recv, levels)
    if op == "all_gather":
        return (ag_sent, ag_recv, levels)
    return (rs_sent + ag_sent + extra, rs_recv + ag_recv + extra,
            2 * levels + (1 if folded else 0))  # a fold is one message, even of 0 elements


@lru_cache(maxsize=4096)
def _busiest_path(op: str, elements: int, levels: int) -> tuple[int, ...]:
    """Kept segment sizes, level by level, of the rank that sends the most bytes in `op`.

    Sent bytes: reduce-scatter S − kept[-1]; all-gather Σ kept; all-reduce S + Σ kept[:-1].
    Segment sizes at one level take at most two values, so the search stays tiny.
    """
    def score(path: tuple[int, ...]) -> tuple[int, int]:
        if op == "reduce_scatter":
            return (-path[-1], sum(path))
        if op == "all_gather":
            return (sum(path), -path[-1])
        return (sum(path[:-1]), -path[-1])

    paths = [(m,) for m in {(elements + 1) // 2, elements // 2}]
    for _ in range(levels - 1):
        paths = [path + (m,) for path in paths for m in {(path[-1] + 1) // 2, path[-1] // 2}]
        # keep, per last size, only the best path so far: the future depends on the size alone
        by_last: dict[int, tuple[int, ...]] = {}
        for path in paths:
            if path[-1] not in by_last or sum(path[:-1]) > sum(by_last[path[-1]][:-1]):
                by_last[path[-1]] = path
        paths = list(by_last.values())
    return max(paths, key=score) if levels else ()


def network_bytes(op: str, payload_bytes: int, world_size: int, algorithm: str = "ring") -> int:
    """Bytes all ranks together send for one collective (the sum of `sent_bytes` over ranks)."""
    op = canonical_op(op)
    check_algorithm(op, algorithm, world_size)
    n, S = int(world_size), int(payload_bytes)
    if op in ("send", "recv"):
        return S
    if n <= 1:
        return 0
    if algorithm == "halving_doubling":
        p = 1 << (n.bit_length() - 1)
        if op == "all_reduce":
            return 2 * (p - 1) * S + 2 * (n - p) * S  # each fold moves S there and back
        return (p - 1) * S
    return (2 if op == "all_reduce" else 1) * (n - 1) * S  # ring, binomial tree, chain


def network_messages(op: str, world_size: int, algorithm: str = "ring") -> int:
    """Messages all ranks together send for one collective (the sum of `messages` over ranks)."""
    op = canonical_op(op)
    check_algorithm(op, algorithm, world_size)
    n = int(world_size)
    if op in ("send", "recv"):
        return 1 if op == "send" else 0
    if n <= 1:
        return 0
    if algorithm == "halving_doubling":
        p = 1 << (n.bit_length() - 1)
        levels = p.bit_length() - 1
        if op == "all_reduce":
            return 2 * levels * p + 2 * (n - p)
        return levels * p
    if op == "broadcast":
        return n - 1  # a chain or a binomial tree: every rank but the root receives once
    if algorithm == "tree":  # all-reduce: up the tree and down again
        return 2 * (n - 1)
    return (2 if op == "all_reduce" else 1) * (n - 1) * n


def bus_factor(op: str, n: int) -> float:
    """nccl-tests bus bandwidth factor: busbw = algbw × factor, algbw = S / t."""
    op = canonical_op(op)
    if n < 1:
        raise UserError(f"world size {n} must be ≥ 1")
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter"):
        return (n - 1) / n
    return 1.0  # broadcast, send/recv
