"""cyconv.conv2d against torch and the NumPy reference: a grid of configurations."""
import numpy as np
import pytest

import cyconv
from helpers import LAYOUTS, assert_close, odd_layout, random_array, torch_conv2d
from reference import conv2d_reference

# (N, C_in, H, W, C_out, (kh, kw), stride, padding, dilation, groups)
GRID = [
    (2, 3, 9, 11, 4, 3, 1, 0, 1, 1),
    (1, 1, 5, 5, 1, 1, 1, 0, 1, 1),
    (2, 4, 10, 7, 6, (3, 2), (2, 1), 1, 1, 2),
    (1, 8, 12, 12, 8, 3, 1, 1, 1, 8),                 # depthwise
    (2, 4, 12, 12, 8, 3, 1, 1, 1, 4),                 # channel multiplier 2
    (3, 5, 13, 9, 7, (2, 4), (1, 3), (2, 1), (2, 1), 1),
    (1, 3, 16, 16, 13, 5, 2, "valid", 1, 1),
    (2, 6, 11, 14, 9, 4, 1, "same", 1, 3),            # even kernel: extra pad bottom/right
    (1, 2, 15, 15, 5, 3, 1, "same", 3, 1),            # dilated same
    (2, 3, 8, 9, 5, 3, 2, ((2, 0), (1, 3)), 1, 1),    # asymmetric padding
    (1, 16, 7, 7, 33, 3, 1, 1, 1, 1),                 # channels past one register block
    (5, 17, 31, 37, 23, 5, 1, 2, 1, 1),               # odd sizes, batch crosses tiles
    (1, 3, 40, 33, 64, 7, 2, 3, 1, 1),                # RGB stem
    (2, 12, 6, 6, 12, 1, 1, 0, 1, 1),                 # pointwise
    (1, 4, 3, 3, 2, 3, 1, 5, 1, 1),                   # padding larger than the input
    (2, 2, 1, 1, 3, 1, 1, 0, 1, 1),                   # 1x1 plane
    (1, 6, 20, 3, 4, (5, 1), (3, 1), (1, 0), (2, 1), 2),
    # 1-2 output channels per group from many input channels: the plane
    # kernel pads the input planes a slice of channels at a time
    (2, 40, 48, 50, 2, 3, 1, 1, 1, 1),
    (1, 60, 40, 40, 4, 3, 1, 2, 2, 2),
    # >= 16 output channels per group: the row-band kernel (register tiles
    # span row ends, for any stride)
    (2, 5, 9, 30, 20, 3, 1, 1, 1, 1),
    (2, 7, 13, 11, 20, 3, (2, 3), ((1, 2), (0, 1)), (1, 2), 1),
    (1, 4, 8, 61, 32, (2, 3), (1, 2), ((1, 0), (2, 1)), (1, 2), 2),
    (1, 3, 12, 50, 40, 5, 1, "same", 1, 1),
    # enough row blocks for units of about 32 tiles (7 rows of 30 here)
    (16, 3, 20, 30, 40, 3, 1, 1, 1, 1),
    # an input over 2 MiB zero-padded (here 2.4 MiB in float32) loads each
    # unit's bands itself; smaller ones are zero-padded once, whole
    (2, 32, 96, 100, 40, 3, (2, 1), ((1, 2), (0, 1)), (1, 2), 1),
    # stride 1, 5 to 15 output channels per group: the narrow band kernel
    (2, 12, 10, 13, 6, 3, 1, 1, 1, 1),
    (1, 20, 9, 8, 10, (2, 3), 1, ((1, 0), (2, 1)), (2, 1), 2),
    # >= 32 output channels per group with a stride, 1x1 or a narrow plane:
    # the input gradient is spread from grad_output
    (2, 6, 13, 11, 64, 3, 2, 1, 2, 2),
    (1, 5, 9, 10, 40, 1, 2, ((1, 0), (0, 2)), 1, 1),
    (3, 7, 6, 5, 36, (3, 2), (1, 3), 4, 1, 1),
    # 1x1, stride 1, no padding, >= 16 input channels per group: a matrix product
    (2, 32, 5, 7, 24, 1, 1, 0, 1, 2),
    (1, 40, 9, 9, 7, 1, 1, 0, 3, 1),
    # its tiles run on across images: planes smaller than a tile, and 14x14
    # planes in several chunks (on two threads)
    (5, 20, 4, 3, 16, 1, 1, 0, 1, 1),
    (3, 24, 14, 14, 40, 1, 1, 0, 1, 1),
    # small planes with weights over 4 MiB: row bands take several images per item
    (5, 256, 6, 5, 512, 3, 1, 1, 1, 1),
    (3, 256, 9, 9, 512, 3, 2, 1, 1, 1),
    # float64: its 15 row blocks go 5 to an item (equal unit blocks, not 8 and 7)
    (5, 256, 8, 8, 512, 3, 1, 1, 1, 1),
    # stride 1, >= 16 output channels per group, few (channel, tap) rows: the
    # weight gradient reads bands (tall planes: several row blocks per image)
    (2, 6, 11, 13, 40, (3, 2), 1, ((2, 0), (1, 1)), (2, 1), 2),
    (1, 3, 70, 9, 16, 3, 1, 1, 1, 1),
    # stride 1, up to 4 input channels per group and 6-16 output channels that
    # fill the blocks: the narrow kernel, not the plane kernel (per variant)
    (2, 8, 10, 13, 16, 3, 1, 1, 1, 2),
    (1, 1, 12, 17, 6, 5, 1, 2, 1, 1),
]


