"""All diagnostics of one traced pass, per layer, as plain dicts (what diagnostics.jsonl holds)."""

from __future__ import annotations

from rnnscope.diagnostics.dead import dead_units
from rnnscope.diagnostics.gradient_flow import gradient_flow
from rnnscope.diagnostics.horizon import memory_horizon
from rnnscope.diagnostics.saturation import saturation, z_histogram
from rnnscope.engine.trace import LayerTrace, Trace


def summarize_layer(layer: LayerTrace, epsilon: float = 1e-3, max_samples: int = 16) -> dict:
    """Saturation, dead units, gradient flow, memory horizon and the z histogram of one layer.

    Args:
        layer: a LayerTrace with its backward fields filled (backward ran inside the Trace).
        epsilon: the dead-unit output threshold and the memory-horizon threshold.
        max_samples: samples of the batch used for the Jacobian chain of the horizon.
    """
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


def summarize(trace: Trace, epsilon: float = 1e-3, max_samples: int = 16) -> list[dict]:
    """One summary per traced layer (the latest record of each name, in recording order)."""
    latest: dict[str, LayerTrace] = {}
    for record in trace.layers:
        latest[record.name] = record  # truncated BPTT records a layer once per chunk: keep the last
    return [summarize_layer(layer, epsilon, max_samples) for layer in latest.values()]
