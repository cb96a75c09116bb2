"""Every check and normalisation of conv2d's arguments, in one place.

The public entry points call `prepare_conv2d`, which either raises a clear
exception (naming the parameter, what was expected and what was given) or
returns a `Conv2dCall`: contiguous typed operands and fully resolved
parameters, which the compiled kernel trusts without checking again.
"""
import numbers
import operator
from dataclasses import dataclass

import numpy as np

# float16 operands are computed in float32 and rounded back, as torch's CPU
# half convolution accumulates in float32.
_COMPUTE_DTYPE = {np.dtype(np.float16): np.dtype(np.float32),
                  np.dtype(np.float32): np.dtype(np.float32),
                  np.dtype(np.float64): np.dtype(np.float64)}
_MAX_ELEMENTS = np.iinfo(np.int64).max // 16
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@dataclass(frozen=True)
class Conv2dCall:
    """A checked conv2d call: batched, C-contiguous operands in compute_dtype."""
    input: np.ndarray            # (N, C_in, H, W)
    weight: np.ndarray           # (C_out, C_in / groups, kH, kW)
    bias: np.ndarray             # (C_out,), zeros when the caller gave None
    stride: tuple                # (sh, sw)
    padding: tuple               # ((top, bottom), (left, right))
    dilation: tuple              # (dh, dw)
    groups: int
    out_shape: tuple             # (N, C_out, H_out, W_out)
    result_dtype: np.dtype       # the dtype returned to the caller
    unbatched: bool              # the caller gave a 3-D input
    num_threads: int             # >= 1


def _shape(a):
    return list(a.shape)


def as_int(value, name, minimum=None):
    """An int (not bool, not float) >= minimum, or TypeError/ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, but got {value!r} of type {type(value).__name__}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")
    return value


def as_pair(value, name, minimum):
    """An int or a sequence of 2 ints, as a tuple of 2 ints >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a tuple of 2 ints (h, w), "
                             f"but got {value!r} with {len(value)} elements")
        return tuple(as_int(v, f"{name}[{i}]", minimum) for i, v in enumerate(value))
    value = as_int(value, name, minimum)
    return (value, value)


