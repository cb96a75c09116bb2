"""cyconv.Conv2d against torch.nn.Conv2d."""
import numpy as np
import pytest
import torch

import cyconv
from helpers import assert_close, random_array, torch_conv2d

CONFIGS = [
    dict(in_channels=3, out_channels=8, kernel_size=3, padding=1),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(2, 1),
         dilation=(1, 2), groups=2),
    dict(in_channels=6, out_channels=6, kernel_size=3, padding="same", groups=6, bias=False),
    dict(in_channels=2, out_channels=5, kernel_size=4, padding="same"),
    dict(in_channels=3, out_channels=4, kernel_size=5, stride=2, padding="valid"),
]


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=[str(i) for i in range(len(CONFIGS))])
def test_layer_matches_torch_with_torch_weights(rng, config, padding_mode, dtype):
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(**config, padding_mode=padding_mode,
                                dtype=torch.float32 if dtype == np.float32 else torch.float64)
    layer = cyconv.Conv2d(**config, padding_mode=padding_mode, dtype=dtype)
    layer.load_state_dict(reference.state_dict())
    x = random_array(rng, (2, config["in_channels"], 11, 10), dtype)
    expected = assert_layer_matches(layer, reference, x)
    # unbatched input, too
    assert_close(layer(x[0]), expected[0], dtype)


def assert_layer_matches(layer, reference, x):
    """layer(x) against the torch module's result, which it returns."""
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    out = layer(x)
    assert out.dtype == x.dtype
    assert_close(out, expected, x.dtype)
    return expected


def test_from_torch_copies_configuration_and_weights(rng):
    reference = torch.nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, padding_mode="reflect",
                                dtype=torch.float64)
    layer = cyconv.Conv2d.from_torch(reference)
    assert (layer.kernel_size, layer.stride, layer.groups) == ((3, 3), (2, 2), 2)
    assert layer.dtype == np.float64 and layer.padding_mode == "reflect"
    x = random_array(rng, (1, 4, 9, 9), np.float64)
    with torch.no_grad():
        assert_close(layer(x), reference(torch.from_numpy(x)).numpy(), np.float64)


def test_initialisation_is_torch_like_and_reproducible():
    a = cyconv.Conv2d(16, 32, 3, groups=2, rng=7)
    b = cyconv.Conv2d(16, 32, 3, groups=2, rng=np.random.default_rng(7))
    c = cyconv.Conv2d(16, 32, 3, groups=2, rng=8)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, c.weight)
    assert a.weight.shape == (32, 8, 3, 3) and a.weight.dtype == np.float32
    bound = 1 / np.sqrt(8 * 3 * 3)  # fan_in = in_channels / groups * kH * kW
    torch_layer = torch.nn.Conv2d(16, 32, 3, groups=2)
    for ours, theirs in ((a.weight, torch_layer.weight), (a.bias, torch_layer.bias)):
        assert np.abs(ours).max() <= bound
        assert np.abs(theirs.detach().numpy()).max() <= bound
        # uniform on +-bound: the spread covers most of the interval, like torch's
        assert np.abs(ours).max() > 0.9 * bound
        assert abs(ours.std() - bound / np.sqrt(3)) < 0.15 * bound


def test_state_dict_round_trip_and_no_bias():
    layer = cyconv.Conv2d(3, 4, 3, bias=False, rng=0)
    assert set(layer.state_dict()) == {"weight"}
    other = cyconv.Conv2d(3, 4, 3, bias=False, rng=1).load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(other.weight, layer.weight)


def test_repr_reads_like_torch():
    assert repr(cyconv.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1))) == \
        repr(torch.nn.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2), dilation=(3, 1)))
    assert repr(cyconv.Conv2d(4, 4, 3, groups=2, bias=False, padding_mode="circular",
                              padding=1)) == \
        repr(torch.nn.Conv2d(4, 4, 3, groups=2, bias=False, padding_mode="circular", padding=1))
    assert "dtype=float64" in repr(cyconv.Conv2d(1, 1, 1, dtype=np.float64))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(in_channels=3, out_channels=4, kernel_size=0), ValueError, r"kernel_size must be >= 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, groups=2), ValueError,
     r"in_channels \(3\) must be divisible by groups \(2\)"),
    (dict(in_channels=4, out_channels=3, kernel_size=3, groups=2), ValueError,
     r"out_channels \(3\) must be divisible by groups \(2\)"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding_mode="mirror"), ValueError,
     r"padding_mode must be one of"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, padding="same", stride=2), ValueError,
     r"'same' is not supported for strided"),
    (dict(in_channels=3, out_channels=4, kernel_size=3, dtype=np.int32), TypeError,
     r"dtype must be float32 or float64"),
    (dict(in_channels=0, out_channels=4, kernel_size=3), ValueError, r"in_channels must be >= 1"),
    (dict(in_channels=3, out_channels=4, kernel_size=2.5), TypeError, r"kernel_size must be an int"),
])
def test_bad_layer_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        cyconv.Conv2d(**kwargs)


