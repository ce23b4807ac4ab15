"""Verdict rows and their advice, from hand-made layer summaries."""

from rnnscope.diagnostics.advice import rows_for


def summary(activation="sigmoid", saturated=0.0, slow=0.0, dead=(), verdict="healthy", growth=1.0, span=1.0,
            direct=0.0, horizon=10, steps=11):
    return {
        "layer": "layer0",
        "activation": activation,
        "saturation": {"activation": activation, "saturated_fraction": saturated, "slow_fraction": slow,
                       "saturated_rule": "|z| > 5.5", "slow_rule": "|z| > 2.2", "mean_abs_z": 1.0},
        "dead": {"activation": activation, "units": list(dead), "hidden": 8, "rule": "|h| < 0.001"},
        "gradient_flow": {"growth_per_step": growth, "span": span, "verdict": verdict, "direct_share": direct},
        "horizon": {"epsilon": 1e-3, "horizon": horizon, "steps": steps, "reached_start": horizon == steps - 1},
    }


def verdicts(s):
    return {row.check: (row.verdict, row.advice) for row in rows_for(s)}


def test_a_healthy_layer_has_no_advice():
    rows = rows_for(summary())
    assert [row.verdict for row in rows] == ["ok", "ok", "healthy", "remembers all"]
    assert not any(row.is_problem() or row.advice for row in rows)


def test_each_problem_gets_its_advice():
    v = verdicts(summary(saturated=0.81, slow=0.9, dead=(1, 2), verdict="vanishing", growth=0.2, span=1e-9,
                         horizon=1, steps=40))
    assert v["saturation"][0] == "saturated" and "xavier" in v["saturation"][1]
    assert v["dead neurons"][0] == "dead units" and "σ(−7)" in v["dead neurons"][1]
    assert v["gradient flow"][0] == "vanishing" and "σ'(z) ≤ 0.25" in v["gradient flow"][1]
    assert v["memory horizon"][0] == "short memory"
    assert verdicts(summary(slow=0.3))["saturation"][0] == "slow learning"
    assert "--optim.clip" in verdicts(summary(verdict="exploding"))["gradient flow"][1]


def test_relu_and_per_step_losses():
    assert verdicts(summary("relu", saturated=0.5, slow=0.5))["saturation"][0] == "ok"
    assert verdicts(summary("relu", saturated=0.9, slow=0.9))["saturation"][0] == "mostly inactive"
    row = next(r for r in rows_for(summary(direct=0.8)) if r.check == "gradient flow")
    assert "each step's own error" in row.finding
