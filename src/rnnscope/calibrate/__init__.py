"""Calibration: time this machine by running the training loop and the collectives, for the planner.

It sits above train/ and parallel/ (it runs them) and above plan/ (it fills PlanInputs); nothing
below imports it. Modules, each importing only those before it:

- `fit`: regimes and the engine's speed fitted from measured numbers (pure).
- `looptime`: whole steps of train's loop, timed.
- `speed`: the engine's speed (`ComputeFit`) from loop steps at a few shapes.
- `pattern`: the strategies' own code paths (`Patterns`), timed without a network.
- `loopback`: the gloo micro-benchmark on 127.0.0.1 (`Measured`), in N processes at once, and
  `pooled`: several measurements of one configuration as their median.
- `machine`: `calibrated_inputs` (`fitted_inputs` from measurements already made): PlanInputs for
  local runs and the `Calibration` behind them.
"""