def as_padding(padding, kernel_hw, dilation, stride):
    """Resolve padding to ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' is not supported for strided convolutions, "
                                 f"but got stride={stride}")
            # torch puts the odd pixel of an even kernel on the bottom/right
            pads = []
            for k, d in zip(kernel_hw, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"padding must be an int, a tuple, 'valid' or 'same', "
                         f"but got the string {padding!r}")
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        if len(padding) != 2 or not all(isinstance(p, (tuple, list)) and len(p) == 2
                                        for p in padding):
            raise ValueError(f"padding as pairs must be ((top, bottom), (left, right)), "
                             f"but got {padding!r}")
        return tuple(as_pair(p, f"padding[{i}]", 0) for i, p in enumerate(padding))
    ph, pw = as_pair(padding, "padding", 0)
    return ((ph, ph), (pw, pw))


def as_float_operands(named_arrays):
    """Convert operands to arrays of one float dtype, as torch requires.

    Integer and bool operands take the float operands' dtype (float64 when
    none is float); two different float dtypes, complex, object and string
    operands are errors.
    """
    arrays = {}
    for name, value in named_arrays.items():
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers (float32, float64, int or bool), "
                            f"but got an array of dtype {a.dtype}")
        if a.dtype.kind == "f" and a.dtype not in _COMPUTE_DTYPE:
            raise TypeError(f"{name} has dtype {a.dtype}; cyconv computes in float16, "
                            f"float32 or float64")
        arrays[name] = a
    float_dtypes = {name: a.dtype for name, a in arrays.items() if a.dtype.kind == "f"}
    if len(set(float_dtypes.values())) > 1:
        given = ", ".join(f"{name} is {dt}" for name, dt in float_dtypes.items())
        raise TypeError(f"input, weight and bias must have the same float dtype, but {given}")
    dtype = next(iter(float_dtypes.values()), np.dtype(np.float64))
    return {name: a.astype(dtype, copy=False) for name, a in arrays.items()}, dtype


def as_num_threads(num_threads, default):
    if num_threads is None:
        return max(1, default)
    return as_int(num_threads, "num_threads", 1)


def check_input_ndim(x):
    if x.ndim not in (3, 4):
        raise ValueError(f"expected input to be 3-D (C_in, H, W) or 4-D (N, C_in, H, W), "
                         f"but got input of shape {_shape(x)}")


def pad_for_mode(input, pads, mode):
    """input padded on H and W by pads ((top, bottom), (left, right)) as torch's
    padding_mode 'reflect', 'replicate' or 'circular' does."""
    x = np.asarray(input)
    check_input_ndim(x)
    for axis, (size, pair) in enumerate(zip(x.shape[-2:], pads)):
        limit = size - 1 if mode == "reflect" else size
        if max(pair) > limit:
            relation = "less than" if mode == "reflect" else "at most"
            raise ValueError(f"padding_mode={mode!r} needs each padding to be {relation} the "
                             f"input size it pads, but got padding {pair} for input "
                             f"{('height', 'width')[axis]} {size} (input of shape {_shape(x)})")
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [tuple(p) for p in pads],
                  mode=_NUMPY_PAD_MODE[mode])


def conv_output_size(size, pads, kernel, stride, dilation):
    return (size + pads[0] + pads[1] - dilation * (kernel - 1) - 1) // stride + 1


def prepare_conv2d(input, weight, bias, stride, padding, dilation, groups,
                   num_threads, default_threads):
    """Check a conv2d call the way torch does and return a `Conv2dCall`."""
    operands = {"input": input, "weight": weight}
    if bias is not None:
        operands["bias"] = bias
    operands, dtype = as_float_operands(operands)
    x, w = operands["input"], operands["weight"]

    check_input_ndim(x)
    if w.ndim != 4:
        raise ValueError(f"expected weight to be 4-D (C_out, C_in / groups, kH, kW), "
                         f"but got weight of shape {_shape(w)}")
    unbatched = x.ndim == 3
    if unbatched:
        x = x[np.newaxis]
    groups = as_int(groups, "groups", 1)
    stride = as_pair(stride, "stride", 1)
    dilation = as_pair(dilation, "dilation", 1)
    num_threads = as_num_threads(num_threads, default_threads)

    n, c_in, h, wd = x.shape
    c_out, c_in_g, kh, kw = w.shape
    if c_out < 1:
        raise ValueError(f"expected weight to have at least 1 output channel (dimension 0), "
                         f"but got weight of shape {_shape(w)}")
    if c_in_g < 1:
        raise ValueError(f"expected weight to have at least 1 input channel (dimension 1), "
                         f"but got weight of shape {_shape(w)}")
    if h < 1 or wd < 1:
        raise ValueError(f"expected input height and width to be at least 1, "
                         f"but got input of shape {_shape(operands['input'])}")
    if kh < 1 or kw < 1:
        raise ValueError(f"expected a kernel of at least 1 x 1, but got weight of shape {_shape(w)}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels, "
                         f"but got weight of shape {_shape(w)}")
    if c_in != c_in_g * groups:
        raise ValueError(f"with groups={groups}, weight of shape {_shape(w)} expects input to have "
                         f"{c_in_g * groups} channels, but got input of shape "
                         f"{_shape(operands['input'])} with {c_in} channels")
    if bias is not None:
        b = operands["bias"]
        if b.shape != (c_out,):
            raise ValueError(f"expected bias to be 1-D with {c_out} elements (weight's "
                             f"dimension 0), but got bias of shape {_shape(b)}")
    pads = as_padding(padding, (kh, kw), dilation, stride)

    out_hw = []
    for axis, size, p, k, s, d in (("height", h, pads[0], kh, stride[0], dilation[0]),
                                   ("width", wd, pads[1], kw, stride[1], dilation[1])):
        padded = size + p[0] + p[1]
        reach = d * (k - 1) + 1
        if padded < reach:
            raise ValueError(f"the dilated kernel {axis} ({reach}) is larger than the padded "
                             f"input {axis} ({padded}): input of shape {_shape(operands['input'])}, "
                             f"weight of shape {_shape(w)}, padding={pads}, dilation={dilation}")
        out_hw.append(conv_output_size(size, p, k, s, d))
    out_shape = (n, c_out, out_hw[0], out_hw[1])
    if np.prod(out_shape, dtype=object) > _MAX_ELEMENTS:
        raise ValueError(f"the output of shape {list(out_shape)} is too large to allocate")

    compute = _COMPUTE_DTYPE[dtype]
    bias_array = (np.zeros(c_out, compute) if bias is None
                  else np.ascontiguousarray(operands["bias"], dtype=compute))
    return Conv2dCall(
        input=np.ascontiguousarray(x, dtype=compute),
        weight=np.ascontiguousarray(w, dtype=compute),
        bias=bias_array,
        stride=stride, padding=pads, dilation=dilation, groups=groups,
        out_shape=out_shape, result_dtype=dtype, unbatched=unbatched,
        num_threads=num_threads,
    )
