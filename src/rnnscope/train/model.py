"""The network a run trains: rnnscope.nn.RNN, LSTM or GRU (the recurrent layers) and a linear readout ŷ = W_hy h + b_y.

Also the initial weights the config asks for, including a scale factor, so the chapter's "too
small or too large initial weights" (saturated and dead sigmoid neurons) can be made on purpose,
and the LSTM's forget-gate bias.
"""

from __future__ import annotations

import torch
from torch import nn

from rnnscope.engine import GATES
from rnnscope.nn import GRU, LSTM, RNN


class SequenceModel(nn.Module):
    """Recurrent layers (--model.cell) + linear readout, batch first.

    forward(x (B, T, I), state or None) -> (ŷ, state): ŷ is (B, T, O) when every step has a
    target, else (B, O) from the last step only. The state is h_n (layers, B, H); for LSTM it is
    h_n and c_n stacked, (2·layers, B, H), so the loop carries one tensor whatever the cell.
    """

    def __init__(self, input_size: int, output_size: int, model_cfg, every_step: bool) -> None:
        super().__init__()
        cell = getattr(model_cfg, "cell", "elman")
        common = {"num_layers": model_cfg.layers, "batch_first": True, "time_reduction": model_cfg.time_reduction}
        if cell == "elman":
            self.rnn = RNN(input_size, model_cfg.hidden, nonlinearity=model_cfg.activation, **common)
        else:
            self.rnn = {"lstm": LSTM, "gru": GRU}[cell](input_size, model_cfg.hidden, **common)
        self.cell = cell
        self.readout = nn.Linear(model_cfg.hidden, output_size)
        self.every_step = every_step

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None):
        """ŷ and the final state (h_n, or for LSTM h_n and c_n stacked)."""
        if hasattr(x, "packed"):  # windows of different lengths (data/ragged.py)
            return self._forward_packed(x, h0)
        if self.cell == "lstm":
            h, (h_n, c_n) = self.rnn(x, None if h0 is None else h0.chunk(2))  # (B, T, H), (layers, B, H) × 2
            h_n = torch.cat([h_n, c_n])  # (2·layers, B, H)
        else:
            h, h_n = self.rnn(x, h0)  # (B, T, H), (layers, B, H)
        if not self.every_step:
            h = h[:, -1]  # (B, H)
        return self.readout(h), h_n

    def _forward_packed(self, x, h0: torch.Tensor | None):
        """forward over a PaddedWindows batch run as a PackedSequence: each window stops at its own
        last row (ŷ there, or at every real step and zeros past it, where the targets are NaN)."""
        if self.cell == "lstm":
            out, (h_n, c_n) = self.rnn(x.packed(), None if h0 is None else h0.chunk(2))
            last, h_n = h_n[-1], torch.cat([h_n, c_n])
        else:
            out, h_n = self.rnn(x.packed(), h0)
            last = h_n[-1]  # (B, H): each window's last real step, in the batch's order
        if not self.every_step:
            return self.readout(last), h_n
        h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.readout(h), h_n


def initialize(model: SequenceModel, init: str, scale: float, forget_bias: float = 1.0) -> None:
    """Set the recurrent weights: torch's uniform, xavier, orthogonal or identity W_hh; × scale.

    xavier: W_ih and W_hh xavier-uniform. orthogonal: W_hh orthogonal, W_ih xavier.
    identity: W_hh = I (Le et al.'s IRNN), W_ih xavier. Biases start at 0 except for "default".
    The scale multiplies W_ih and W_hh after that (the biases are left alone). Gated cells get
    these per gate (each gate's H rows initialized as one Elman matrix), and an LSTM's forget
    gate the bias b_if + b_hf = forget_bias (b_if = forget_bias, b_hf = 0).
    """
    gates = len(GATES[model.cell]) if model.cell in GATES else 1  # Elman: one block, the whole matrix
    with torch.no_grad():
        for name, param in model.rnn.named_parameters():
            if init != "default":
                for block in param.chunk(gates):  # one H-row block per gate (the whole matrix for Elman)
                    if name.startswith("bias"):
                        block.zero_()
                    elif name.startswith("weight_hh") and init == "orthogonal":
                        nn.init.orthogonal_(block)
                    elif name.startswith("weight_hh") and init == "identity":
                        block.copy_(torch.eye(block.shape[0]))
                    else:
                        nn.init.xavier_uniform_(block)
            if name.startswith("weight") and scale != 1.0:
                param.mul_(scale)
            if model.cell == "lstm" and name.startswith("bias"):
                forget = param.chunk(4)[GATES["lstm"].index("f")]  # (H,) rows of the forget gate
                forget.fill_(forget_bias if name.startswith("bias_ih") else 0.0)


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def grad_norm(model: nn.Module) -> float:
    """The global L2 norm of all gradients (inf or nan when a gradient is)."""
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.stack(norms).norm()) if len(norms) > 1 else float(norms[0])

