"""What a user's existing torch code does with a recurrent module, on rnnscope.nn.RNN, LSTM and GRU
(each test runs over the three): each test is a row of docs/compatibility.md (the rows tested
elsewhere name their test there)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn

TOL = 1e-9


MODULES = ("RNN", "LSTM", "GRU")
over_modules = pytest.mark.parametrize("module", MODULES)


def pair(module="RNN", **kwargs):
    """torch.nn's module and rnnscope.nn's (RNN, LSTM or GRU) with the same float64 weights."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, module)(3, 4, 2, batch_first=True, **kwargs).double()
    ours = getattr(rnnscope.nn, module)(3, 4, 2, batch_first=True, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def flat(result) -> list[torch.Tensor]:
    """(output, h_n) or an LSTM's (output, (h_n, c_n)) as one list."""
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


def outputs_and_grads(rnn, x, call=None):
    rnn.zero_grad()
    out, *states = flat((call or rnn)(x))
    (out.sin().sum() + sum(s.sum() * (k + 1) for k, s in enumerate(states))).backward()
    return [out.detach(), *(s.detach() for s in states)] + [p.grad.clone() for p in rnn.parameters()]


def assert_same(a_list, b_list, tol=TOL):
    for a, b in zip(a_list, b_list, strict=True):
        assert rel_err(a.double(), b.double()) <= tol


X = torch.randn(2, 5, 3, dtype=torch.float64)


@over_modules
def test_flatten_parameters_is_a_harmless_no_op(module):
    ours, theirs = pair(module)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    assert ours.flatten_parameters() is None
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    assert_same(outputs_and_grads(ours, X), outputs_and_grads(theirs, X))


@over_modules
@pytest.mark.parametrize("bidirectional", [False, True])
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients_like_torch(module, bidirectional):
    """B = 0 (a filtered or split batch with nothing left): torch returns empty outputs that a
    loss can still backpropagate through; the same shapes here, and every gradient zero."""
    ours, theirs = pair(module, bidirectional=bidirectional)
    empty = torch.randn(0, 5, 3, dtype=torch.float64, requires_grad=True)
    mine, reference = outputs_and_grads(ours, empty), outputs_and_grads(theirs, empty)
    assert [t.shape for t in mine] == [t.shape for t in reference]
    assert all(not g.any() for g in mine[len(mine) - len(list(ours.parameters())):])
    assert empty.grad is not None and empty.grad.shape == empty.shape


@over_modules
def test_state_dict_round_trips_both_ways_and_strict(module):
    ours, theirs = pair(module, bidirectional=True)
    fresh_torch = getattr(torch.nn, module)(3, 4, 2, batch_first=True, bidirectional=True).double()
    fresh_torch.load_state_dict(ours.state_dict(), strict=True)
    back = getattr(rnnscope.nn, module)(3, 4, 2, batch_first=True, bidirectional=True).double()
    back.load_state_dict(fresh_torch.state_dict(), strict=True)
    assert_same(outputs_and_grads(back, X), outputs_and_grads(theirs, X))


@over_modules
@pytest.mark.parametrize("convert, dtype", [(lambda m: m.half(), torch.float16),
                                            (lambda m: m.bfloat16(), torch.bfloat16),
                                            (lambda m: m.to(torch.float32), torch.float32)])
def test_to_half_bfloat16_float_run_in_that_dtype_like_torch(module, convert, dtype):
    ours, theirs = (convert(m) for m in pair(module))
    x = X.to(dtype)
    mine, reference = outputs_and_grads(ours, x), outputs_and_grads(theirs, x)
    assert mine[0].dtype == reference[0].dtype == dtype
    assert_same(mine, reference, tol=3e-2 if dtype != torch.float32 else 1e-5)


@over_modules
def test_deepcopy_is_independent_and_equal(module):
    ours, _ = pair(module)
    clone = copy.deepcopy(ours)
    assert_same(outputs_and_grads(clone, X), outputs_and_grads(ours, X))
    with torch.no_grad():
        clone.weight_hh_l0.zero_()
    assert ours.weight_hh_l0.abs().sum() > 0


@over_modules
def test_pickle_and_torch_save_of_the_whole_module(module):
    ours, _ = pair(module, **({"nonlinearity": "relu"} if module == "RNN" else {}))
    restored = pickle.loads(pickle.dumps(ours))
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for other in (restored, loaded):
        assert repr(other) == repr(ours)
        assert_same(outputs_and_grads(other, X), outputs_and_grads(ours, X))


@over_modules
def test_data_parallel_wraps_it(module):
    """On a CPU-only machine DataParallel calls the module itself; on GPUs it replicates it
    (the module holds parameters and plain attributes only, which replicate)."""
    ours, theirs = pair(module)
    wrapped = torch.nn.DataParallel(ours)
    assert_same(outputs_and_grads(ours, X, wrapped), outputs_and_grads(theirs, X))


@over_modules
def test_functional_call_with_other_parameters_equals_torch(module):
    ours, theirs = pair(module)
    params = {name: (p * 0.5).detach().requires_grad_(True) for name, p in theirs.named_parameters()}
    results = []
    for rnn in (ours, theirs):
        values = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        out, *states = flat(torch.func.functional_call(rnn, values, (X,)))
        grads = torch.autograd.grad(out.sin().sum() + sum(s.sum() for s in states), list(values.values()))
        results.append([out.detach(), *(s.detach() for s in states), *grads])
    assert_same(*results)


@over_modules
def test_func_transforms_fail_with_torchs_line(module):
    ours, _ = pair(module)
    params = dict(ours.named_parameters())
    with pytest.raises(RuntimeError, match="autograd.Function with functorch transforms"):
        torch.func.grad(lambda p: torch.func.functional_call(ours, p, (X,))[0].sum())(params)


@over_modules
def test_jit_script_is_refused_with_a_line_naming_the_alternatives(module):
    model = torch.nn.Sequential(getattr(rnnscope.nn, module)(3, 4))  # found inside a bigger model too
    with pytest.raises(RuntimeError, match=rf"torch.jit.script cannot compile rnnscope.nn.{module}.*torch.export"):
        torch.jit.script(model)


@over_modules
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace_works_for_inference_at_the_traced_length_only(module, monkeypatch):
    """The trace records the unrolled time loop: T is frozen in, and its in-place steps replay
    only without autograd (torch.export has neither limit). LSTM: its pure-torch loop (the
    compiled one, engine/lstm_kernel.py, replays at any length: tests/engine/test_lstm_kernel.py)."""
    monkeypatch.setenv("RNNSCOPE_FUSED_LSTM", "0")
    ours, _ = pair(module)
    ours.eval()
    traced = torch.jit.trace(ours, (X,))
    with torch.no_grad():
        assert_same(flat(traced(X)), flat(ours(X)))
        with pytest.raises(RuntimeError):
            traced(torch.randn(2, 7, 3, dtype=torch.float64))


@over_modules
def test_hooks_and_gradient_clipping_see_ordinary_parameters(module):
    ours, _ = pair(module)
    seen = []
    ours.register_forward_hook(lambda module, args, output: seen.append(output[0].shape))
    outputs_and_grads(ours, X)
    assert seen == [(2, 5, 4)]
    total = torch.nn.utils.clip_grad_norm_(ours.parameters(), 1e-3)
    assert total > 1e-3
    assert torch.stack([p.grad.norm() for p in ours.parameters()]).norm() <= 1e-3 * (1 + 1e-6)


@over_modules
def test_parametrized_weights_are_used(module):
    """torch.nn.utils.parametrize swaps a weight for a computed one; the engine reads it."""
    ours, theirs = pair(module)
    for rnn in (ours, theirs):
        torch.nn.utils.parametrizations.weight_norm(rnn, "weight_hh_l0")
    assert_same(outputs_and_grads(ours, X), outputs_and_grads(theirs, X))
