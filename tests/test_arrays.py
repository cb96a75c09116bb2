"""Every NumPy array that holds real numbers works, whatever its dtype's byte
order, its alignment, memory layout, strides (zero strides of broadcasting
included), writeability or subclass (np.memmap), with the result in the
native float dtype; or it is a clear error saying why."""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cyconv

DTYPES = ["f2", "f4", "f8", "i1", "i4", "u2", "?"]
# the memmaps' files, removed with the folder when the test process ends
MEMMAP_DIR = tempfile.TemporaryDirectory(prefix="cyconv-test-memmaps-")
LAYOUTS = ["C", "F", "reversed", "strided", "broadcast", "unaligned", "readonly", "memmap"]


def _as(values, dtype, order, layout):
    """values (a float64 array) as an array of dtype, byte order and layout."""
    dt = np.dtype(dtype).newbyteorder(order) if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    a = values.astype(dt)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "reversed":
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dt)
        big[tuple(slice(None, None, 2) for _ in a.shape)] = a
        return big[tuple(slice(None, None, 2) for _ in a.shape)]
    if layout == "broadcast":  # one row repeated by a zero stride, read-only
        return np.broadcast_to(a[..., :1, :], a.shape)
    if layout == "unaligned":
        raw = np.zeros(a.nbytes + 1, np.uint8)
        out = raw[1:].view(dt).reshape(a.shape)
        out[...] = a
        return out
    if layout == "readonly":
        a.flags.writeable = False
        return a
    if layout == "memmap":
        fd, path = tempfile.mkstemp(suffix=".dat", dir=MEMMAP_DIR.name)
        os.close(fd)
        m = np.memmap(path, dt, "w+", shape=a.shape)
        m[...] = a
        return m
    return a


def _values(rng, shape, dtype):
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, shape).astype(np.float64)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 5, shape).astype(np.float64)
    return rng.uniform(-1, 1, shape)


@settings(max_examples=200, deadline=None)
@given(x_kind=st.tuples(st.sampled_from(DTYPES), st.sampled_from("<>="), st.sampled_from(LAYOUTS)),
       w_kind=st.tuples(st.sampled_from(DTYPES), st.sampled_from("<>="), st.sampled_from(LAYOUTS)),
       g_kind=st.tuples(st.sampled_from(DTYPES), st.sampled_from("<>="), st.sampled_from(LAYOUTS)),
       seed=st.integers(0, 2**16))
def test_any_array_of_real_numbers_gives_the_native_result(x_kind, w_kind, g_kind, seed):
    rng = np.random.default_rng(seed)
    xv, wv = _values(rng, (2, 3, 7, 6), x_kind[0]), _values(rng, (4, 3, 3, 3), w_kind[0])
    gv = _values(rng, (2, 4, 7, 6), g_kind[0])
    x, w, g = _as(xv, *x_kind), _as(wv, *w_kind), _as(gv, *g_kind)
    # the dtype the operands mean: the float one (float64 when none is float)
    floats = {np.dtype(k[0]) for k in (x_kind, w_kind) if np.dtype(k[0]).kind == "f"}
    if len(floats) > 1:
        with pytest.raises(TypeError, match="must have the same float dtype"):
            cyconv.conv2d(x, w, padding=1)
        return
    dtype = floats.pop() if floats else np.dtype(np.float64)
    native = [np.ascontiguousarray(np.asarray(a), dtype=dtype) for a in (x, w)]
    expected = cyconv.conv2d(*native, padding=1)
    got = cyconv.conv2d(x, w, padding=1)
    assert got.dtype == dtype and got.dtype.isnative and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)
    floats = {np.dtype(k[0]) for k in (x_kind, g_kind) if np.dtype(k[0]).kind == "f"}
    if len(floats) <= 1:
        gdtype = floats.pop() if floats else np.dtype(np.float64)
        nx, ng = (np.ascontiguousarray(np.asarray(a), dtype=gdtype) for a in (x, g))
        got = cyconv.grad.conv2d_weight(x, w.shape, g, padding=1)
        assert got.dtype == gdtype and got.dtype.isnative
        np.testing.assert_array_equal(got, cyconv.grad.conv2d_weight(nx, w.shape, ng, padding=1))
        np.testing.assert_array_equal(cyconv.grad.conv2d_bias(g), cyconv.grad.conv2d_bias(ng))


@pytest.mark.parametrize("value, match", [
    (np.zeros((1, 3, 5, 5), np.complex64), "must hold real numbers"),
    (np.zeros((1, 3, 5, 5), np.longdouble), "computes in float16, float32 or float64"),
    (np.zeros((1, 3, 5, 5), "datetime64[s]"), "must hold real numbers"),
    (np.zeros((1, 3, 5, 5), [("a", "f4"), ("b", "f4")]), "must hold real numbers"),
    (np.zeros((1, 3, 5, 5), object), "must hold real numbers"),
    (np.zeros((1, 3, 5, 5), "U1"), "must hold real numbers"),
    (np.ma.masked_array(np.zeros((1, 3, 5, 5), np.float32)), "masked array"),
])
def test_arrays_that_do_not_hold_plain_real_numbers_are_clear_errors(value, match):
    w = np.ones((2, 3, 3, 3), np.float32)
    with pytest.raises(TypeError, match=match):
        cyconv.conv2d(value, w)
    with pytest.raises(TypeError, match=match):
        cyconv.Conv2d(3, 2, 3, padding=1, padding_mode="reflect")(value)
    with pytest.raises(TypeError, match=match):
        cyconv.Conv2d(3, 2, 3).freeze()(value)


def test_a_frozen_layer_takes_any_layout_of_a_known_shape():
    layer = cyconv.Conv2d(3, 4, 3, padding=1, rng=0).freeze()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 7, 6))
    layer(x.astype(np.float32))
    for layout in LAYOUTS:
        for order in "<>":
            given = _as(x, "f4", order, layout)
            expected = layer(np.ascontiguousarray(given, np.float32))
            np.testing.assert_array_equal(layer(given), expected)
            np.testing.assert_array_equal(layer(given), expected)
