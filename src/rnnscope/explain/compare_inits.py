"""`rnnscope diagnose --compare-inits`: the same model at initialization under several schemes and
scales, side by side (saturation, dead units, gradient flow, memory horizon).

The model and its data are the run's (or a config's): rnnscope.train builds them, initializes
them with `--model.init` and `--model.init_scale` exactly as training would, and the engine traces
one forward and backward pass on the same batch for every combination.
"""

from __future__ import annotations

import copy
import dataclasses

from rnnscope.explain.run_diagnosis import run_batch, run_loss
from rnnscope.diagnostics.probe import traced_pass
from rnnscope.diagnostics.summary import summarize
from rnnscope.errors import UserError

SCHEMES = ("default", "xavier", "orthogonal", "identity")
SCALES = (0.5, 1.0, 3.0, 10.0)


def compare_inits(cfg, schemes=SCHEMES, scales=SCALES, epsilon: float | None = None) -> list[dict]:
    """One entry per (scheme, scale): {"init", "scale", "loss", "layers": [summary, …]}.

    Args:
        cfg: a rnnscope.train Config (the run's, or built from defaults and overrides).
        schemes: --model.init values to try.
        scales: --model.init_scale values to try.
        epsilon: dead-unit and horizon threshold (default: the config's diagnostics.epsilon).
    """
    from rnnscope.data import build_dataset
    from rnnscope.train.loop import model_for

    from rnnscope.train.config import ModelConfig

    known = next(f for f in dataclasses.fields(ModelConfig) if f.name == "init").metadata["choices"]
    for scheme in schemes:
        if scheme not in known:
            raise UserError(f"--schemes: unknown initialization {scheme!r}; choose from {', '.join(known)}")
    for scale in scales:
        if not scale > 0:
            raise UserError(f"--scales: every scale must be > 0, got {scale}")
    epsilon = cfg.diagnostics.epsilon if epsilon is None else epsilon
    dataset = build_dataset(cfg.data, cfg.train.seed)
    inputs, targets = run_batch(dataset)
    results = []
    for scheme in schemes:
        for scale in scales:
            trial = copy.deepcopy(cfg)
            trial.model.init, trial.model.init_scale = scheme, float(scale)
            model = model_for(trial, dataset)  # seeded by --train.seed: only the scheme and scale differ
            model.train()
            trace, loss = traced_pass(model, inputs, targets, loss_fn=run_loss(dataset.kind))
            results.append({"init": scheme, "scale": float(scale), "loss": loss,
                            "layers": summarize(trace, epsilon)})
    return results
