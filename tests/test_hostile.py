"""Hostile arguments: no value a user passes may crash the process, hang it,
start thousands of threads or return a silently wrong array."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import cyconv
from cyconv import _dispatch


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300, cwd=tempfile.gettempdir())


THREAD_COUNT = r"""
import os, numpy as np, cyconv
def threads():
    return len(os.listdir("/proc/self/task"))
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
g = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
limit = cyconv.config()["thread_limit"]
def everything(n):
    out = [cyconv.conv2d(x, w, padding=1, num_threads=n),
           cyconv.grad.conv2d_input(x.shape, w, g, padding=1, num_threads=n),
           cyconv.grad.conv2d_weight(x, w.shape, g, padding=1, num_threads=n),
           cyconv.grad.conv2d_bias(g, num_threads=n),
           cyconv.conv_transpose2d(g, w, stride=2, num_threads=n)]
    layer = cyconv.Conv2d(64, 64, 3, padding=1, num_threads=n, rng=0)
    out.append(layer.backward(layer(x)))
    out.append(layer.freeze()(x))
    return out
expected = everything(limit)
before = threads()
for n in (NUMBERS):
    got = everything(n)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)), n
print(before, threads())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="counts threads in /proc")
def test_a_huge_num_threads_starts_no_more_threads_than_processors():
    r = _python(THREAD_COUNT.replace("NUMBERS", "40_000, 100_000, 2**31 - 1"))
    assert r.returncode == 0, r.stderr[-2000:]
    before, after = map(int, r.stdout.split())
    assert after <= before, (before, after)


def test_the_default_thread_count_is_capped_too():
    r = _python(THREAD_COUNT.replace("NUMBERS", "None,"), OMP_NUM_THREADS="5000")
    assert r.returncode == 0, r.stderr[-2000:]
    before, after = map(int, r.stdout.split())
    assert after <= before, (before, after)


@pytest.mark.parametrize("value, error, match", [
    (0, ValueError, r"num_threads must be >= 1, but got 0"),
    (-3, ValueError, r"num_threads must be >= 1"),
    (2**31, ValueError, r"num_threads must be at most 2147483647, but got 2147483648"),
    (2**100, ValueError, r"num_threads must be at most"),
    (2.0, TypeError, r"num_threads must be an int"),
    (True, TypeError, r"num_threads must be an int"),
    ("2", TypeError, r"num_threads must be an int"),
])
def test_bad_num_threads_are_clear_errors_everywhere(value, error, match):
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    g = np.ones((1, 3, 3, 3), np.float32)
    calls = [lambda: cyconv.conv2d(x, w, num_threads=value),
             lambda: cyconv.grad.conv2d_input(x.shape, w, g, num_threads=value),
             lambda: cyconv.grad.conv2d_weight(x, w.shape, g, num_threads=value),
             lambda: cyconv.grad.conv2d_bias(g, num_threads=value),
             lambda: cyconv.conv_transpose2d(g, w, num_threads=value),
             lambda: cyconv.Conv2d(2, 3, 3, num_threads=value),
             lambda: setattr(cyconv.Conv2d(2, 3, 3).freeze(), "num_threads", value),
             lambda: cyconv.plan(x.shape, w.shape, num_threads=value)]
    for call in calls:
        with pytest.raises(error, match=match):
            call()


def test_numpy_integers_are_thread_counts():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    for n in (np.int64(2), np.int32(1), np.uint8(3)):
        np.testing.assert_array_equal(cyconv.conv2d(x, w, num_threads=n), cyconv.conv2d(x, w))


def test_thread_limit_is_the_processors():
    assert cyconv.config()["thread_limit"] == _dispatch.THREAD_LIMIT >= 1
    if hasattr(os, "sched_getaffinity"):
        assert _dispatch.THREAD_LIMIT == len(os.sched_getaffinity(0))


def _big():
    from hypothesis import strategies as st
    return st.one_of(st.integers(0, 3), st.sampled_from(
        [2**k + d for k in (31, 40, 41, 50, 61, 62, 63, 64) for d in (-1, 0, 1)]))


