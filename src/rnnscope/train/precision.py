"""--train.precision: the loop's autocast region and, for fp16, its gradient scaler.

    precision = Precision(cfg.train.precision, device)
    with precision.autocast():
        y_hat, h_n = model(x, h)             # matmuls in bf16/fp16 (rnnscope.nn.precision's policy)
    precision.backward(loss, optimizer)      # fp16: scaled, then unscaled before clipping
    precision.step(optimizer)                # fp16: skipped when a gradient overflowed
    checkpoint["grad_scaler"] = precision.state_dict()   # resume: precision.load_state_dict(...)

fp32 is the default and changes nothing. bf16 has fp32's exponent range, so it needs no loss
scaling (CPU and CUDA). fp16 overflows above 65504 and flushes small gradients to zero, so it
trains with torch's GradScaler, which exists for CUDA only here.
"""

from __future__ import annotations

import contextlib

import torch

from rnnscope.errors import UserError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast and loss scaling for one run, from --train.precision and the device."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in PRECISIONS:
            raise UserError(f"--train.precision must be one of {', '.join(PRECISIONS)}; got {name!r}")
        if name == "fp16" and device.type != "cuda":
            raise UserError(f"--train.precision fp16 needs a CUDA device (its gradient scaler is CUDA's), "
                            f"and this run trains on {device.type}; use --train.precision bf16 on CPU")
        self.name, self.dtype, self.device_type = name, PRECISIONS[name], device.type
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def state_dict(self) -> dict | None:
        """What a checkpoint keeps of the scaler (its scale and growth tracker); None without one."""
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        """On resume: the scaler continues from the checkpoint's scale (a checkpoint written
        without a scaler leaves it at its start)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def autocast(self):
        """The region where the forward runs in the low precision (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """loss.backward(); with a scaler, of the scaled loss, and the gradients unscaled after."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)  # clipping and the logged norm see the true gradients

    def overflow_expected(self) -> bool:
        """Whether an inf gradient is the scaler's business (it skips the step and lowers the
        scale) rather than a divergence."""
        return self.scaler is not None

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(); with a scaler, skipped on overflow, then the scale is updated."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
