"""Diagnostics of what the chapter warns about: saturated and dead neurons, vanishing or exploding
gradients, forgotten history. Every number is read from the engine's Trace.

    from rnnscope.diagnostics import traced_pass, summarize
    trace, loss = traced_pass(model, inputs, targets)
    for layer in summarize(trace):
        print(layer["layer"], layer["gradient_flow"]["verdict"], layer["horizon"]["horizon"])

LSTM and GRU layers are summarized per gate (`gates`, `gated_flow`): docs/diagnostics.md.
"""

from rnnscope.diagnostics.dead import DeadUnits, dead_units
from rnnscope.diagnostics.gated_flow import cell_flow, gated_horizon, hidden_flow
from rnnscope.diagnostics.gates import carry_gate, gate_saturation
from rnnscope.diagnostics.gradient_flow import GradientFlow, gradient_flow
from rnnscope.diagnostics.horizon import Horizon, memory_horizon
from rnnscope.diagnostics.probe import find_rnn, traced_pass
from rnnscope.diagnostics.record import read_records, record_step
from rnnscope.diagnostics.saturation import Saturation, saturation
from rnnscope.diagnostics.summary import summarize, summarize_layer
from rnnscope.diagnostics.thresholds import SATURATED_RATIO, SLOW_RATIO, thresholds

__all__ = [
    "DeadUnits",
    "GradientFlow",
    "Horizon",
    "SATURATED_RATIO",
    "SLOW_RATIO",
    "Saturation",
    "carry_gate",
    "cell_flow",
    "dead_units",
    "gate_saturation",
    "gated_horizon",
    "find_rnn",
    "gradient_flow",
    "hidden_flow",
    "memory_horizon",
    "read_records",
    "record_step",
    "saturation",
    "summarize",
    "summarize_layer",
    "thresholds",
    "traced_pass",
]
