"""`rnnscope explain lstm` / `gru`: every number equals an unrolled autograd reference in float64,
and the story holds (the error along the carried state is × f_t or × z_t, not × w_h·σ'(z_t))."""

import json
import math

import pytest
import torch

from rnnscope.cli import main
from rnnscope.explain.gated_walkthrough import GatedSetting, gated_walkthrough


def reference(setting: GatedSetting) -> dict:
    """The unit unrolled in plain torch ops, every quantity's gradient retained."""
    p = {g: {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in zip(("w_x", "w_h", "b"), w)}
         for g, w in setting.gate_weights().items()}
    h = c = torch.zeros((), dtype=torch.float64)
    kept = []
    for x in setting.sequence:
        a = {g: q["w_x"] * x + q["b"] + (q["w_h"] * h if g != "n" else 0) for g, q in p.items()}
        if setting.cell == "lstm":
            i, f, g, o = torch.sigmoid(a["i"]), torch.sigmoid(a["f"]), torch.tanh(a["g"]), torch.sigmoid(a["o"])
            c = f * c + i * g
            h_new = o * torch.tanh(c)
        else:
            r, z = torch.sigmoid(a["r"]), torch.sigmoid(a["z"])
            a["n"] = a["n"] + r * (p["n"]["w_h"] * h)  # torch's GRU: r scales W_hn h + b_hn (b_hn = 0 here)
            h_new = z * h + (1 - z) * torch.tanh(a["n"])
        for t in [*a.values(), c, h_new]:
            if t.requires_grad:
                t.retain_grad()
        kept.append({"a": a, "c": c, "h": h_new})
        h = h_new
    ((h - setting.target) ** 2).backward()
    return {"steps": kept, "params": p}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("sequence, bias", [((0.5, -0.2, 0.9), None), ((1.0, -2.0, 0.3, 0.8, -0.5), 2.5)])
def test_every_number_equals_unrolled_autograd(cell, sequence, bias):
    setting = GatedSetting(cell=cell, sequence=sequence, target=0.4, carry_bias=bias)
    result = gated_walkthrough(setting)
    ref = reference(setting)
    close = lambda got, want: math.isclose(got, float(torch.as_tensor(want).detach()), rel_tol=1e-12, abs_tol=1e-14)  # noqa: E731
    for row, step in zip(result["forward"], ref["steps"]):
        assert close(row["h"], step["h"])
        assert all(close(row["gates"][g]["a"], step["a"][g]) for g in step["a"])
        if cell == "lstm":
            assert close(row["c"], step["c"])
    for row in result["backward"]:
        step = ref["steps"][row["t"] - 1]
        assert close(row["dh"], step["h"].grad)  # ∂L/∂h_t, total
        assert all(close(row["delta"][g], step["a"][g].grad) for g in step["a"])  # error term per gate
        if cell == "lstm":
            assert close(row["dc"], step["c"].grad)  # the cell-state error
    for g, grads in result["engine_gradient"].items():
        for k, value in grads.items():
            assert close(value, ref["params"][g][k].grad)
            assert close(result["accumulated"][g][k], ref["params"][g][k].grad)
    assert result["check"] < 1e-14


def test_the_error_along_the_cell_state_is_times_f():
    result = gated_walkthrough(GatedSetting(cell="lstm"))
    rows = {row["t"]: row for row in result["backward"]}
    forget = {row["t"]: row["gates"]["f"]["value"] for row in result["forward"]}
    for t in (1, 2):  # ∂L/∂c_t = (from h_t) + ∂L/∂c_(t+1)·f_(t+1)
        assert math.isclose(rows[t + 1]["to_c_prev"], rows[t + 1]["dc"] * forget[t + 1], rel_tol=1e-12)
        jacobian = rows[t + 1]["jacobian"]  # ∂(h, c)_(t+1)/∂(h, c)_t; its c→c entry is f_(t+1)
        assert math.isclose(jacobian[1][1], forget[t + 1], rel_tol=1e-12)
    carried = math.prod(r["carry"] for r in result["backward"])
    elman = math.prod(result["elman"]["factors"])
    assert all(f <= 0.25 * result["elman"]["w_h"] for f in result["elman"]["factors"])
    assert carried > 50 * elman  # 0.43 against 0.0057 at the defaults


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cli_prints_tables_and_json(cell, capsys):
    assert main(["explain", cell]) == 0
    out = capsys.readouterr().out
    for words in ("step by step", "Backward, last step first", "Elman", "engine gradient"):
        assert words in out, words
    assert main(["explain", cell, "--json", "--sequence=1,-1", "--forget-bias", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["forward"]) == 2 and result["weights"][{"lstm": "f", "gru": "z"}[cell]]["b"] == 3.0


def test_cli_refuses_options_of_the_other_topics(capsys):
    assert main(["explain", "bptt", "--forget-bias", "1"]) == 2
    assert "--forget-bias is for `rnnscope explain lstm` or `gru`, not bptt" in capsys.readouterr().err
    assert main(["explain", "lstm", "--hidden", "3", "--w-h", "2"]) == 2
    assert "--hidden, --w-h apply to the Elman topics" in capsys.readouterr().err
