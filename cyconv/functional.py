"""conv2d and conv_transpose2d, like torch.nn.functional's, and the runners
that allocate results and call the compiled kernels (also for cyconv.grad).

With CYCONV_VERBOSE=1 in the environment at import, every kernel call prints
one line to stderr: direction, variant, path, dtype, shapes, parameters,
threads and milliseconds (as ONEDNN_VERBOSE does for oneDNN).
"""
import math
import os
import sys
import time
from typing import Optional

import numpy as np

from . import _dispatch, _far_taps, _winograd
from ._types import ArrayLike, IntPair, Padding
from ._validation import (as_kernel_array, check_out, prepare_conv2d,
                          prepare_conv_transpose2d)

VERBOSE = os.environ.get("CYCONV_VERBOSE", "").strip() not in ("", "0")


def conv2d(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None,
           stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, *,
           num_threads: Optional[int] = None, out: Optional[np.ndarray] = None,
           algorithm: str = "direct") -> np.ndarray:
    """2-D convolution (cross-correlation) with the semantics of torch.nn.functional.conv2d.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_out, C_in / groups, kH, kW)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), ((top, bottom), (left, right)), 'valid' or 'same'
        Zero padding. 'same' needs stride 1; an even kernel pads one more
        row/column at the bottom/right, as torch does.
    groups : int
        Input and output channels are split into this many independent groups
        (groups == C_in is a depthwise convolution).
    num_threads : int, optional
        OpenMP threads for this call; None uses the OpenMP default
        (OMP_NUM_THREADS, threadpoolctl).
    out : numpy.ndarray, optional
        The array to write the result into (and return): the output's exact
        shape and dtype, C-contiguous, writeable, sharing no memory with the
        operands; an np.memmap streams the result to disk.
    algorithm : 'direct', 'winograd' or 'auto'
        'direct' (the default) sums each output's terms as the definition
        does. 'winograd' computes 3x3 layers with stride 1 and dilation 1 by
        Winograd's F(4x4, 3x3), with about 4x fewer multiplications and a
        larger rounding error (docs/semantics.md states its bound); other
        layers are a ValueError. 'auto' takes Winograd where it is measured
        faster (many channels and positions) and 'direct' elsewhere.

    Returns
    -------
    numpy.ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        A new array of the operands' float dtype (float64 for integer
        operands), or out.
    """
    _winograd.check_algorithm(algorithm)
    call = prepare_conv2d(input, weight, bias, stride, padding, dilation, groups,
                          num_threads, _dispatch.kernel.max_threads())
    if out is not None:
        check_out(out, result_shape(call), call.result_dtype,
                  {"input": input, "weight": weight, "bias": bias})
    return run_conv2d(call, out=out, winograd=_winograd.use_winograd(call, algorithm))


def result_shape(call):
    """The shape of a checked call's result, as its caller sees it."""
    return call.out_shape[1:] if call.unbatched else call.out_shape


def run_conv2d(call, packed=None, packed_block=0, input=None, num_threads=None, out=None,
               winograd=False, transformed=None):
    """Run the kernel on a checked call, into out (checked) or a new array.
    FrozenConv2d passes the weights packed for it, and the input and thread
    count of a new call like the checked one (the same shape and dtype).
    winograd: compute the call by Winograd (directly where a result comes
    out NaN or Inf), from transformed (the weights as
    _winograd.transform_weights makes them) or, if None, from call.weight."""
    x = call.input if input is None else input
    computed = _kernel_target(out, call.out_shape, x.dtype, "output")
    threads = call.num_threads if num_threads is None else num_threads
    if call.far:
        _far_taps.conv2d(x, call.weight, call.bias, call.stride, call.padding, call.dilation,
                         call.groups, computed)
    elif computed.size:
        start = time.perf_counter() if VERBOSE else 0.0
        ran = None
        if winograd:
            ran = _winograd.forward(x, call.weight, transformed, call.bias, computed,
                                    call.padding[0][0], call.padding[1][0], call.groups, threads)
        if ran is None:
            ran = _dispatch.kernel.conv2d_forward(
                x, call.weight, call.bias, computed,
                call.stride[0], call.stride[1], call.padding[0][0], call.padding[1][0],
                call.dilation[0], call.dilation[1], call.groups, threads, packed, packed_block)
        if VERBOSE:
            report("forward", ran, start, x.dtype,
                   {"input": x.shape, "weight": call.weight.shape, "output": computed.shape},
                   (call.stride, call.padding, call.dilation, call.groups))
    return as_result(computed, call.result_dtype, call.unbatched, out)


