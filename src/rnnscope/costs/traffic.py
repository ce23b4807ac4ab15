"""What each parallel strategy puts on the network in one training step (pure formulas).

The strategies of `rnnscope.parallel` record through the communicator; these functions predict
the same records from the model and data shapes alone:

- data parallel: every gradient is all-reduced once per step, in DDP's buckets.
- layer pipeline (stages of layers): the activations of all T steps cross each of the S−1
  boundaries forward and their gradients cross back: 2(S−1)·T·B·H·b bytes in
  2(S−1)·ceil(T/chunk) messages; then the last stage broadcasts ŷ (B·T·O·b) to the others.
- hidden split (K workers each own H/K hidden units): every time step all-gathers h_t forward
  and reduce-scatters ∂L/∂h_t backward, (K−1)/K·B·H·b bytes per rank each: 2T collectives per
  layer and step, plus one (T, B, H) reduce-scatter per layer boundary for the input gradient.
- a gated cell (--model.cell lstm, gru) stacks G = 4 or 3 gates' rows in every recurrent weight:
  data parallel all-reduces G times the recurrent gradients; the model splits send what an
  Elman layer sends (only h_t crosses a boundary or is all-gathered; an LSTM's c_t stays local).
- clipping (--optim.clip) under a model split: the norm of the whole gradient needs every
  piece's Σ‖g‖², one all-reduce of 8 bytes (a float64) in the model group per step. Data
  parallel clips without traffic: every replica holds the whole all-reduced gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnscope.costs.collectives import collective_cost, network_bytes, network_messages
from rnnscope.costs.layout import chunk_count, split_hidden, split_layers, strategy_name
from rnnscope.errors import UserError

GATE_COUNT = {"elman": 1, "lstm": 4, "gru": 3}  # blocks of H rows in W_ih, W_hh and the biases
FIRST_BUCKET_BYTES = 1024 * 1024  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES
NORM_BYTES = 8  # the squared gradient norm, one float64, all-reduced when a model split clips


@dataclass(frozen=True)
class RNNShape:
    """The sizes that decide traffic and compute: model, sequence and batch."""

    input_size: int = 1
    hidden: int = 64
    layers: int = 1
    seq_len: int = 100  # T
    batch: int = 32  # B, the global batch of one step
    output_size: int = 1  # the linear readout on top; 0 = none
    bytes_per_element: int = 4  # b
    bias: bool = True
    every_step: bool = True  # a target at every time step (ŷ is B×T×O), else the last (B×O)
    cell: str = "elman"  # --model.cell: elman, lstm or gru

    def __post_init__(self) -> None:
        if self.cell not in GATE_COUNT:
            raise UserError(f"--model.cell must be one of {', '.join(GATE_COUNT)}, got {self.cell!r}")
        for name in ("input_size", "hidden", "layers", "seq_len", "batch", "bytes_per_element"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.output_size < 0:
            raise UserError(f"output_size must be ≥ 0, got {self.output_size}")


def rnn_parameters(shape: RNNShape) -> list[tuple[str, int]]:
    """(name, elements) of every parameter in registration order, as train's SequenceModel
    registers them: `rnn.*` (torch.nn.RNN's names; LSTM and GRU stack G gates' rows, G·H),
    then `readout.*`."""
    params: list[tuple[str, int]] = []
    rows = GATE_COUNT[shape.cell] * shape.hidden
    for k in range(shape.layers):
        fan_in = shape.input_size if k == 0 else shape.hidden
        params.append((f"rnn.weight_ih_l{k}", rows * fan_in))  # (G·H, I)
        params.append((f"rnn.weight_hh_l{k}", rows * shape.hidden))  # (G·H, H)
        if shape.bias:
            params += [(f"rnn.bias_ih_l{k}", rows), (f"rnn.bias_hh_l{k}", rows)]
    if shape.output_size:
        params.append(("readout.weight", shape.output_size * shape.hidden))  # (O, H)
        params.append(("readout.bias", shape.output_size))
    return params


def ddp_buckets(param_bytes: list[int], bucket_cap_bytes: int,
                first_bucket_bytes: int = FIRST_BUCKET_BYTES) -> list[int]:
    """Bucket sizes in bytes, in the order DDP all-reduces them after its first step.

    DDP rebuilds its buckets after step 0 in the order gradients become ready (here the reverse
    of registration order); a bucket closes once it holds at least its limit: 1 MiB for the
    first, `bucket_cap_bytes` for the rest. (Step 0 uses one bucket for everything.)
    """
    if bucket_cap_bytes <= 0:
        raise UserError(f"bucket size must be > 0 bytes, got {bucket_cap_bytes}")
    limit = min(first_bucket_bytes, bucket_cap_bytes)
    buckets, current = [], 0
    for size in reversed(param_bytes):
        current += size
        if current >= limit:
            buckets.append(current)
            current, limit = 0, bucket_cap_bytes
    if current:
        buckets.append(current)
    return buckets


@dataclass(frozen=True)
class Transfer:
    """`count` identical operations of one kind in a step, among `group` ranks."""

    op: str
    tag: str
    payload_bytes: int
    group: int
    count: int = 1
    algorithm: str = "ring"


@dataclass
class StrategyTraffic:
    """One step's traffic: the transfers, and the busiest rank's totals."""

    strategy: str
    world_size: int
    transfers: list[Transfer] = field(default_factory=list)
    sent_bytes: int = 0
    received_bytes: int = 0
    messages: int = 0
    network_bytes: int = 0  # all ranks together
    network_messages: int = 0  # all ranks together
    # what the backend runs, op -> (formula op, algorithm); gloo's reduce-scatter is an all-reduce
    algorithms: dict[str, tuple[str, str]] | None = None

    def add(self, transfer: Transfer, element_size: int, groups: int = 1) -> None:
        """Add a transfer that `groups` disjoint groups of ranks each run at the same time."""
        op, algorithm = (self.algorithms or {}).get(transfer.op, (transfer.op,
                                                                  transfer.algorithm))
        cost = collective_cost(op, transfer.payload_bytes, transfer.group, algorithm,
                               element_size=element_size)
        self.transfers.append(transfer)
        self.sent_bytes += cost.sent_bytes * transfer.count
        self.received_bytes += cost.received_bytes * transfer.count
        self.messages += cost.messages * transfer.count
        self.network_bytes += groups * transfer.count * network_bytes(
            op, transfer.payload_bytes, transfer.group, algorithm)
        self.network_messages += groups * transfer.count * network_messages(
            op, transfer.group, algorithm)


def data_parallel_traffic(shape: RNNShape, world_size: int, bucket_mb: float = 25.0,
                          algorithm: str = "ring", shard: int = 1,
                          algorithms: dict[str, tuple[str, str]] | None = None
                          ) -> StrategyTraffic:
    """Gradient all-reduce per step among `world_size` replicas.

    With `shard` > 1 (data × hidden split) each replica holds 1/shard of every recurrent weight;
    the readout is replicated whole.
    """
    b = shape.bytes_per_element
    param_bytes = [(n // shard if name.startswith("rnn.") else n) * b
                   for name, n in rnn_parameters(shape)]
    traffic = StrategyTraffic("data", world_size, algorithms=algorithms)
    if world_size <= 1:
        return traffic
    for size in ddp_buckets(param_bytes, int(bucket_mb * 1024 * 1024)):
        traffic.add(Transfer("all_reduce", "grad_bucket", size, world_size, 1, algorithm), b)
    return traffic


def pipeline_traffic(shape: RNNShape, stages: int, chunk: int = 1,
                     batch: int | None = None,
                     algorithms: dict[str, tuple[str, str]] | None = None,
                     clip: bool = False) -> StrategyTraffic:
    """Activations forward and their gradients backward across the S−1 stage boundaries
    (with `clip`, the gradient norm's all-reduce too)."""
    split_layers(shape.layers, stages)  # at least one layer per stage
    B = shape.batch if batch is None else batch
    b, T, H = shape.bytes_per_element, shape.seq_len, shape.hidden
    per_message = chunk_count(T, chunk)
    traffic = StrategyTraffic("pipeline", stages, algorithms=algorithms)
    if stages == 1:
        return traffic
    full, last = divmod(T, chunk)
    for tag in ("activation", "activation_grad"):  # forward h_t, backward ∂L/∂h_t
        sizes = [(chunk * B * H * b, full)] + ([(last * B * H * b, 1)] if last else [])
        for size, count in sizes:
            if count:
                traffic.transfers.append(Transfer("send", tag, size, 2, count * (stages - 1)))
                traffic.network_bytes += size * count * (stages - 1)
                traffic.network_messages += count * (stages - 1)
    assert traffic.network_bytes == 2 * (stages - 1) * T * B * H * b
    assert sum(t.count for t in traffic.transfers) == 2 * (stages - 1) * per_message
    # an inner stage sends activations on and gradients back; with 2 stages each rank one way
    directions = 2 if stages > 2 else 1
    traffic.sent_bytes = traffic.received_bytes = directions * T * B * H * b
    traffic.messages = directions * per_message
    if shape.output_size:  # ŷ from the last stage to every stage, for the loss
        y_hat = B * (T if shape.every_step else 1) * shape.output_size * b
        # per rank this adds the broadcast's busiest rank to the sends' (an upper bound)
        traffic.add(Transfer("broadcast", "output", y_hat, stages), b)
    if clip:
        traffic.add(clip_transfer(stages), NORM_BYTES)
    return traffic


def hidden_split_traffic(shape: RNNShape, ways: int, batch: int | None = None,
                         algorithm: str = "ring",
                         algorithms: dict[str, tuple[str, str]] | None = None,
                         clip: bool = False) -> StrategyTraffic:
    """K = `ways` workers each own H/K hidden units of every layer (with `clip`, the gradient
    norm's all-reduce too).

    Forward: all-gather h_t (B, H) every step, so each worker has the whole state for W_hh.
    Backward: reduce-scatter ∂L/∂h_{t−1} = W_hhᵀ δ_t (partial sums, B×H) every step; and, for
    each of the L−1 layer boundaries, one reduce-scatter of the input gradient (T, B, H).
    """
    K, H = ways, shape.hidden
    split_hidden(H, K)
    B = shape.batch if batch is None else batch
    b, T, L = shape.bytes_per_element, shape.seq_len, shape.layers
    traffic = StrategyTraffic("hidden_split", K, algorithms=algorithms)
    if K == 1:
        return traffic
    state = B * H * b
    traffic.add(Transfer("all_gather", "hidden_state", state, K, T * L, algorithm), b)
    traffic.add(Transfer("reduce_scatter", "hidden_grad", state, K, T * L, algorithm), b)
    if L > 1:
        traffic.add(Transfer("reduce_scatter", "input_grad", T * state, K, L - 1, algorithm),
                    b)
    if clip:
        traffic.add(clip_transfer(K, algorithm), NORM_BYTES)
    return traffic


def clip_transfer(group: int, algorithm: str = "ring") -> Transfer:
    """The all-reduce of Σ‖g‖² over a model group of `group` ranks that clipping needs."""
    return Transfer("all_reduce", "grad_norm", NORM_BYTES, group, 1, algorithm)


def strategy_traffic(strategy: str, shape: RNNShape, workers: int, *, chunk: int = 1,
                     bucket_mb: float = 25.0, clip: bool = False,
                     algorithms: dict[str, tuple[str, str]] | None = None) -> StrategyTraffic:
    """One step of `strategy` (a name of `layout.STRATEGIES`) on `workers` workers, the whole
    world one data group or one model group."""
    strategy = strategy_name(strategy, "strategy")
    if strategy == "data":
        return data_parallel_traffic(shape, workers, bucket_mb, algorithms=algorithms)
    if strategy == "pipeline":
        return pipeline_traffic(shape, workers, chunk, algorithms=algorithms, clip=clip)
    return hidden_split_traffic(shape, workers, algorithms=algorithms, clip=clip)


def network_totals(traffic: StrategyTraffic,
                   algorithms: dict[str, tuple[str, str]]) -> tuple[int, int]:
    """(wire bytes, messages) all ranks send for a step's transfers, as `algorithms` (a
    backend's table, `backends.BACKEND_ALGORITHMS`) runs each op."""
    total_bytes = total_messages = 0
    for t in traffic.transfers:
        op, algorithm = algorithms[t.op]
        total_bytes += t.count * network_bytes(op, t.payload_bytes, t.group, algorithm)
        total_messages += t.count * network_messages(op, t.group, algorithm)
    return total_bytes, total_messages
