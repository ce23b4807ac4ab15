"""The explicit BPTT engine: Elman, LSTM and GRU layers as autograd.Functions, and Trace."""

from rnnscope.engine.bptt import TIME_REDUCTIONS, ElmanBPTT, elman_layer
from rnnscope.engine.cells import ACTIVATIONS, Activation, get_activation
from rnnscope.engine.gated import GATE_NAMES, GATES
from rnnscope.engine.gru import GRUBPTT, gru_layer
from rnnscope.engine.lstm import LSTMBPTT, lstm_layer
from rnnscope.engine.trace import GatedLayerTrace, LayerTrace, Trace, active_trace

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ElmanBPTT",
    "GATES",
    "GATE_NAMES",
    "GRUBPTT",
    "GatedLayerTrace",
    "LSTMBPTT",
    "LayerTrace",
    "TIME_REDUCTIONS",
    "Trace",
    "active_trace",
    "elman_layer",
    "get_activation",
    "gru_layer",
    "lstm_layer",
]
