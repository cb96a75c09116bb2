"""Gradients of conv2d, mirroring torch.nn.grad.conv2d_input / conv2d_weight.

For out = conv2d(input, weight, bias, stride, padding, dilation, groups) and
grad_output = dL/d out:

    dL/d input  = conv2d_input(input.shape, weight, grad_output, ...)
    dL/d weight = conv2d_weight(input, weight.shape, grad_output, ...)
    dL/d bias   = conv2d_bias(grad_output)

The parameters take every form conv2d takes (padding as an int, (h, w),
((top, bottom), (left, right)), 'valid' or 'same'); 3-D (unbatched) input
goes with a 3-D grad_output.
"""
from typing import Optional

import numpy as np

from . import _dispatch, _winograd, functional
from ._types import ArrayLike, IntPair, Padding, Shape
from ._validation import (as_float_operands, as_num_threads, check_input_ndim,
                          prepare_conv2d_grad)

__all__ = ["conv2d_input", "conv2d_weight", "conv2d_bias"]


def conv2d_input(input_size: Shape, weight: ArrayLike, grad_output: ArrayLike,
                 stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                 groups: int = 1, *, num_threads: Optional[int] = None,
                 algorithm: str = "direct") -> np.ndarray:
    """The gradient of conv2d with respect to its input, of shape input_size.
    algorithm: as conv2d's ('winograd' and 'auto' for 3x3 layers with
    stride 1 and dilation 1, whose input gradient is such a convolution too)."""
    _winograd.check_algorithm(algorithm)
    call = prepare_conv2d_grad(None, input_size, weight, None, grad_output, stride, padding,
                               dilation, groups, num_threads, _dispatch.kernel.max_threads())
    winograd = _winograd.use_winograd_input_grad(algorithm, call.weight.shape, call.stride,
                                                 call.dilation, call.groups, call.input_shape,
                                                 call.far)
    result = functional.run_input_grad(call.grad_output, call.weight, None, call.input_shape,
                                       call.stride, call.padding, call.dilation, call.groups,
                                       call.num_threads, call.far, winograd=winograd)
    return functional.as_result(result, call.result_dtype, call.unbatched)


def conv2d_weight(input: ArrayLike, weight_size: Shape, grad_output: ArrayLike,
                  stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                  groups: int = 1, *, num_threads: Optional[int] = None) -> np.ndarray:
    """The gradient of conv2d with respect to its weight, of shape weight_size."""
    call = prepare_conv2d_grad(input, None, None, weight_size, grad_output, stride, padding,
                               dilation, groups, num_threads, _dispatch.kernel.max_threads())
    result = functional.run_weight_grad(call.input, call.grad_output, call.weight_shape,
                                        call.stride, call.padding, call.dilation, call.groups,
                                        call.num_threads, call.far)
    return functional.as_result(result, call.result_dtype)


def conv2d_bias(grad_output: ArrayLike, *, num_threads: Optional[int] = None) -> np.ndarray:
    """The gradient of conv2d with respect to its bias: grad_output summed over
    every axis but the channels (N, C_out, H_out, W_out) or (C_out, H_out, W_out)."""
    operands, dtype = as_float_operands({"grad_output": grad_output})
    go = operands["grad_output"]
    check_input_ndim(go, "grad_output")
    num_threads = as_num_threads(num_threads, _dispatch.kernel.max_threads())
    return functional.as_result(functional.run_bias_grad(go if go.ndim == 4 else go[None],
                                                       num_threads), dtype)
