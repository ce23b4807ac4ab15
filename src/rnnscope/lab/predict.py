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
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.errors import UserError
from rnnscope.plan.alphabeta import Link, collective_time
from rnnscope.plan.collectives import canonical_op, collective_cost
from rnnscope.plan.strategies import (RNNShape, StrategyTraffic, data_parallel_traffic,
                                      hidden_split_traffic, pipeline_traffic)

ALPHA_S = 100e-6  # seconds per message: gloo over a veth pair here (about loopback's 50-70 µs + a hop)
TCP_PAYLOAD_SHARE = 1448 / 1514  # payload bytes per frame byte for full-size TCP segments
TCP_PAYLOAD_SHARE_BIDIRECTIONAL = 1448 / (1514 + 66 / 2)  # ... with the ACKs of a reverse flow
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


def lab_link(rate_bps: float, delay_ms: float = 0.0, *, bidirectional: bool = False) -> Link:
    """The alpha-beta link that one lab host sees at `rate_bps` (see the module docstring)."""
    share = TCP_PAYLOAD_SHARE_BIDIRECTIONAL if bidirectional else TCP_PAYLOAD_SHARE
    return Link.simple(ALPHA_S + 2 * delay_ms / 1e3, rate_bps / 8 * share,
                       name=f"lab {rate_bps / 1e6:g} Mbit/s")


def shape_from_config(cfg) -> RNNShape:
    """The model and batch sizes a `rnnscope.train` config trains (the data decides I and O)."""
    from rnnscope.data import build_dataset

    dataset = build_dataset(cfg.data, cfg.train.seed)
    return RNNShape(input_size=dataset.input_size, hidden=cfg.model.hidden,
                    layers=cfg.model.layers, seq_len=cfg.data.seq_len,
                    batch=cfg.data.batch_size, output_size=dataset.output_size)


def strategy_traffic(strategy: str, shape: RNNShape, hosts: int, cfg) -> StrategyTraffic:
    """The plan's traffic of one step of `strategy` with one worker per host."""
    if strategy == "data":
        return data_parallel_traffic(shape, hosts, bucket_mb=cfg.parallel.bucket_mb)
    if strategy == "pipeline":
        return pipeline_traffic(shape, stages=hosts, chunk=cfg.parallel.chunk)
    if strategy == "tensor":
        return hidden_split_traffic(shape, hosts)
    raise UserError(f"--strategy {strategy!r} is not one the lab can predict; "
                    f"choose data, pipeline or tensor")


def predict_step(cfg, strategy: str, hosts: int, rate_bps: float,
                 delay_ms: float = 0.0) -> Prediction:
    """The plan's bytes, messages and communication seconds of one step on the lab.

    The seconds add every transfer of the step one after another: collectives of data
    parallelism run back to back, and the messages of a pipeline or a hidden split wait on the
    computation they feed, so none overlaps another on the critical path.
    """
    shape = shape_from_config(cfg)
    traffic = strategy_traffic(strategy, shape, hosts, cfg)
    seconds, messages = 0.0, 0
    for transfer in traffic.transfers:
        point_to_point = canonical_op(transfer.op) in ("send", "recv")
        link = lab_link(rate_bps, delay_ms, bidirectional=not point_to_point)
        messages += transfer.count * network_messages(transfer.op, transfer.payload_bytes,
                                                      transfer.group, transfer.algorithm,
                                                      shape.bytes_per_element)
        per_call = collective_time(transfer.op, transfer.payload_bytes, transfer.group, link,
                                   transfer.algorithm, element_size=shape.bytes_per_element)
        seconds += transfer.count * per_call
    return Prediction(strategy, hosts, rate_bps, traffic.sent_bytes, traffic.messages,
                      traffic.network_bytes, messages, seconds)


def network_messages(op: str, payload_bytes: int, group: int, algorithm: str,
                     element_size: int) -> int:
    """Messages all ranks of `group` send for one operation (one for a send/recv pair)."""
    if canonical_op(op) in ("send", "recv"):
        return 1
    return sum(collective_cost(op, payload_bytes, group, algorithm, rank=k,
                               element_size=element_size).messages for k in range(group))


def frame_payload_bytes(frame_bytes: int, packets: int) -> int:
    """TCP payload inside `frame_bytes` of frames in `packets` packets (headers removed)."""
    return frame_bytes - FRAME_OVERHEAD_BYTES * packets
