"""Property-based tests: random configurations of every forward feature vs torch
(cyconv.conv2d, and the same layer frozen)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cyconv
from helpers import LAYOUTS, assert_close, odd_layout, random_array, torch_conv2d


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    # up to 6 in and 20 out per group, or 32 to 36 out: the plane kernel (few
    # channels per group), the register-blocked kernels and the spread input
    # gradient (>= 32 output channels per group, strided) are all drawn
    c_in = groups * draw(st.integers(1, 6))
    c_out = groups * draw(st.one_of(st.integers(1, 20), st.integers(32, 36)))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    dilation = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 3), st.integers(1, 2))))
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    forms = ["int", "pair", "valid", "pairs"] + (["same"] if (sh, sw) == (1, 1) else [])
    form = draw(st.sampled_from(forms))
    if form == "int":
        padding = draw(st.integers(0, 3))
        pads = ((padding, padding),) * 2
    elif form == "pair":
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        pads = ((padding[0],) * 2, (padding[1],) * 2)
    elif form == "pairs":
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
        pads = padding
    else:
        padding, pads = form, ((0, 0), (0, 0))
    # inputs at least as large as the dilated kernel after padding
    h = max(1, dh * (kh - 1) + 1 - sum(pads[0])) + draw(st.integers(0, 9))
    # sometimes wide rows (>= 24 outputs), which take the row-band kernel
    w = max(1, dw * (kw - 1) + 1 - sum(pads[1])) + draw(st.one_of(st.integers(0, 9),
                                                                st.integers(24 * sw, 30 * sw)))
    return dict(
        batch=draw(st.integers(0, 3)), unbatched=draw(st.booleans()),
        c_in=c_in, c_out=c_out, kernel=(kh, kw), h=h, w=w,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=draw(st.booleans()), dtype=draw(st.sampled_from([np.float32, np.float64])),
        layout=draw(st.sampled_from(LAYOUTS)), threads=draw(st.sampled_from([None, 1, 2])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_configs())
def test_random_configurations_match_torch(cfg):
    rng = np.random.default_rng(cfg["seed"])
    shape = (cfg["c_in"], cfg["h"], cfg["w"])
    if not cfg["unbatched"]:
        shape = (cfg["batch"],) + shape
    x = random_array(rng, shape, cfg["dtype"])
    weight = random_array(rng, (cfg["c_out"], cfg["c_in"] // cfg["groups"]) + cfg["kernel"],
                          cfg["dtype"])
    bias = random_array(rng, (cfg["c_out"],), cfg["dtype"]) if cfg["bias"] else None
    args = (cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])

    ours = cyconv.conv2d(odd_layout(x, cfg["layout"]), odd_layout(weight, cfg["layout"]),
                         bias, *args, num_threads=cfg["threads"])
    x4 = x if not cfg["unbatched"] else x[None]
    theirs = torch_conv2d(x4, weight, bias, *args)
    if cfg["unbatched"]:
        theirs = theirs[0]
    assert ours.dtype == cfg["dtype"]
    assert_close(ours, theirs, cfg["dtype"])

    # the same layer frozen (weights packed once): its first call checks the
    # input, the second takes the checked call it kept
    layer = cyconv.Conv2d(cfg["c_in"], cfg["c_out"], cfg["kernel"], *args, bias=cfg["bias"],
                          dtype=cfg["dtype"], num_threads=cfg["threads"])
    layer.weight, layer.bias = weight, bias
    frozen = layer.freeze()
    for _ in range(2):
        assert_close(frozen(odd_layout(x, cfg["layout"])), theirs, cfg["dtype"])
