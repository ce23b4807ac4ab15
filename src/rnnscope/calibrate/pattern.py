"""What the strategies' own code paths cost on this machine, beside the engine's FLOPs.

The engine's speed (`speed.measure_compute`) times a whole single-process training step. The
strategies run other code around the same matmuls: the hidden split does per-time-step Python
work around its two collectives (views, transposes, copies of B×H slices), and the pipeline
calls the engine once per chunk and layer rather than once per layer. Both are timed here in one
process, with the real `HiddenSplitStage` and `PipelineStage` on a `LoopbackComm` that moves
no bytes (the network is calibrated apart, through the real Communicator), and turned into a
constant per layer and time step (hidden split) or per layer and chunk (pipeline):

    extra = (measured stage time − the model's compute for it) / (3 · count)

(the forward pays one share, the backward two, as `compute.step_seconds` does).

`payload_sizes` lists the message sizes the local runs send, so that the gloo micro-benchmark
measures them and not only a grid around them.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch

from rnnscope.calibrate.looptime import ddp_step_seconds, interleaved_seconds, loop_step_seconds
from rnnscope.costs.layout import chunk_count, split_layers
from rnnscope.costs.traffic import RNNShape, ddp_buckets, rnn_parameters
from rnnscope.parallel.hidden_split import hidden_split_stage
from rnnscope.parallel.pipeline import PipelineStage
from rnnscope.plan.compute import Device, gates_of, step_seconds
from rnnscope.train.model import SequenceModel
from rnnscope.train.setup import denormals_flushed

DDP_PAIRS = 4  # pairs of training loops, with DDP and without, that DDP's own work is timed in


@dataclass
class Patterns:
    """Seconds of the strategies' own code paths on this machine (one thread, no network).

    split_s: one rank's forward + backward of a `split_ways` hidden split (0: none timed);
    split_real_s, pipe_real_s, data_real_s: a step of the hidden split's, the pipeline's and
    data parallelism's own training loop on a real group (`looptime.strategy_step_seconds`: the
    waits for the slower rank and for a thread to wake included); split_real_comm_s,
    data_real_comm_s: the hidden split's and data parallelism's step's communication (the wall
    time its collectives were in flight), the rest being its compute and code;
    stage_s, whole_s: the first of `stages` pipeline stages with `chunk` time steps per chunk,
    and with the whole sequence as one chunk (0: one layer, no pipeline); ddp_s, plain_s: a
    training-loop step of a replica's batch in DDP and without (None: not timed; plain_s the
    median of DDP_PAIRS loops, ddp_s plain_s plus the median of the pairs' differences).
    """

    split_ways: int
    split_s: float
    stages: int
    chunk: int
    stage_s: float
    whole_s: float
    ddp_s: float | None = None
    plain_s: float | None = None
    # on the calibration's real process group, every rank at once: a step of the hidden split's,
    # the pipeline's and data parallelism's own training loop over all its ranks (0: not timed:
    # the group's size does not split H, is not between 2 and the layers, or is one rank)
    split_real_s: float = 0.0
    split_real_comm_s: float = 0.0
    pipe_real_s: float = 0.0
    data_real_s: float = 0.0
    data_real_comm_s: float = 0.0


def payload_sizes(shape: RNNShape, chunk: int, bucket_mb: float) -> list[int]:
    """Bytes of every message the data, pipeline and hidden-split runs of `shape` send, sorted.

    The hidden split's B×H state and T×B×H input gradient, the pipeline's chunk of chunk×B×H
    (and a shorter last one) and its ŷ, and DDP's buckets and the per-tensor all-reduces.
    """
    b, B, H, T = shape.bytes_per_element, shape.batch, shape.hidden, shape.seq_len
    sizes = {B * H * b, T * B * H * b}
    chunk = min(max(chunk, 1), T)
    sizes.add(chunk * B * H * b)
    if T % chunk:
        sizes.add((T % chunk) * B * H * b)
    if shape.output_size:
        sizes.add(B * (T if shape.every_step else 1) * shape.output_size * b)
    params = [n * b for _, n in rnn_parameters(shape)]
    sizes.update(ddp_buckets(params, int(bucket_mb * 1024 * 1024)))
    sizes.update(params)
    return sorted(s for s in sizes if s >= 4)


class _Done:
    """A finished operation's handle."""

    def wait(self, timeout_s: float | None = None) -> None:
        """Nothing to wait for."""


