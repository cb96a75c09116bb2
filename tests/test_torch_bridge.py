"""cyconv.torch: the autograd Function and the drop-in torch.nn.Conv2d."""
import numpy as np
import pytest
import torch

import cyconv.torch as ct

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups)
GRADCHECK_GRID = [
    (2, 3, 6, 7, 4, 3, 1, 1, 1, 1),
    (1, 4, 7, 6, 6, (3, 2), (2, 1), (1, 0), 1, 2),
    (2, 2, 8, 8, 3, 3, 2, 0, 2, 1),
    (1, 4, 5, 6, 4, 3, 1, "same", 1, 4),     # depthwise
    (1, 2, 5, 5, 4, 2, 1, "same", 1, 1),     # even kernel 'same'
    (2, 3, 5, 4, 2, 1, 1, 0, 1, 1),          # 1x1
    (1, 2, 9, 9, 5, 5, 3, 2, 1, 1),
]


@pytest.mark.parametrize("case", GRADCHECK_GRID, ids=[str(i) for i in range(len(GRADCHECK_GRID))])
def test_gradcheck_float64(case):
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups = case
    kh, kw = (k, k) if isinstance(k, int) else k
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c_in, h, w, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(c_out, c_in // groups, kh, kw, dtype=torch.float64, generator=gen,
                         requires_grad=True)
    bias = torch.randn(c_out, dtype=torch.float64, generator=gen, requires_grad=True)

    def f(x, weight, bias):
        return ct.conv2d(x, weight, bias, stride, padding, dilation, groups)

    assert torch.autograd.gradcheck(f, (x, weight, bias))
    # and the values are torch's
    expected = torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)
    torch.testing.assert_close(f(x, weight, bias), expected)


def test_gradcheck_unbatched_without_bias():
    x = torch.randn(3, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: ct.conv2d(x, w, None, 1, 1), (x, weight))


def test_only_the_needed_gradients_are_computed():
    x = torch.randn(1, 2, 5, 5)
    weight = torch.randn(3, 2, 3, 3, requires_grad=True)
    out = ct.conv2d(x, weight)
    out.sum().backward()
    assert x.grad is None and weight.grad is not None


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_module_is_a_drop_in_for_torch_conv2d(mode):
    torch.manual_seed(0)
    ours = ct.Conv2d(4, 6, 3, stride=1, padding=1, padding_mode=mode, dtype=torch.float64)
    reference = torch.nn.Conv2d(4, 6, 3, stride=1, padding=1, padding_mode=mode,
                                dtype=torch.float64)
    assert isinstance(ours, torch.nn.Conv2d)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 4, 7, 8, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(ours(x), reference(x))
    assert torch.autograd.gradcheck(ours, (x,))
    assert repr(ours).endswith(repr(reference)[len("Conv2d"):])


def _train(conv_class, dtype, steps=8):
    """A small CNN trained with SGD on fixed random data; returns the losses."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        conv_class(1, 6, 3, padding=1, dtype=dtype), torch.nn.ReLU(),
        conv_class(6, 8, 3, stride=2, padding=1, dtype=dtype), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10, dtype=dtype))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 1, 8, 8, generator=gen, dtype=dtype)
    y = torch.randint(0, 10, (32,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_training_follows_torch_loss_curve(dtype, rtol):
    ours = _train(ct.Conv2d, dtype)
    theirs = _train(torch.nn.Conv2d, dtype)
    assert ours[-1] < ours[0]  # it does train
    np.testing.assert_allclose(ours, theirs, rtol=rtol)


def test_tensors_on_another_device_are_refused():
    x = torch.empty(1, 2, 5, 5, device="meta")
    w = torch.empty(3, 2, 3, 3, device="meta")
    with pytest.raises(ValueError, match=r"computes on the CPU, but input is on meta"):
        ct.conv2d(x, w)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32])
def test_unsupported_dtypes_are_refused(dtype):
    x = torch.ones(1, 2, 5, 5, dtype=dtype)
    w = torch.ones(3, 2, 3, 3, dtype=dtype)
    with pytest.raises(TypeError, match=rf"torch.float32 or torch.float64, but input has dtype {dtype}"):
        ct.conv2d(x, w)


def test_non_tensors_and_bad_shapes_are_refused():
    with pytest.raises(TypeError, match=r"input must be a torch.Tensor, but got ndarray"):
        ct.conv2d(np.zeros((1, 2, 5, 5)), torch.zeros(3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expects input to have 2 channels"):
        ct.conv2d(torch.zeros(1, 4, 5, 5), torch.zeros(3, 2, 3, 3))


def test_double_backward_is_refused():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    # the output gradient 2 * out depends on x, so a second derivative is asked for
    (g,) = torch.autograd.grad((ct.conv2d(x, w) ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"marked with @once_differentiable"):
        g.sum().backward()


@pytest.mark.parametrize("x_last, w_last", [(True, False), (False, True), (True, True)])
def test_channels_last_operands_give_torchs_memory_formats(x_last, w_last):
    cl = torch.channels_last
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    if x_last:
        x = x.contiguous(memory_format=cl)
    if w_last:
        w = w.contiguous(memory_format=cl)
    results = []
    for conv in (ct.conv2d, torch.nn.functional.conv2d):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = conv(xx, ww, None, 1, 1)
        y.backward(torch.ones_like(y))
        results.append([(t.is_contiguous(memory_format=cl), t.is_contiguous(), t.detach())
                        for t in (y, xx.grad, ww.grad)])
    for (ours_cl, ours_c, ours), (theirs_cl, theirs_c, theirs) in zip(*results):
        assert (ours_cl, ours_c) == (theirs_cl, theirs_c)
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_cpu_autocast_runs_convolutions_in_its_lower_precision_as_torch_does(low):
    torch.manual_seed(0)
    ours = ct.Conv2d(3, 8, 3, padding=1)
    theirs = torch.nn.Conv2d(3, 8, 3, padding=1)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 10, 10)
    outs = []
    for layer in (ours, theirs):
        with torch.autocast("cpu", dtype=low):
            y = layer(x)
            y.float().square().sum().backward()
        outs.append((y, layer.weight.grad.clone()))
    (y, gw), (ty, tgw) = outs
    assert y.dtype == ty.dtype == low
    assert gw.dtype == tgw.dtype == torch.float32
    torch.testing.assert_close(y.float(), ty.float(), rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(gw, tgw, rtol=5e-2, atol=5e-2)
    with torch.autocast("cpu", dtype=low):  # float64 is not cast, as in torch
        assert ct.conv2d(x.double(), ours.weight.double()).dtype == torch.float64
