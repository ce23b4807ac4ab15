"""The network a run trains: rnnscope.nn.RNN (the recurrent layers) and a linear readout ŷ = W_hy h + b_y.

Also the initial weights the config asks for, including a scale factor, so the chapter's "too
small or too large initial weights" (saturated and dead sigmoid neurons) can be made on purpose.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnscope.nn import RNN


class SequenceModel(nn.Module):
    """Elman RNN + linear readout, batch first.

    forward(x (B, T, I), h0 (layers, B, H) or None) -> (ŷ, h_n): ŷ is (B, T, O) when every step
    has a target, else (B, O) from the last step only.
    """

    def __init__(self, input_size: int, output_size: int, model_cfg, every_step: bool) -> None:
        super().__init__()
        self.rnn = RNN(input_size, model_cfg.hidden, num_layers=model_cfg.layers,
                       nonlinearity=model_cfg.activation, batch_first=True,
                       time_reduction=model_cfg.time_reduction)
        self.readout = nn.Linear(model_cfg.hidden, output_size)
        self.every_step = every_step

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        """ŷ and the final hidden state h_n (layers, B, H)."""
        h, h_n = self.rnn(x, h0)  # (B, T, H), (layers, B, H)
        if not self.every_step:
            h = h[:, -1]  # (B, H)
        return self.readout(h), h_n


def initialize(model: SequenceModel, init: str, scale: float) -> None:
    """Set the recurrent weights: torch's uniform, xavier, orthogonal or identity W_hh; × scale.

    xavier: W_ih and W_hh xavier-uniform. orthogonal: W_hh orthogonal, W_ih xavier.
    identity: W_hh = I (Le et al.'s IRNN), W_ih xavier. Biases start at 0 except for "default".
    The scale multiplies W_ih and W_hh after that (the biases are left alone).
    """
    with torch.no_grad():
        for name, param in model.rnn.named_parameters():
            if init != "default":
                if name.startswith("bias"):
                    param.zero_()
                elif name.startswith("weight_hh") and init == "orthogonal":
                    nn.init.orthogonal_(param)
                elif name.startswith("weight_hh") and init == "identity":
                    param.copy_(torch.eye(param.shape[0]))
                else:
                    nn.init.xavier_uniform_(param)
            if name.startswith("weight") and scale != 1.0:
                param.mul_(scale)


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def grad_norm(model: nn.Module) -> float:
    """The global L2 norm of all gradients (inf or nan when a gradient is)."""
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.stack(norms).norm()) if len(norms) > 1 else float(norms[0])