def test_bad_layer_inputs_and_states():
    layer = cyconv.Conv2d(3, 4, 3, padding=3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"padding_mode='reflect' needs each padding to be less"):
        layer(np.zeros((1, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"input to be 3-D"):
        layer(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"expects input to have 3 channels"):
        cyconv.Conv2d(3, 4, 3)(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(KeyError, match=r"keys \['bias', 'weight'\]"):
        cyconv.Conv2d(3, 4, 3).load_state_dict({"weight": np.zeros((4, 3, 3, 3))})
    with pytest.raises(ValueError, match=r"state_dict\['weight'\] must have shape \[4, 3, 3, 3\]"):
        cyconv.Conv2d(3, 4, 3).load_state_dict({"weight": np.zeros((4, 3, 2, 2)),
                                                "bias": np.zeros(4)})
    circular = cyconv.Conv2d(1, 1, 3, padding=4, padding_mode="circular")
    with pytest.raises(ValueError, match=r"'circular' needs each padding to be at most"):
        circular(np.zeros((1, 1, 3, 3), np.float32))


# one layer per kernel path: plane (depthwise), row-band (batch 1 packs per
# item, larger batches share the packed weights; a partial channel block),
# narrow, pointwise, gathered (1x1 with stride), grouped bands
FROZEN_CONFIGS = [
    dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8),
    dict(in_channels=16, out_channels=20, kernel_size=3, padding=1),
    dict(in_channels=16, out_channels=32, kernel_size=3, stride=2, padding=1),
    dict(in_channels=8, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=32, out_channels=25, kernel_size=1),
    dict(in_channels=16, out_channels=12, kernel_size=1, stride=2),
    dict(in_channels=32, out_channels=64, kernel_size=3, padding=1, groups=2),
    dict(in_channels=6, out_channels=24, kernel_size=3, padding=1, padding_mode="reflect"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", FROZEN_CONFIGS, ids=[str(i) for i in range(len(FROZEN_CONFIGS))])
def test_frozen_layer_matches_torch(rng, config, dtype):
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(**config, dtype=torch.float32 if dtype == np.float32
                                else torch.float64)
    frozen = cyconv.Conv2d.from_torch(reference, num_threads=2).freeze()
    # batch sizes and plane sizes in turn: each input shape finds its packing
    for shape in [(1, 12, 12), (3, 12, 12), (1, 7, 9), (1, 12, 12), (3, 12, 12)]:
        x = random_array(rng, (shape[0], config["in_channels"]) + shape[1:], dtype)
        expected = assert_layer_matches(frozen, reference, x)
    assert_close(frozen(x[0]), expected[0], dtype)


def test_frozen_layer_is_a_snapshot_with_read_only_weights(rng):
    layer = cyconv.Conv2d(16, 32, 3, padding=1, rng=0)
    x = random_array(rng, (2, 16, 8, 8), np.float32)
    before = layer(x)
    frozen = layer.freeze()
    assert_close(frozen(x), before, np.float32)
    layer.weight *= 2  # the layer changes; the frozen copy does not
    layer.bias[:] = 0
    assert_close(frozen(x), before, np.float32)
    assert not np.allclose(layer(x), before)
    with pytest.raises(ValueError, match="read-only"):
        frozen.weight[0, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        frozen.bias[0] = 1
    assert_close(frozen(x), before, np.float32)
    assert set(frozen.state_dict()) == {"weight", "bias"}
    assert repr(frozen) == "Frozen" + repr(cyconv.Conv2d(16, 32, 3, padding=1))
    assert not hasattr(frozen, "backward")
    for name, value in (("stride", (2, 2)), ("weight", layer.weight), ("padding", 0)):
        with pytest.raises(AttributeError, match=f"cannot change \\('{name}'\\)"):
            setattr(frozen, name, value)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        frozen.num_threads = 0
    frozen.num_threads = 1  # a run-time setting, not the layer's configuration
    assert_close(frozen(x), before, np.float32)


def test_frozen_layer_serves_threads_at_once(rng):
    # one frozen layer called from several Python threads (the kernel runs
    # without the GIL), each on its own inputs and shapes, first calls included
    from concurrent.futures import ThreadPoolExecutor
    layer = cyconv.Conv2d(16, 32, 3, padding=1, rng=0)
    frozen = layer.freeze()
    inputs = [random_array(rng, (1 + i % 3, 16, 6 + i % 4, 8), np.float32) for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        outputs = list(pool.map(frozen, inputs))
    for x, out in zip(inputs, outputs):
        assert_close(out, layer(x), np.float32)


def test_frozen_layer_pickles_and_copies_read_only(rng):
    import copy
    import pickle
    frozen = cyconv.Conv2d(16, 32, 3, padding=1, rng=0).freeze()
    x = random_array(rng, (1, 16, 8, 8), np.float32)
    expected = frozen(x)
    for other in (pickle.loads(pickle.dumps(frozen)), copy.deepcopy(frozen)):
        assert not other.weight.flags.writeable and not other.bias.flags.writeable
        assert_close(other(x), expected, np.float32)


def test_frozen_layer_keeps_no_input_alive_and_takes_empty_batches(rng):
    import gc
    import weakref
    frozen = cyconv.Conv2d(16, 32, 3, padding=1, rng=0).freeze()
    x = random_array(rng, (2, 16, 8, 8), np.float32)
    frozen(x)
    frozen(x)
    gone = weakref.ref(x)
    del x
    gc.collect()
    assert gone() is None
    assert frozen(np.zeros((0, 16, 8, 8), np.float32)).shape == (0, 32, 8, 8)


def test_frozen_layer_converts_integer_inputs_every_time(rng):
    layer = cyconv.Conv2d(3, 16, 3, padding=1, rng=0)
    frozen = layer.freeze()
    x = rng.integers(-3, 4, (2, 3, 6, 6))
    for _ in range(2):  # checked, then known
        out = frozen(x)
        assert out.dtype == np.float32
        assert_close(out, layer(x.astype(np.float32)), np.float32)


def test_frozen_layer_errors_are_the_layers():
    frozen = cyconv.Conv2d(3, 4, 3).freeze()
    with pytest.raises(ValueError, match=r"expects input to have 3 channels"):
        frozen(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(TypeError, match=r"must have the same float dtype"):
        frozen(np.zeros((1, 3, 8, 8), np.float64))
    with pytest.raises(TypeError, match=r"FrozenConv2d freezes a cyconv.Conv2d"):
        cyconv.FrozenConv2d(torch.nn.Conv2d(3, 4, 3))


def test_kernel_refuses_weights_packed_for_another_layout(rng):
    # the compiled kernel checks what it is given: a wrong layout would
    # silently compute wrong values
    from cyconv._dispatch import kernel
    x = random_array(rng, (1, 16, 8, 8), np.float32)
    w = random_array(rng, (32, 16, 3, 3), np.float32)
    bias = np.zeros(32, np.float32)
    out = np.empty((1, 32, 8, 8), np.float32)
    args = (x, w, bias, out, 1, 1, 1, 1, 1, 1, 1, 1)
    block = kernel.packing_block(x.shape, w.shape, out.shape, 1, 1, 1, 1, 1, 1, 1, 4)
    packed = kernel.pack_weight(w, 1, block, 1)
    kernel.conv2d_forward(*args, packed, block)
    assert_close(out, torch_conv2d(x, w, bias, padding=1), np.float32)
    with pytest.raises(ValueError, match="packed in blocks of"):
        kernel.conv2d_forward(*args, kernel.pack_weight(w, 1, block + 1, 1), block + 1)
    with pytest.raises(ValueError, match="packed weights for a layout"):
        kernel.conv2d_forward(*args, packed[:-1], block)