def _run_both(rng, case, dtype, bias=True):
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = random_array(rng, (n, c_in, h, w), dtype)
    weight = random_array(rng, (c_out, c_in // groups, kh, kw), dtype)
    b = random_array(rng, (c_out,), dtype) if bias else None
    ours = cyconv.conv2d(x, weight, b, stride, padding, dilation, groups)
    theirs = torch_conv2d(x, weight, b, stride, padding, dilation, groups)
    return x, weight, b, ours, theirs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GRID, ids=[str(i) for i in range(len(GRID))])
def test_grid_matches_torch(rng, case, dtype, kernel_variant):
    _, _, _, ours, theirs = _run_both(rng, case, dtype)
    assert ours.dtype == dtype
    assert_close(ours, theirs, dtype)


@pytest.mark.parametrize("case", GRID[:12], ids=[str(i) for i in range(12)])
def test_grid_matches_numpy_reference(rng, case):
    x, weight, b, ours, theirs = _run_both(rng, case, np.float64, bias=False)
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups = case
    pads = cyconv._validation.as_padding(padding, weight.shape[2:],
                                         cyconv._validation.as_pair(dilation, "d", 1),
                                         cyconv._validation.as_pair(stride, "s", 1))
    expected = conv2d_reference(x, weight, None, cyconv._validation.as_pair(stride, "s", 1),
                                pads, cyconv._validation.as_pair(dilation, "d", 1), groups)
    assert_close(ours, expected, np.float64)
    # the reference and torch agree too, so the reference is itself checked
    assert_close(theirs, expected, np.float64)


def test_reference_on_a_hand_computed_case():
    # 1 image, 1 channel, 3x3 input, 2x2 kernel of ones: each output is a 2x2 window sum
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 2, 2))
    expected = np.array([[[[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]]])
    np.testing.assert_array_equal(conv2d_reference(x, w), expected)
    np.testing.assert_array_equal(cyconv.conv2d(x, w), expected)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_any_memory_layout(rng, layout):
    x = random_array(rng, (2, 4, 9, 8), np.float32)
    w = random_array(rng, (6, 2, 3, 3), np.float32)
    b = random_array(rng, (6,), np.float32)
    expected = cyconv.conv2d(x, w, b, padding=1, groups=2)
    got = cyconv.conv2d(odd_layout(x, layout), odd_layout(w, layout), odd_layout(b, layout),
                        padding=1, groups=2)
    np.testing.assert_array_equal(got, expected)
    assert_close(got, torch_conv2d(x, w, b, padding=1, groups=2), np.float32)


def test_unbatched_input_gives_unbatched_output(rng):
    x = random_array(rng, (3, 10, 10), np.float64)
    w = random_array(rng, (5, 3, 3, 3), np.float64)
    out = cyconv.conv2d(x, w, stride=2)
    assert out.shape == (5, 4, 4)
    assert_close(out, torch_conv2d(x[None], w, stride=2)[0], np.float64)


def test_empty_batch(rng):
    out = cyconv.conv2d(np.zeros((0, 3, 8, 8), np.float32), np.ones((4, 3, 3, 3), np.float32))
    assert out.shape == (0, 4, 6, 6) and out.dtype == np.float32


def test_integer_and_list_operands_become_float64():
    x = [[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]]
    w = [[[[1, 0], [0, -1]]]]
    out = cyconv.conv2d(x, w, [True])
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[[[1 - 5 + 1, 2 - 6 + 1], [4 - 8 + 1, 5 - 9 + 1]]]])


def test_integer_operands_take_the_float_operands_dtype(rng):
    x = rng.integers(-3, 4, (1, 2, 6, 6))
    w = random_array(rng, (3, 2, 3, 3), np.float32)
    out = cyconv.conv2d(x, w)
    assert out.dtype == np.float32
    assert_close(out, torch_conv2d(x.astype(np.float32), w), np.float32)


def test_float16_is_computed_in_float32_and_returned_as_float16(rng):
    x = random_array(rng, (2, 3, 8, 8), np.float16)
    w = random_array(rng, (4, 3, 3, 3), np.float16)
    out = cyconv.conv2d(x, w, padding=1)
    assert out.dtype == np.float16
    assert_close(out, torch_conv2d(x, w, padding=1), np.float16)


def test_nan_and_inf_propagate_like_torch(rng):
    x = random_array(rng, (1, 2, 8, 8), np.float32)
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 6, 6] = np.inf
    x[0, 1, 0, 0] = -np.inf
    w = random_array(rng, (3, 2, 3, 3), np.float32)
    ours = cyconv.conv2d(x, w, padding=1)
    theirs = torch_conv2d(x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
    finite = np.isfinite(theirs)
    assert finite.any() and not finite.all()
    assert_close(ours[finite], theirs[finite], np.float32)


def test_inputs_are_not_modified(rng):
    x = random_array(rng, (2, 3, 6, 6), np.float32)
    w = random_array(rng, (4, 3, 3, 3), np.float32)
    x0, w0 = x.copy(), w.copy()
    cyconv.conv2d(x, w, padding=2)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
