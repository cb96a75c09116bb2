"""conv2d and conv_transpose2d, like torch.nn.functional's, and the runners
that allocate results and call the compiled kernels (also for cyconv.grad)."""
import numpy as np

from ._dispatch import kernel
from ._validation import prepare_conv2d, prepare_conv_transpose2d

SPREAD_MAX_POSITIONS = 200  # see _spreads


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           num_threads=None):
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

    Returns
    -------
    numpy.ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        A new array of the operands' float dtype (float64 for integer operands).
    """
    call = prepare_conv2d(input, weight, bias, stride, padding, dilation, groups,
                          num_threads, kernel.max_threads())
    return run_conv2d(call)


def run_conv2d(call, packed=None, packed_block=0, input=None, num_threads=None):
    """Allocate the output of a checked call and run the kernel.  FrozenConv2d
    passes the weights packed for it, and the input and thread count of a new
    call like the checked one (the same shape and dtype)."""
    x = call.input if input is None else input
    out = _allocate(call.out_shape, x.dtype, "output")
    if out.size:
        kernel.conv2d_forward(
            x, call.weight, call.bias, out,
            call.stride[0], call.stride[1], call.padding[0][0], call.padding[1][0],
            call.dilation[0], call.dilation[1], call.groups,
            call.num_threads if num_threads is None else num_threads, packed, packed_block)
    out = out.astype(call.result_dtype, copy=False)
    return out[0] if call.unbatched else out


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, *, num_threads=None):
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
    groups, num_threads : as for conv2d

    Returns
    -------
    numpy.ndarray, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
    """
    call = prepare_conv_transpose2d(input, weight, bias, stride, padding, output_padding,
                                    dilation, groups, num_threads, kernel.max_threads())
    out = run_input_grad(call.input, call.weight, call.bias, call.out_shape, call.stride,
                         call.padding, call.dilation, call.groups, call.num_threads)
    out = out.astype(call.result_dtype, copy=False)
    return out[0] if call.unbatched else out


def _allocate(shape, dtype, what):
    try:
        return np.empty(shape, dtype=dtype)
    except MemoryError:
        raise MemoryError(f"cyconv: cannot allocate the {what} of shape "
                          f"{list(shape)} ({dtype})") from None


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


def _spreads(weight_shape, input_shape, stride, groups):
    """Whether the input gradient is better spread from grad_output (one pass,
    any stride) than gathered by the forward kernel, phase by phase.

    Spreading is a matrix product over C_out / groups: it needs enough of them.
    It wins for strides (no phases, no strided copy); at stride 1 only where
    the gathered convolution's reduction, over C_out / groups, is long (256 or
    more) and its work per weight small: 1x1 layers, and other kernels on at
    most SPREAD_MAX_POSITIONS input positions (all images), where copying and
    packing the flipped weights outweighs the convolution (a 512-channel 7x7
    layer at batch 1: spreading 1.28-1.5x faster; at batch 8, or with 64
    channels on 14x14 planes, gathering is 1.03-1.37x faster; measured on
    the benchmark's layers and ResNet-50's).
    """
    c_out, _, kh, kw = weight_shape
    n, _, h, w = input_shape
    c_out_g = c_out // groups
    if c_out_g < 32:
        return False
    if stride != (1, 1):
        return True
    return c_out_g >= 256 and (kh * kw == 1 or n * h * w <= SPREAD_MAX_POSITIONS)


def run_input_grad(grad_output, weight, bias, input_shape, stride, padding, dilation,
                   groups, num_threads):
    """bias + the gradient of conv2d(input, weight) with respect to its input,
    for checked operands (conv_transpose2d).

    Either spread from grad_output in one pass (kernel.conv2d_input_grad, see
    _spreads), or gathered: with the weight transposed per group to (C_in,
    C_out / groups, kH, kW) and flipped, it is a stride-1 convolution of
    grad_output, which the forward kernel computes.  A stride s splits the
    input rows (and columns) into s phases that see different taps; each phase
    is one such convolution.
    """
    n, c_in, h, w = input_shape
    c_out, c_in_g, kh, kw = weight.shape
    dtype = weight.dtype
    (sh, sw), (dh, dw) = stride, dilation
    pad_top, pad_left = padding[0][0], padding[1][0]
    if bias is None:
        bias = np.zeros(c_in, dtype)
    result = _allocate(input_shape, dtype, "input gradient")
    if result.size == 0:
        return result
    if _spreads(weight.shape, input_shape, stride, groups):
        kernel.conv2d_input_grad(grad_output, weight, bias, result, sh, sw, pad_top, pad_left,
                                 dh, dw, groups, num_threads)
        return result
    flipped_shape = (c_in, c_out // groups, kh, kw)
    if sh == sw == 1 and grad_output.size:
        # one phase with every tap: the flipped weight packed straight from
        # weight (making it first took a tenth of a 512-channel layer's backward pass)
        rows = _phase_taps(0, pad_top, 1, dh, kh)
        cols = _phase_taps(0, pad_left, 1, dw, kw)
        block = kernel.packing_block(grad_output.shape, flipped_shape, input_shape, 1, 1,
                                     -rows[1], -cols[1], rows[2], cols[2], groups,
                                     dtype == np.float64)
        if block:
            packed = kernel.pack_weight(weight, groups, block, num_threads, True)
            kernel.conv2d_forward(grad_output, None, bias, result, 1, 1, -rows[1], -cols[1],
                                  rows[2], cols[2], groups, num_threads, packed, block,
                                  flipped_shape)
            return result
    flipped = _allocate(flipped_shape, dtype, "transposed weight")
    kernel.flip_transpose_weight(weight, flipped, groups, num_threads)
    for py in range(min(sh, h)):
        rows = _phase_taps(py, pad_top, sh, dh, kh)
        for px in range(min(sw, w)):
            cols = _phase_taps(px, pad_left, sw, dw, kw)
            target = result[:, :, py::sh, px::sw]
            if rows is None or cols is None or grad_output.size == 0:
                target[...] = bias[:, None, None]
                continue
            phase_weight = np.ascontiguousarray(flipped[:, :, rows[0], cols[0]])
            out = result if sh == sw == 1 else _allocate(target.shape, dtype, "input gradient")
            kernel.conv2d_forward(grad_output, phase_weight, bias, out, 1, 1,
                                  -rows[1], -cols[1], rows[2], cols[2], groups, num_threads)
            if out is not result:
                target[...] = out
    return result


def run_bias_grad(grad_output, num_threads):
    """The sums of a 4-D grad_output's channels over images and positions,
    in float32 (float16 and float32) or float64."""
    compute = np.float64 if grad_output.dtype == np.float64 else np.float32
    n, c, h, w = grad_output.shape
    go = np.ascontiguousarray(grad_output, dtype=compute).reshape(n, c, h * w)
    result = _allocate((c,), compute, "bias gradient")
    if go.size == 0:
        result[...] = 0
    else:
        kernel.conv2d_bias_grad(go, result, num_threads)
    return result


def run_weight_grad(input, grad_output, weight_shape, stride, padding, dilation, groups,
                    num_threads):
    """The gradient of conv2d(input, weight) with respect to weight, for checked operands."""
    result = _allocate(weight_shape, input.dtype, "weight gradient")
    if grad_output.size == 0:
        result[...] = 0
    else:
        kernel.conv2d_weight_grad(input, grad_output, result, stride[0], stride[1],
                                  padding[0][0], padding[1][0], dilation[0], dilation[1],
                                  groups, num_threads)
    return result
