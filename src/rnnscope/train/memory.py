"""What a config needs in memory, estimated before anything is allocated; refused when it cannot fit.

    estimate = check_memory(cfg)   # a UserError when the estimate exceeds the machine's memory
    estimate.total                 # bytes, every worker together

The estimate adds, per process: the weights with their gradients and optimizer state; the
engine's (T, B, H) buffers of one training step (per layer: h_t forward, δ_t and the error
passed down backward); a forward pass of one evaluation batch (validation and the final train
loss, without a graph); the built-in task's generated arrays at their peak; the
interpreter with torch itself. With --parallel.nproc N every worker holds all of that, so the
total is N times it. A CSV's size is not known before it is read: its data is left out.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rnnscope.errors import UserError

log = logging.getLogger(__name__)

FLOAT = 4  # bytes of a float32
PROCESS_BYTES = 320 * 2**20  # peak RSS of a tiny training run (torch, its kernels, rnnscope): 310 MiB
# torch imports triton, where it is installed, at the optimizer's first step (torch._dynamo): 81 MiB
# more on this machine (371 against 290 MiB for torch and torch._dynamo alone)
TRITON_BYTES = 90 * 2**20
GATES = {"elman": 1, "rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per recurrent layer, by cell
EVAL_BATCH = 256  # sequences per forward pass in train.metrics.evaluate
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}  # float32 copies of the weights it keeps


@dataclass
class Estimate:
    """Bytes one process needs, by kind, and how many processes the config starts."""

    parameters: int  # count, not bytes
    weights: int  # parameters, gradients, optimizer state (and DDP's gradient buckets)
    activations: int  # one training step's forward and backward buffers
    evaluation: int  # the forward pass of one evaluation batch
    data: int  # the generated task's arrays at their peak (0 for a CSV: not known before reading)
    processes: int

    @property
    def per_process(self) -> int:
        return process_bytes() + self.weights + self.activations + self.evaluation + self.data

    @property
    def total(self) -> int:
        return self.processes * self.per_process

    def describe(self) -> str:
        """The sum in words: '12.3 GiB (weights 8 GiB, training step 1 GiB, ...)'."""
        parts = [f"weights {gib(self.weights)} ({self.parameters:,} parameters)",
                 f"training step {gib(self.activations)}", f"evaluation pass {gib(self.evaluation)}",
                 f"data {gib(self.data)}", f"torch {gib(process_bytes())}"]
        times = f"{self.processes} processes × " if self.processes > 1 else ""
        return f"{gib(self.total)} ({times}{', '.join(parts)})"


def process_bytes() -> int:
    """What a training process holds before any model or data: torch, rnnscope, and triton where
    it is installed (torch imports it then)."""
    return PROCESS_BYTES + (TRITON_BYTES if _triton_installed() else 0)


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def gib(n: float) -> str:
    """Bytes as a short human figure: 1.5 GiB, 320 MiB, 12 KiB."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return f"{int(n)} B"


def io_sizes(data_cfg) -> tuple[int, int]:
    """Inputs and outputs per time step of the data the config asks for."""
    if data_cfg.csv:
        inputs = len(data_cfg.column) or 1  # the default (every numeric column) is not known yet
        return inputs, len(data_cfg.target) or inputs
    if data_cfg.task == "copy":
        return data_cfg.copy_symbols + 2, data_cfg.copy_symbols
    if data_cfg.task == "adding":
        return 2, 1
    return 1, 1  # sine


def task_data_bytes(data_cfg) -> int:
    """The generated arrays of a built-in task at their peak (numpy float64, then float32 tensors)."""
    if data_cfg.csv:
        return 0
    n, T = data_cfg.samples, data_cfg.seq_len
    if data_cfg.task == "copy":
        K = data_cfg.copy_symbols + 2
        return n * T * (K * (8 + 4) + 3 * 8)  # one_hot int64 → float32; tokens, targets int64
    if data_cfg.task == "adding":
        return n * T * (8 + 8 + 16 + 8)  # values, marker, their float64 stack, x float32
    return n * (T + data_cfg.horizon) * 3 * 8 + 2 * n * T * FLOAT  # sin, noise, sum; x, y


def parameter_count(cfg) -> int:
    """The recurrent layers' and the readout's parameters, from the config alone."""
    inputs, outputs = io_sizes(cfg.data)
    H, L = cfg.model.hidden, cfg.model.layers
    gates = GATES.get(getattr(cfg.model, "cell", "elman"), 4)  # an unknown cell: the largest
    first = gates * (H * inputs + H * H + 2 * H)
    rest = (L - 1) * gates * (2 * H * H + 2 * H)
    return first + rest + H * outputs + outputs


