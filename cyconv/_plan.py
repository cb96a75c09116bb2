"""cyconv.plan: how a call would be computed, without computing it."""
import numpy as np

from . import _dispatch
from ._validation import (COMPUTE_DTYPE, as_num_threads, as_shape, resolve_geometry)

DIRECTIONS = ("forward", "input_grad", "weight_grad")


def plan(input_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
         dtype="float32", num_threads=None, direction="forward"):
    """The plan cyconv's kernel makes for a conv2d call, or for its input or
    weight gradient, computing nothing.

    The parameters are conv2d's (shapes instead of arrays); direction is
    "forward", "input_grad" or "weight_grad".  Returns a dict with "path"
    (the name of the path that computes the call, docs/design.md),
    "kernel" (the instruction-set variant), "dtype" (the dtype it computes
    in), "output_shape", "n_threads" (the threads it starts) and the path's
    blocking and work split (its plan struct's fields; the input gradient's
    "flipped" and "phases" paths also carry the plan of the forward
    convolution they run, under "forward").
    """
    input_shape = as_shape(input_shape, "input_shape", (3, 4))
    weight_shape = as_shape(weight_shape, "weight_shape", (4,))
    try:
        given = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a float dtype, but got {dtype!r}") from None
    if given not in COMPUTE_DTYPE:
        raise TypeError(f"dtype must be float16, float32 or float64, but got {given}")
    compute = COMPUTE_DTYPE[given]
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {list(DIRECTIONS)}, but got {direction!r}")
    kernel = _dispatch.kernel
    num_threads = as_num_threads(num_threads, kernel.max_threads())
    batched = input_shape if len(input_shape) == 4 else (1,) + input_shape
    stride, pads, dilation, groups, out_shape, far = resolve_geometry(
        batched, weight_shape, stride, padding, dilation, groups, input_shape)
    if far:  # no kernel plan: cyconv._far_taps computes it in NumPy
        fields = {"path": "far_taps", "n_threads": 1}
    else:
        fields = kernel.plan(direction, batched, weight_shape, out_shape, stride[0], stride[1],
                             pads[0][0], pads[1][0], dilation[0], dilation[1], groups,
                             compute.itemsize, num_threads)
    result = {"direction": direction, "path": fields.pop("path"), "kernel": _dispatch.KERNEL_NAME,
              "dtype": compute.name,
              "output_shape": out_shape if len(input_shape) == 4 else out_shape[1:]}
    if result["path"] == "phases":
        result["phases"] = min(stride[0], batched[2]) * min(stride[1], batched[3])
    result.update(fields)
    return result
