"""What a user's existing torch code does with an RNN module, on rnnscope.nn.RNN: each test is a
row of docs/compatibility.md (the rows tested elsewhere name their test there)."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from testing_utils import rel_err

import rnnscope.nn

TOL = 1e-9


def pair(**kwargs):
    """torch.nn.RNN and rnnscope.nn.RNN with the same float64 weights."""
    torch.manual_seed(0)
    theirs = torch.nn.RNN(3, 4, 2, batch_first=True, **kwargs).double()
    ours = rnnscope.nn.RNN(3, 4, 2, batch_first=True, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def outputs_and_grads(rnn, x, call=None):
    rnn.zero_grad()
    out, h_n = (call or rnn)(x)
    (out.sin().sum() + h_n.sum()).backward()
    return [out.detach(), h_n.detach()] + [p.grad.clone() for p in rnn.parameters()]


def assert_same(a_list, b_list, tol=TOL):
    for a, b in zip(a_list, b_list, strict=True):
        assert rel_err(a.double(), b.double()) <= tol


X = torch.randn(2, 5, 3, dtype=torch.float64)


def test_flatten_parameters_is_a_harmless_no_op():
    ours, theirs = pair()
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    assert ours.flatten_parameters() is None
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())
    assert_same(outputs_and_grads(ours, X), outputs_and_grads(theirs, X))


def test_state_dict_round_trips_both_ways_and_strict():
    ours, theirs = pair(bidirectional=True)
    fresh_torch = torch.nn.RNN(3, 4, 2, batch_first=True, bidirectional=True).double()
    fresh_torch.load_state_dict(ours.state_dict(), strict=True)
    back = rnnscope.nn.RNN(3, 4, 2, batch_first=True, bidirectional=True).double()
    back.load_state_dict(fresh_torch.state_dict(), strict=True)
    assert_same(outputs_and_grads(back, X), outputs_and_grads(theirs, X))


@pytest.mark.parametrize("convert, dtype", [(lambda m: m.half(), torch.float16),
                                            (lambda m: m.bfloat16(), torch.bfloat16),
                                            (lambda m: m.to(torch.float32), torch.float32)])
def test_to_half_bfloat16_float_run_in_that_dtype_like_torch(convert, dtype):
    ours, theirs = (convert(m) for m in pair())
    x = X.to(dtype)
    mine, reference = outputs_and_grads(ours, x), outputs_and_grads(theirs, x)
    assert mine[0].dtype == reference[0].dtype == dtype
    assert_same(mine, reference, tol=3e-2 if dtype != torch.float32 else 1e-5)


def test_deepcopy_is_independent_and_equal():
    ours, _ = pair()
    clone = copy.deepcopy(ours)
    assert_same(outputs_and_grads(clone, X), outputs_and_grads(ours, X))
    with torch.no_grad():
        clone.weight_hh_l0.zero_()
    assert ours.weight_hh_l0.abs().sum() > 0


def test_pickle_and_torch_save_of_the_whole_module():
    ours, _ = pair(nonlinearity="relu")
    restored = pickle.loads(pickle.dumps(ours))
    buffer = io.BytesIO()
    torch.save(ours, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for other in (restored, loaded):
        assert repr(other) == repr(ours)
        assert_same(outputs_and_grads(other, X), outputs_and_grads(ours, X))


def test_data_parallel_wraps_it():
    """On a CPU-only machine DataParallel calls the module itself; on GPUs it replicates it
    (the module holds parameters and plain attributes only, which replicate)."""
    ours, theirs = pair()
    wrapped = torch.nn.DataParallel(ours)
    assert_same(outputs_and_grads(ours, X, wrapped), outputs_and_grads(theirs, X))


def test_functional_call_with_other_parameters_equals_torch():
    ours, theirs = pair()
    params = {name: (p * 0.5).detach().requires_grad_(True) for name, p in theirs.named_parameters()}
    results = []
    for module in (ours, theirs):
        values = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        out, h_n = torch.func.functional_call(module, values, (X,))
        grads = torch.autograd.grad(out.sin().sum() + h_n.sum(), list(values.values()))
        results.append([out.detach(), h_n.detach(), *grads])
    assert_same(*results)


def test_func_transforms_fail_with_torchs_line():
    ours, _ = pair()
    params = dict(ours.named_parameters())
    with pytest.raises(RuntimeError, match="autograd.Function with functorch transforms"):
        torch.func.grad(lambda p: torch.func.functional_call(ours, p, (X,))[0].sum())(params)


def test_jit_script_is_refused_with_a_line_naming_the_alternatives():
    model = torch.nn.Sequential(rnnscope.nn.RNN(3, 4))  # found inside a bigger model too
    with pytest.raises(RuntimeError, match=r"torch.jit.script cannot compile rnnscope.nn.RNN.*torch.export"):
        torch.jit.script(model)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace_works_for_inference_at_the_traced_length_only():
    """The trace records the unrolled time loop: T is frozen in, and its in-place steps replay
    only without autograd (torch.export has neither limit)."""
    ours, _ = pair()
    ours.eval()
    traced = torch.jit.trace(ours, (X,))
    with torch.no_grad():
        assert_same(traced(X), ours(X))
        with pytest.raises(RuntimeError):
            traced(torch.randn(2, 7, 3, dtype=torch.float64))


def test_hooks_and_gradient_clipping_see_ordinary_parameters():
    ours, _ = pair()
    seen = []
    ours.register_forward_hook(lambda module, args, output: seen.append(output[0].shape))
    outputs_and_grads(ours, X)
    assert seen == [(2, 5, 4)]
    total = torch.nn.utils.clip_grad_norm_(ours.parameters(), 1e-3)
    assert total > 1e-3
    assert torch.stack([p.grad.norm() for p in ours.parameters()]).norm() <= 1e-3 * (1 + 1e-6)


def test_parametrized_weights_are_used():
    """torch.nn.utils.parametrize swaps a weight for a computed one; the engine reads it."""
    ours, theirs = pair()
    for module in (ours, theirs):
        torch.nn.utils.parametrizations.weight_norm(module, "weight_hh_l0")
    assert_same(outputs_and_grads(ours, X), outputs_and_grads(theirs, X))
