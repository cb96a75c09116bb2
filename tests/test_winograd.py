"""conv2d(..., algorithm="winograd"): the F(4x4, 3x3) kernel against torch in
float64 (the oracle) on the eligible layers of the test grid, its error held
to the bound docs/semantics.md states, the same result on every kernel
variant and thread count, and the choices "direct" and "auto" around it."""
import numpy as np
import pytest

import cyconv
from cyconv import _dispatch, _winograd
from helpers import torch_conv2d

# max |winograd - exact| / max |exact| the docs state for F(4x4, 3x3)
BOUND = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-13}

# (input shape, output channels, padding, groups): every padding form, odd
# and tiny planes, partial channel blocks, several tile blocks and slices,
# weights transformed in the items (few tile blocks) and before the call,
# output channels in the lanes (few tiles) with several blocks, slices,
# runs of blocks and tiles
CASES = [
    ((2, 8, 12, 12), 8, 1, 1),
    ((1, 3, 9, 11), 5, 1, 1),
    ((3, 16, 13, 7), 24, ((0, 2), (1, 0)), 1),
    ((1, 4, 3, 3), 6, 0, 1),
    ((2, 6, 1, 1), 4, 1, 1),
    ((1, 5, 5, 17), 3, 2, 1),
    ((1, 8, 10, 6), 8, 3, 1),
    ((2, 12, 9, 9), 9, "same", 1),
    ((2, 12, 9, 9), 9, "valid", 1),
    ((2, 8, 11, 10), 12, 1, 4),
    ((1, 6, 8, 8), 6, 1, 6),
    ((3, 130, 30, 30), 20, 1, 1),
    ((4, 8, 40, 37), 10, 1, 1),  # enough tile blocks for weights transformed before the call
    ((1, 64, 20, 23), 72, (1, 0), 2),
    ((2, 130, 9, 10), 70, 1, 1),
    ((1, 40, 7, 7), 48, ((0, 2), (1, 0)), 2),
    ((3, 20, 6, 5), 16, 1, 1),
    ((1, 96, 7, 7), 200, 1, 1),
    ((2, 16, 12, 12), 240, 1, 1),
    ((3, 8, 16, 16), 464, 1, 1),
    ((1, 8, 16, 24), 608, 1, 1),
    ((3, 8, 8, 8), 608, 1, 1),
    ((2, 24, 7, 7), 40, 1, 1),  # 8 tiles: a group of 6 and one of 2 (mk_pos4_oc_rows)
]


def _padding_pairs(padding):
    if padding == "same":
        return ((1, 1), (1, 1))
    if padding == "valid":
        return ((0, 0), (0, 0))
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0], padding[0]), (padding[1], padding[1]))
    return padding


