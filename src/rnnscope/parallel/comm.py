"""The communicator: the one door through which every strategy's bytes leave a process.

Every collective and point-to-point operation of data, pipeline and tensor parallelism goes
through a `Communicator`; none calls `torch.distributed` itself. Each call names a `tag` (what
the bytes are for: `dp-grad`, `pp-act`, `tp-out`, ...) and is recorded in the `Ledger`: op, tag,
payload bytes S, the wire bytes this rank sends and receives for the algorithm the backend runs,
messages, and seconds. The wire formula is `rnnscope.costs.collectives.collective_cost`, the
one the planner predicts with.

    comm = Communicator()                                   # the default process group
    comm.all_reduce(grad, tag="dp-grad")                    # in place, sum
    handle = comm.all_reduce(grad, tag="dp-grad", async_op=True)
    handle.wait()                                           # recorded when it completes
    comm.all_gather(out, shard, tag="tp-out")               # out: (n * shard.numel(),)
    comm.reduce_scatter(shard, full, tag="tp-grad")         # full: (n * shard.numel(),)
    comm.send(h, dst=1, tag="pp-act"); comm.recv(h, src=0, tag="pp-act")
    handle = comm.isend(h, dst=1, tag="pp-act"); handle.wait()

Ranks (`dst`, `src`) are ranks *within the communicator's group*. Payload conventions follow
`rnnscope.costs.collectives`: S is the whole array (the output of an all-gather, the input of a
reduce-scatter). A failed operation raises `CommError` naming the op, tag, size and rank.
"""

from __future__ import annotations

import datetime
import re
import threading
import time

import torch
import torch.distributed as dist

from rnnscope.costs.backends import BACKEND_ALGORITHMS
from rnnscope.costs.collectives import collective_cost
from rnnscope.parallel.ledger import Ledger, Record
from rnnscope.parallel.objects import ObjectFormatError, decode, encode

REDUCE_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN,
              "avg": dist.ReduceOp.AVG}


class CommError(RuntimeError):
    """A communication operation failed: a peer died, timed out or disagreed on sizes."""


def backend_reason(exc: BaseException) -> str:
    """What the backend says went wrong, in one short line: gloo's messages carry the C++ source
    location ("[/__w/pytorch/…/pair.cc:537] ") and a generic paragraph after the reason
    ("This is typically caused by a remote worker hanging…"), neither of which helps a user."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", text)
    return text.split(" This is typically caused by")[0].strip()


# torch 2.13 renamed all_gather_into_tensor and reduce_scatter_tensor (the old names now warn);
# the releases before it have only the old names
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter_single = (getattr(dist, "reduce_scatter_single", None)
                          or dist.reduce_scatter_tensor)


def nbytes(tensor: torch.Tensor) -> int:
    """Bytes of a tensor's elements."""
    return tensor.numel() * tensor.element_size()


class _Op:
    """What one operation will put in the ledger once it completes."""

    def __init__(self, comm: Communicator, op: str, tag: str, tensor: torch.Tensor,
                 payload: int, peer_rank: int | None = None) -> None:
        n = 2 if op in ("send", "recv") else comm.world_size
        rank = None if op in ("send", "recv") else (peer_rank if peer_rank is not None else comm.rank)
        self.comm, self.op, self.tag, self.payload = comm, op, tag, payload
        formula_op, algorithm = comm.algorithms[op]
        # the record names what ran: "ring", or "ring_all_reduce" for gloo's reduce-scatter
        self.algorithm = algorithm if formula_op == op else f"{algorithm}_{formula_op}"
        self.cost = collective_cost(formula_op, payload, n, algorithm, rank=rank,
                                    element_size=tensor.element_size())
        self.start = time.perf_counter()
        self._done = False
        self._lock = threading.Lock()

    def finish(self) -> None:
        """Record the operation (once), ending now."""
        end = time.perf_counter()
        with self._lock:
            if self._done:
                return
            self._done = True
        self.comm.ledger.add(Record(
            op=self.op, tag=self.tag, algorithm=self.algorithm, world_size=self.comm.world_size,
            payload_bytes=self.payload, wire_bytes_sent=self.cost.sent_bytes,
            wire_bytes_received=self.cost.received_bytes, messages=self.cost.messages,
            start=self.start, end=end))

    def describe(self) -> str:
        """The operation in words, for errors: a peer that died shows up here first."""
        return (f"{self.op} tag={self.tag!r} of {self.payload} bytes on rank {self.comm.rank} "
                f"of {self.comm.world_size} (a peer died, or did not answer within the "
                f"process group's timeout: --parallel.timeout_s less its teardown reserve)")

    def failed(self, exc: BaseException) -> CommError:
        """The CommError for this operation failing with `exc`: the operation, and the backend's
        reason in one line."""
        return CommError(f"{self.describe()} failed: {backend_reason(exc)}")


