"""How long the BPTT engine computes: FLOPs per time step and layer at a device's speed.

An Elman layer's forward step is two matmuls, x_t·W_ihᵀ and h_{t−1}·W_hhᵀ: 2·B·H·(I+H) FLOPs.
Its backward step is about twice that: the error term δ_t goes back through both weights
(2·B·H·(I+H)) and both weight adjustments accumulate (another 2·B·H·(I+H)). Element-wise work
(activation, its derivative, biases) is O(B·H) and ignored beside the matmuls.

A gated layer computes G weighted sums per unit, each over the same inputs (G = 4 for LSTM,
3 for GRU, `costs.traffic.GATE_COUNT`): G times the Elman layer's matmul FLOPs, forward and
backward; its element-wise gate arithmetic is O(G·B·H) and ignored likewise.

Small RNN matmuls do not reach a device's peak: `utilization` scales the peak, and every time
step pays a fixed `step_overhead_s` (kernel launches, the Python loop), which is what bounds
an RNN with small B·H. `calibrate` measures both on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnscope.costs.layout import ParallelLayout, split_layers
from rnnscope.costs.traffic import GATE_COUNT, RNNShape, rnn_parameters
from rnnscope.errors import UserError


@dataclass(frozen=True)
class Device:
    """An accelerator's documented peak FLOP/s by element size, and how much of it an RNN gets."""

    name: str
    peak_flops: dict[int, float]  # bytes per element -> FLOP/s (dense, no sparsity)
    utilization: float = 0.3
    step_overhead_s: float = 10e-6  # per layer and forward time step; backward pays twice
    source: str = ""

    def flops_per_s(self, bytes_per_element: int) -> float:
        """Sustained FLOP/s for this element size: peak × utilization."""
        if bytes_per_element not in self.peak_flops:
            raise UserError(
                f"device {self.name} has no peak listed for {bytes_per_element}-byte elements; "
                f"choose --bytes-per-element from {sorted(self.peak_flops)}"
            )
        return self.peak_flops[bytes_per_element] * self.utilization

    def with_utilization(self, utilization: float) -> "Device":
        """The same device at another utilization factor (0 < u ≤ 1)."""
        if not 0 < utilization <= 1:
            raise UserError(f"--utilization must be in (0, 1], got {utilization}")
        return Device(self.name, self.peak_flops, utilization, self.step_overhead_s, self.source)


# fp32 = plain FP32 (torch does not use TF32 for fp32 matmuls by default); bf16 = dense tensor
DEVICES: dict[str, Device] = {
    "a100": Device("a100", {4: 19.5e12, 2: 312e12},
                   source="NVIDIA A100 Tensor Core GPU datasheet (SXM): FP32 19.5, BF16 312 TFLOPS"),
    "h100": Device("h100", {4: 67e12, 2: 989.4e12},
                   source="NVIDIA H100 datasheet (SXM5): FP32 67, BF16 989 TFLOPS dense"),
    "h200": Device("h200", {4: 67e12, 2: 989.4e12},
                   source="NVIDIA H200 datasheet (SXM): FP32 67, BF16 989 TFLOPS dense"),
    "mi300x": Device("mi300x", {4: 163.4e12, 2: 1307.4e12},
                     source="AMD Instinct MI300X datasheet: FP32 163.4, BF16 1307.4 TFLOPS dense"),
    "v100": Device("v100", {4: 15.7e12, 2: 125e12},
                   source="NVIDIA V100 datasheet (SXM2): FP32 15.7, FP16 tensor 125 TFLOPS"),
}


def get_device(name: str) -> Device:
    """A preset by name; a miss lists the presets."""
    if name not in DEVICES:
        raise UserError(f"--device {name!r} is not a preset; choose one of "
                        f"{', '.join(DEVICES)} (or --calibrate to measure this machine)")
    return DEVICES[name]


def forward_step_flops(batch: int, hidden: int, input_size: int, gates: int = 1) -> int:
    """FLOPs of one layer's forward time step: 2·G·B·H·(I+H) (G = 1 for Elman)."""
    return 2 * gates * batch * hidden * (input_size + hidden)


def backward_step_flops(batch: int, hidden: int, input_size: int, gates: int = 1) -> int:
    """FLOPs of one layer's backward time step: about twice the forward, 4·G·B·H·(I+H)."""
    return 2 * forward_step_flops(batch, hidden, input_size, gates)


def step_seconds(device: Device, batch: int, hidden: int, input_size: int,
                 bytes_per_element: int, shards: int = 1, gates: int = 1) -> tuple[float, float]:
    """(forward, backward) seconds of one layer's time step, hidden units split `shards` ways
    (a gated cell's G gates each: `gates`)."""
    rate = device.flops_per_s(bytes_per_element)
    forward = forward_step_flops(batch, hidden, input_size, gates) / shards / rate
    backward = backward_step_flops(batch, hidden, input_size, gates) / shards / rate
    return device.step_overhead_s + forward, 2 * device.step_overhead_s + backward


# (B·H)-sized tensors a layer keeps per time step for its backward: Elman h_t; LSTM its 4
# activated gates, c_t, tanh(c_t) and h_t; GRU its 3 activated gates, the 3 recurrent parts
# h_{t−1}W_hhᵀ (+ b_hn) and h_t (what engine/lstm.py and engine/gru.py save)
SAVED_PER_STEP = {"elman": 1, "lstm": 7, "gru": 7}
MEMORY_COPIES = 4  # weights, gradients and Adam's two moments


def memory_per_worker(shape: RNNShape, layout: ParallelLayout, batch: int) -> int:
    """Bytes the busiest worker holds for one step: its parameters × MEMORY_COPIES, and the
    activations its layers keep for the backward, T·B·H·SAVED_PER_STEP per layer (a hidden
    split keeps 1/hs of them, plus the all-gathered h of every step, T·B·H per layer)."""
    b, T, H = shape.bytes_per_element, shape.seq_len, shape.hidden
    p, k = layout.pipeline, layout.hidden_split
    layers = max(len(block) for block in split_layers(shape.layers, p)) if p > 1 else shape.layers
    recurrent = sum(n for name, n in rnn_parameters(shape) if name.startswith("rnn."))
    readout = sum(n for name, n in rnn_parameters(shape) if not name.startswith("rnn."))
    # the busiest stage: the first holds W_ih of the input; the last the readout (an upper bound)
    params = recurrent * layers // shape.layers // k + readout
    saved = T * batch * H * SAVED_PER_STEP[shape.cell] // k + (T * batch * H if k > 1 else 0)
    return (MEMORY_COPIES * params + layers * saved) * b


def gates_of(shape: RNNShape) -> int:
    """G, the gate blocks of `shape.cell` (1 for Elman)."""
    return GATE_COUNT[shape.cell]