def test_huge_integers_are_computed_by_definition_or_refused_naming_the_parameter():
    # strides, paddings and dilations up to 2**63 - 1 and beyond: the
    # definition, position by position with exact integers, is the oracle
    # (torch's own arithmetic overflows on some of these; where it computes a
    # shape the definition also gives, its forward result must agree too)
    from hypothesis import assume, given, settings
    from hypothesis import strategies as st
    import torch
    from reference import conv2d_by_definition

    @settings(max_examples=200, deadline=None)
    @given(stride=st.tuples(_big(), _big()), padding=st.tuples(_big(), _big()),
           dilation=st.tuples(_big(), _big()), kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)))
    def check(stride, padding, dilation, kernel):
        stride = tuple(max(1, s) for s in stride)
        dilation = tuple(max(1, d) for d in dilation)
        conv = dict(stride=stride, padding=padding, dilation=dilation)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 2, 5, 4))
        w = rng.standard_normal((3, 2) + kernel)
        b = rng.standard_normal(3)
        sizes = [(n + 2 * p, d * (k - 1) + 1) for n, p, k, d in zip((5, 4), padding, kernel, dilation)]
        if max(stride + dilation) > 2**63 - 1 or any(
                padded > 2**63 - 1 or reach > min(padded, 2**63 - 1) for padded, reach in sizes):
            with pytest.raises(ValueError, match=r"stride|padding|dilation|kernel"):
                cyconv.conv2d(x, w, b, **conv)
            return
        out_hw = [(padded - reach) // s + 1 for (padded, reach), s in zip(sizes, stride)]
        assume(out_hw[0] * out_hw[1] <= 400)  # the definition runs position by position
        go = rng.standard_normal((1, 3, *out_hw))
        expected = conv2d_by_definition(x, w, b, go, stride, ((padding[0],) * 2, (padding[1],) * 2),
                                        dilation, 1)
        got = (cyconv.conv2d(x, w, b, **conv), cyconv.grad.conv2d_input(x.shape, w, go, **conv),
               cyconv.grad.conv2d_weight(x, w.shape, go, **conv))
        for a, e in zip(got, expected):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
        try:
            theirs = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                                torch.from_numpy(b), **conv).numpy()
        except (RuntimeError, ValueError, OverflowError, TypeError):
            return
        if list(theirs.shape[2:]) == out_hw:
            np.testing.assert_allclose(got[0], theirs, rtol=1e-12, atol=1e-12)

    check()


@pytest.mark.parametrize("name, value", [("stride", 2**63), ("dilation", 2**63),
                                         ("padding", 2**63), ("stride", 2**200)])
def test_integers_beyond_int64_are_value_errors_naming_the_parameter(name, value):
    x = np.ones((1, 1, 8, 8))
    w = np.ones((1, 1, 3, 3))
    g = np.ones((1, 1, 1, 1))
    for call in (lambda: cyconv.conv2d(x, w, **{name: value}),
                 lambda: cyconv.grad.conv2d_weight(x, w.shape, g, **{name: value}),
                 lambda: cyconv.grad.conv2d_input(x.shape, w, g, **{name: value}),
                 lambda: cyconv.plan(x.shape, w.shape, **{name: value})):
        with pytest.raises(ValueError, match=name):
            call()
    if name != "dilation":
        with pytest.raises(ValueError, match=name):
            cyconv.conv_transpose2d(np.ones((1, 1, 2, 2)), w, **{name: value})


def test_far_taps_match_torch_through_every_entry(rng):
    import torch
    import torch.nn.functional as F
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2))
    b = rng.standard_normal(6)
    conv = dict(stride=(2**45, 3), padding=(2**45 - 1, 2), dilation=(2**44, 1), groups=2)
    assert cyconv.plan(x.shape, w.shape, **conv)["path"] == "far_taps"
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), **conv)
    np.testing.assert_allclose(cyconv.conv2d(x, w, b, **conv), expected.numpy(), rtol=1e-12)
    layer = cyconv.Conv2d(4, 6, (3, 2), dtype=np.float64, **conv)
    layer.load_state_dict({"weight": w, "bias": b})
    np.testing.assert_allclose(layer(x), expected.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.freeze()(x), expected.numpy(), rtol=1e-12)
    y = rng.standard_normal((1, 4, 2, 2))
    # (torch keeps transposed strides in 32 bits: the definition is the oracle)
    from reference import conv2d_by_definition
    tconv = dict(stride=(2**50, 3), padding=(2**49, 1), output_padding=(1, 0), groups=2)
    got = cyconv.conv_transpose2d(y, w[:4], b[:4], **tconv)
    assert got.shape == (1, 4, 4, 3)
    _, expected, _ = conv2d_by_definition(np.zeros(got.shape), w[:4], None, y, (2**50, 3),
                                          ((2**49,) * 2, (1, 1)), (1, 1), 2)
    np.testing.assert_allclose(got, expected + b[:4, None, None], rtol=1e-12, atol=1e-12)


