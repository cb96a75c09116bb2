"""cyconv inside PyTorch: conv2d as a torch.autograd.Function and a drop-in
torch.nn.Conv2d, for CPU tensors (float32, float64).

Imported only on request (``import cyconv.torch``); ``import cyconv`` never
imports torch.  Tensors cross to NumPy without copies; the forward pass runs
cyconv.conv2d and the backward pass cyconv.grad.  As torch does, the output is
channels_last when the input or the weight is, and each gradient has the
memory format of its operand.  Under CPU autocast (bfloat16 or float16)
float32 operands are rounded to that dtype, as torch's autocast policy does
for convolutions, and the result, computed in float32 from the rounded
operands, is returned in it.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import functional, grad
from ._types import IntPair, Padding

__all__ = ["conv2d", "Conv2d"]

_DTYPES = (torch.float32, torch.float64)


def _as_numpy(tensor, name):
    """The NumPy view of a CPU float32/float64 tensor, or a clear error."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, but got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise ValueError(f"cyconv.torch computes on the CPU, but {name} is on {tensor.device}; "
                         f"move it with .cpu() or use torch.nn.functional.conv2d there")
    if tensor.dtype not in _DTYPES:
        raise TypeError(f"cyconv.torch computes in torch.float32 or torch.float64, "
                        f"but {name} has dtype {tensor.dtype}")
    return tensor.detach().resolve_conj().resolve_neg().numpy()


def _channels_last(tensor):
    return (tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last)
            and not tensor.is_contiguous())


def _like(array, channels_last):
    """array as a tensor, channels_last if asked."""
    tensor = torch.from_numpy(array)
    return tensor.contiguous(memory_format=torch.channels_last) if channels_last else tensor


class _Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups):
        x = _as_numpy(input, "input")
        w = _as_numpy(weight, "weight")
        b = None if bias is None else _as_numpy(bias, "bias")
        out = functional.conv2d(x, w, b, stride, padding, dilation, groups)
        ctx.save_for_backward(input, weight)
        ctx.conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        ctx.has_bias = bias is not None
        return _like(out, _channels_last(input) or _channels_last(weight))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        go = _as_numpy(grad_output, "grad_output")
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = _like(grad.conv2d_input(
                tuple(input.shape), _as_numpy(weight, "weight"), go, **ctx.conv),
                _channels_last(input))
        if ctx.needs_input_grad[1]:
            grad_weight = _like(grad.conv2d_weight(
                _as_numpy(input, "input"), tuple(weight.shape), go, **ctx.conv),
                _channels_last(weight))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = torch.from_numpy(grad.conv2d_bias(go))
        return grad_input, grad_weight, grad_bias, None, None, None, None


def _autocast_dtype():
    """The lower-precision dtype of CPU autocast when it is on, else None."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        enabled, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    else:
        enabled, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
    return dtype if enabled else None


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
           groups: int = 1) -> torch.Tensor:
    """torch.nn.functional.conv2d computed by cyconv, differentiable (first order)."""
    low = _autocast_dtype()
    if low is not None and torch.float32 in (input.dtype, weight.dtype):
        # torch's CPU autocast runs convolutions in its lower precision: float32
        # operands rounded to it, the result too (float64 ones are left alone)
        def rounded(t):
            return t.to(low).float() if t is not None and t.dtype == torch.float32 else t
        with torch.autocast("cpu", enabled=False):
            out = _Conv2d.apply(rounded(input), rounded(weight), rounded(bias), stride, padding,
                                dilation, groups)
        return out.to(low)
    return _Conv2d.apply(input, weight, bias, stride, padding, dilation, groups)


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d computed by cyconv: same constructor, parameters,
    initialisation and state_dict; CPU float32/float64 only."""

    def _conv_forward(self, input, weight, bias):
        padding = self.padding
        if self.padding_mode != "zeros":
            # torch pads the other modes explicitly too; autograd folds the gradient back
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return conv2d(input, weight, bias, self.stride, padding, self.dilation, self.groups)
