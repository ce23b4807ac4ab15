"""The explicit BPTT engine: Elman cells, the sequence loop as an autograd.Function, and Trace."""

from rnnscope.engine.bptt import TIME_REDUCTIONS, ElmanBPTT, elman_layer
from rnnscope.engine.cells import ACTIVATIONS, Activation, get_activation
from rnnscope.engine.trace import LayerTrace, Trace, active_trace

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ElmanBPTT",
    "LayerTrace",
    "TIME_REDUCTIONS",
    "Trace",
    "active_trace",
    "elman_layer",
    "get_activation",
]
