"""Shared test helpers: torch as the reference, tolerances, odd memory layouts."""
import numpy as np
import torch
import torch.nn.functional as F

# relative to the largest output magnitude; torch's own float32 error is ~1e-6
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12,
             np.dtype(np.float16): 2e-3}


def random_array(rng, shape, dtype):
    return rng.uniform(-1, 1, shape).astype(dtype)


def torch_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d on NumPy arrays; asymmetric ((t, b), (l, r)) padding
    goes through F.pad, as torch has no asymmetric conv padding."""
    tx = torch.from_numpy(np.ascontiguousarray(x))
    tw = torch.from_numpy(np.ascontiguousarray(weight))
    tb = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias))
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        (top, bottom), (left, right) = padding
        tx = F.pad(tx, (left, right, top, bottom))
        padding = 0
    return F.conv2d(tx, tw, tb, stride, padding, dilation, groups).numpy()


def assert_close(actual, expected, dtype):
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = TOLERANCE[np.dtype(dtype)]
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=tol, atol=tol * scale)


def odd_layout(a, kind):
    """The same values as `a` in another memory layout."""
    if kind == "contiguous":
        return a
    if kind == "fortran":
        return np.asfortranarray(a)
    if kind == "reversed":  # negative strides
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if kind == "strided":  # a view every other element of a bigger array
        big = np.zeros(tuple(2 * s for s in a.shape), a.dtype)
        view = big[tuple(slice(None, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if kind == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    raise ValueError(kind)


LAYOUTS = ["contiguous", "fortran", "reversed", "strided", "readonly"]


def torch_conv2d_grads(x, weight, bias, grad_out, stride=1, padding=0, dilation=1, groups=1):
    """(input, weight, bias) gradients of torch_conv2d by torch autograd, as NumPy
    arrays (bias gradient None without bias)."""
    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_()
    tw = torch.from_numpy(np.ascontiguousarray(weight)).requires_grad_()
    tb = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias)).requires_grad_()
    xx = tx
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        (top, bottom), (left, right) = padding
        xx = F.pad(tx, (left, right, top, bottom))
        padding = 0
    out = F.conv2d(xx, tw, tb, stride, padding, dilation, groups)
    leaves = (tx, tw) if tb is None else (tx, tw, tb)
    grads = torch.autograd.grad(out, leaves, torch.from_numpy(np.ascontiguousarray(grad_out)))
    grads = [g.numpy() for g in grads]
    return grads[0], grads[1], (grads[2] if tb is not None else None)