def _operands(shape, c_out, groups, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((c_out, shape[1] // groups, 3, 3)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    return x, weight, bias


def _relative_error(got, exact):
    return np.abs(got.astype(np.float64) - exact).max() / np.abs(exact).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, c_out, padding, groups", CASES)
def test_matches_torch_float64_within_the_bound(kernel_variant, shape, c_out, padding, groups,
                                                dtype):
    x, weight, bias = _operands(shape, c_out, groups, dtype)
    got = cyconv.conv2d(x, weight, bias, padding=padding, groups=groups, algorithm="winograd")
    exact = torch_conv2d(x.astype(np.float64), weight.astype(np.float64),
                         bias.astype(np.float64), padding=_padding_pairs(padding), groups=groups)
    assert got.dtype == dtype and got.shape == exact.shape
    assert _relative_error(got, exact) <= BOUND[np.dtype(dtype)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cases_take_both_forms_of_the_products(dtype):
    # tiles in the lanes and output channels in the lanes, each with several
    # input-channel slices and several output-channel blocks and runs of them
    # (on one thread; more threads split the blocks into more runs)
    seen = {}
    for shape, c_out, padding, groups in CASES:
        plan = cyconv.plan(shape, (c_out, shape[1] // groups, 3, 3), padding=padding,
                           groups=groups, dtype=dtype, algorithm="winograd", num_threads=1)
        form = seen.setdefault(plan["oc_lanes"], set())
        form.update(name for name in ("n_slices", "n_blocks", "n_oc_items") if plan[name] > 1)
    assert seen == {False: {"n_slices", "n_blocks", "n_oc_items"},
                    True: {"n_slices", "n_blocks", "n_oc_items"}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_it_is_winograd_and_its_error_is_of_winograd_size(dtype):
    # the kernel computes what the NumPy Winograd in tests/reference.py does:
    # its deviation from the direct sum is of the size of that reference's,
    # larger than the direct kernel's in float32
    from reference import conv2d_winograd_reference
    x, weight, bias = _operands((2, 256, 12, 12), 32, 1, dtype, seed=3)
    exact = torch_conv2d(x.astype(np.float64), weight.astype(np.float64), padding=1)
    got = cyconv.conv2d(x, weight, padding=1, algorithm="winograd")
    direct = cyconv.conv2d(x, weight, padding=1)
    reference = conv2d_winograd_reference(x, weight, 4, dtype)
    ours, theirs = _relative_error(got, exact), _relative_error(reference, exact)
    assert theirs / 4 < ours < theirs * 4
    if dtype == np.float32:
        assert ours > 2 * _relative_error(direct, exact)


def test_unbatched_float16_and_out(rng):
    x, weight, bias = _operands((1, 10, 9, 14), 7, 1, np.float32)
    x = x[0]
    exact = torch_conv2d(x[None].astype(np.float64), weight.astype(np.float64),
                         bias.astype(np.float64), padding=1)[0]
    got = cyconv.conv2d(x, weight, bias, padding=1, algorithm="winograd")
    assert got.shape == exact.shape and _relative_error(got, exact) <= 2e-5
    out = np.empty(exact.shape, np.float32)
    assert cyconv.conv2d(x, weight, bias, padding=1, algorithm="winograd", out=out) is out
    np.testing.assert_array_equal(out, got)
    half = cyconv.conv2d(x.astype(np.float16), weight.astype(np.float16), padding=1,
                         algorithm="winograd")
    assert half.dtype == np.float16
    exact16 = torch_conv2d(x.astype(np.float16)[None].astype(np.float64),
                           weight.astype(np.float16).astype(np.float64), padding=1)[0]
    assert _relative_error(half, exact16) <= 1e-3


def test_result_does_not_depend_on_the_thread_count(many_threads):
    x, weight, bias = _operands((3, 40, 21, 19), 100, 1, np.float32, seed=5)
    results = [cyconv.conv2d(x, weight, bias, padding=1, algorithm="winograd", num_threads=t)
               for t in (1, 2, 3, 7)]
    plans = [cyconv.plan(x.shape, weight.shape, padding=1, algorithm="winograd", num_threads=t)
             for t in (1, 7)]
    assert plans[0]["n_items"] < plans[1]["n_items"]  # the work really splits otherwise
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("kwargs, named", [
    (dict(stride=2), "stride (2, 2)"),
    (dict(dilation=2), "dilation (2, 2)"),
    (dict(weight_hw=(5, 5)), "kernel 5x5"),
    (dict(weight_hw=(1, 3)), "kernel 1x3"),
])
def test_other_layers_are_a_value_error(kwargs, named):
    hw = kwargs.pop("weight_hw", (3, 3))
    x = np.ones((1, 4, 9, 9), np.float32)
    weight = np.ones((4, 4) + hw, np.float32)
    with pytest.raises(ValueError, match="algorithm='winograd' applies to 3x3") as info:
        cyconv.conv2d(x, weight, algorithm="winograd", **kwargs)
    assert named in str(info.value)


@pytest.mark.parametrize("algorithm", ["fast", "Winograd", None, 3])
def test_unknown_algorithm_is_a_value_error(algorithm):
    x = np.ones((1, 4, 9, 9), np.float32)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        cyconv.conv2d(x, np.ones((4, 4, 3, 3), np.float32), algorithm=algorithm)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        cyconv.Conv2d(4, 4, 3, algorithm=algorithm)


def test_layer_checks_its_algorithm_when_built():
    with pytest.raises(ValueError, match="kernel_size"):
        cyconv.Conv2d(4, 4, 3, stride=2, algorithm="winograd")
    assert "algorithm='winograd'" in repr(cyconv.Conv2d(4, 4, 3, algorithm="winograd"))


@pytest.mark.parametrize("shape", [(2, 8, 12, 12), (1, 8, 7, 7)])  # both forms of the products
@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_values_land_where_the_direct_sum_puts_them(where, value, shape):
    # Winograd would spread one NaN or Inf over whole tiles: such calls are direct
    x, weight, bias = _operands(shape, 8, 1, np.float64)
    if where == "input":
        x[-1, 2, 5, 6] = value
    else:
        weight[3, 1, 1, 2] = value
    exact = torch_conv2d(x, weight, bias, padding=1)
    got = cyconv.conv2d(x, weight, bias, padding=1, algorithm="winograd")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(exact))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(exact))
    finite = np.isfinite(exact)
    assert finite.any() and _relative_error(got[finite], exact[finite]) <= 1e-13
    layer = cyconv.Conv2d(8, 8, 3, padding=1, dtype=np.float64, algorithm="winograd")
    layer.weight[...], layer.bias[...] = weight, bias
    np.testing.assert_array_equal(layer.freeze()(x), got)


@pytest.mark.parametrize("shape", [(2, 8, 12, 12), (1, 8, 7, 7)])
def test_a_transform_that_overflows_falls_back_to_the_direct_sum(shape):
    # finite float32 weights whose G w G^T passes float32's largest value
    # (7 * 7 * 2e37): the direct sums stay finite, and so must the result
    x, weight, bias = _operands(shape, 8, 1, np.float32)
    x *= 1e-3
    weight[3, 1] = 2e37
    exact = torch_conv2d(x.astype(np.float64), weight.astype(np.float64),
                         bias.astype(np.float64), padding=1)
    assert np.isfinite(exact).all() and np.abs(exact).max() < 1e37
    got = cyconv.conv2d(x, weight, bias, padding=1, algorithm="winograd")
    np.testing.assert_array_equal(got, cyconv.conv2d(x, weight, bias, padding=1))
    layer = cyconv.Conv2d(8, 8, 3, padding=1, algorithm="winograd")
    layer.weight[...], layer.bias[...] = weight, bias
    np.testing.assert_array_equal(layer.freeze()(x), got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transformed_weights_are_g_w_g_transposed(kernel_variant, dtype):
    # the kernel applies G as sums (no matrix): its weights against
    # G w G^T in float64 with the G of _winograd.matrices, in the kernel's
    # layout U[group][xi][block of OC_BLOCK][c][o]
    groups, c_out, c_in_g = 2, 22, 5
    weight = np.random.default_rng(3).standard_normal((c_out, c_in_g, 3, 3)).astype(dtype)
    got = _winograd.transform_weights(weight, groups, 1)
    g = _winograd.matrices(_winograd.TILE)[1]
    exact = np.einsum("ap,ocpq,lq->ocal", g, weight.astype(np.float64), g)
    block = cyconv.config()["blocking"]["oc_block"]
    cout_g = c_out // groups
    n_oc = -(-cout_g // block) * block
    xi_stride = n_oc * c_in_g + 16
    assert got.dtype == dtype and got.shape == (groups * 36 * xi_stride,)
    blocks = got.reshape(groups, 36, xi_stride)[:, :, :n_oc * c_in_g]
    blocks = blocks.reshape(groups, 36, n_oc // block, c_in_g, block)
    u = blocks.transpose(0, 2, 4, 3, 1).reshape(groups, n_oc, c_in_g, 6, 6)
    u = u[:, :cout_g].reshape(exact.shape)
    assert np.abs(u - exact).max() <= (4e-7 if dtype == np.float32 else 1e-15) * np.abs(exact).max()
    # the lanes past the group's last output channel hold zeros
    assert not blocks[:, :, -1, :, cout_g - (n_oc - block):].any()


@pytest.fixture
def transform_calls(monkeypatch):
    """The calls of _winograd.transform_weights from here on."""
    calls = []
    transform = _winograd.transform_weights
    monkeypatch.setattr(_winograd, "transform_weights",
                        lambda *a, **k: calls.append(a) or transform(*a, **k))
    return calls


def test_frozen_layer_transforms_its_weights_once(transform_calls):
    layer = cyconv.Conv2d(16, 24, 3, padding=1, algorithm="winograd", rng=1)
    frozen = layer.freeze()
    x = np.random.default_rng(2).standard_normal((2, 16, 15, 15)).astype(np.float32)
    first = frozen(x)
    assert len(transform_calls) == 1
    np.testing.assert_array_equal(frozen(x), first)
    np.testing.assert_array_equal(frozen(x[:1]), first[:1])
    assert len(transform_calls) == 1
    # the layer transforms its weights in the kernel on every call, the same way
    np.testing.assert_array_equal(layer(x), first)
    exact = torch_conv2d(x.astype(np.float64), layer.weight.astype(np.float64),
                         layer.bias.astype(np.float64), padding=1)
    assert _relative_error(first, exact) <= 2e-5


@pytest.mark.parametrize("c_in, c_out, shape", [
    # few tiles (batch 1, a 7x7 plane): output channels in the lanes
    (64, 72, (1, 64, 7, 7)),
    # 512x512 float32 weights transform to 38 MB: read once per block of
    # tiles they would come from memory
    (512, 512, (2, 512, 24, 24)),
])
def test_frozen_layer_keeps_no_transformed_weights_the_kernel_would_not_read(
        transform_calls, c_in, c_out, shape):
    # the items transform the weights they need: no 4x copy of them is kept
    layer = cyconv.Conv2d(c_in, c_out, 3, padding=1, algorithm="winograd", rng=1)
    frozen = layer.freeze()
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    plan = _dispatch.kernel.plan_winograd_call(x.shape, (shape[0], c_out) + shape[2:], 1, 1, 1,
                                               4, 1, True)
    assert plan["fused_weights"] and (plan["oc_lanes"] or plan["n_tile_blocks"] > 2)
    got = frozen(x)
    assert transform_calls == []
    np.testing.assert_array_equal(got, cyconv.conv2d(x, layer.weight, layer.bias, padding=1,
                                                     algorithm="winograd"))
    np.testing.assert_array_equal(frozen(x), got)
    exact = torch_conv2d(x.astype(np.float64), layer.weight.astype(np.float64),
                         layer.bias.astype(np.float64), padding=1)
    assert _relative_error(got, exact) <= 2e-5


def test_direct_is_the_default_and_auto_changes_no_direct_result():
    x, weight, bias = _operands((1, 32, 8, 8), 32, 1, np.float32)  # too few tiles for Winograd
    direct = cyconv.conv2d(x, weight, bias, padding=1)
    np.testing.assert_array_equal(cyconv.conv2d(x, weight, bias, padding=1, algorithm="auto"),
                                  direct)
    assert cyconv.plan(x.shape, weight.shape, padding=1, algorithm="auto")["path"] != "winograd"
    assert cyconv.plan(x.shape, weight.shape, padding=1)["path"] != "winograd"
    big = (4, 32, 40, 40)
    assert cyconv.plan(big, weight.shape, padding=1, algorithm="auto")["path"] == "winograd"
    assert cyconv.plan(big, weight.shape, padding=1, stride=2,
                       algorithm="auto")["path"] != "winograd"
    assert cyconv.plan(big, (32, 4, 3, 3), padding=1, groups=8,
                       algorithm="auto")["path"] != "winograd"
    # 16 tiles (a 14x14 plane at batch 1): Winograd from 64 channels
    for channels, chosen in ((256, True), (64, True), (32, False)):
        plan = cyconv.plan((1, channels, 14, 14), (channels, channels, 3, 3), padding=1,
                           algorithm="auto")
        assert (plan["path"] == "winograd") == chosen



@pytest.mark.parametrize("variant", _dispatch.RUNNABLE)
def test_auto_takes_few_tiles_only_where_the_products_end_the_transform(variant):
    # 4 tiles: Winograd from 64 channels where the kernel has 32 vector
    # registers (AVX-512), with the tiles at least 3/4 full (7x7, not 6x6)
    with _dispatch.use_variant(variant):
        wide = _dispatch.kernel.blocking()["vector_bytes"] == 64
        for shape, chosen in (((1, 256, 8, 8), wide), ((1, 64, 7, 7), wide),
                              ((2, 512, 7, 7), wide), ((1, 512, 6, 6), False),
                              ((1, 512, 4, 4), False), ((1, 32, 8, 8), False)):
            channels = shape[1]
            plan = cyconv.plan(shape, (channels, channels, 3, 3), padding=1, algorithm="auto")
            assert (plan["path"] == "winograd") == chosen, shape


def test_plan_names_the_winograd_path():
    plan = cyconv.plan((8, 64, 56, 56), (64, 64, 3, 3), padding=1, algorithm="winograd")
    assert plan["path"] == "winograd" and plan["output_shape"] == (8, 64, 56, 56)
    assert (plan["tiles_h"], plan["tiles_w"]) == (14, 14)
    with pytest.raises(ValueError, match="forward direction"):
        cyconv.plan((8, 64, 56, 56), (64, 64, 3, 3), padding=1, algorithm="winograd",
                    direction="input_grad")


# --- the input gradient: a stride-1 3x3 convolution of grad_output too ---

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, c_out, padding, groups", CASES)
def test_input_gradient_matches_torch_float64_within_the_bound(kernel_variant, shape, c_out,
                                                               padding, groups, dtype):
    from helpers import torch_conv2d_grads
    x, weight, bias = _operands(shape, c_out, groups, dtype)
    pads = _padding_pairs(padding)
    out_shape = torch_conv2d(x, weight, padding=pads, groups=groups).shape
    grad_out = np.random.default_rng(9).standard_normal(out_shape).astype(dtype)
    got = cyconv.grad.conv2d_input(x.shape, weight, grad_out, padding=padding, groups=groups,
                                   algorithm="winograd")
    exact = torch_conv2d_grads(x.astype(np.float64), weight.astype(np.float64), None,
                               grad_out.astype(np.float64), padding=pads, groups=groups)[0]
    assert got.dtype == dtype and got.shape == x.shape
    assert _relative_error(got, exact) <= BOUND[np.dtype(dtype)]


def test_input_gradient_is_winograd_and_layers_train_with_it():
    from helpers import torch_conv2d_grads
    layer = cyconv.Conv2d(48, 40, 3, padding=2, algorithm="winograd", rng=4)
    x = np.random.default_rng(5).standard_normal((2, 48, 11, 13)).astype(np.float32)
    grad_out = np.random.default_rng(6).standard_normal(layer(x).shape).astype(np.float32)
    grad_x = layer.backward(grad_out)
    exact = torch_conv2d_grads(x.astype(np.float64), layer.weight.astype(np.float64),
                               layer.bias.astype(np.float64), grad_out.astype(np.float64),
                               padding=2)
    direct = cyconv.grad.conv2d_input(x.shape, layer.weight, grad_out, padding=2)
    assert _relative_error(grad_x, exact[0]) <= 2e-5
    assert _relative_error(grad_x, exact[0]) > 2 * _relative_error(direct, exact[0])
    assert _relative_error(layer.weight_grad, exact[1]) <= 1e-5  # direct


def test_input_gradient_errors_and_nonfinite_weights():
    w = np.ones((4, 4, 3, 3))
    with pytest.raises(ValueError, match="algorithm='winograd' applies to 3x3"):
        cyconv.grad.conv2d_input((1, 4, 9, 9), w, np.ones((1, 4, 4, 4)), stride=2,
                                 algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        cyconv.grad.conv2d_input((1, 4, 9, 9), w, np.ones((1, 4, 7, 7)), algorithm="fft")
    w[1, 2, 0, 1] = np.inf
    grad_out = np.random.default_rng(0).standard_normal((1, 4, 9, 9))
    got = cyconv.grad.conv2d_input((1, 4, 9, 9), w, grad_out, padding=1, algorithm="winograd")
    np.testing.assert_array_equal(got, cyconv.grad.conv2d_input((1, 4, 9, 9), w, grad_out,
                                                                padding=1))
