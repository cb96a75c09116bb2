"""cyconv.plan: how a call would be computed, without computing it."""
from typing import Any, Dict, Optional

import numpy as np

from . import _dispatch, _winograd
from ._types import DTypeLike, IntPair, Padding, Shape
from ._validation import (COMPUTE_DTYPE, as_num_threads, as_shape, resolve_geometry)

DIRECTIONS = ("forward", "input_grad", "weight_grad")


def plan(input_shape: Shape, weight_shape: Shape, *, stride: IntPair = 1, padding: Padding = 0,
         dilation: IntPair = 1, groups: int = 1, dtype: DTypeLike = "float32",
         num_threads: Optional[int] = None, direction: str = "forward",
         algorithm: str = "direct") -> Dict[str, Any]:
    """The plan cyconv's kernel makes for a conv2d call, or for its input or
    weight gradient, computing nothing.

    The parameters are conv2d's (shapes instead of arrays); direction is
    "forward", "input_grad" or "weight_grad".  Returns a dict with "path"
    (the name of the path that computes the call, docs/design.md),
    "kernel" (the instruction-set variant), "dtype" (the dtype it computes
    in), "output_shape", "n_threads" (the threads it starts) and the path's
    blocking and work split (its plan struct's fields; the input gradient's
    "flipped" and "phases" paths also carry the plan of the forward
    convolution they run, under "forward").  algorithm: conv2d's, for the
    forward direction ("winograd" names the path of that name; "auto" the
    one conv2d would take, for finite weights).
    """
    x_shape = as_shape(input_shape, "input_shape", (3, 4))
    w_shape = as_shape(weight_shape, "weight_shape", (4,))
    try:
        given = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a float dtype, but got {dtype!r}") from None
    if given not in COMPUTE_DTYPE:
        raise TypeError(f"dtype must be float16, float32 or float64, but got {given}")
    compute: np.dtype = COMPUTE_DTYPE[given]
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {list(DIRECTIONS)}, but got {direction!r}")
    kernel = _dispatch.kernel
    threads = as_num_threads(num_threads, kernel.max_threads())
    batched = x_shape if len(x_shape) == 4 else (1,) + x_shape
    sh_sw, pads, dh_dw, n_groups, out_shape, far = resolve_geometry(
        batched, w_shape, stride, padding, dilation, groups, x_shape)
    _winograd.check_algorithm(algorithm)
    fields: Dict[str, Any]
    if algorithm != "direct" and direction != "forward":
        raise ValueError(f"algorithm applies to the forward direction, but got direction "
                         f"{direction!r} with algorithm {algorithm!r}")
    if _winograd.chooses_winograd(algorithm, w_shape, sh_sw, dh_dw, n_groups, out_shape, far):
        fields = dict(kernel.plan_winograd_call(batched, out_shape, pads[0][0], pads[1][0],
                                                n_groups, compute.itemsize, threads),
                      path="winograd")
    elif far:  # no kernel plan: cyconv._far_taps computes it in NumPy
        fields = {"path": "far_taps", "n_threads": 1}
    else:
        fields = kernel.plan(direction, batched, w_shape, out_shape, sh_sw[0], sh_sw[1],
                             pads[0][0], pads[1][0], dh_dw[0], dh_dw[1], n_groups,
                             compute.itemsize, threads)
    result = {"direction": direction, "path": fields.pop("path"), "kernel": _dispatch.KERNEL_NAME,
              "dtype": compute.name,
              "output_shape": out_shape if len(x_shape) == 4 else out_shape[1:]}
    if result["path"] == "phases":
        result["phases"] = min(sh_sw[0], batched[2]) * min(sh_sw[1], batched[3])
    result.update(fields)
    return result
