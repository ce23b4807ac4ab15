"""`rnnscope diagnose --compare-inits`: the same model at initialization under several schemes and
scales (and, for LSTM, forget-gate biases), side by side (saturation, dead units, gradient flow,
memory horizon).

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


def compare_inits(cfg, schemes=SCHEMES, scales=SCALES, epsilon: float | None = None,
                  forget_biases=None) -> list[dict]:
    """One entry per (scheme, scale[, forget bias]): {"init", "scale", "forget_bias", "loss", "layers": [summary, …]}.

    Args:
        cfg: a rnnscope.train Config (the run's, or built from defaults and overrides).
        schemes: --model.init values to try.
        scales: --model.init_scale values to try.
        epsilon: dead-unit and horizon threshold (default: the config's diagnostics.epsilon).
        forget_biases: LSTM only: --model.forget_bias values to try (None: the config's; the
            entries then have forget_bias None).
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
    if forget_biases is not None and cfg.model.cell != "lstm":
        raise UserError(f"--forget-biases is for --model.cell lstm, got --model.cell {cfg.model.cell}")
    if cfg.model.cell != "elman" and "identity" in schemes:
        raise UserError(f"--schemes: identity (W_hh = I) is for --model.cell elman, got --model.cell "
                        f"{cfg.model.cell}; choose from default, xavier, orthogonal")
    epsilon = cfg.diagnostics.epsilon if epsilon is None else epsilon
    dataset = build_dataset(cfg.data, cfg.train.seed)
    inputs, targets = run_batch(dataset)
    results = []
    for scheme in schemes:
        for scale in scales:
            for bias in forget_biases if forget_biases is not None else (None,):
                trial = copy.deepcopy(cfg)
                trial.model.init, trial.model.init_scale = scheme, float(scale)
                if bias is not None:
                    trial.model.forget_bias = float(bias)
                model = model_for(trial, dataset)  # seeded by --train.seed: only scheme, scale, bias differ
                model.train()
                trace, loss = traced_pass(model, inputs, targets, loss_fn=run_loss(dataset.kind))
                results.append({"init": scheme, "scale": float(scale),
                                "forget_bias": None if bias is None else float(bias), "loss": loss,
                                "layers": summarize(trace, epsilon)})
    return results
