"""The diagnostics plots are written as PNGs from plain summaries, including awkward values."""

import torch

from rnnscope.diagnostics import summarize, traced_pass
from rnnscope.nn import RNN
from rnnscope.report import plots


def _summaries():
    torch.manual_seed(0)
    rnn = RNN(1, 4, num_layers=2, nonlinearity="sigmoid", batch_first=True)
    x, y = torch.randn(3, 6, 1), torch.randn(3, 6, 4)
    trace, _ = traced_pass(rnn, x, y)
    return summarize(trace)


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_plot_writes_a_png(tmp_path):
    layers = _summaries()
    assert _is_png(plots.plot_activation_usage(layers, tmp_path / "a" / "usage.png"))
    records = [{"step": 10, "layers": layers}, {"step": 20, "layers": layers}]
    assert _is_png(plots.plot_gradient_flow(records, tmp_path / "flow.png"))
    curves = {layer["layer"]: layer["horizon"]["relative"] for layer in layers}
    assert _is_png(plots.plot_horizon(curves, 1e-3, tmp_path / "horizon.png"))
    norms = {layer["layer"]: layer["gradient_flow"]["norms"] for layer in layers}
    assert _is_png(plots.plot_gradient_norms(norms, tmp_path / "norms.png"))


def test_json_strings_for_inf_and_zero_norms_do_not_break_log_axes(tmp_path):
    layer = _summaries()[0]
    layer["gradient_flow"]["norms"] = ["inf", 0.0, 1.0, "nan", 1e-300]
    assert _is_png(plots.plot_gradient_flow([{"step": 1, "layers": [layer]}], tmp_path / "flow.png"))
    assert _is_png(plots.plot_horizon({"x": [1.0, "inf", 0.0]}, 1e-3, tmp_path / "h.png"))


def test_first_nonzero_finds_where_the_gradient_underflowed():
    assert plots.first_nonzero([0.0, "0.0", 1e-30, 1.0]) == 2
    assert plots.first_nonzero([1.0, 0.0]) == 0
    assert plots.first_nonzero([0.0, "nan"]) == 2


def test_init_comparison_is_grouped_by_scheme(tmp_path):
    layers = _summaries()
    results = [{"init": scheme, "scale": scale, "layers": layers}
               for scheme in ("default", "identity") for scale in (0.5, 1.0, 10.0)]
    for kind in ("gradient_flow", "horizon"):
        assert _is_png(plots.plot_inits(results, kind, tmp_path / f"{kind}.png", "title"))
