"""A torchrun worker for the parallel tests: a small data-parallel training, or every comm op.

    torchrun ... tests/parallel/dp_worker.py train OUT_DIR --steps 3 --hidden 8 --dtype float64
    torchrun ... tests/parallel/dp_worker.py ops OUT_DIR

`train` builds the model and data from `build` (the tests import it to compute the one-worker
reference), trains through `DataParallel` (DDP + the ledger), and rank 0 saves the final
parameters to OUT_DIR/params.pt; `close` writes OUT_DIR/traffic.jsonl. `ops` runs each
Communicator operation, checks its result and writes OUT_DIR/ops.json with, per op, the ledger's
wire bytes summed over ranks and the loopback counter's bytes over the op.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

import rnnscope.nn


CELLS = {"elman": rnnscope.nn.RNN, "lstm": rnnscope.nn.LSTM, "gru": rnnscope.nn.GRU}


class Net(nn.Module):
    """rnnscope.nn.RNN (or LSTM, GRU) and a linear readout of the last hidden state."""

    def __init__(self, inputs: int, hidden: int, cell: str = "elman") -> None:
        super().__init__()
        self.rnn = CELLS[cell](inputs, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, H)
        return self.readout(out[:, -1])  # (B, 1)


def build(hidden: int, steps: int, batch: int, dtype: torch.dtype, seed: int = 0, cell: str = "elman"):
    """(model, list of global batches (x (B, T, 2), y (B, 1))) fixed by the seed."""
    torch.manual_seed(seed)
    model = Net(2, hidden, cell).to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(batch, 6, 2, generator=g, dtype=dtype),
                torch.randn(batch, 1, generator=g, dtype=dtype)) for _ in range(steps)]
    return model, batches


def train_steps(model: nn.Module, batches, shard=lambda b: b, on_step_end=None) -> None:
    """Plain SGD on the mean squared error, one optimizer step per batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, batch in enumerate(batches, start=1):
        x, y = shard(batch)
        loss = ((model(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_step_end is not None:
            on_step_end(step, model)


def run_train(args, cfg) -> None:
    from rnnscope.parallel.worker import from_env

    ctx = from_env(cfg)
    model, batches = build(args.hidden, args.steps, args.batch, getattr(torch, args.dtype), cell=args.cell)
    wrapped = ctx.wrap_model(model)
    try:
        train_steps(wrapped, batches, ctx.shard, ctx.on_step_end)
        if ctx.is_main:
            torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
                       Path(args.out) / "params.pt")
    finally:
        ctx.close(Path(args.out) if ctx.is_main else None)


def _same_linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def run_ops(args) -> None:
    import torch.distributed as dist

    from rnnscope.parallel.checksum import WeightMismatchError, check_weights
    from rnnscope.parallel.comm import Communicator
    from rnnscope.parallel.wire import read_interface

    dist.init_process_group("gloo")
    comm = Communicator()
    r, n = comm.rank, comm.world_size
    m = 1 << 18  # elements of float32: payloads of 1 MiB, far above the per-message overheads
    results = {}

    def measure(name, fn):
        comm.barrier()
        before, k0 = read_interface(), len(comm.ledger.pending())
        fn()
        sent = sum(rec.wire_bytes_sent for rec in comm.ledger.pending()[k0:])
        comm.barrier()  # every rank done before the counter is read again
        lo = (read_interface() - before).tx_bytes
        results[name] = {"ledger_sent_all_ranks": sum(comm.all_gather_object(sent, tag="probe")),
                         "lo_tx": lo}

    x = torch.full((m,), float(r + 1))
    measure("all_reduce", lambda: comm.all_reduce(x, tag="t"))
    assert torch.all(x == n * (n + 1) / 2), "all_reduce sum"
    y = torch.full((m,), float(r)) if r == 0 else torch.zeros(m)
    measure("broadcast", lambda: comm.broadcast(y, src=0, tag="t"))
    assert torch.all(y == 0.0), "broadcast"
    out = torch.empty(n * (m // n))
    measure("all_gather", lambda: comm.all_gather(out, torch.full((m // n,), float(r)), tag="t"))
    assert torch.equal(out, torch.arange(n).repeat_interleave(m // n).float()), "all_gather"
    shard = torch.empty(m // n)
    measure("reduce_scatter", lambda: comm.reduce_scatter(
        shard, torch.arange(n).repeat_interleave(m // n).float(), tag="t"))
    assert torch.all(shard == n * r), "reduce_scatter"
    z = torch.full((m,), 7.0) if r == 0 else torch.zeros(m)

    def point_to_point():
        if r == 0:
            comm.send(z, dst=1, tag="t")
            comm.isend(z, dst=1, tag="t").wait()
        elif r == 1:
            comm.recv(z, src=0, tag="t")
            assert torch.all(z == 7.0), "recv"
            z.zero_()
            comm.irecv(z, src=0, tag="t").wait()
            assert torch.all(z == 7.0), "irecv"

    measure("send_recv", point_to_point)
    handle = comm.all_reduce(torch.ones(4), tag="async", async_op=True)
    handle.get_future().wait()
    assert comm.ledger.pending()[-1].tag == "async", "async op recorded by its future"
    objs = comm.all_gather_object({"rank": r}, tag="obj")
    assert objs == [{"rank": k} for k in range(n)], "all_gather_object"
    results["checksums_agree"] = check_weights(comm, _same_linear(), step=1)
    model = _same_linear()
    if r == 1:  # one bit of one weight on one rank
        with torch.no_grad():
            model.weight[0, 0] = torch.nextafter(model.weight[0, 0], torch.tensor(2.0))
    try:
        check_weights(comm, model, step=2)
        results["mismatch"] = None
    except WeightMismatchError as exc:
        results["mismatch"] = str(exc)
    comm.ledger.close_step(1)
    if r == 0:
        results["rows"] = comm.ledger.rows
        (Path(args.out) / "ops.json").write_text(json.dumps(results))


HERE = Path(__file__).resolve().parent
TIMEOUT_S = 120  # a launch that takes longer has hung


def torchrun(mode: str, out: Path, *args: str, nproc: int = 2,
             isolate: bool = False) -> subprocess.CompletedProcess:
    """Run this file under torch.distributed.run on 127.0.0.1, optionally in its own netns.

    With `isolate`, out/netdev holds the namespace's /proc/net/dev after the run.
    """
    from rnnscope.parallel.wire import isolated_command

    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "--local-addr",
            "127.0.0.1", "--log-dir", str(out / "agent"), str(HERE / "dp_worker.py"), mode, str(out), *args]
    if isolate:
        argv = isolated_command(argv, out / "netdev")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


@functools.lru_cache(maxsize=None)
def can_isolate() -> bool:
    """Whether runs can get a private loopback (unshare --net) here."""
    from rnnscope.parallel.wire import can_isolate as probe

    return probe()


# the shared data-parallel run: float64 (for the equivalence test) with gradients of 440 kB
# (for the wire test): hidden 232 -> W_hh alone is 232 * 232 * 8 = 430,592 bytes
# and buckets of 0.1 MiB, so that DDP sends each step's gradients in several all-reduces
SHARED = {"steps": 5, "hidden": 232, "batch": 8, "dtype": "float64", "bucket_mb": "0.1"}


@functools.lru_cache(maxsize=None)
def shared_training_run() -> Path:
    """Run the shared 2-worker training once per test session; return its output folder."""
    out = Path(tempfile.mkdtemp(prefix="rnnscope-dp-"))
    atexit.register(shutil.rmtree, out, True)
    result = torchrun("train", out, "--steps", str(SHARED["steps"]), "--hidden",
                      str(SHARED["hidden"]), "--batch", str(SHARED["batch"]), "--dtype",
                      SHARED["dtype"], "--bucket-mb", SHARED["bucket_mb"], isolate=can_isolate())
    if result.returncode != 0:
        raise RuntimeError(f"the shared training run failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("train", "ops"), help="what to run")
    parser.add_argument("out", help="folder for the results")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps")
    parser.add_argument("--hidden", type=int, default=8, help="hidden neurons")
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--dtype", default="float64", help="parameter dtype")
    parser.add_argument("--bucket-mb", default="25", help="DDP bucket size in MiB")
    parser.add_argument("--check-every", default="1", help="steps between weight checksums")
    parser.add_argument("--cell", choices=tuple(CELLS), default="elman", help="recurrent cell")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.mode == "ops":
        run_ops(args)
        return
    from rnnscope.train.config import load_config

    cfg = load_config(None, ["--parallel.strategy", "data", "--parallel.bucket_mb", args.bucket_mb,
                             "--parallel.check_every", args.check_every,
                             "--parallel.timeout_s", "60", "--train.run_dir", args.out])
    run_train(args, cfg)


if __name__ == "__main__":
    from rnnscope.parallel.exit import exit_worker

    main()
    exit_worker(0)  # past torch's gloo teardown, which can deadlock (rnnscope/parallel/exit.py)
