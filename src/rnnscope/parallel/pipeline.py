"""Layer pipeline over time: each rank runs a contiguous block of layers, chunk by chunk.

A stacked Elman RNN of L layers is cut into S stages (S = the model group's size). Time is cut
into C = ceil(T / chunk) chunks. Forward, stage s runs its layers on chunk c (the hidden state
carried over from chunk c−1) and sends its top layer's h for that chunk to stage s+1 at once, so
stage s+1 works on chunk c while stage s works on chunk c+1: the wavefront GNMT used for stacked
LSTMs. Backward runs the same way in reverse chunk order: ∂L/∂h of a chunk arrives from stage
s+1, BPTT runs over the chunk (the error carried back into the previous chunk through its h0),
and ∂L/∂x of the chunk goes to stage s−1. The readout ŷ = W_hy h + b_y lives on the last stage.

Running elman_layer on a chunk with h0 = the previous chunk's last h is the same recurrence, so
the gradients equal single-process training up to the order of floating-point sums. Gated cells
(--model.cell lstm, gru) run the engine's lstm_layer / gru_layer the same way; an LSTM layer's
cell state c is carried from chunk to chunk inside its stage like h, and never crosses a boundary:
only the top layer's h_t does, so the traffic is the Elman formula's.

Traffic (through the communicator, tags `pp-act` and `pp-grad`): every boundary carries the
T·B·H activations forward and their gradients back, in C messages each way:
2(S−1)·T·B·H·b bytes in 2(S−1)·C messages per step. Each stage is idle while the wavefront
fills and drains, (S−1)/(C+S−1) of the time in the bubble model.
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from rnnscope.costs.layout import chunk_bounds, split_layers
from rnnscope.engine import elman_layer, gru_layer, lstm_layer
from rnnscope.errors import UserError
from rnnscope.parallel.comm import Communicator
from rnnscope.parallel.model_parallel import ModelParallelContext

ACT_TAG, GRAD_TAG, OUT_TAG = "pp-act", "pp-grad", "pp-out"


def layer_weights(rnn: nn.Module, k: int) -> list[torch.Tensor | None]:
    """[W_ih, W_hh, b_ih, b_hh] of layer k of an rnnscope.nn.RNN (biases None without bias)."""
    names = [f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}"]
    return [getattr(rnn, name, None) for name in names]


class PipelineStage:
    """This rank's stage of a stacked RNN + readout: `forward`, then `backward`, per batch.

    Args:
        net: a SequenceModel (`rnn`, an rnnscope.nn.RNN batch-first; `readout`, nn.Linear;
            `every_step`). Every rank builds the same one; this stage keeps its layers' tensors
            (and the readout on the last stage) and ignores the rest.
        comm: the communicator of the model group; its rank is the stage index.
        chunk: time steps per message.
    """

    def __init__(self, net: nn.Module, comm: Communicator, chunk: int = 1) -> None:
        rnn = net.rnn
        if getattr(rnn, "bidirectional", False):
            raise UserError("a layer pipeline needs a unidirectional RNN (bidirectional=False)")
        self.comm, self.chunk = comm, chunk
        self.stage, self.stages = comm.rank, comm.world_size
        self.layers = split_layers(rnn.num_layers, self.stages)[self.stage]
        self.is_first, self.is_last = self.stage == 0, self.stage == self.stages - 1
        self.cell = getattr(net, "cell", "elman")
        self.activation, self.time_reduction = getattr(rnn, "nonlinearity", None), rnn.time_reduction
        self.n_states = 2 if self.cell == "lstm" else 1  # LSTM carries (h, c); Elman, GRU h
        self.hidden, self.every_step = rnn.hidden_size, net.every_step
        self.num_layers = rnn.num_layers
        self.weights = {k: layer_weights(rnn, k) for k in self.layers}
        self.readout = net.readout if self.is_last else None
        self.idle_s = 0.0  # seconds waiting for a neighbour since the last forward began
        self.seq_len = 0
        self._chunks, self._tops, self._sends = [], [], []

    def parameters(self) -> list[nn.Parameter]:
        """The parameters this stage owns (its layers, and the readout on the last stage)."""
        params = [w for k in self.layers for w in self.weights[k] if w is not None]
        return params + (list(self.readout.parameters()) if self.readout is not None else [])

    def counted_once(self) -> list[nn.Parameter]:
        """The parameters whose gradients this rank adds to the model's norm: all it owns."""
        return self.parameters()

    def owned_names(self, net: nn.Module) -> list[str]:
        """Names in `net.state_dict()` of the parameters this stage owns."""
        mine = {id(p) for p in self.parameters()}
        return [name for name, p in net.named_parameters() if id(p) in mine]

    def _phase(self, name: str):
        """A compute span for the timeline (compute.jsonl); nothing where the comm keeps no ledger
        (the planner's stand-in)."""
        ledger = getattr(self.comm, "ledger", None)
        return ledger.phase(name) if ledger is not None else contextlib.nullcontext()

    def _wait(self, handle) -> None:
        start = time.perf_counter()
        handle.wait()
        self.idle_s += time.perf_counter() - start

    def _run_layers(self, inp: torch.Tensor, h0s: list[tuple[torch.Tensor, ...]]):
        """This stage's layers on one chunk; returns top output and each layer's last state
        ((h,), or (h, c) for LSTM)."""
        h_lasts = []
        for k, h0 in zip(self.layers, h0s):
            W_ih, W_hh, b_ih, b_hh = self.weights[k]
            # "sum" per chunk: a chunk's mean would divide by its own length, not T (see backward)
            if self.cell == "lstm":
                inp, h_last, c_last = lstm_layer(inp, *h0, W_ih, W_hh, b_ih, b_hh, "sum",
                                                 trace_name=f"layer{k}")  # (t, B, H), (B, H) × 2
                h_lasts.append((h_last, c_last))
                continue
            if self.cell == "gru":
                inp, h_last = gru_layer(inp, *h0, W_ih, W_hh, b_ih, b_hh, "sum",
                                        trace_name=f"layer{k}")  # (t, B, H), (B, H)
            else:
                inp, h_last = elman_layer(inp, *h0, W_ih, W_hh, b_ih, b_hh, self.activation, "sum",
                                          trace_name=f"layer{k}")  # (t, B, H), (B, H)
            h_lasts.append((h_last,))
        return inp, h_lasts

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None, build_graph: bool):
        """The wavefront forward of one batch.

        Args:
            x: (B, T, I) inputs (only the first stage reads them; the others need the shape).
            h0: (L, B, H) initial states (each stage reads its layers' rows) or None for zeros;
                for LSTM (2L, B, H), h_0 then c_0 (SequenceModel's state).
            build_graph: keep what `backward` needs (False for evaluation: forward only).

        Returns:
            (ŷ, h_n): ŷ (B, T, O) or (B, O) on the last stage, None elsewhere; h_n (L, B, H)
            (LSTM: (2L, B, H), h_n then c_n) holding this stage's layers' final states (zeros
            in the other layers' rows).
        """
        B, T = x.shape[0], x.shape[1]
        L, H = self.num_layers, self.hidden
        dtype, device = self.weights[self.layers[0]][1].dtype, x.device
        bounds = chunk_bounds(T, self.chunk)
        self.idle_s, self.seq_len = 0.0, T
        self._batch, self._dtype, self._device, self._bounds = B, dtype, device, bounds
        x_tm = x.transpose(0, 1)  # (T, B, I) time-major
        h_n = torch.zeros(self.n_states * L, B, H, dtype=dtype, device=device)
        zeros = torch.zeros(B, H, dtype=dtype, device=device)
        h_prev = [tuple(h0[j * L + k] if h0 is not None else zeros for j in range(self.n_states))
                  for k in self.layers]  # (B, H) each, per layer: (h,) or (h, c)
        self._chunks, self._sends, tops = [], [], []
        pending = self._post_recv(0, ACT_TAG, self.stage - 1) if not self.is_first else None
        for c, (a, b) in enumerate(bounds):
            if self.is_first:
                inp = x_tm[a:b]  # (t, B, I)
            else:  # receive chunk c from below; the next may arrive while this one runs
                buf, handle = pending
                self._wait(handle)
                if c + 1 < len(bounds):
                    pending = self._post_recv(c + 1, ACT_TAG, self.stage - 1)
                inp = buf.requires_grad_(build_graph)
            with torch.set_grad_enabled(build_graph), \
                    self._phase(f"{'forward' if build_graph else 'eval'} c{c}"):
                h0s = [tuple(h.detach().requires_grad_(build_graph and c > 0) for h in states)
                       for states in h_prev]
                top, h_prev = self._run_layers(inp, h0s)  # (t, B, H), [((B, H), …)]
            if build_graph:
                self._chunks.append((inp, top, h0s, h_prev))
            if self.is_last:
                tops.append(top.detach().requires_grad_(build_graph))  # the readout's input
            else:
                self._sends.append(self.comm.isend(top.detach(), self.stage + 1, tag=ACT_TAG))
        for k, states in zip(self.layers, h_prev):
            for j, h in enumerate(states):
                h_n[j * L + k] = h.detach()
        self._wait_sends()
        if not self.is_last:
            return None, h_n
        with torch.set_grad_enabled(build_graph):  # the readout, on the last stage only
            if self.every_step:
                y_hat = self.readout(torch.cat(tops).transpose(0, 1))  # (B, T, O)
            else:
                y_hat = self.readout(tops[-1][-1])  # (B, O) from h_T
        self._tops = tops
        return y_hat, h_n

    def backward(self, y_hat: torch.Tensor | None, grad_y_hat: torch.Tensor | None) -> None:
        """The wavefront backward after `forward(..., build_graph=True)`.

        On the last stage `y_hat` (with its graph) and ∂L/∂ŷ start it; the other stages pass
        None and receive ∂L/∂h from above. Gradients go into `parameters()`' .grad; with
        time_reduction "mean" this call's RNN gradients are divided by T.
        """
        last = len(self._bounds) - 1
        grads_before = {id(w): None if w.grad is None else w.grad.clone() for w in self._rnn_params()}
        if self.is_last:  # ∂L/∂h of the top layer lands in the readout's input leaves
            torch.autograd.backward(y_hat, grad_y_hat)
        # ∂L/∂h_last (and ∂L/∂c_last) of each layer, from the later chunk
        carried = [(None,) * self.n_states] * len(self.layers)
        pending = self._post_recv(last, GRAD_TAG, self.stage + 1) if not self.is_last else None
        for c in range(last, -1, -1):
            inp, top, h0s, h_lasts = self._chunks[c]
            if self.is_last:
                leaf = self._tops[c]
                g_top = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            else:
                g_top, handle = pending
                self._wait(handle)
                if c > 0:
                    pending = self._post_recv(c - 1, GRAD_TAG, self.stage + 1)
            roots, grads = [top], [g_top]
            for states, gs in zip(h_lasts, carried):
                for h_last, g in zip(states, gs):
                    if g is not None:
                        roots.append(h_last)
                        grads.append(g)
            with self._phase(f"backward c{c}"):
                torch.autograd.backward(roots, grads)
            carried = [tuple(h.grad for h in states) for states in h0s] if c > 0 else carried
            if not self.is_first:
                self._sends.append(self.comm.isend(inp.grad, self.stage - 1, tag=GRAD_TAG))
        self._wait_sends()
        self._chunks, self._tops = [], []
        if self.time_reduction == "mean":  # the chapter's average over the T time steps
            for w in self._rnn_params():
                before = grads_before[id(w)]
                if w.grad is not None and before is None:
                    w.grad.div_(self.seq_len)
                elif w.grad is not None:  # only this call's share is averaged
                    w.grad.sub_(before).div_(self.seq_len).add_(before)

    def _rnn_params(self) -> list[nn.Parameter]:
        return [w for k in self.layers for w in self.weights[k] if w is not None]

    def _post_recv(self, c: int, tag: str, src: int):
        a, b = self._bounds[c]
        buf = torch.empty(b - a, self._batch, self.hidden, dtype=self._dtype,
                          device=self._device)  # (t, B, H)
        return buf, self.comm.irecv(buf, src, tag=tag)

    def _wait_sends(self) -> None:
        for handle in self._sends:
            handle.wait()
        self._sends = []


