"""cyconv.plan, CYCONV_VERBOSE and the kernel-variant switch: the layers meant
for each path take it, the plan is what runs, and every module follows the switch."""
import ast
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import cyconv
from cyconv import _dispatch
from helpers import assert_close, random_array, torch_conv2d, torch_conv2d_grads

# (input shape, weight shape, conv2d keywords, path) per direction; the shapes
# take the same path with every kernel variant
FORWARD = [
    ((2, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8), "planes"),       # depthwise
    ((1, 1, 28, 28), (2, 1, 5, 5), {}, "planes"),                              # 1 -> 2 channels
    ((2, 16, 9, 9), (16, 1, 3, 3), dict(stride=2, groups=16), "planes"),       # strided depthwise
    ((2, 64, 14, 14), (64, 64, 3, 3), dict(padding=1), "row_bands"),
    ((1, 16, 20, 30), (64, 16, 3, 3), dict(stride=2, padding=1), "row_bands"),
    ((2, 1, 16, 16), (6, 1, 5, 5), {}, "narrow"),                               # LeNet c1
    ((1, 16, 10, 10), (4, 16, 3, 3), dict(padding=1), "narrow"),
    ((2, 64, 7, 7), (32, 64, 1, 1), {}, "pointwise"),
    ((2, 64, 8, 8), (32, 64, 1, 1), dict(stride=2), "gathered"),              # a strided 1x1
    ((1, 16, 11, 11), (4, 16, 3, 3), dict(stride=2), "gathered"),
    ((1, 2, 3, 3), (4, 2, 1, 1), dict(stride=2**20, padding=2**20), "gathered"),  # a huge span
]
INPUT_GRAD = [
    ((2, 12, 17, 9), (40, 12, 3, 3), dict(stride=2, padding=1), "spread"),
    ((1, 40, 6, 7), (256, 40, 3, 3), dict(padding=1), "spread"),
    ((2, 64, 14, 14), (64, 64, 3, 3), dict(padding=1), "flipped"),
    ((2, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8), "phases"),      # stride 1, planes
    ((2, 8, 13, 13), (8, 8, 3, 3), dict(stride=2), "phases"),
]
WEIGHT_GRAD = [
    ((2, 8, 12, 12), (8, 1, 3, 3), dict(padding=1, groups=8), "planes"),
    ((2, 16, 28, 28), (64, 16, 3, 3), dict(padding=1), "bands"),
    ((2, 16, 15, 15), (64, 16, 3, 3), dict(stride=2, padding=1), "gathered"),
    ((2, 256, 7, 7), (64, 256, 1, 1), {}, "gathered"),
]
CASES = ([("forward",) + c for c in FORWARD] + [("input_grad",) + c for c in INPUT_GRAD]
         + [("weight_grad",) + c for c in WEIGHT_GRAD])


def _run(direction, x, w, go, conv, threads=2):
    if direction == "forward":
        return cyconv.conv2d(x, w, **conv, num_threads=threads)
    if direction == "input_grad":
        return cyconv.grad.conv2d_input(x.shape, w, go, **conv, num_threads=threads)
    return cyconv.grad.conv2d_weight(x, w.shape, go, **conv, num_threads=threads)


@pytest.mark.parametrize("direction, x_shape, w_shape, conv, path", CASES)
def test_layers_meant_for_a_path_take_it(rng, direction, x_shape, w_shape, conv, path,
                                         kernel_variant):
    plan = cyconv.plan(x_shape, w_shape, **conv, direction=direction, num_threads=2)
    assert plan["path"] == path
    assert plan["kernel"] == kernel_variant
    assert 1 <= plan["n_threads"] <= 2
    # and the layer computes what torch does on it
    x = random_array(rng, x_shape, np.float32)
    w = random_array(rng, w_shape, np.float32)
    out_shape = torch_conv2d(x, w, **conv).shape
    assert plan["output_shape"] == out_shape
    go = random_array(rng, out_shape, np.float32)
    expected = {"forward": lambda: torch_conv2d(x, w, **conv),
                "input_grad": lambda: torch_conv2d_grads(x, w, None, go, **conv)[0],
                "weight_grad": lambda: torch_conv2d_grads(x, w, None, go, **conv)[1]}
    assert_close(_run(direction, x, w, go, conv), expected[direction](), np.float32)


def test_plan_reports_its_inputs_and_refuses_bad_ones():
    plan = cyconv.plan((3, 10, 10), (5, 3, 3, 3), stride=2, dtype=np.float16)
    assert plan["dtype"] == "float32" and plan["output_shape"] == (5, 4, 4)
    assert plan["direction"] == "forward" and plan["kernel"] == cyconv.config()["kernel"]
    phases = cyconv.plan((2, 8, 13, 13), (8, 8, 3, 3), stride=(2, 3), direction="input_grad")
    assert phases["path"] == "phases" and phases["phases"] == 6
    flipped = cyconv.plan((2, 64, 14, 14), (64, 64, 3, 3), padding=1, direction="input_grad")
    assert flipped["forward"]["path"] == "row_bands"
    assert flipped["flipped_pad_top"] == 1 and flipped["flipped_pad_left"] == 1
    with pytest.raises(ValueError, match="direction must be one of"):
        cyconv.plan((1, 3, 8, 8), (4, 3, 3, 3), direction="backward")
    with pytest.raises(TypeError, match="dtype must be float16, float32 or float64"):
        cyconv.plan((1, 3, 8, 8), (4, 3, 3, 3), dtype=np.int32)
    with pytest.raises(ValueError, match="expects input to have 6 channels"):
        cyconv.plan((1, 3, 8, 8), (4, 6, 3, 3))
    with pytest.raises(ValueError, match="input_shape must be a tuple of 3 or 4 ints"):
        cyconv.plan((8, 8), (4, 3, 3, 3))