def conv_transpose2d(input: ArrayLike, weight: ArrayLike, bias: Optional[ArrayLike] = None,
                     stride: IntPair = 1, padding: IntPair = 0, output_padding: IntPair = 0,
                     groups: int = 1, dilation: IntPair = 1, *, num_threads: Optional[int] = None,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    """2-D transposed convolution with the semantics of torch.nn.functional.conv_transpose2d.

    It is the gradient of conv2d with respect to its input: each input value
    spreads over a kernel-sized window of the output, windows `stride` apart.

    Parameters
    ----------
    input : array_like, shape (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, shape (C_in, C_out / groups, kH, kW)
    bias : array_like, shape (C_out,), optional
    stride, padding, output_padding, dilation : int or (int, int)
        H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1)
        + output_padding + 1; output_padding must be smaller than stride or
        dilation.
    groups, num_threads, out : as for conv2d

    Returns
    -------
    numpy.ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out), or out
    """
    call = prepare_conv_transpose2d(input, weight, bias, stride, padding, output_padding,
                                    dilation, groups, num_threads, _dispatch.kernel.max_threads())
    if out is not None:
        check_out(out, result_shape(call), call.result_dtype,
                  {"input": input, "weight": weight, "bias": bias})
    computed = run_input_grad(call.input, call.weight, call.bias, call.out_shape, call.stride,
                              call.padding, call.dilation, call.groups, call.num_threads,
                              call.far, what="output",
                              into=_kernel_target(out, call.out_shape, call.weight.dtype, "output"))
    return as_result(computed, call.result_dtype, call.unbatched, out)


def _kernel_target(out, shape, compute_dtype, what):
    """The array the kernel computes a result of this (batched) shape into:
    out itself where it has the compute dtype (an unbatched out gains the
    batch axis), else a new array."""
    if out is not None and out.dtype == compute_dtype:
        return out.reshape(shape)  # a view: out is C-contiguous
    return _allocate(shape, compute_dtype, what)


def as_result(computed, dtype, unbatched=False, out=None):
    """The result as the caller gets it: in their dtype (float16 results,
    computed in float32, are rounded back: values past its range become inf
    silently, as in torch), without the batch axis for an unbatched call;
    or out, holding it."""
    if out is not None:
        if computed.ctypes.data != out.ctypes.data:  # computed apart, in another dtype
            with np.errstate(over="ignore"):
                np.copyto(out, computed.reshape(out.shape), casting="unsafe")
        return out
    if computed.dtype != dtype:
        with np.errstate(over="ignore"):
            computed = computed.astype(dtype)
    return computed[0] if unbatched else computed


def _allocate(shape, dtype, what):
    """A new array for a result; a MemoryError that names it and its size."""
    try:
        return np.empty(shape, dtype=dtype)
    except (MemoryError, ValueError):  # ValueError: NumPy's "array is too big"
        size = math.prod(shape) * np.dtype(dtype).itemsize
        raise MemoryError(f"cyconv: cannot allocate the {what} of shape {list(shape)} "
                          f"({dtype}, {size / 2**30:.3g} GiB)") from None


def _phase_taps(phase, pad, stride, dilation, kernel_size):
    """The taps of one kernel axis that reach input rows phase, phase + stride, ...

    Input row phase + stride * m gets grad_output row m + (phase + pad -
    k * dilation) / stride through tap k when that division is exact.  Returns
    those taps, as a slice of the flipped kernel (index kernel_size - 1 - k,
    in the order of rising grad_output row), the grad_output offset of the
    first and the (constant) step between them; or None when no tap reaches.
    """
    taps = [k for k in reversed(range(kernel_size)) if (phase + pad - k * dilation) % stride == 0]
    if not taps:
        return None
    first = (phase + pad - taps[0] * dilation) // stride
    gap = taps[0] - taps[1] if len(taps) > 1 else 1
    flipped = slice(kernel_size - 1 - taps[0], kernel_size - taps[-1], gap)
    return flipped, first, gap * dilation // stride


def run_input_grad(grad_output, weight, bias, input_shape, stride, padding, dilation,
                   groups, num_threads, far=False, what="input gradient", into=None,
                   winograd=False):
    """bias + the gradient of conv2d(input, weight) with respect to its input,
    for checked operands (conv_transpose2d too), into `into` or a new array.

    The kernel's planner chooses the path and computes it in one call, but
    for "phases": with the weight transposed per group to (C_in, C_out /
    groups, kH, kW) and flipped, the gradient is a stride-1 convolution of
    grad_output, which the forward kernel computes; a stride s splits the
    input rows (and columns) into s phases that see different taps, each one
    such convolution, computed here.  winograd: a stride-1 3x3 layer's
    gradient by the Winograd kernel (directly where a value is NaN or Inf).
    """
    (sh, sw), (dh, dw) = stride, dilation
    pad_top, pad_left = padding[0][0], padding[1][0]
    if bias is None:
        bias = np.zeros(input_shape[1], weight.dtype)
    result = _allocate(input_shape, weight.dtype, what) if into is None else into
    if far:
        _far_taps.input_grad(grad_output, weight, bias, stride, padding, dilation, groups, result)
        return result
    if result.size == 0:
        return result
    start = time.perf_counter() if VERBOSE else 0.0
    ran = None
    if winograd:
        ran = _winograd.forward(grad_output, weight, None, bias, result, 2 - pad_top,
                                2 - pad_left, groups, num_threads, flipped=True)
    if ran is None:
        ran = _dispatch.kernel.conv2d_input_grad(grad_output, weight, bias, result, sh, sw,
                                                 pad_top, pad_left, dh, dw, groups, num_threads)
    if ran[0] == "phases":
        _input_grad_phases(grad_output, weight, bias, result, stride, pad_top, pad_left,
                           dilation, groups, num_threads)
    if VERBOSE:
        report("input_grad", ran if ran[0] != "phases" else ("phases", num_threads), start,
               weight.dtype, {"input": input_shape, "weight": weight.shape,
                              "grad_output": grad_output.shape},
               (stride, padding, dilation, groups))
    return result


def _input_grad_phases(grad_output, weight, bias, result, stride, pad_top, pad_left, dilation,
                       groups, num_threads):
    """result = bias + the input gradient, one forward call per phase of the stride."""
    n, c_in, h, w = result.shape
    c_out, c_in_g, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    flipped = _allocate((c_in, c_out // groups, kh, kw), weight.dtype, "transposed weight")
    _dispatch.kernel.flip_transpose_weight(weight, flipped, groups, num_threads)
    for py in range(min(sh, h)):
        rows = _phase_taps(py, pad_top, sh, dh, kh)
        for px in range(min(sw, w)):
            cols = _phase_taps(px, pad_left, sw, dw, kw)
            target = result[:, :, py::sh, px::sw]
            if rows is None or cols is None:
                target[...] = bias[:, None, None]
                continue
            phase_weight = np.ascontiguousarray(flipped[:, :, rows[0], cols[0]])
            out = result if sh == sw == 1 else _allocate(target.shape, weight.dtype,
                                                         "input gradient")
            _dispatch.kernel.conv2d_forward(grad_output, phase_weight, bias, out, 1, 1,
                                            -rows[1], -cols[1], rows[2], cols[2], groups,
                                            num_threads)
            if out is not result:
                target[...] = out


def run_bias_grad(grad_output, num_threads):
    """The sums of a 4-D grad_output's channels over images and positions,
    in float32 (float16 and float32) or float64."""
    compute = np.float64 if grad_output.dtype == np.float64 else np.float32
    n, c, h, w = grad_output.shape
    go = as_kernel_array(grad_output, compute).reshape(n, c, h * w)
    result = _allocate((c,), compute, "bias gradient")
    if go.size == 0:
        result[...] = 0
    else:
        start = time.perf_counter() if VERBOSE else 0.0
        threads = _dispatch.kernel.conv2d_bias_grad(go, result, num_threads)
        if VERBOSE:
            report("bias_grad", ("sum", threads), start, compute,
                   {"grad_output": grad_output.shape})
    return result


def run_weight_grad(input, grad_output, weight_shape, stride, padding, dilation, groups,
                    num_threads, far=False):
    """The gradient of conv2d(input, weight) with respect to weight, for checked operands."""
    result = _allocate(weight_shape, input.dtype, "weight gradient")
    if far:
        _far_taps.weight_grad(input, grad_output, stride, padding, dilation, groups, result)
    elif grad_output.size == 0:
        result[...] = 0
    else:
        start = time.perf_counter() if VERBOSE else 0.0
        ran = _dispatch.kernel.conv2d_weight_grad(input, grad_output, result, stride[0],
                                                  stride[1], padding[0][0], padding[1][0],
                                                  dilation[0], dilation[1], groups, num_threads)
        if VERBOSE:
            report("weight_grad", ran, start, input.dtype,
                   {"input": input.shape, "weight": weight_shape, "grad_output": grad_output.shape},
                   (stride, padding, dilation, groups))
    return result


def report(direction, ran, start, dtype, shapes, conv=None):
    """Print the CYCONV_VERBOSE line of one kernel call that started at start:
    ran is (path, threads), shapes {name: shape}, conv (stride, padding,
    dilation, groups)."""
    ms = (time.perf_counter() - start) * 1e3
    path, threads = ran
    fields = ["cyconv_verbose", direction, _dispatch.KERNEL_NAME, path, np.dtype(dtype).name]
    fields += [f"{name}:{'x'.join(map(str, shape))}" for name, shape in shapes.items()]
    if conv is not None:
        (sh, sw), ((top, bottom), (left, right)), (dh, dw), groups = conv
        fields += [f"stride:{sh}x{sw}", f"padding:{top},{bottom}x{left},{right}",
                   f"dilation:{dh}x{dw}", f"groups:{groups}"]
    fields += [f"threads:{threads}", f"{ms:.3f}ms"]
    print(",".join(fields), file=sys.stderr, flush=True)
