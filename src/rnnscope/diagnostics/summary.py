"""All diagnostics of one traced pass, per layer, as plain dicts (what diagnostics.jsonl holds)."""

from __future__ import annotations

from rnnscope.diagnostics.dead import dead_units
from rnnscope.diagnostics.gated_flow import cell_flow, gated_horizon, hidden_flow
from rnnscope.diagnostics.gates import all_gates_saturation, carry_gate, gate_saturation, gates_summary
from rnnscope.diagnostics.gradient_flow import gradient_flow
from rnnscope.diagnostics.horizon import memory_horizon
from rnnscope.diagnostics.saturation import saturation, z_histogram
from rnnscope.engine.gated import GATES
from rnnscope.engine.trace import GatedLayerTrace, LayerTrace, Trace


def summarize_layer(layer: LayerTrace | GatedLayerTrace, epsilon: float = 1e-3, max_samples: int = 16) -> dict:
    """Saturation, dead units, gradient flow, memory horizon and the z histogram of one layer.

    A gated layer's summary (`summarize_gated_layer`) has the same keys but z_histogram (a
    histogram per gate instead), and per-gate ones besides.

    Args:
        layer: a LayerTrace with its backward fields filled (backward ran inside the Trace).
        epsilon: the dead-unit output threshold and the memory-horizon threshold.
        max_samples: samples of the batch used for the Jacobian chain of the horizon.
    """
    if isinstance(layer, GatedLayerTrace):
        return summarize_gated_layer(layer, epsilon, max_samples)
    return {
        "layer": layer.name,
        "activation": layer.activation,
        "steps": layer.steps,
        "batch": int(layer.x.shape[1]),
        "hidden": int(layer.W_hh.shape[0]),
        "saturation": saturation(layer).as_dict(),
        "dead": dead_units(layer, epsilon).as_dict(),
        "gradient_flow": gradient_flow(layer).as_dict(),
        "horizon": memory_horizon(layer, epsilon, max_samples).as_dict(),
        "z_histogram": z_histogram(layer),
    }


def summarize_gated_layer(layer: GatedLayerTrace, epsilon: float = 1e-3, max_samples: int = 16) -> dict:
    """An LSTM or GRU layer: what an Elman summary holds, plus per gate and the cell-state error.

    "activation" and "cell" are the cell's name ("lstm", "gru"); "saturation" is over all gates
    together, "gates" per gate; "carry" is the forget gate's (GRU: update gate's) distribution;
    "cell_gradient_flow" is ‖∂L/∂c_t‖ per step (LSTM; None for GRU); the horizon is that of the
    state (h, c) for LSTM.
    """
    per_gate = {gate: gate_saturation(layer, gate) for gate in GATES[layer.cell]}
    cell = cell_flow(layer)
    return {
        "layer": layer.name,
        "activation": layer.cell,
        "cell": layer.cell,
        "steps": layer.steps,
        "batch": int(layer.x.shape[1]),
        "hidden": int(layer.W_hh.shape[1]),
        "saturation": all_gates_saturation(layer, per_gate),
        "gates": gates_summary(layer, per_gate),
        "carry": carry_gate(layer).as_dict(),
        "dead": dead_units(layer, epsilon).as_dict(),
        "gradient_flow": hidden_flow(layer).as_dict(),
        "cell_gradient_flow": None if cell is None else cell.as_dict(),
        "horizon": gated_horizon(layer, epsilon, max_samples).as_dict(),
    }


def summarize(trace: Trace, epsilon: float = 1e-3, max_samples: int = 16) -> list[dict]:
    """One summary per traced layer (the latest record of each name, in recording order)."""
    latest: dict[str, LayerTrace | GatedLayerTrace] = {}
    for record in trace.layers:
        latest[record.name] = record  # truncated BPTT records a layer once per chunk: keep the last
    return [summarize_layer(layer, epsilon, max_samples) for layer in latest.values()]