def test_plan_threads_follow_the_work():
    # a tiny call starts one thread, a large one as many as it is given
    assert cyconv.plan((1, 1, 8, 8), (32, 1, 3, 3), padding=1, num_threads=2)["n_threads"] == 1
    assert cyconv.plan((8, 64, 56, 56), (64, 64, 3, 3), padding=1, num_threads=2)["n_threads"] == 2


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120, cwd=tempfile.gettempdir())


def test_verbose_prints_one_line_per_call_with_the_planned_path():
    code = """
import numpy as np, cyconv
x = np.ones((2, 64, 14, 14), np.float32); w = np.ones((64, 64, 3, 3), np.float32)
y = cyconv.conv2d(x, w, padding=1, num_threads=2)
cyconv.grad.conv2d_input(x.shape, w, y, padding=1, num_threads=2)
cyconv.grad.conv2d_weight(x, w.shape, y, padding=1, num_threads=2)
cyconv.grad.conv2d_bias(y)
cyconv.conv2d(np.ones((3, 9, 9)), np.ones((4, 3, 1, 1)), stride=2)
"""
    r = _python(code, CYCONV_VERBOSE="1")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("cyconv_verbose,")]
    assert len(lines) == 5, r.stderr
    kernel = cyconv.config()["kernel"]
    for line, (direction, plan) in zip(lines, [
            ("forward", cyconv.plan((2, 64, 14, 14), (64, 64, 3, 3), padding=1, num_threads=2)),
            ("input_grad", cyconv.plan((2, 64, 14, 14), (64, 64, 3, 3), padding=1, num_threads=2,
                                       direction="input_grad")),
            ("weight_grad", cyconv.plan((2, 64, 14, 14), (64, 64, 3, 3), padding=1, num_threads=2,
                                        direction="weight_grad"))]):
        fields = line.split(",")
        assert fields[1:5] == [direction, kernel, plan["path"], "float32"], line
        assert f"threads:{plan['n_threads']}" in fields
        assert "input:2x64x14x14" in fields and "weight:64x64x3x3" in fields
        assert re.fullmatch(r"\d+\.\d{3}ms", fields[-1]), line
    assert lines[3].split(",")[1:4] == ["bias_grad", kernel, "sum"]
    assert "grad_output:2x64x14x14" in lines[3]
    assert ",float64," in lines[4] and ",stride:2x2," in lines[4] and "output:1x4x5x5" in lines[4]
    quiet = _python(code)
    assert quiet.returncode == 0 and "cyconv_verbose" not in quiet.stderr


class _Recorder:
    """A kernel module that records the names of the functions called on it."""

    def __init__(self, module):
        self.module = module
        self.calls = set()

    def __getattr__(self, name):
        attr = getattr(self.module, name)
        if not callable(attr):
            return attr

        def recorded(*args, **kwargs):
            self.calls.add(name)
            return attr(*args, **kwargs)
        return recorded


def test_the_variant_switch_reaches_every_module(rng, monkeypatch):
    # a module that kept its own reference to the default kernel would call
    # it directly, and its calls would be missing here
    recorder = _Recorder(_dispatch.kernel)
    monkeypatch.setattr(_dispatch, "load_variant", lambda variant: recorder)
    x = random_array(rng, (2, 4, 9, 9), np.float32)
    w = random_array(rng, (8, 4, 3, 3), np.float32)
    with _dispatch.use_variant(_dispatch.RUNNABLE[-1]):
        y = cyconv.conv2d(x, w, padding=1)
        cyconv.grad.conv2d_input(x.shape, w, y, padding=1)
        cyconv.grad.conv2d_weight(x, w.shape, y, padding=1)
        cyconv.grad.conv2d_bias(y)
        cyconv.conv_transpose2d(y, w, stride=2)
        layer = cyconv.Conv2d(4, 8, 3, padding=1, rng=0)
        layer.backward(np.ones_like(layer(x)))
        frozen = cyconv.Conv2d(4, 64, 3, padding=1, rng=0).freeze()
        frozen(x)
        frozen(x)
        cyconv.plan(x.shape, w.shape)
        assert cyconv.config()["kernel"] == _dispatch.RUNNABLE[-1]
    assert {"conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad", "conv2d_bias_grad",
            "flip_transpose_weight", "packing_block", "pack_weight", "plan",
            "max_threads"} <= recorder.calls
    assert _dispatch.kernel is not recorder and cyconv.config()["kernel"] == _dispatch.KERNEL_NAME


@pytest.mark.parametrize("variant", _dispatch.RUNNABLE)
def test_a_frozen_layer_runs_the_switched_variant(rng, variant):
    # bit for bit what conv2d computes under the same variant
    layer = cyconv.Conv2d(16, 64, 3, padding=1, rng=0)
    x = random_array(rng, (1, 16, 8, 8), np.float32)
    frozen = layer.freeze()
    frozen(x)  # packed under the default variant
    with _dispatch.use_variant(variant):
        expected = cyconv.conv2d(x, layer.weight, layer.bias, padding=1)
        np.testing.assert_array_equal(frozen(x), expected)
        np.testing.assert_array_equal(frozen(x), expected)


def test_build_and_run_spell_the_variants_alike():
    tree = ast.parse((Path(__file__).resolve().parents[1] / "setup.py").read_text())
    flags = next(node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 and any(getattr(t, "id", None) == "VARIANT_FLAGS" for t in node.targets))
    built_names = {ast.literal_eval(k) for k in flags.keys}
    assert built_names == set(_dispatch.VARIANT_LEVELS)
    assert set(cyconv.config()["kernels_built"]) <= built_names