def estimate(cfg) -> Estimate:
    """The memory a resolved Config will need, before anything is allocated."""
    d, m = cfg.data, cfg.model
    inputs, outputs = io_sizes(d)
    gates = GATES.get(getattr(m, "cell", "elman"), 4)
    parallel = cfg.parallel.strategy != "none"
    processes = cfg.parallel.nproc if parallel else 1
    P = parameter_count(cfg)
    copies = 2 + OPTIMIZER_STATE.get(cfg.optim.name, 2) + (1 if cfg.parallel.strategy == "data" else 0)
    weights = P * FLOAT * copies
    n_val = round(d.samples * d.val_fraction) if not d.csv else 0
    n_train = d.samples - n_val if not d.csv else d.batch_size
    B = min(d.batch_size, max(n_train, 1))
    if cfg.parallel.strategy == "data":
        B = max(B // processes, 1)
    T = d.seq_len
    k1, k2 = cfg.train.tbptt_k1, cfg.train.tbptt_k2
    t = min(T, max(k1, k2)) if k1 else T  # the steps one backward pass holds
    # per layer h_t (forward) and δ_t (backward), each gate's; above the first, the error passed down
    buffers = 2 * gates * m.layers + (m.layers - 1)
    activations = FLOAT * t * B * (buffers * m.hidden + m.hidden + inputs + 2 * outputs)  # + readout
    n_eval = min(max(n_train, n_val), EVAL_BATCH)  # no graph: a layer's input, output and the readout's
    evaluation = FLOAT * n_eval * T * (3 * gates * m.hidden + inputs + outputs)
    return Estimate(parameters=P, weights=weights, activations=activations, evaluation=evaluation,
                    data=task_data_bytes(d), processes=processes)


def machine_memory() -> tuple[int | None, int | None]:
    """(total, available) bytes of this machine, a cgroup limit included; None where unknown."""
    total = available = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit (cgroup v2) is the machine as far as this process is concerned
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total or int(limit), int(limit))
            available = min(available or int(limit), int(limit))
    except OSError:
        pass
    return total, available


def check_memory(cfg, memory: tuple[int | None, int | None] | None = None) -> Estimate:
    """Refuse a config whose estimate exceeds the memory this machine can give now.

    What can be given is MemAvailable (other processes keep the rest), or the total when the
    machine does not say; a machine that says neither refuses nothing.

    Args:
        cfg: the resolved Config.
        memory: (total, available) bytes; default: this machine's (machine_memory()).
    """
    est = estimate(cfg)
    total, available = memory if memory is not None else machine_memory()
    limit = available if available is not None else total
    if limit is not None and est.total > limit:
        has = f"{gib(total)} of memory, {gib(available)} available now" if None not in (total, available) \
            else f"{gib(limit)} of memory"
        raise UserError(f"this config needs about {est.describe()}, but this machine has {has}; "
                        f"lower {biggest_knob(cfg, est)}")
    if total is not None and est.total > total / 2:
        log.info("this config needs about %s of this machine's %s", gib(est.total), gib(total))
    return est


def biggest_knob(cfg, est: Estimate) -> str:
    """The options that drive the largest part of the estimate, to name in the refusal."""
    d, m = cfg.data, cfg.model
    parts = {"weights": est.weights, "activations": est.activations, "evaluation": est.evaluation,
             "data": est.data}
    largest = max(parts, key=parts.get)
    if largest == "weights":
        knobs = [f"--model.hidden (now {m.hidden})", f"--model.layers (now {m.layers})"]
    elif largest == "activations":
        knobs = [f"--data.batch_size (now {d.batch_size})", f"--data.seq_len (now {d.seq_len})",
                 f"--model.hidden (now {m.hidden})"] + [f"--model.layers (now {m.layers})"] * (m.layers > 1)
    elif largest == "data" and d.task == "copy":
        knobs = [f"--data.copy_symbols (now {d.copy_symbols})", f"--data.samples (now {d.samples})"]
    elif largest == "data" and d.task == "sine" and d.horizon > d.seq_len:
        knobs = [f"--data.horizon (now {d.horizon})", f"--data.samples (now {d.samples})"]
    elif largest == "evaluation":  # its batch is at most 256 sequences, whatever --data.samples says
        knobs = [f"--data.seq_len (now {d.seq_len})", f"--model.hidden (now {m.hidden})"]
    else:
        knobs = [f"--data.samples (now {d.samples})", f"--data.seq_len (now {d.seq_len})"]
    if est.processes > 1:
        knobs.insert(0, f"--parallel.nproc (now {est.processes})")
    return ", ".join(knobs[:-1]) + " or " + knobs[-1]
