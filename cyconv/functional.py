"""conv2d: the functional form, like torch.nn.functional.conv2d."""
import numpy as np

from ._dispatch import kernel
from ._validation import prepare_conv2d


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


def run_conv2d(call):
    """Allocate the output of a checked call and run the kernel."""
    try:
        out = np.empty(call.out_shape, dtype=call.input.dtype)
    except MemoryError:
        raise MemoryError(f"cyconv.conv2d: cannot allocate the output of shape "
                          f"{list(call.out_shape)} ({call.input.dtype})") from None
    if out.size:
        kernel.conv2d_forward(
            call.input, call.weight, call.bias, out,
            call.stride[0], call.stride[1], call.padding[0][0], call.padding[1][0],
            call.dilation[0], call.dilation[1], call.groups, call.num_threads)
    out = out.astype(call.result_dtype, copy=False)
    return out[0] if call.unbatched else out