def test_shape_errors_name_the_argument():
    g = np.ones((1, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"expected grad_output to be 3-D \(C_out, H, W\) or 4-D"):
        cyconv.grad.conv2d_bias(g[0, 0])
    with pytest.raises(ValueError, match=r"expected grad_output to be 3-D"):
        cyconv.grad.conv2d_input((1, 2, 6, 6), np.ones((3, 2, 3, 3)), np.ones((1, 1, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"input_size \[1, 1, 1099511627776, 1099511627776\] "
                                         r"describes an array too large"):
        cyconv.grad.conv2d_input((1, 1, 2**40, 2**40), np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"weight_size .* too large"):
        cyconv.grad.conv2d_weight(np.ones((1, 1, 5, 5)), (2**40, 2**40, 1, 1), np.ones((1, 1, 5, 5)))


def test_results_too_large_for_memory_are_memory_errors_naming_the_array():
    w = np.ones((1, 1, 1, 1), np.float32)
    with pytest.raises(MemoryError, match=r"cannot allocate the output of shape .* GiB"):
        cyconv.conv_transpose2d(np.ones((1, 1, 2, 2), np.float32), w, stride=(2**35, 1))
    with pytest.raises(MemoryError, match=r"cannot allocate the input gradient of shape .* GiB"):
        cyconv.grad.conv2d_input((1, 1, 2**26, 2**26), w, np.ones((1, 1, 2**26, 1), np.float32),
                                 stride=(1, 2**26))


WORKING_MEMORY = r"""
import resource, numpy as np, cyconv
w = np.ones((512, 512, 3, 3), np.float32)    # 9 MiB, packed again for the spread kernel
go = np.ones((2, 512, 2, 2), np.float32)
cyconv.grad.conv2d_input((2, 8, 4, 4), w[:8, :8], go[:, :8], stride=2, padding=1, num_threads=1)
pages = int(open("/proc/self/statm").read().split()[0])
limit = pages * resource.getpagesize() + 4 * 2**20   # address space for little more
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    cyconv.grad.conv2d_input((2, 512, 4, 4), w, go, stride=2, padding=1, num_threads=1)
except MemoryError as e:
    print(e)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc")
def test_working_memory_that_cannot_be_had_is_a_memory_error_with_its_size():
    r = _python(WORKING_MEMORY)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "could not allocate 9437184 bytes (9 MiB) of working memory for the input " \
           "gradient (spread path)" in r.stdout, r.stdout


def test_from_torch_takes_only_a_conv2d():
    import torch
    with pytest.raises(TypeError, match=r"from_torch takes a torch.nn.Conv2d, but got "
                                        r"torch.nn.modules.conv.ConvTranspose2d"):
        cyconv.Conv2d.from_torch(torch.nn.ConvTranspose2d(4, 4, 3))
    with pytest.raises(TypeError, match=r"but got torch.nn.modules.conv.Conv1d"):
        cyconv.Conv2d.from_torch(torch.nn.Conv1d(4, 4, 3))
    with pytest.raises(TypeError, match=r"but got builtins.dict"):
        cyconv.Conv2d.from_torch({"weight": 1})
    layer = cyconv.Conv2d.from_torch(torch.nn.Conv2d(4, 6, 3))  # and a subclass of it
    import cyconv.torch as ct
    assert cyconv.Conv2d.from_torch(ct.Conv2d(4, 6, 3)).weight.shape == layer.weight.shape


def test_load_state_dict_wants_a_mapping():
    layer = cyconv.Conv2d(2, 3, 3)
    with pytest.raises(TypeError, match=r"state_dict must be a mapping .* but got list"):
        layer.load_state_dict([np.ones((3, 2, 3, 3))])


def test_a_frozen_layers_configuration_cannot_be_deleted_or_changed():
    frozen = cyconv.Conv2d(2, 3, 3).freeze()
    for name in ("stride", "weight", "_weight", "num_threads"):
        with pytest.raises(AttributeError, match="cannot change"):
            delattr(frozen, name)
    with pytest.raises(AttributeError, match="cannot change"):
        frozen.stride = 2
    assert frozen.stride == (1, 1)


def test_pickles_and_copies_hold_the_configuration_and_parameters_only():
    import copy
    import pickle
    layer = cyconv.Conv2d(4, 8, 3, padding=1, rng=0)
    x = np.ones((16, 4, 64, 64), np.float32)  # 1 MiB, kept for backward
    layer.backward(layer(x))
    assert layer._saved is not None and layer.weight_grad is not None
    data = pickle.dumps(layer)
    assert len(data) < 10_000, len(data)
    for other in (pickle.loads(data), copy.deepcopy(layer)):
        assert other._saved is None and other.weight_grad is None and other.bias_grad is None
        np.testing.assert_array_equal(other.weight, layer.weight)
        np.testing.assert_array_equal(other(x), layer(x))
        assert other.training and repr(other) == repr(layer)
    assert layer.weight_grad is not None  # the original keeps its state


HOSTILE = [0, 1, 2, -1, True, None, 1.0, 2.5, np.int64(2), np.float32(1), "1", "same", "valid",
           (1,), (1, 2), (1, 2, 3), [2, 1], ((1, 0), (0, 1)), ((1,), (2,)), ((-1, 0), (0, 0)),
           (2**70, 1), object(), np.array([1, 2]), float("nan")]


def test_any_argument_value_gives_torchs_result_or_a_clear_error():
    # every public entry point with hostile parameter values: a result equal to
    # torch's, or a TypeError / ValueError naming the parameter; never another
    # exception, a crash or a hang
    from hypothesis import given, settings
    from hypothesis import strategies as st
    import torch
    import torch.nn.functional as F

    x = np.random.default_rng(0).standard_normal((1, 2, 6, 5))
    w = np.random.default_rng(1).standard_normal((4, 2, 3, 2))
    names = ("stride", "padding", "dilation", "groups", "num_threads")

    @settings(max_examples=300, deadline=None)
    @given(values=st.fixed_dictionaries({n: st.sampled_from(HOSTILE) for n in names}),
           present=st.sets(st.sampled_from(names)))
    def check(values, present):
        kw = {n: values[n] for n in present}
        torch_kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items()
                    if k != "num_threads"}
        pairs = isinstance(kw.get("padding"), tuple) and any(
            isinstance(p, tuple) for p in kw["padding"])  # cyconv's asymmetric form; torch has none

        def torch_conv():
            return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **torch_kw).numpy()
        try:
            got = cyconv.conv2d(x, w, **kw)
        except (TypeError, ValueError) as e:
            assert any(n in str(e) for n in names + ("kernel", "input", "weight", "output")), e
            if not pairs and "num_threads" not in str(e):
                with pytest.raises(Exception):  # what cyconv refuses, torch refuses too
                    torch_conv()
            return
        if not pairs:
            np.testing.assert_allclose(got, torch_conv(), rtol=1e-12, atol=1e-12)
        go = np.ones_like(got)
        cyconv.grad.conv2d_input(x.shape, w, go, **kw)
        cyconv.grad.conv2d_weight(x, w.shape, go, **kw)

    check()


def test_float16_results_overflow_to_inf_silently():
    import warnings
    x = np.full((1, 1, 4, 4), 60000, np.float16)
    w = np.ones((1, 1, 3, 3), np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = cyconv.conv2d(x, w)
        grad = cyconv.grad.conv2d_weight(x, w.shape, np.ones((1, 1, 2, 2), np.float16))
    assert out.dtype == np.float16 and np.isposinf(out).all() and np.isposinf(grad).all()
