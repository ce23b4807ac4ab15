"""What `rnnscope.plan` predicts for one training step on the lab's star network.

The lab is a star: every host has its own link to one switch, shaped to the same rate in each
direction. A ring collective then never shares a link (rank k sends on its own uplink and
receives on its own downlink), so each step of a collective costs one message on one link, and
the alpha-beta model of `rnnscope.plan.alphabeta` applies per link with:

- β = rate/8 × TCP's payload share of the uplink: 1448 payload bytes per 1514-byte frame
  (timestamps on; tbf shapes whole frames), and where the host receives at the same time as it
  sends (every ring collective), its uplink also carries the ACKs of what it receives, one
  66-byte ACK per two segments: 1448 / (1514 + 33);
- α = ALPHA_S per message (gloo's per-message cost on this machine) plus the added delay on
  the two links of a host-to-host path.

The communication time is `rnnscope.plan.simulate`'s: the planner's step simulation on that
flat topology, with gloo's algorithms, run on a device that computes in no time, so the step it
returns is the communication on the critical path alone (a pipeline's sends chunk by chunk, a
hidden split's two collectives per time step, DDP's buckets one after another). The step time
the run is held to adds the computation the run itself measured (see `results`). The bytes and
messages are the planner's transfers (`rnnscope.costs.traffic`) costed by the formulas of
`rnnscope.costs.collectives`, as gloo runs them.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.calibrate.fit import fit_network
from rnnscope.calibrate.loopback import measure_network
from rnnscope.costs.backends import GLOO
from rnnscope.costs.collectives import canonical_op, collective_cost
from rnnscope.costs.layout import ParallelLayout, strategy_name
from rnnscope.costs.traffic import RNNShape, StrategyTraffic, network_totals
from rnnscope.costs.traffic import strategy_traffic as step_traffic
from rnnscope.plan.alphabeta import Link, Regime
from rnnscope.plan.compute import Device
from rnnscope.plan.from_config import shape_from_config
from rnnscope.plan.simulate import PlanInputs, simulate
from rnnscope.plan.topology import Topology

ALPHA_S = 100e-6  # seconds per message: gloo over a veth pair here (about loopback's 50-70 µs + a hop)
TCP_PAYLOAD_SHARE = 1448 / 1514  # payload bytes per frame byte for full-size TCP segments
TCP_PAYLOAD_SHARE_BIDIRECTIONAL = 1448 / (1514 + 66 / 2)  # ... with the ACKs of a reverse flow
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")
# a device whose compute takes (next to) no time: the simulated step is then its communication
NO_COMPUTE = Device("no compute", {4: 1e30, 2: 1e30}, utilization=1.0, step_overhead_s=0.0,
                    source="rnnscope.lab: isolates the planner's communication time")
FRAME_OVERHEAD_BYTES = 66  # Ethernet 14 + IPv4 20 + TCP 20 + timestamp option 12, per packet


@dataclass(frozen=True)
class Prediction:
    """One step, predicted: the busiest rank's traffic and the time it spends communicating."""

    strategy: str
    hosts: int
    rate_bps: float
    sent_bytes: int  # busiest rank, wire bytes per step
    messages: int  # busiest rank, messages sent per step
    network_bytes: int  # every rank together
    network_messages: int  # every rank together
    comm_seconds: float  # busiest rank's communication time per step


def lab_link(rate_bps: float, delay_ms: float = 0.0, *, bidirectional: bool = False,
             software: Link | None = None) -> Link:
    """The alpha-beta link that one lab host sees at `rate_bps` (see the module docstring).

    Args:
        software: gloo's own cost per message-size regime, fitted on loopback
            (`calibrate_software`); each regime keeps its α and is capped at the link's β.
            Without it, one regime with α = ALPHA_S.
    """
    share = TCP_PAYLOAD_SHARE_BIDIRECTIONAL if bidirectional else TCP_PAYLOAD_SHARE
    beta, delay_s = rate_bps / 8 * share, 2 * delay_ms / 1e3  # bytes/s, s
    name = f"lab {rate_bps / 1e6:g} Mbit/s"
    if software is None:
        return Link.simple(ALPHA_S + delay_s, beta, name=name)
    return Link(tuple(Regime(r.up_to_bytes, r.alpha_s + delay_s, min(r.bandwidth_Bps, beta))
                      for r in software.regimes), name)