class LoopbackComm:
    """A Communicator stand-in for rank `rank` of `world_size` that moves no bytes.

    all_gather copies this rank's slice into every slot; reduce_scatter keeps this rank's part
    of the input; isend does nothing; irecv leaves the buffer as it is. The copies are what a
    real collective writes into its output, so the stage's own work is what gets timed.
    """

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def all_gather(self, output, tensor, *, tag: str, async_op: bool = False):
        output.view(self.world_size, -1).copy_(tensor.view(1, -1))

    def reduce_scatter(self, output, tensor, *, tag: str, async_op: bool = False):
        output.copy_(tensor.view(self.world_size, -1)[self.rank])

    def isend(self, tensor, dst: int, *, tag: str) -> _Done:
        return _Done()

    def irecv(self, tensor, src: int, *, tag: str) -> _Done:
        tensor.normal_()
        return _Done()


def _net(shape: RNNShape, cfg):
    model_cfg = dataclasses.replace(cfg.model, hidden=shape.hidden, layers=shape.layers)
    return SequenceModel(shape.input_size, shape.output_size, model_cfg, shape.every_step)


def _split_runner(shape: RNNShape, cfg, comm):
    """One rank's forward + backward of a hidden split on `comm`, as a callable."""
    stage = hidden_split_stage(_net(shape, cfg), comm)
    x = torch.randn(shape.batch, shape.seq_len, shape.input_size,
                    generator=torch.Generator().manual_seed(0))  # (B, T, I), the same on all

    def run() -> None:
        y_hat, _ = stage.forward(x, None, build_graph=True)
        stage.backward(y_hat, torch.ones_like(y_hat))
    return run


def _pipeline_runner(shape: RNNShape, cfg, comm, chunk: int):
    """This rank's stage's forward + backward of a pipeline on `comm`, as a callable (the last
    stage's ŷ gradient as the loss gives it; the others get theirs by message)."""
    stage = PipelineStage(_net(shape, cfg), comm, chunk)
    x = torch.randn(shape.batch, shape.seq_len, shape.input_size,
                    generator=torch.Generator().manual_seed(0))  # (B, T, I)

    def run() -> None:
        y_hat, _ = stage.forward(x, None, build_graph=True)  # ŷ on the last stage only
        stage.backward(y_hat, None if y_hat is None else torch.ones_like(y_hat))
    return run


