"""One training step on N workers, simulated: compute, pipeline bubble, exposed communication.

A layout (`rnnscope.costs.layout.ParallelLayout`) is d data replicas × p pipeline stages
(layers) × hs hidden-split ways; ranks are numbered with hs innermost, then p, then d, so a
hidden-split group sits on neighbouring GPUs.

- Forward and backward of one layer run T sequential time steps (`compute.step_seconds`).
- Hidden split: every time step waits for an all-gather (forward) or a reduce-scatter
  (backward) of B×H — small, latency-bound messages on the critical path, T·L of each per step.
- Pipeline: the sequence flows in C = ceil(T/chunk) chunks; the first chunk crosses all p stages,
  the rest follow at the pace of the slowest stage or send, so a stage idles (p−1)/(C+p−1) of the
  time (the bubble). Backward flows back the same way.
- Data parallel: each bucket's all-reduce starts when its last gradient is ready (layer l's weight
  gradients are ready when layer l's backward over all T steps ends) and buckets go one after the
  other, so only what is left after the backward is exposed. Combined with a model split, every
  parameter tensor is all-reduced after the backward (as rnnscope.parallel.model_parallel does);
  a pipeline stage that finishes its backward early hides part of its own.
- Pipeline: the last stage broadcasts ŷ to the other stages before the backward.
- Local runs only (--calibrate): the waits between ranks beyond a message's own time — per
  hidden-split exchange (`split_wait_s`), per pipeline chunk and stage (`chunk_wait_s`) and per
  DDP bucket's all-reduce (`data_wait_s`), each from steps of the strategy's own loop on a real
  group, less the simulated step, so any may be negative — count as exposed communication.
- Clipping (`clip`) under a model split: one 8-byte all-reduce of Σ‖g‖² in the model group
  after the backward, before the optimizer step (`costs.traffic.clip_transfer`); all exposed.
Not modelled: the optimizer step, contention between concurrent collectives, stragglers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rnnscope.costs.layout import ParallelLayout, bubble_fraction, chunk_count, split_layers
from rnnscope.costs.traffic import NORM_BYTES, RNNShape, clip_transfer, ddp_buckets, rnn_parameters
from rnnscope.errors import UserError
from rnnscope.plan.compute import Device, gates_of, memory_per_worker, step_seconds
from rnnscope.plan.topology import CommCost, Topology, group_collective


@dataclass(frozen=True)
class PlanInputs:
    """Everything a step simulation needs besides the layout."""

    shape: RNNShape
    device: Device
    topology: Topology
    chunk: int = 1  # time steps per pipeline message
    bucket_mb: float = 25.0  # DDP bucket cap, MiB
    scaling: str = "weak"  # weak: shape.batch per data replica; strong: shape.batch in all
    algorithms: dict[str, tuple[str, str]] | None = None  # fixed per op (a backend), else fastest
    cores: int | None = None  # local runs: the workers share this many CPU cores
    # per training step outside the recurrence (readout, loss, optimizer, the loop itself):
    # measured by --calibrate for local runs; 0 at scale, where it is small beside T steps
    step_fixed_s: float = 0.0
    # the strategies' own code around the engine (`rnnscope.calibrate.pattern`, --calibrate): per
    # layer and forward time step of a hidden split, per layer and forward chunk of a pipeline
    # stage; the backward pays twice, as in `compute.step_seconds`. 0 at scale.
    split_overhead_s: float = 0.0
    chunk_overhead_s: float = 0.0
    # the gradient all-reduce runs beside the backward (a DMA engine, a free core); False: it
    # starts when the backward ends (local runs with a worker on every core)
    overlap: bool = True
    # per training step of a DDP replica: DDP's hooks and bucket copies (--calibrate times the
    # training loop with and without DDP on one rank); 0 at scale, beside a GPU's step
    ddp_overhead_s: float = 0.0
    # local runs: the "network" is the cores themselves, so the threads of the two ranks spend
    # a point-to-point message's time, and a pipeline stage computes that much less per chunk
    comm_on_cores: bool = False
    # --optim.clip > 0: a model split all-reduces the squared gradient norm every step
    clip: bool = False
    # local runs (--calibrate): what ranks wait for each other beyond the messages' own time,
    # from a few steps of each strategy's own training loop on a real group
    # (`calibrate.looptime.strategy_step_seconds`): per hidden-split exchange (the slower rank's
    # arrival, a blocked thread's wake-up, less what the micro-benchmark's collectives overstate)
    # and per pipeline chunk and stage, forward and backward (the wake-up stalls, less the loop's
    # work that a run does inside the bubble). Either may be negative; no exchange or slot takes
    # less than nothing. 0 at scale, where no such figure is measured.
    split_wait_s: float = 0.0
    chunk_wait_s: float = 0.0
    # the same for data parallelism (DDP), per bucket's all-reduce, after the backward: the
    # slower replica's arrival and a woken thread, less what the one-rank DDP loop and the
    # micro-benchmark overstate; what it adds to the step is never below nothing
    data_wait_s: float = 0.0


@dataclass
class CommItem:
    """`count` identical communications of one kind per step on the busiest rank."""

    tag: str
    op: str
    payload_bytes: int
    count: int
    cost: CommCost
    exposed_s: float = 0.0  # of count × cost.seconds, how much lengthens the step
    # data parallel: (start, end, inter bytes, intra bytes) of each bucket, from the backward's start
    schedule: list[tuple[float, float, int, int]] = field(default_factory=list)


@dataclass
class StepPlan:
    """The simulated step of one layout."""

    layout: ParallelLayout
    batch_per_replica: int
    step_s: float
    compute_s: float  # the busiest worker's own compute
    bubble_s: float  # pipeline idle time
    exposed_comm_s: float  # what communication adds to the step
    bubble_fraction: float
    samples_per_s: float
    efficiency: float  # throughput / (N × one device's throughput)
    inter_bytes: int  # sent per rank per step on the inter-node link
    intra_bytes: int
    messages: int  # sent per rank per step
    inter_utilization: float  # inter_bytes / (step × link bandwidth)
    intra_utilization: float
    items: list[CommItem] = field(default_factory=list)
    memory_bytes: int = 0  # the busiest worker's weights, gradients, Adam's moments, activations

    @property
    def gradient_buckets(self) -> int:
        """How many gradient all-reduces a step calls (DDP's buckets, or a model split's tensors
        when combined with data parallelism); 0 without data parallelism."""
        return sum(len(item.schedule) for item in self.items if item.tag == "gradients")


def check_layout(inputs: PlanInputs, layout: ParallelLayout) -> int:
    """The batch per data replica; a UserError says why a layout cannot run this model."""
    s, d = inputs.shape, layout.data
    layout.check_model(s.layers, s.hidden)
    if inputs.scaling == "weak":
        return s.batch
    if d > s.batch:
        raise UserError(f"data replicas exceed the global batch: d({d}) > batch({s.batch})")
    return -(-s.batch // d)


def layer_seconds(inputs: PlanInputs, batch: int, shards: int,
                   workers: int = 1) -> list[tuple[float, float]]:
    """(forward, backward) seconds of one time step per layer; more workers than cores
    (`inputs.cores`, local runs) share them and each computes that much slower."""
    s = inputs.shape
    slower = compute_slowdown(inputs, workers)
    return [tuple(slower * x for x in step_seconds(
        inputs.device, batch, s.hidden, s.input_size if l == 0 else s.hidden,
        s.bytes_per_element, shards, gates_of(s))) for l in range(s.layers)]


def compute_slowdown(inputs: PlanInputs, workers: int) -> float:
    """How much slower each worker computes when `workers` share `inputs.cores` cores."""
    return max(1.0, workers / inputs.cores) if inputs.cores else 1.0


def single_device_seconds(inputs: PlanInputs, batch: int) -> float:
    """One device, no communication: T · Σ_layers (forward + backward step) + the fixed part."""
    recurrence = sum(f + b for f, b in layer_seconds(inputs, batch, 1))
    return inputs.shape.seq_len * recurrence + inputs.step_fixed_s


def wave(per_chunk: list[float], send_s: float, chunks: int) -> float:
    """Time for `chunks` chunks through stages with these per-chunk times and sends between."""
    slowest = max(per_chunk + [send_s])
    return sum(per_chunk) + (len(per_chunk) - 1) * send_s + (chunks - 1) * slowest


def _data_parallel(inputs: PlanInputs, layout: ParallelLayout, ready: dict[int, float],
                   layer_of: list[int], params: list[int], end: float,
                   per_tensor: bool = False) -> tuple[CommItem, float]:
    """All-reduce the buckets in gradient-ready order, one after the other.

    Data parallel alone is DDP: buckets, filled in gradient-ready order. Combined with a model
    split, `rnnscope.parallel.model_parallel` all-reduces every parameter tensor on its own
    after the backward (`per_tensor`).

    Returns the item (its exposed time counted after `end`, the backward's end) and the clock
    when the last bucket is done; `ready` maps a layer (L = the head) to when its gradients are.
    """
    b, topo = inputs.shape.bytes_per_element, inputs.topology
    stride = layout.pipeline * layout.hidden_split
    if per_tensor:
        groups = [(size, [i]) for i, size in enumerate(params)]
    else:  # DDP's buckets, filled in gradient-ready order (reverse registration)
        order, groups = list(reversed(range(len(params)))), []
        for size in ddp_buckets(params, int(inputs.bucket_mb * 1024 * 1024)):
            members, filled = [], 0
            while filled < size:
                members.append(order[len(members) + sum(len(g[1]) for g in groups)])
                filled += params[members[-1]]
            groups.append((size, members))
    clock, costs, schedule = 0.0, [], []
    for size, members in groups:
        last_ready = max(ready[layer_of[i]] for i in members)
        cost = group_collective(topo, "all_reduce", size, layout.data, stride, b,
                                inputs.algorithms)
        start = max(clock, last_ready)
        clock = start + cost.seconds
        costs.append((size, cost))
        schedule.append((start, clock, cost.inter_bytes, cost.intra_bytes))
    buckets = [size for size, _ in groups]
    total = CommCost(sum(c.seconds for _, c in costs), sum(c.inter_bytes for _, c in costs),
                     sum(c.intra_bytes for _, c in costs), costs[0][1].algorithm,
                     sum(c.messages for _, c in costs))
    exposed = max(0.0, clock - end)
    item = CommItem("gradients", "all_reduce", sum(buckets), 1, total, exposed, schedule)
    return item, clock


def _parameters(inputs: PlanInputs, layout: ParallelLayout) -> tuple[list[int], list[int]]:
    """Bytes per parameter on one worker and the layer each belongs to (L = the readout).

    A hidden split gives each worker 1/k of every recurrent weight; the readout is replicated.
    """
    s, k = inputs.shape, layout.hidden_split
    sizes, layers = [], []
    for name, elements in rnn_parameters(s):
        recurrent = name.startswith("rnn.")
        sizes.append((elements // k if recurrent else elements) * s.bytes_per_element)
        layers.append(int(name.rsplit("_l", 1)[1]) if recurrent else s.layers)
    return sizes, layers


def _pipeline_send(inputs: PlanInputs, layout: ParallelLayout, payload: int) -> CommCost:
    """One chunk across a stage boundary. Inside a node when every replica's p stages fit in
    nodes (p divides the GPUs per node); otherwise some boundary, the slowest, is on the network."""
    topo, p = inputs.topology, layout.pipeline
    inside = not topo.flat and topo.gpus_per_node % p == 0
    link = topo.link_for("send", inside)
    return CommCost(link.message_time(payload), 0 if inside else payload,
                    payload if inside else 0, "direct", 1)


def simulate(inputs: PlanInputs, layout: ParallelLayout) -> StepPlan:
    """Simulate one training step of `layout`; see the module docstring for the model."""
    batch = check_layout(inputs, layout)
    s, topo = inputs.shape, inputs.topology
    d, p, k = layout.data, layout.pipeline, layout.hidden_split
    T, L, H, b = s.seq_len, s.layers, s.hidden, s.bytes_per_element
    per_step = layer_seconds(inputs, batch, k, layout.world)  # per time step and layer
    slower = compute_slowdown(inputs, layout.world)
    if k > 1:  # the hidden split's own work around its collectives, every time step
        extra = inputs.split_overhead_s * slower
        per_step = [(f + extra, g + 2 * extra) for f, g in per_step]
    zero = CommCost(0.0, 0, 0, "-", 0)
    items: list[CommItem] = []
    ag = rs = rs_in = zero
    if k > 1:  # latency-bound collectives on the critical path of every time step
        state = batch * H * b  # (B, H)
        ag = group_collective(topo, "all_gather", state, k, 1, b, inputs.algorithms)
        rs = group_collective(topo, "reduce_scatter", state, k, 1, b, inputs.algorithms)
        items += [CommItem("hidden_state", "all_gather", state, T * L, ag, T * L * ag.seconds),
                  CommItem("hidden_grad", "reduce_scatter", state, T * L, rs, T * L * rs.seconds)]
        if L > 1:
            rs_in = group_collective(topo, "reduce_scatter", T * state, k, 1, b,
                                     inputs.algorithms)
            items.append(CommItem("input_grad", "reduce_scatter", T * state, L - 1, rs_in,
                                  (L - 1) * rs_in.seconds))
    wait = inputs.split_wait_s * slower if k > 1 else 0.0  # per exchange, beyond its message
    gather, scatter = max(0.0, ag.seconds + wait), max(0.0, rs.seconds + wait)
    fwd = [T * (f + gather) for f, _ in per_step]
    bwd = [T * (g + scatter) + (rs_in.seconds if l else 0.0) for l, (_, g) in
           enumerate(per_step)]
    fixed = inputs.step_fixed_s * slower
    compute_s = T * sum(f + g for f, g in per_step) + fixed
    sizes, layer_of = _parameters(inputs, layout)
    exposed_data = 0.0
    if p == 1:
        forward, backward, no_comm, bubble_share = sum(fwd), sum(bwd), compute_s, 0.0
        if d > 1:
            if k == 1 and inputs.overlap:  # DDP: a layer's gradients, when its backward ends
                ready = {l: sum(bwd[l:]) for l in range(L)} | {L: 0.0}  # from backward start
            else:  # model parallel: every gradient after the distributed backward
                ready = {l: backward for l in range(L + 1)}
            item, _ = _data_parallel(inputs, layout, ready, layer_of, sizes, backward,
                                     per_tensor=k > 1)
            if k == 1:  # the replicas' waits at every bucket's all-reduce, all exposed
                item.exposed_s = max(0.0, item.exposed_s + inputs.data_wait_s * slower
                                     * len(item.schedule))
            exposed_data = item.exposed_s
            items.append(item)
            if k == 1:  # DDP's own work per step (hooks, bucket copies): computing, not waiting
                ddp = inputs.ddp_overhead_s * slower
                compute_s, no_comm, fixed = compute_s + ddp, no_comm + ddp, fixed + ddp
    else:
        chunk = min(inputs.chunk, T)
        chunks = chunk_count(T, chunk)
        stages = split_layers(L, p)
        per_chunk = inputs.chunk_overhead_s * slower  # each engine call of a layer on a chunk
        send = _pipeline_send(inputs, layout, chunk * batch * H * b)
        # on the cores: a stage's own share of its messages each chunk (an inner stage has two)
        on_cores = [send.seconds * (2 if 0 < j < p - 1 else 1) if inputs.comm_on_cores else 0.0
                    for j in range(p)]
        F = [chunk * sum(per_step[l][0] for l in st) + len(st) * per_chunk + on_cores[j]
             for j, st in enumerate(stages)]
        G = [chunk * sum(per_step[l][1] for l in st) + 2 * len(st) * per_chunk + on_cores[j]
             for j, st in enumerate(stages)]
        stall = inputs.chunk_wait_s * slower  # a stage's wake-up stalls, each chunk (or less)
        forward = wave([max(0.0, f + stall) for f in F], send.seconds, chunks)
        backward = wave([max(0.0, g + stall) for g in G], send.seconds, chunks)
        no_comm = wave(F, 0.0, chunks) + wave(G, 0.0, chunks)
        exposed_sends = forward + backward - no_comm
        if s.output_size:  # ŷ from the last stage to all, before the loss and the backward
            y_hat = batch * (T if s.every_step else 1) * s.output_size * b
            cast = group_collective(topo, "broadcast", y_hat, p, 1, b, inputs.algorithms)
            items.append(CommItem("output", "broadcast", y_hat, 1, cast, cast.seconds))
            forward += cast.seconds
        compute_s = max(T * sum(per_step[l][0] + per_step[l][1] for l in st)
                        + 3 * chunks * len(st) * per_chunk for st in stages) + fixed
        no_comm += fixed
        bubble_share = bubble_fraction(p, chunks)
        directions = 2 if p > 2 else 1  # an inner stage sends both ways
        full, last = divmod(T, chunk)
        for count, steps in ((full, chunk), (1 if last else 0, last)):
            if count:
                payload = steps * batch * H * b  # (chunk, B, H)
                cost = send if steps == chunk else _pipeline_send(inputs, layout, payload)
                items.append(CommItem("activations", "send", payload, directions * count, cost,
                                      exposed_sends * count * steps / T))
        if d > 1:  # each stage all-reduces its own layers' gradients once its backward ends
            lead = 0.0  # how much earlier than stage 0 this stage finishes its backward
            candidates = []
            for j, st in enumerate(stages):
                mine = [i for i, l in enumerate(layer_of) if l in st or (l == L and j == p - 1)]
                item, clock = _data_parallel(inputs, layout, {l: 0.0 for l in range(L + 1)},
                                             [layer_of[i] for i in mine],
                                             [sizes[i] for i in mine], 0.0, per_tensor=True)
                item.exposed_s = max(0.0, clock - lead)
                candidates.append(item)
                lead += G[j] + send.seconds
            worst = max(candidates, key=lambda item: (item.exposed_s, item.cost.seconds))
            exposed_data = worst.exposed_s
            items.append(worst)
    if inputs.clip and layout.model > 1:  # Σ‖g‖² of every piece, before the optimizer step
        norm = clip_transfer(layout.model)
        cost = group_collective(topo, norm.op, norm.payload_bytes, layout.model, 1, NORM_BYTES,
                                inputs.algorithms)
        items.append(CommItem(norm.tag, norm.op, norm.payload_bytes, 1, cost, cost.seconds))
        exposed_data += cost.seconds
    step_s = forward + backward + exposed_data + fixed
    bubble_s = max(0.0, no_comm - compute_s)
    return _summarize(inputs, layout, batch, step_s, compute_s, bubble_s,
                      step_s - no_comm, bubble_share, items)


def _summarize(inputs: PlanInputs, layout: ParallelLayout, batch: int, step_s: float, compute_s: float,
               bubble_s: float, exposed_s: float, bubble_fraction: float,
               items: list[CommItem]) -> StepPlan:
    """Throughput, scaling efficiency, bytes and link utilization of a simulated step."""
    topo, N = inputs.topology, layout.world
    reference = batch if inputs.scaling == "weak" else inputs.shape.batch
    samples = layout.data * batch if inputs.scaling == "weak" else inputs.shape.batch
    one_device = single_device_seconds(inputs, reference)
    samples_per_s = samples / step_s
    inter = sum(item.count * item.cost.inter_bytes for item in items)
    intra = sum(item.count * item.cost.intra_bytes for item in items)
    messages = sum(item.count * item.cost.messages for item in items)
    return StepPlan(
        layout=layout, batch_per_replica=batch, step_s=step_s, compute_s=compute_s,
        bubble_s=bubble_s, exposed_comm_s=max(0.0, exposed_s), bubble_fraction=bubble_fraction,
        samples_per_s=samples_per_s, efficiency=samples_per_s / (N * reference / one_device),
        inter_bytes=inter, intra_bytes=intra, messages=messages,
        inter_utilization=inter / (step_s * topo.inter.bandwidth_Bps),
        intra_utilization=intra / (step_s * topo.intra.bandwidth_Bps) if topo.intra else 0.0,
        items=items, memory_bytes=memory_per_worker(inputs.shape, layout, batch),
    )