class Handle:
    """An asynchronous operation in flight; it is recorded when it completes."""

    def __init__(self, work: dist.Work, pending: _Op) -> None:
        self._work = work
        self._pending = pending

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until the operation completes (or raise CommError after `timeout_s`)."""
        try:
            if timeout_s is None:
                self._work.wait()
            else:
                self._work.wait(datetime.timedelta(seconds=timeout_s))
        except RuntimeError as exc:
            raise self._pending.failed(exc) from exc
        self._pending.finish()

    def is_completed(self) -> bool:
        """True once the operation has finished (it is not recorded until waited or observed)."""
        return self._work.is_completed()

    def get_future(self) -> torch.futures.Future:
        """A future of the operation's result (a list of tensors), recorded on completion.

        Collectives only: gloo has no futures for send/recv. The recording runs on the backend's
        thread the moment the operation ends, so its seconds are not stretched by a late wait.
        """
        def record(fut: torch.futures.Future):
            try:
                value = fut.value()
            except RuntimeError as exc:
                raise self._pending.failed(exc) from exc
            self._pending.finish()
            return value

        return self._work.get_future().then(record)


class Communicator:
    """Collectives and point-to-point operations on one process group, each recorded.

    Args:
        group: the process group (None: the default group, which must be initialised).
        ledger: where records go; share one ledger between a process's communicators so that
            its rows cover every group (data-parallel and model-parallel ones alike).
        algorithms: per-op overrides of BACKEND_ALGORITHMS: op -> (formula op, algorithm).
    """

    def __init__(self, group: dist.ProcessGroup | None = None, *, ledger: Ledger | None = None,
                 algorithms: dict[str, tuple[str, str]] | None = None) -> None:
        if not dist.is_initialized():
            raise CommError("torch.distributed is not initialised; call init_process_group first")
        self.group = group
        self.rank = dist.get_rank(group)  # rank within the group
        self.world_size = dist.get_world_size(group)
        self.backend = str(dist.get_backend(group))
        self.ledger = ledger if ledger is not None else Ledger(dist.get_rank())
        self.algorithms = {**BACKEND_ALGORITHMS.get(self.backend, BACKEND_ALGORITHMS["gloo"]),
                           **(algorithms or {})}
        self.device = (torch.device("cuda", torch.cuda.current_device())
                       if self.backend == "nccl" else torch.device("cpu"))

    # -- plumbing ----------------------------------------------------------------------------

    def _run(self, pending: _Op, call, async_op: bool) -> Handle | None:
        """Issue `call(async_op)`; record it now (sync) or on completion (async)."""
        if not isinstance(pending.tag, str) or not pending.tag:
            raise ValueError(f"every operation needs a non-empty tag, got {pending.tag!r}")
        try:
            work = call(async_op)
        except RuntimeError as exc:
            raise pending.failed(exc) from exc
        if async_op:
            return Handle(work, pending)
        pending.finish()
        return None

    def _reduce_op(self, op: str) -> dist.ReduceOp:
        if op not in REDUCE_OPS:
            raise ValueError(f"reduce op {op!r} is not one of {', '.join(REDUCE_OPS)}")
        return REDUCE_OPS[op]

    # -- collectives -------------------------------------------------------------------------

    def all_reduce(self, tensor: torch.Tensor, *, tag: str, op: str = "sum",
                   async_op: bool = False) -> Handle | None:
        """Reduce `tensor` in place across the group (S = the tensor's bytes)."""
        reduce = self._reduce_op(op)
        pending = _Op(self, "all_reduce", tag, tensor, nbytes(tensor))
        return self._run(pending, lambda a: dist.all_reduce(tensor, op=reduce, group=self.group,
                                                            async_op=a), async_op)

    def all_gather(self, output: torch.Tensor, tensor: torch.Tensor, *, tag: str,
                   async_op: bool = False) -> Handle | None:
        """Concatenate every rank's `tensor` into `output` along dim 0 (S = output's bytes)."""
        if output.numel() != self.world_size * tensor.numel():
            raise ValueError(f"all_gather output has {output.numel()} elements; expected "
                             f"world_size({self.world_size}) * {tensor.numel()}")
        pending = _Op(self, "all_gather", tag, tensor, nbytes(output))
        return self._run(pending, lambda a: _all_gather_single(
            output, tensor, group=self.group, async_op=a), async_op)

    def reduce_scatter(self, output: torch.Tensor, tensor: torch.Tensor, *, tag: str,
                       op: str = "sum", async_op: bool = False) -> Handle | None:
        """Reduce `tensor` across ranks and leave rank k chunk k in `output` (S = input's bytes)."""
        if tensor.numel() != self.world_size * output.numel():
            raise ValueError(f"reduce_scatter input has {tensor.numel()} elements; expected "
                             f"world_size({self.world_size}) * {output.numel()}")
        reduce = self._reduce_op(op)
        pending = _Op(self, "reduce_scatter", tag, tensor, nbytes(tensor))
        return self._run(pending, lambda a: _reduce_scatter_single(
            output, tensor, op=reduce, group=self.group, async_op=a), async_op)

    def broadcast(self, tensor: torch.Tensor, src: int, *, tag: str,
                  async_op: bool = False) -> Handle | None:
        """Copy `tensor` from group rank `src` to every rank (S = the tensor's bytes)."""
        # the wire formula counts ranks from the root: the root is rank 0 of the broadcast
        pending = _Op(self, "broadcast", tag, tensor, nbytes(tensor),
                      peer_rank=(self.rank - src) % self.world_size)
        return self._run(pending, lambda a: dist.broadcast(tensor, group=self.group,
                                                           group_src=src, async_op=a), async_op)

    def barrier(self, *, tag: str = "barrier") -> None:
        """Wait for every rank: an all-reduce of 4 bytes, so that the ledger knows its bytes."""
        self.all_reduce(torch.zeros(1, dtype=torch.int32, device=self.device), tag=tag)

    # -- point to point ----------------------------------------------------------------------

    def send(self, tensor: torch.Tensor, dst: int, *, tag: str) -> None:
        """Send `tensor` to group rank `dst` (blocking)."""
        pending = _Op(self, "send", tag, tensor, nbytes(tensor))
        self._run(pending, lambda a: dist.send(tensor, group=self.group, group_dst=dst), False)

    def recv(self, tensor: torch.Tensor, src: int, *, tag: str) -> None:
        """Receive into `tensor` from group rank `src` (blocking)."""
        pending = _Op(self, "recv", tag, tensor, nbytes(tensor))
        self._run(pending, lambda a: dist.recv(tensor, group=self.group, group_src=src), False)

    def isend(self, tensor: torch.Tensor, dst: int, *, tag: str) -> Handle:
        """Start sending `tensor` to group rank `dst`; `wait()` the handle before reusing it."""
        pending = _Op(self, "send", tag, tensor, nbytes(tensor))
        return self._run(pending, lambda a: dist.isend(tensor, group=self.group, group_dst=dst),
                         True)

    def irecv(self, tensor: torch.Tensor, src: int, *, tag: str) -> Handle:
        """Start receiving into `tensor` from group rank `src`; `wait()` before reading it."""
        pending = _Op(self, "recv", tag, tensor, nbytes(tensor))
        return self._run(pending, lambda a: dist.irecv(tensor, group=self.group, group_src=src),
                         True)

    # -- Python objects ----------------------------------------------------------------------

    def all_gather_object(self, obj: object, *, tag: str) -> list:
        """Every rank's `obj`, in rank order: two recorded all-gathers (sizes, bytes).

        `obj` travels as JSON plus raw tensor bytes (rnnscope.parallel.objects), never as a
        pickle: what a peer sends can only decode to data. Tuples come back as lists.
        """
        data = torch.frombuffer(bytearray(encode(obj)), dtype=torch.uint8).to(self.device)
        size = torch.tensor([data.numel()], dtype=torch.int64, device=self.device)
        sizes = torch.empty(self.world_size, dtype=torch.int64, device=self.device)
        self.all_gather(sizes, size, tag=tag)
        longest = int(sizes.max())
        padded = torch.zeros(longest, dtype=torch.uint8, device=self.device)
        padded[: data.numel()] = data
        gathered = torch.empty(self.world_size * longest, dtype=torch.uint8, device=self.device)
        self.all_gather(gathered, padded, tag=tag)
        chunks = gathered.cpu().view(self.world_size, longest)
        try:
            return [decode(chunks[k, : int(sizes[k])].numpy().tobytes())
                    for k in range(self.world_size)]
        except ObjectFormatError as exc:
            raise CommError(f"all_gather_object tag={tag!r} on rank {self.rank}: a peer sent "
                            f"bytes that are not an rnnscope object ({exc})") from None
