"""NaN and Inf land where torch puts them: every path, forward and both
gradients, NaN and +-Inf in the input, weight, bias and grad_output.

torch's float64 CPU convolution is the oracle (its float32 kernels differ
among themselves: the depthwise weight gradient skips the padding there).
Its rules, which the NumPy reference in tests/reference.py follows too: the
forward and the weight gradient multiply the zero padding (0 * NaN is NaN);
the input gradient pairs a weight only with grad_output positions that exist.
Finite operands lie in [-1, 1], so no finite sum overflows and the placement
of NaN and Inf does not depend on the order of a sum.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cyconv
from helpers import TOLERANCE

# (input shape, weight shape, conv2d keywords); between them every path of
# every direction (the test below checks that they are reached)
CASES = [
    ((2, 4, 7, 8), (4, 1, 3, 3), dict(padding=1, groups=4)),         # planes
    ((1, 2, 9, 9), (2, 2, 3, 3), dict(padding=1, stride=2)),         # planes, strided
    ((1, 1, 7, 7), (1, 1, 1, 1), dict(padding=1, stride=2)),         # planes, 1x1 strided
    ((2, 4, 6, 7), (40, 4, 3, 3), dict(padding=1)),                  # row bands
    ((1, 3, 9, 9), (40, 3, 3, 3), dict(padding=2, stride=2, dilation=2)),
    ((2, 1, 8, 9), (6, 1, 5, 5), dict(padding=2)),                   # narrow
    ((2, 16, 5, 6), (8, 16, 1, 1), {}),                              # pointwise
    ((1, 8, 7, 7), (4, 8, 3, 3), dict(padding=1, stride=2)),         # gathered
    ((2, 5, 6, 6), (40, 5, 3, 3), dict(padding=1, stride=2)),        # input gradient spread
    ((1, 4, 5, 4), (3, 4, 2, 3), dict(padding=2**41, stride=2**41)),  # far taps
]


def _torch(x, w, b, go, conv):
    tx, tw, tb = (torch.from_numpy(a.astype(np.float64)).requires_grad_() for a in (x, w, b))
    out = F.conv2d(tx, tw, tb, **conv)
    grads = torch.autograd.grad(out, (tx, tw, tb), torch.from_numpy(go.astype(np.float64)))
    return [out.detach().numpy()] + [g.numpy() for g in grads]


def _ours(x, w, b, go, conv):
    return [cyconv.conv2d(x, w, b, **conv),
            cyconv.grad.conv2d_input(x.shape, w, go, **conv),
            cyconv.grad.conv2d_weight(x, w.shape, go, **conv),
            cyconv.grad.conv2d_bias(go)]


def assert_same_placement(got, expected, dtype, what):
    for test in (np.isnan, np.isposinf, np.isneginf):
        mismatch = test(got) != test(expected)
        assert not mismatch.any(), (f"{what}: {test.__name__} differs at "
                                    f"{np.argwhere(mismatch)[:5].tolist()}")
    finite = np.isfinite(expected)
    tol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(got[finite], expected[finite], rtol=tol, atol=tol * 10,
                               err_msg=what)


def _spoil(data, array, label):
    """array with 0 to 3 of its values replaced by NaN, +Inf or -Inf."""
    n = data.draw(st.integers(0, 3), label=f"{label} count")
    flat = array.reshape(-1)
    for _ in range(n):
        at = data.draw(st.integers(0, flat.size - 1), label=f"{label} at")
        flat[at] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label=label)
    return array


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=st.sampled_from(CASES), dtype=st.sampled_from([np.float32, np.float64]))
def test_nan_and_inf_land_where_torch_puts_them(data, case, dtype):
    x_shape, w_shape, conv = case
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    x = rng.uniform(-1, 1, x_shape).astype(dtype)
    w = rng.uniform(-1, 1, w_shape).astype(dtype)
    b = rng.uniform(-1, 1, w_shape[0]).astype(dtype)
    out_shape = cyconv.conv2d(x, w, b, **conv).shape
    go = rng.uniform(-1, 1, out_shape).astype(dtype)
    for name, array in (("input", x), ("weight", w), ("bias", b), ("grad_output", go)):
        _spoil(data, array, name)
    expected = _torch(x, w, b, go, conv)
    for what, got, want in zip(("forward", "input gradient", "weight gradient", "bias gradient"),
                               _ours(x, w, b, go, conv), expected):
        assert_same_placement(got, want, dtype, f"{what} of {case}")


def test_the_cases_reach_every_path():
    reached = {(d, cyconv.plan(x, w, **conv, direction=d)["path"])
               for x, w, conv in CASES for d in ("forward", "input_grad", "weight_grad")}
    assert reached >= {("forward", p) for p in ("planes", "row_bands", "narrow", "pointwise",
                                                 "gathered", "far_taps")}
    assert reached >= {("input_grad", p) for p in ("spread", "flipped", "phases", "far_taps")}
    assert reached >= {("weight_grad", p) for p in ("gathered", "planes", "bands", "far_taps")}


def test_the_examples_of_the_issue():
    x = np.ones((1, 1, 4, 5), np.float32)
    x[0, 0, 1, 0] = np.nan  # multiplies only the first column of taps
    gw = cyconv.grad.conv2d_weight(x, (1, 1, 2, 4), np.ones((1, 1, 3, 2), np.float32))
    np.testing.assert_array_equal(gw, [[[[np.nan, 6, 6, 6], [np.nan, 6, 6, 6]]]])
    # a NaN weight on the padding: 0 * NaN is NaN everywhere
    out = cyconv.conv2d(np.ones((1, 1, 6, 6), np.float32), np.full((1, 1, 1, 1), np.nan, np.float32),
                        padding=1, stride=2)
    assert np.isnan(out).all()


@pytest.mark.parametrize("x_shape, w_shape, conv", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_sums_keep_the_sign_ieee_gives_them(x_shape, w_shape, conv, dtype):
    # the bias plus the products: -0.0 inputs times positive weights, with a
    # -0.0 bias, are -0.0 where a window lies inside the input and +0.0 where
    # it meets the (+0.0) padding; without a bias (+0.0), +0.0.  (torch's
    # float64 direct path sums so; its dilated and some float32 paths start
    # from +0.0 and give +0.0 everywhere)
    x = np.full(x_shape, -0.0, dtype)
    w = np.ones(w_shape, dtype)
    bias = np.full(w_shape[0], -0.0, dtype)
    taps_inside = cyconv.conv2d(np.ones(x_shape), np.ones(w_shape), **conv)
    negative = taps_inside == np.prod(w_shape[1:])
    assert negative.any()
    np.testing.assert_array_equal(np.signbit(cyconv.conv2d(x, w, bias, **conv)), negative)
    assert not np.signbit(cyconv.conv2d(x, w, None, **conv)).any()


def test_zero_sums_match_torch_where_torch_adds_the_bias_first():
    x = np.full((1, 16, 6, 6), -0.0)
    w = np.ones((16, 16, 3, 3))
    bias = np.full(16, -0.0)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias)).numpy()
    assert np.signbit(expected).all()
    assert np.signbit(cyconv.conv2d(x, w, bias)).all()