def calibrate_software() -> dict[str, Link]:
    """gloo's α and β per op and message size on 127.0.0.1 (`rnnscope.calibrate`), 10-30 s.

    Loopback is far faster than any lab link, so what it measures is the software's cost per
    message (which the planner's regimes capture), not a wire's.
    """
    return fit_network(measure_network(2).network, 2)


def planned_comm_seconds(cfg, strategy: str, shape: RNNShape, hosts: int, rate_bps: float,
                         delay_ms: float = 0.0,
                         software: dict[str, Link] | None = None) -> float:
    """`rnnscope.plan.simulate`'s communication on the critical path of one step on the lab.

    `software`: per-op loopback fits from `calibrate_software` (formula ops), or None.
    """
    software = software or {}

    def link(op: str) -> Link:
        one_way = op in ("send", "recv")
        return lab_link(rate_bps, delay_ms, bidirectional=not one_way,
                        software=software.get("send" if one_way else op))

    star = Topology(inter=link("all_reduce"),
                    op_links={op: link(op) for op in COLLECTIVES + ("send", "recv")})
    inputs = PlanInputs(shape, NO_COMPUTE, star, chunk=cfg.parallel.chunk,
                        bucket_mb=cfg.parallel.bucket_mb, scaling="strong",
                        algorithms=GLOO, clip=cfg.optim.clip > 0)
    return simulate(inputs, ParallelLayout.for_strategy(strategy, hosts)).step_s


def strategy_traffic(strategy: str, shape: RNNShape, hosts: int, cfg) -> StrategyTraffic:
    """The plan's traffic of one step of `strategy` with one worker per host."""
    return step_traffic(strategy_name(strategy, "--strategy"), shape, hosts,
                        chunk=cfg.parallel.chunk, bucket_mb=cfg.parallel.bucket_mb,
                        clip=cfg.optim.clip > 0)


def predict_step(cfg, strategy: str, hosts: int, rate_bps: float, delay_ms: float = 0.0,
                 software: dict[str, Link] | None = None) -> Prediction:
    """The plan's bytes, messages and communication seconds of one step on the lab.

    Each of the plan's transfers is costed as gloo runs it (`costs.backends.GLOO`: gloo's
    reduce-scatter is an all-reduce that every rank cuts); the seconds are the planner's
    simulated communication (`planned_comm_seconds`), with gloo's measured per-message cost
    when `software` (from `calibrate_software`) is given.
    """
    shape = shape_from_config(cfg)
    b = shape.bytes_per_element
    traffic = strategy_traffic(strategy, shape, hosts, cfg)
    sent = messages = 0
    for t in traffic.transfers:
        op, algorithm = GLOO[canonical_op(t.op)]
        busiest = collective_cost(op, t.payload_bytes, t.group, algorithm, element_size=b)
        sent += t.count * busiest.sent_bytes
        messages += t.count * busiest.messages
    total_bytes, total_messages = network_totals(traffic, GLOO)
    if strategy == "pipeline":  # one boundary, two ways: the busiest rank sends one way only
        sent, messages = traffic.sent_bytes, traffic.messages
    seconds = planned_comm_seconds(cfg, strategy, shape, hosts, rate_bps, delay_ms, software)
    return Prediction(strategy, hosts, rate_bps, sent, messages, total_bytes, total_messages,
                      seconds)


def frame_payload_bytes(frame_bytes: int, packets: int) -> int:
    """TCP payload inside `frame_bytes` of frames in `packets` packets (headers removed)."""
    return frame_bytes - FRAME_OVERHEAD_BYTES * packets
