"""Gradients (cyconv.grad), conv_transpose2d and Conv2d.backward against torch
autograd, our NumPy reference and finite differences."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

import cyconv
from cyconv._validation import as_padding, as_pair
from helpers import (LAYOUTS, assert_close, odd_layout, random_array, torch_conv2d,
                     torch_conv2d_grads)
from reference import conv2d_grads_reference
from test_conv2d import GRID
from test_properties import conv_configs


def _case(rng, case, dtype):
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = random_array(rng, (n, c_in, h, w), dtype)
    weight = random_array(rng, (c_out, c_in // groups, kh, kw), dtype)
    bias = random_array(rng, (c_out,), dtype)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    grad_out = random_array(rng, torch_conv2d(x, weight, bias, **conv).shape, dtype)
    return x, weight, bias, grad_out, conv


def _ours(x, weight, grad_out, conv, **kw):
    return (cyconv.grad.conv2d_input(x.shape, weight, grad_out, **conv, **kw),
            cyconv.grad.conv2d_weight(x, weight.shape, grad_out, **conv, **kw),
            cyconv.grad.conv2d_bias(grad_out, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GRID, ids=[str(i) for i in range(len(GRID))])
def test_grid_gradients_match_torch(rng, case, dtype, kernel_variant):
    x, weight, bias, grad_out, conv = _case(rng, case, dtype)
    ours = _ours(x, weight, grad_out, conv)
    theirs = torch_conv2d_grads(x, weight, bias, grad_out, **conv)
    for got, expected in zip(ours, theirs):
        assert got.dtype == dtype
        assert_close(got, expected, dtype)


@pytest.mark.parametrize("case", GRID, ids=[str(i) for i in range(len(GRID))])
def test_grid_gradients_match_numpy_reference(rng, case):
    x, weight, bias, grad_out, conv = _case(rng, case, np.float64)
    stride, dilation = as_pair(conv["stride"], "s", 1), as_pair(conv["dilation"], "d", 1)
    pads = as_padding(conv["padding"], weight.shape[2:], dilation, stride)
    expected = conv2d_grads_reference(x, weight, grad_out, stride, pads, dilation, conv["groups"])
    for got, want, torch_said in zip(_ours(x, weight, grad_out, conv), expected,
                                     torch_conv2d_grads(x, weight, bias, grad_out, **conv)):
        assert_close(got, want, np.float64)
        assert_close(torch_said, want, np.float64)  # the reference is checked too


@pytest.mark.parametrize("case", [GRID[0], GRID[2], GRID[5], GRID[9], GRID[16]])
def test_gradients_match_finite_differences(rng, case):
    # L(x, w, b) = sum(conv2d(x, w, b) * grad_out) is linear in each operand, so a
    # central difference along a random direction v equals <dL/d., v> to rounding
    x, weight, bias, grad_out, conv = _case(rng, case, np.float64)

    def loss(x, weight, bias):
        return float(np.sum(cyconv.conv2d(x, weight, bias, **conv) * grad_out))

    grads = _ours(x, weight, grad_out, conv)
    eps = 1e-3
    for i, (operand, grad) in enumerate(zip((x, weight, bias), grads)):
        v = random_array(rng, operand.shape, np.float64)
        args_plus = [x, weight, bias]
        args_minus = [x, weight, bias]
        args_plus[i] = operand + eps * v
        args_minus[i] = operand - eps * v
        numeric = (loss(*args_plus) - loss(*args_minus)) / (2 * eps)
        assert numeric == pytest.approx(float(np.sum(grad * v)), rel=1e-9, abs=1e-9)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_configs())
def test_random_configurations_gradients_match_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    dtype = cfg["dtype"]
    shape = (1 if cfg["unbatched"] else cfg["batch"], cfg["c_in"], cfg["h"], cfg["w"])
    x = random_array(rng, shape, dtype)
    weight = random_array(rng, (cfg["c_out"], cfg["c_in"] // cfg["groups"]) + cfg["kernel"], dtype)
    bias = random_array(rng, (cfg["c_out"],), dtype) if cfg["bias"] else None
    conv = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                groups=cfg["groups"])
    grad_out = random_array(rng, torch_conv2d(x, weight, bias, **conv).shape, dtype)
    theirs = torch_conv2d_grads(x, weight, bias, grad_out, **conv)
    if cfg["unbatched"]:
        x, grad_out, theirs = x[0], grad_out[0], (theirs[0][0],) + tuple(theirs[1:])
    x_given = odd_layout(x, cfg["layout"])
    go_given = odd_layout(grad_out, cfg["layout"])
    threads = cfg["threads"]
    got_x = cyconv.grad.conv2d_input(x.shape, odd_layout(weight, cfg["layout"]), go_given,
                                     **conv, num_threads=threads)
    got_w = cyconv.grad.conv2d_weight(x_given, weight.shape, go_given, **conv,
                                      num_threads=threads)
    assert got_x.shape == x.shape and got_w.shape == weight.shape
    assert_close(got_x, theirs[0], dtype)
    assert_close(got_w, theirs[1], dtype)
    if bias is not None:
        assert_close(cyconv.grad.conv2d_bias(go_given), theirs[2], dtype)


@pytest.mark.parametrize("case", [(3, 16, 13, 30, 24, 3, 1, 1, 1, 1),   # matrix product
                                  (3, 16, 13, 30, 16, 3, 1, 1, 1, 16),  # planes (depthwise)
                                  (2, 24, 9, 9, 2, 3, 2, 1, 1, 1),      # few output channels
                                  (2, 12, 17, 9, 40, 3, 2, 1, 1, 1),    # spread input gradient
                                  (1, 40, 6, 7, 256, 3, 1, 1, 1, 1),    # spread, own weight packing
                                  (1, 32, 5, 6, 512, 3, 1, 1, 1, 2),    # the same, in groups
                                  (3, 6, 40, 12, 24, 3, 1, 1, 1, 1),    # weight gradient from bands
                                  (2, 64, 9, 10, 16, 3, 1, 1, 1, 1),    # the same, 576 rows
                                  (2, 128, 6, 7, 32, 3, 1, 1, 1, 1),    # the same with AVX-512, 1152
                                  (3, 3, 64, 64, 16, 7, 2, 3, 1, 1),    # weight gradient summed
                                  (1, 64, 40, 40, 256, 1, 1, 0, 1, 1)])  # over slices of positions
def test_gradients_do_not_depend_on_the_thread_count(rng, case, many_threads):
    x, weight, bias, grad_out, conv = _case(rng, case, np.float32)
    results = [_ours(x, weight, grad_out, conv, num_threads=t) for t in (1, 2, 3, 7)]
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(results[0], torch_conv2d_grads(x, weight, bias, grad_out, **conv)):
        assert_close(a, b, np.float32)


@pytest.mark.parametrize("case, spread", [
    ((2, 12, 17, 9, 40, 3, 2, 1, 1, 1), True),     # a stride
    ((1, 40, 6, 7, 256, 3, 1, 1, 1, 1), True),     # 256 output channels, 42 positions
    ((1, 32, 5, 6, 512, 3, 1, 1, 1, 2), True),     # the same, in groups
    ((2, 24, 5, 5, 256, 1, 1, 0, 1, 1), True),     # 1x1, 256 output channels
    ((1, 8, 15, 15, 256, 3, 1, 1, 1, 1), False),   # 225 positions
    ((1, 40, 6, 7, 48, 3, 1, 1, 1, 1), False),     # 48 output channels
    ((2, 24, 5, 5, 64, 1, 1, 0, 1, 1), False)])    # 1x1, 64 output channels
def test_input_gradient_takes_the_path_its_case_names(rng, case, spread):
    # the cases above (and those of the thread-count test) cover the spread
    # kernel only if they reach it: spread or gathered, the result is torch's
    x, weight, bias, grad_out, conv = _case(rng, case, np.float32)
    plan = cyconv.plan(x.shape, weight.shape, direction="input_grad", **conv)
    assert (plan["path"] == "spread") == spread
    got = cyconv.grad.conv2d_input(x.shape, weight, grad_out, **conv)
    assert_close(got, torch_conv2d_grads(x, weight, bias, grad_out, **conv)[0], np.float32)


def test_gradients_of_an_empty_batch_are_zero():
    x = np.zeros((0, 3, 6, 6), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    go = np.zeros((0, 4, 4, 4), np.float32)
    assert cyconv.grad.conv2d_input(x.shape, w, go).shape == (0, 3, 6, 6)
    np.testing.assert_array_equal(cyconv.grad.conv2d_weight(x, w.shape, go), np.zeros_like(w))
    np.testing.assert_array_equal(cyconv.grad.conv2d_bias(go), np.zeros(4, np.float32))


def test_float16_gradients_are_computed_in_float32(rng):
    x, weight, bias, grad_out, conv = _case(rng, GRID[0], np.float32)
    half = [a.astype(np.float16) for a in (x, weight, grad_out)]
    got = _ours(half[0], half[1], half[2], conv)
    theirs = torch_conv2d_grads(*[a.astype(np.float32) for a in half[:2]], None,
                                half[2].astype(np.float32), **conv)
    for g, t in zip(got[:2], theirs[:2]):
        assert g.dtype == np.float16
        assert_close(g, t, np.float16)


# (N, C_in, H, W, C_out, kernel, stride, padding, output_padding, groups, dilation)
TRANSPOSE_GRID = [
    (2, 4, 5, 6, 6, 3, 2, 1, 1, 2, 1),
    (1, 3, 4, 4, 2, (2, 3), (3, 2), (0, 1), (2, 1), 1, 1),
    (2, 2, 3, 5, 4, 3, 1, 0, 0, 1, 2),
    (1, 4, 6, 6, 4, 3, 2, 0, 1, 1, 3),    # output_padding >= stride, < dilation
    (1, 6, 7, 7, 3, 1, 3, 0, 2, 1, 1),    # 1x1 with stride 3: rows no tap reaches
    (2, 8, 5, 5, 8, 4, 2, 1, 0, 8, 1),    # depthwise
    (1, 2, 3, 3, 5, 5, 4, 2, 3, 1, 2),
    (1, 32, 7, 9, 64, 3, 2, 1, 1, 1, 1),  # a decoder upsampling layer
    (1, 40, 4, 5, 6, 3, 2, 1, (1, 2), 1, 3),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TRANSPOSE_GRID, ids=[str(i) for i in range(len(TRANSPOSE_GRID))])
def test_conv_transpose2d_matches_torch(rng, case, dtype, kernel_variant):
    n, c_in, h, w, c_out, k, stride, padding, output_padding, groups, dilation = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = random_array(rng, (n, c_in, h, w), dtype)
    weight = random_array(rng, (c_in, c_out // groups, kh, kw), dtype)
    for bias in (None, random_array(rng, (c_out,), dtype)):
        args = (stride, padding, output_padding, groups, dilation)
        ours = cyconv.conv_transpose2d(x, weight, bias, *args)
        theirs = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(weight),
                                    None if bias is None else torch.from_numpy(bias), *args)
        assert ours.dtype == dtype
        assert_close(ours, theirs.numpy(), dtype)
    unbatched = cyconv.conv_transpose2d(x[0], weight, bias, *args)
    assert_close(unbatched, theirs.numpy()[0], dtype)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_layer_backward_matches_torch(rng, mode, padding):
    module = torch.nn.Conv2d(3, 5, (3, 2), padding=padding, padding_mode=mode,
                             dtype=torch.float64)
    layer = cyconv.Conv2d.from_torch(module)
    x = random_array(rng, (2, 3, 7, 8), np.float64)
    tx = torch.from_numpy(x).requires_grad_()
    out = module(tx)
    grad_out = torch.from_numpy(random_array(rng, tuple(out.shape), np.float64))
    out.backward(grad_out)
    assert_close(layer(x), out.detach().numpy(), np.float64)
    grad_x = layer.backward(grad_out.numpy())
    assert_close(grad_x, tx.grad.numpy(), np.float64)
    assert_close(layer.weight_grad, module.weight.grad.numpy(), np.float64)
    assert_close(layer.bias_grad, module.bias.grad.numpy(), np.float64)


def test_layer_backward_needs_a_training_call(rng):
    layer = cyconv.Conv2d(2, 3, 3, rng=0)
    with pytest.raises(RuntimeError, match=r"backward needs a call in training mode"):
        layer.backward(np.zeros((1, 3, 2, 2), np.float32))
    x = random_array(rng, (1, 2, 4, 4), np.float32)
    layer.eval()(x)
    with pytest.raises(RuntimeError, match=r"backward needs a call in training mode"):
        layer.backward(np.zeros((1, 3, 2, 2), np.float32))
    layer.train()(x)
    assert layer.backward(np.ones((1, 3, 2, 2), np.float32)).shape == x.shape
    assert layer.bias_grad.tolist() == [4.0, 4.0, 4.0]


GRAD_BAD_CALLS = [
    (cyconv.grad.conv2d_input, ((2, 4, 8, 8), np.zeros((6, 4, 3, 3)), np.zeros((2, 6, 5, 6))),
     {}, ValueError, r"grad_output must have the shape of conv2d's output, \[2, 6, 6, 6\]"),
    (cyconv.grad.conv2d_input, ((2, 4, 8), np.zeros((6, 4, 3, 3)), np.zeros((2, 6, 6, 6))),
     {}, ValueError, r"grad_output must be 3-D like the input"),
    (cyconv.grad.conv2d_input, ((2, 4, 8, 0), np.zeros((6, 4, 3, 3)), np.zeros((2, 6, 6, 6))),
     {}, ValueError, r"input height and width to be at least 1, but got input of shape \[2, 4, 8, 0\]"),
    (cyconv.grad.conv2d_input, ((2, -4, 8, 8), np.zeros((6, 4, 3, 3)), np.zeros((2, 6, 6, 6))),
     {}, ValueError, r"input_size\[1\] must be >= 0, but got -4"),
    (cyconv.grad.conv2d_input, ("2x4x8x8", np.zeros((6, 4, 3, 3)), np.zeros((2, 6, 6, 6))),
     {}, ValueError, r"input_size must be a tuple of 3 or 4 ints, but got '2x4x8x8'"),
    (cyconv.grad.conv2d_input, ((2, 4, 8, 8), np.zeros((6, 2, 3, 3)), np.zeros((2, 6, 6, 6))),
     {}, ValueError, r"expects input to have 2 channels"),
    (cyconv.grad.conv2d_input, ((2, 4, 8, 8), np.zeros((6, 4, 3, 3), np.float32),
                                np.zeros((2, 6, 6, 6))),
     {}, TypeError, r"grad_output, weight must have the same float dtype, but grad_output is float64, weight is float32"),
    (cyconv.grad.conv2d_weight, (np.zeros((2, 4, 8, 8)), (6, 4, 3), np.zeros((2, 6, 6, 6))),
     {}, ValueError, r"weight_size must be a tuple of 4 ints"),
    (cyconv.grad.conv2d_weight, (np.zeros((2, 4, 8, 8)), (6, 4, 3, 3), np.zeros((2, 6, 6, 6))),
     {"stride": 0}, ValueError, r"stride must be >= 1, but got 0"),
    (cyconv.grad.conv2d_weight, (np.zeros((2, 4, 8, 8)), (6, 4, 3, 3), np.zeros((2, 6, 6, 6))),
     {"padding": 1}, ValueError, r"\[2, 6, 8, 8\] for input of shape \[2, 4, 8, 8\]"),
    (cyconv.grad.conv2d_bias, (np.zeros((6, 6)),), {}, ValueError, r"3-D .* or 4-D"),
    (cyconv.grad.conv2d_bias, (np.zeros((2, 6, 6)),), {"num_threads": 0}, ValueError,
     r"num_threads must be >= 1, but got 0"),
    (cyconv.conv_transpose2d, (np.zeros((1, 4, 5, 5)), np.zeros((4, 2, 3, 3))),
     {"stride": 2, "output_padding": 2}, ValueError,
     r"output_padding must be smaller than either stride or dilation.*\(2, 2\)"),
    (cyconv.conv_transpose2d, (np.zeros((1, 4, 5, 5)), np.zeros((3, 2, 3, 3))),
     {}, ValueError, r"weight of shape \[3, 2, 3, 3\] expects input to have 3 channels"),
    (cyconv.conv_transpose2d, (np.zeros((1, 4, 5, 5)), np.zeros((4, 2, 3, 3))),
     {"groups": 3}, ValueError, r"groups=3 must divide the input channels"),
    (cyconv.conv_transpose2d, (np.zeros((1, 4, 2, 2)), np.zeros((4, 2, 3, 3))),
     {"padding": 3}, ValueError, r"output height would be -2"),
    (cyconv.conv_transpose2d, (np.zeros((1, 4, 5, 5)), np.zeros((4, 2, 3, 3)), np.zeros(3)),
     {}, ValueError, r"bias to be 1-D with 2 elements"),
    (cyconv.conv_transpose2d, (np.zeros((1, 4, 5, 5)), np.zeros((4, 2, 3, 3))),
     {"padding": "same"}, TypeError, r"padding must be an int, but got 'same'"),
]


@pytest.mark.parametrize("func, args, kwargs, exc, pattern", GRAD_BAD_CALLS,
                         ids=[str(i) for i in range(len(GRAD_BAD_CALLS))])
def test_bad_gradient_calls_raise_clear_errors(func, args, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        func(*args, **kwargs)


@pytest.mark.parametrize("case", [(1, 8, 2, 3, 16, 3, 2**20, 2**20, 1, 1),    # row bands
                                  (1, 1, 2, 3, 16, 3, 2**20, 2**20, 1, 1),    # planes
                                  (2, 8, 2, 3, 16, 3, 1, 2**20, 2**20, 1),    # dilation
                                  (1, 8, 3, 2, 6, 3, 1, 2**12, 2**12, 1)])    # narrow bands
def test_huge_padding_with_huge_stride_or_dilation_matches_torch(rng, case):
    # the windows span a zero-padded region of up to ~2**40 values around a
    # 2x3 input: the kernels that copy that region would ask for terabytes
    # (MemoryError) or gigabytes of zeros; the gathered kernels read the taps
    x, weight, bias, grad_out, conv = _case(rng, case, np.float32)
    assert_close(cyconv.conv2d(x, weight, bias, **conv),
                 torch_conv2d(x, weight, bias, **conv), np.float32)
    for got, expected in zip(_ours(x, weight, grad_out, conv),
                             torch_conv2d_grads(x, weight, bias, grad_out, **conv)):
        assert_close(got, expected, np.float32)
