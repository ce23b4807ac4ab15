"""The alpha-beta model: a message of m bytes takes α + m/β seconds on a link.

α (latency, seconds) and β (bandwidth, bytes/s) are fitted per message-size regime, because a
real stack does not follow one straight line (gloo on loopback: 4 B all-reduce ≈ 0.14 ms, but
1–16 kB ≈ 1.1–1.7 ms). A collective's time is the sum, over the steps on its critical path, of
the time of the largest message in that step (Thakur, Rabenseifner & Gropp 2005).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnscope.errors import UserError
from rnnscope.costs.collectives import ALGORITHMS, canonical_op, check_algorithm, chunk_elements


@dataclass(frozen=True)
class Regime:
    """α and β for messages of at most `up_to_bytes` bytes (and above the previous regime)."""

    up_to_bytes: float
    alpha_s: float
    bandwidth_Bps: float


@dataclass(frozen=True)
class Link:
    """A link as the alpha-beta model sees it: one or more message-size regimes, in order."""

    regimes: tuple[Regime, ...]
    name: str = "link"

    def __post_init__(self) -> None:
        if not self.regimes:
            raise UserError(f"link {self.name!r} needs at least one (alpha, bandwidth) regime")
        for regime in self.regimes:
            if regime.alpha_s < 0 or regime.bandwidth_Bps <= 0:
                raise UserError(
                    f"link {self.name!r}: latency must be ≥ 0 and bandwidth > 0, got "
                    f"{regime.alpha_s} s and {regime.bandwidth_Bps} B/s"
                )

    @classmethod
    def simple(cls, alpha_s: float, bandwidth_Bps: float, name: str = "link") -> "Link":
        """One regime for all message sizes."""
        return cls((Regime(math.inf, alpha_s, bandwidth_Bps),), name)

    @property
    def alpha_s(self) -> float:
        """Latency of the smallest messages."""
        return self.regimes[0].alpha_s

    @property
    def bandwidth_Bps(self) -> float:
        """Bandwidth of the largest messages (what the link can carry)."""
        return self.regimes[-1].bandwidth_Bps

    def message_time(self, message_bytes: float) -> float:
        """Seconds for one message of `message_bytes` bytes: α + m/β of its regime."""
        for regime in self.regimes:
            if message_bytes <= regime.up_to_bytes:
                break
        return regime.alpha_s + message_bytes / regime.bandwidth_Bps


def message_schedule(op: str, payload_bytes: int, world_size: int, algorithm: str = "ring",
                     *, element_size: int = 1) -> list[tuple[int, int]]:
    """The critical path of a collective as (steps, bytes of the largest message per step).

    Args:
        op, payload_bytes, world_size, algorithm, element_size: as in `collective_cost`.
    """
    op = canonical_op(op)
    check_algorithm(op, algorithm, world_size)
    n, S = int(world_size), int(payload_bytes)
    if op in ("send", "recv"):
        return [(1, S)]
    if n <= 1:
        return []
    elements = S // element_size
    if algorithm == "ring":
        if op == "broadcast":  # an unpipelined chain: the whole array n-1 hops
            return [(n - 1, S)]
        chunk = chunk_elements(elements, n)[0] * element_size  # the largest chunk
        return [(2 * (n - 1) if op == "all_reduce" else n - 1, chunk)]
    if algorithm == "tree":  # binomial: ceil(log2 n) rounds, the whole array each
        rounds = (n - 1).bit_length()
        return [(2 * rounds if op == "all_reduce" else rounds, S)]
    p = 1 << (n.bit_length() - 1)  # halving-doubling on the largest power of two
    halves, m = [], elements
    while len(halves) < p.bit_length() - 1:
        m = (m + 1) // 2
        halves.append((1, m * element_size))
    fold = [(1, S)] if n > p else []
    if op == "reduce_scatter":
        return fold + halves
    if op == "all_gather":
        return halves[::-1] + fold
    return fold + halves + halves[::-1] + fold


def collective_time(op: str, payload_bytes: int, world_size: int, link: Link,
                    algorithm: str = "ring", *, element_size: int = 1) -> float:
    """Seconds for one collective under the alpha-beta model on `link`."""
    schedule = message_schedule(op, payload_bytes, world_size, algorithm,
                                element_size=element_size)
    return sum(steps * link.message_time(size) for steps, size in schedule)


def best_algorithm(op: str, payload_bytes: int, world_size: int, link: Link,
                   algorithms: tuple[str, ...] | None = None) -> tuple[str, float]:
    """The fastest algorithm for this collective on this link, and its time in seconds."""
    choices = algorithms or ALGORITHMS[canonical_op(op)]
    timed = []
    for name in choices:
        try:
            timed.append((collective_time(op, payload_bytes, world_size, link, name), name))
        except UserError:  # not available for this op or this world size
            continue
    if not timed:
        raise UserError(f"none of {', '.join(choices)} can run {op} on {world_size} ranks")
    seconds, name = min(timed)
    return name, seconds