class PipelineParallel(ModelParallelContext):
    """`--parallel.strategy pipeline`: the training loop's DistContext (see model_parallel)."""

    strategy = "pipeline"

    def make_stage(self, net: nn.Module, comm: Communicator) -> PipelineStage:
        """This rank's block of layers."""
        return PipelineStage(net, comm, self.cfg.parallel.chunk)

    def share_output(self, y_local: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """ŷ broadcast from the last stage to the model group (tag pp-out, B·T·O·b bytes)."""
        comm = self.mesh.model_comm
        if comm.world_size == 1:
            return y_local
        if y_local is None:
            O = self.net.readout.out_features
            shape = (x.shape[0], x.shape[1], O) if self.stage.every_step else (x.shape[0], O)
            y_hat = torch.empty(shape, dtype=self.net.readout.weight.dtype, device=x.device)
        else:
            y_hat = y_local.detach().clone()
        start = time.perf_counter()
        comm.broadcast(y_hat, comm.world_size - 1, tag=OUT_TAG)
        self.stage.idle_s += time.perf_counter() - start  # waiting for the wavefront to drain
        return y_hat

    def piece_names(self) -> list[tuple[str, slice | None]]:
        """This stage's parameters by name, each a whole tensor of `net`."""
        names = {id(p): name for name, p in self.net.named_parameters()}
        return [(names[id(p)], None) for p in self.stage.parameters()]

    def local_pieces(self) -> dict[str, torch.Tensor]:
        """name -> tensor of every parameter this stage owns."""
        params = dict(self.net.named_parameters())
        return {name: params[name].detach().clone() for name in self.stage.owned_names(self.net)}