def time_patterns(shape: RNNShape, cfg, workers: int = 2, repeats: int = 3, sync=None,
                  combine=None, group=None) -> Patterns:
    """Time both strategies' stages at `shape` for `workers` ranks (a split `workers` ways when
    that divides H, else 2 or none; at most one stage per layer), one thread: the
    first pipeline stage with cfg's chunk (`stage_s`) and with the whole sequence as one chunk
    (`whole_s`); with `group` (a process group of this one rank), a step of the training loop
    with a replica's batch in DDP (`ddp_s`) and without (`plain_s`).
    `sync` and `combine` as in `calibrate.measure_compute` (every process at once, averaged)."""
    ways = next((k for k in (workers, 2) if k > 1 and shape.hidden % k == 0), 1)
    stages, chunk = max(1, min(workers, shape.layers)), cfg.parallel.chunk
    piped = stages > 1  # a one-layer model has no pipeline to time
    # interleaved, so that the pipeline's chunked and whole-sequence stages (whose difference
    # is the per-chunk constant) see the same load on a busy machine
    runs = [_split_runner(shape, cfg, LoopbackComm(0, ways)) if ways > 1 else None,
            _pipeline_runner(shape, cfg, LoopbackComm(0, stages), chunk) if piped else None,
            _pipeline_runner(shape, cfg, LoopbackComm(0, stages), shape.seq_len) if piped else None]
    with denormals_flushed(cfg.train.flush_denormal):  # as the runs' training loop does
        seconds = interleaved_seconds(runs, repeats, sync)
    if group is not None:
        replica = (max(1, shape.batch // workers), shape.layers, shape.hidden)
        # DDP's share is a small difference of two loops' times (0.2-0.8 ms of a 7 ms step
        # here), and one pair of loops put it anywhere from 0 to 2.4 ms: DDP_PAIRS pairs, in the
        # order DDP, plain, plain, DDP, ... (a load that drifts steadily during a pair falls on
        # both alike), and the median of their differences
        half = max(1, (repeats + 1) // 2)
        plain, extra = [], []
        for k in range(DDP_PAIRS):
            if k % 2 == 0:
                ddp = ddp_step_seconds(cfg, *replica, half, group, sync)
                alone = loop_step_seconds(cfg, *replica, half, sync)
            else:
                alone = loop_step_seconds(cfg, *replica, half, sync)
                ddp = ddp_step_seconds(cfg, *replica, half, group, sync)
            plain.append(alone)
            extra.append(ddp - alone)
        typical = statistics.median(plain)
        seconds += [typical + statistics.median(extra), typical]
    if combine is not None:
        seconds = combine(seconds)
    return Patterns(ways, seconds[0], stages, chunk, seconds[1], seconds[2],
                    *(seconds[3:5] if group is not None else ()))


def split_wait(real_s: float, modelled_s: float, shape: RNNShape) -> float:
    """Seconds per hidden-split exchange (an all-gather forward, a reduce-scatter backward, T·L
    of each) that a real step of the hidden split's own loop takes beyond the simulated one: the
    waits for the slower rank and for a woken thread, less what the micro-benchmark's collectives
    overstate; so it may be negative. Pure: (real − modelled) / (2·T·L)."""
    return (real_s - modelled_s) / (2 * shape.seq_len * shape.layers)


def split_loop_overhead(real_s: float, real_comm_s: float, modelled_compute_s: float,
                        shape: RNNShape) -> float:
    """Seconds per layer and forward time step that a real step of the hidden split's own loop
    computes beyond the simulated compute: the part of the step outside its collectives (the
    Communicator's bookkeeping around every call, the loop's code, a core shared with the peer's
    threads) that the stage timed alone in one process does not show; it may be negative.
    Pure: (real − real communication − modelled compute) / (3·T·L), as `split_overhead` (a
    backward time step counts twice)."""
    return (real_s - real_comm_s - modelled_compute_s) / (3 * shape.seq_len * shape.layers)


def chunk_wait(real_s: float, modelled_s: float, stages: int, chunks: int) -> float:
    """Seconds per chunk and stage, forward and backward, that a real pipeline step takes beyond
    the simulated one: the wake-up stalls (more) less the loop's own work that a run does inside
    the other stages' bubble (less), so it may be negative. Pure: each wave has
    chunks + stages − 1 slots on its critical path, so (real − modelled) / (2·(chunks + stages − 1))."""
    return (real_s - modelled_s) / (2 * (chunks + stages - 1))


def data_loop_overhead(real_s: float, real_comm_s: float, modelled_compute_s: float) -> float:
    """Seconds per step that a real step of data parallelism's own loop computes beyond the
    simulated compute of a replica's step (the engine's fit and DDP's own work, both timed on
    one rank without a peer): its step outside its all-reduces less that; it may be negative
    (the one-rank loops, timed apart, took longer than a replica's step does). Pure:
    real − real communication − modelled compute."""
    return real_s - real_comm_s - modelled_compute_s


def data_wait(real_s: float, modelled_s: float, buckets: int) -> float:
    """Seconds per gradient all-reduce (one per DDP bucket) that a real step of data
    parallelism's own loop takes beyond the simulated one: the waits for the slower replica and
    for a woken thread at the all-reduce, which a one-rank DDP and the micro-benchmark's
    back-to-back all-reduces do not show, less what those overstate; so it may be negative.
    Pure: (real − modelled) / buckets."""
    return (real_s - modelled_s) / buckets


def split_overhead(measured_s: float, shape: RNNShape, device: Device, ways: int) -> float:
    """Extra seconds per layer and forward time step of the hidden split, beyond the engine.

    Pure: `measured_s` (one rank's forward + backward) less T·Σ_layers(forward + backward step)
    at H/k, over 3·T·L; never negative."""
    T, L = shape.seq_len, shape.layers
    model = T * sum(sum(step_seconds(device, shape.batch, shape.hidden,
                                     shape.input_size if l == 0 else shape.hidden,
                                     shape.bytes_per_element, ways, gates_of(shape))) for l in range(L))
    return max(0.0, (measured_s - model) / (3 * T * L))


def chunk_overhead(chunked_s: float, whole_s: float, shape: RNNShape, stages: int,
                   chunk: int) -> float:
    """Extra seconds per layer and forward chunk of a pipeline stage.

    Pure: the first stage timed with C = ceil(T/chunk) chunks (`chunked_s`) and with one chunk
    of all T steps (`whole_s`) does the same FLOPs, so the difference is C − 1 more engine
    calls per layer, forward and backward: over 3·(C − 1)·(its layers); never negative."""
    T = shape.seq_len
    mine = split_layers(shape.layers, stages)[0]
    chunks = chunk_count(T, min(max(chunk, 1), T))
    if chunks == 1:
        return 0.0
    return max(0.0, (chunked_s - whole_s) / (3 * (chunks - 1) * len(mine)))
