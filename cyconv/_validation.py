"""Every check and normalisation of conv2d's arguments, in one place.

The public entry points call `prepare_conv2d`, which either raises a clear
exception (naming the parameter, what was expected and what was given) or
returns a `Conv2dCall`: contiguous typed operands and fully resolved
parameters, which the compiled kernel trusts without checking again.
"""
import math
import numbers
import operator
from typing import Dict, NamedTuple

import numpy as np

from . import _dispatch
from ._far_taps import FAR_LIMIT

# float16 operands are computed in float32 and rounded back, as torch's CPU
# half convolution accumulates in float32.
COMPUTE_DTYPE: Dict[np.dtype, np.dtype] = {np.dtype(np.float16): np.dtype(np.float32),
                  np.dtype(np.float32): np.dtype(np.float32),
                  np.dtype(np.float64): np.dtype(np.float64)}
_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
_MAX_ELEMENTS = np.iinfo(np.int64).max // 16
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Conv2dCall(NamedTuple):
    """A checked conv2d call: batched, C-contiguous operands in compute_dtype
    (a named tuple: immutable, and cheaper to make than a frozen dataclass,
    which matters on small layers)."""
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
    far: bool                    # offsets beyond the kernel's reach: cyconv._far_taps


def _shape(a):
    return list(a.shape)


def as_int(value, name, minimum=None):
    """An int (not bool, not float) >= minimum, or TypeError/ValueError naming `name`."""
    if type(value) is not int:  # plain ints skip the slower abstract checks
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, but got {value!r} "
                            f"of type {type(value).__name__}")
        value = operator.index(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, but got {value}")
    return value


def as_pair(value, name, minimum):
    """An int or a sequence of 1 or 2 ints (as torch takes them), as a tuple of
    2 ints >= minimum."""
    # plain ints and tuples of them (what layers pass on every call) first
    if type(value) is int and value >= minimum:
        return (value, value)
    if (type(value) is tuple and len(value) == 2 and type(value[0]) is int
            and type(value[1]) is int and value[0] >= minimum and value[1] >= minimum):
        return value
    if isinstance(value, (tuple, list)):
        if len(value) not in (1, 2):
            raise ValueError(f"{name} must be an int or a tuple of 2 ints (h, w), "
                             f"but got {value!r} with {len(value)} elements")
        pair = tuple(as_int(v, f"{name}[{i}]", minimum) for i, v in enumerate(value))
        return pair * 2 if len(pair) == 1 else pair
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
    if type(padding) is int and padding >= 0:
        return ((padding, padding), (padding, padding))
    if (type(padding) is tuple and len(padding) == 2 and type(padding[0]) is tuple
            and type(padding[1]) is tuple and len(padding[0]) == 2 and len(padding[1]) == 2):
        return (as_pair(padding[0], "padding[0]", 0), as_pair(padding[1], "padding[1]", 0))
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        if len(padding) != 2 or not all(isinstance(p, (tuple, list)) and len(p) == 2
                                        for p in padding):
            raise ValueError(f"padding as pairs must be ((top, bottom), (left, right)), "
                             f"but got {padding!r}")
        return tuple(as_pair(p, f"padding[{i}]", 0) for i, p in enumerate(padding))
    ph, pw = as_pair(padding, "padding", 0)
    return ((ph, ph), (pw, pw))


def as_kernel_array(a, dtype):
    """a as the kernels read it: C-contiguous, aligned, native dtype (a copy
    only where a differs)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    return a if a.flags.aligned else a.copy()


def as_float_operands(named_arrays):
    """Convert operands to arrays of one float dtype, as torch requires.

    Integer and bool operands take the float operands' dtype (float64 when
    none is float); two different float dtypes, complex, object and string
    operands are errors.  Returns ({name: array}, dtype): the dict given when
    nothing needs converting.
    """
    # the common case, nothing to convert: arrays of one native float dtype,
    # compared by identity (dtype equality costs several times more; other
    # dtype objects take the general path)
    dtype = None
    for a in named_arrays.values():
        if type(a) is not np.ndarray:
            break
        if dtype is None:
            dtype = a.dtype
            if dtype is not _FLOAT32 and dtype is not _FLOAT64:
                break
        elif a.dtype is not dtype:
            break
    else:
        return named_arrays, dtype
    arrays = {}
    for name, value in named_arrays.items():
        if isinstance(value, np.ma.MaskedArray):
            raise TypeError(f"{name} is a masked array, and cyconv has no masks: fill the masked "
                            f"values first (np.ma.filled) or pass {name}.data")
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers (float32, float64, int or bool), "
                            f"but got an array of dtype {a.dtype}")
        if not a.dtype.isnative:  # the same values in this machine's byte order
            a = a.astype(a.dtype.newbyteorder("="))
        if a.dtype.kind == "f" and a.dtype not in COMPUTE_DTYPE:
            raise TypeError(f"{name} has dtype {a.dtype}; cyconv computes in float16, "
                            f"float32 or float64")
        arrays[name] = a
    float_dtypes = {name: a.dtype for name, a in arrays.items() if a.dtype.kind == "f"}
    if len(set(float_dtypes.values())) > 1:
        given = ", ".join(f"{name} is {dt}" for name, dt in float_dtypes.items())
        raise TypeError(f"{', '.join(named_arrays)} must have the same float dtype, but {given}")
    dtype = next(iter(float_dtypes.values()), np.dtype(np.float64))
    return {name: a.astype(dtype, copy=False) for name, a in arrays.items()}, dtype


MAX_NUM_THREADS = 2**31 - 1  # OpenMP counts threads in a C int


def as_num_threads(num_threads, default):
    """The threads a call may start: num_threads, or the OpenMP default
    (OMP_NUM_THREADS, threadpoolctl) for None; at most the processors this
    process may run on (_dispatch.THREAD_LIMIT: more threads than processors
    only wait for each other), and each path starts no more than its work
    splits into."""
    if num_threads is None:
        return min(max(1, default), _dispatch.THREAD_LIMIT)
    num_threads = as_int(num_threads, "num_threads", 1)
    if num_threads > MAX_NUM_THREADS:
        raise ValueError(f"num_threads must be at most {MAX_NUM_THREADS}, but got {num_threads}")
    return min(num_threads, _dispatch.THREAD_LIMIT)


def check_out(out, shape, dtype, operands):
    """out, an array to write a result of this shape and dtype into, checked:
    a C-contiguous, aligned, writeable ndarray (np.memmap included) that
    shares no memory with the operands."""
    shape = list(shape)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array (an np.memmap too), but got "
                        f"{type(out).__name__}")
    if list(out.shape) != shape:
        raise ValueError(f"out must have the shape of the output, {shape}, but got out of "
                         f"shape {_shape(out)}")
    if out.dtype != dtype or not out.dtype.isnative:
        raise TypeError(f"out must have the output's dtype {np.dtype(dtype)}, but got out of "
                        f"dtype {out.dtype}")
    for flag, what in (("C_CONTIGUOUS", "C-contiguous"), ("WRITEABLE", "writeable"),
                       ("ALIGNED", "aligned")):
        if not out.flags[flag]:
            raise ValueError(f"out must be {what}, but got an array that is not")
    for name, operand in operands.items():
        if isinstance(operand, np.ndarray) and np.may_share_memory(out, operand):
            raise ValueError(f"out must not share memory with {name}")
    return out


def check_input_ndim(x, name="input"):
    """x is 3-D (C, H, W) or 4-D (N, C, H, W), or a ValueError naming it."""
    if x.ndim not in (3, 4):
        channels = "C_out" if name == "grad_output" else "C_in"
        raise ValueError(f"expected {name} to be 3-D ({channels}, H, W) or 4-D (N, {channels}, "
                         f"H, W), but got {name} of shape {_shape(x)}")


def pad_for_mode(input, pads, mode):
    """input padded on H and W by pads ((top, bottom), (left, right)) as torch's
    padding_mode 'reflect', 'replicate' or 'circular' does."""
    if isinstance(input, np.ma.MaskedArray):
        raise TypeError("input is a masked array, and cyconv has no masks: fill the masked "
                        "values first (np.ma.filled) or pass input.data")
    x = np.asarray(input)
    check_input_ndim(x)
    check_mode_padding(x.shape, pads, mode)
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [tuple(p) for p in pads],
                  mode=_NUMPY_PAD_MODE[mode])


def check_mode_padding(shape, pads, mode):
    """pads ((top, bottom), (left, right)) fit an input of this shape under
    padding_mode mode, as torch requires, or a ValueError."""
    for axis, (size, pair) in enumerate(zip(shape[-2:], pads)):
        limit = size - 1 if mode == "reflect" else size
        if max(pair) > limit:
            relation = "less than" if mode == "reflect" else "at most"
            raise ValueError(f"padding_mode={mode!r} needs each padding to be {relation} the "
                             f"input size it pads, but got padding {pair} for input "
                             f"{('height', 'width')[axis]} {size} (input of shape "
                             f"{list(shape)})")


def conv_output_size(size, pads, kernel, stride, dilation):
    """H_out (or W_out) of conv2d; 0 where the dilated kernel is larger than the
    padded input."""
    padded = size + pads[0] + pads[1]
    reach = dilation * (kernel - 1) + 1
    return 0 if padded < reach else (padded - reach) // stride + 1


INT64_MAX = 2**63 - 1


def far_geometry(sizes, pads, kernel, stride, dilation):
    """Whether a geometry's offsets go beyond FAR_LIMIT (see _far_taps); above
    2**63 - 1, where torch refuses them too, a ValueError naming the parameter."""
    (h, wd), ((pt, pb), (pl, pr)), (kh, kw) = sizes, pads, kernel
    reach_h, reach_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if max(stride[0], stride[1], dilation[0], dilation[1], reach_h, reach_w,
           h + pt + pb, wd + pl + pr) <= FAR_LIMIT:
        return False
    for name, value in (("stride", stride), ("dilation", dilation)):
        if max(value) > INT64_MAX:
            raise ValueError(f"{name} must be at most 2**63 - 1, but got {name}={value}")
    for axis, size, pair, k, reach in (("height", h, pads[0], kh, reach_h),
                                       ("width", wd, pads[1], kw, reach_w)):
        if reach > INT64_MAX:
            raise ValueError(f"dilation={dilation} makes a kernel {axis} of {k} span {reach} "
                             f"input positions, more than 2**63 - 1")
        if size + pair[0] + pair[1] > INT64_MAX:
            raise ValueError(f"padding {pair} makes the padded input {axis} "
                             f"{size + pair[0] + pair[1]}, more than 2**63 - 1")
    return True


def resolve_geometry(input_shape, weight_shape, stride, padding, dilation, groups,
                     shown_input_shape):
    """Check a conv2d configuration the way torch does (batched NCHW input shape).

    Returns (stride, ((top, bottom), (left, right)), dilation, groups,
    out_shape, far); far: the offsets need cyconv._far_taps.  shown_input_shape
    is the input shape as the caller gave it, for messages.
    """
    groups = as_int(groups, "groups", 1)
    stride = as_pair(stride, "stride", 1)
    dilation = as_pair(dilation, "dilation", 1)
    n, c_in, h, wd = input_shape
    c_out, c_in_g, kh, kw = weight_shape
    shown_w = list(weight_shape)
    if c_out < 1:
        raise ValueError(f"expected weight to have at least 1 output channel (dimension 0), "
                         f"but got weight of shape {shown_w}")
    if c_in_g < 1:
        raise ValueError(f"expected weight to have at least 1 input channel (dimension 1), "
                         f"but got weight of shape {shown_w}")
    if h < 1 or wd < 1:
        raise ValueError(f"expected input height and width to be at least 1, "
                         f"but got input of shape {list(shown_input_shape)}")
    if kh < 1 or kw < 1:
        raise ValueError(f"expected a kernel of at least 1 x 1, but got weight of shape {shown_w}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels, "
                         f"but got weight of shape {shown_w}")
    if c_in != c_in_g * groups:
        raise ValueError(f"with groups={groups}, weight of shape {shown_w} expects input to have "
                         f"{c_in_g * groups} channels, but got input of shape "
                         f"{list(shown_input_shape)} with {c_in} channels")
    pads = as_padding(padding, (kh, kw), dilation, stride)
    far = far_geometry((h, wd), pads, (kh, kw), stride, dilation)

    out_h = conv_output_size(h, pads[0], kh, stride[0], dilation[0])
    out_w = conv_output_size(wd, pads[1], kw, stride[1], dilation[1])
    if out_h == 0 or out_w == 0:
        axis, size, p, k, d = (("height", h, pads[0], kh, dilation[0]) if out_h == 0
                               else ("width", wd, pads[1], kw, dilation[1]))
        raise ValueError(f"the dilated kernel {axis} ({d * (k - 1) + 1}) is larger than the "
                         f"padded input {axis} ({size + p[0] + p[1]}): input of shape "
                         f"{list(shown_input_shape)}, weight of shape {shown_w}, padding={pads}, "
                         f"dilation={dilation}")
    out_shape = (n, c_out, out_h, out_w)
    if n * c_out * out_h * out_w > _MAX_ELEMENTS:
        raise ValueError(f"the output of shape {list(out_shape)} is too large to allocate: "
                         f"input of shape {list(shown_input_shape)}, weight of shape {shown_w}, "
                         f"stride={stride}, padding={pads}, dilation={dilation}")
    return stride, pads, dilation, groups, out_shape, far


def _input_operands(input, weight, bias):
    """The operands as arrays of one float dtype, the input checked to be 3-D
    or 4-D: (operands by name, dtype, batched input, weight, unbatched)."""
    operands = {"input": input, "weight": weight}
    if bias is not None:
        operands["bias"] = bias
    operands, dtype = as_float_operands(operands)
    x = operands["input"]
    check_input_ndim(x)
    unbatched = x.ndim == 3
    return operands, dtype, x[np.newaxis] if unbatched else x, operands["weight"], unbatched


def _checked_bias(operands, n_out, compute, which):
    """The bias as a contiguous compute-dtype array of n_out values, or None without one."""
    if "bias" not in operands:
        return None
    b = operands["bias"]
    if b.shape != (n_out,):
        raise ValueError(f"expected bias to be 1-D with {n_out} elements ({which}), "
                         f"but got bias of shape {_shape(b)}")
    return as_kernel_array(b, dtype=compute)


def prepare_conv2d(input, weight, bias, stride, padding, dilation, groups,
                   num_threads, default_threads):
    """Check a conv2d call the way torch does and return a `Conv2dCall`."""
    operands, dtype, x, w, unbatched = _input_operands(input, weight, bias)
    check_weight_ndim(w)
    num_threads = as_num_threads(num_threads, default_threads)
    stride, pads, dilation, groups, out_shape, far = resolve_geometry(
        x.shape, w.shape, stride, padding, dilation, groups, operands["input"].shape)
    c_out = w.shape[0]
    compute = COMPUTE_DTYPE[dtype]
    bias_array = _checked_bias(operands, c_out, compute, "weight's dimension 0")
    if bias_array is None:
        bias_array = np.zeros(c_out, compute)
    # positional, in the fields' order: cheaper than keywords on every call
    return Conv2dCall(as_kernel_array(x, dtype=compute), as_kernel_array(w, dtype=compute),
                      bias_array, stride, pads, dilation, groups, out_shape, dtype, unbatched,
                      num_threads, far)


def check_weight_ndim(w):
    if w.ndim != 4:
        raise ValueError(f"expected weight to be 4-D (C_out, C_in / groups, kH, kW), "
                         f"but got weight of shape {_shape(w)}")


def as_shape(value, name, ndims):
    """A shape (tuple of ints >= 0) with one of the lengths in ndims, of an
    array small enough to allocate."""
    if hasattr(value, "tolist"):  # torch.Size, NumPy arrays
        value = value.tolist()
    if not isinstance(value, (tuple, list)) or len(value) not in ndims:
        lengths = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must be a tuple of {lengths} ints, but got {value!r}")
    shape = tuple(as_int(v, f"{name}[{i}]", 0) for i, v in enumerate(value))
    if math.prod(shape) > _MAX_ELEMENTS:
        raise ValueError(f"{name} {list(shape)} describes an array too large to allocate "
                         f"({math.prod(shape)} values)")
    return shape


class Conv2dGradCall(NamedTuple):
    """A checked gradient call of conv2d: batched, C-contiguous operands in the
    compute dtype; `input` or `weight` is None for the one whose shape was given."""
    input: object                # (N, C_in, H, W) array, or None
    input_shape: tuple           # (N, C_in, H, W)
    weight: object               # (C_out, C_in / groups, kH, kW) array, or None
    weight_shape: tuple
    grad_output: np.ndarray      # (N, C_out, H_out, W_out)
    stride: tuple
    padding: tuple               # ((top, bottom), (left, right))
    dilation: tuple
    groups: int
    result_dtype: np.dtype
    unbatched: bool
    num_threads: int
    far: bool


def prepare_conv2d_grad(input, input_shape, weight, weight_shape, grad_output, stride,
                        padding, dilation, groups, num_threads, default_threads):
    """Check a gradient call of conv2d.  Exactly one of input / input_shape and
    one of weight / weight_shape is given; grad_output must have the shape
    conv2d's output has for them."""
    operands = {"grad_output": grad_output}
    if input is not None:
        operands["input"] = input
    if weight is not None:
        operands["weight"] = weight
    operands, dtype = as_float_operands(operands)
    go = operands["grad_output"]
    check_input_ndim(go, "grad_output")
    if input is not None:
        x = operands["input"]
        check_input_ndim(x)
        input_shape = x.shape
    else:
        input_shape = as_shape(input_shape, "input_size", (3, 4))
    if weight is not None:
        w = operands["weight"]
        check_weight_ndim(w)
        weight_shape = w.shape
    else:
        weight_shape = as_shape(weight_shape, "weight_size", (4,))
    shown_input_shape = list(input_shape)
    unbatched = len(input_shape) == 3
    if go.ndim != len(input_shape):
        raise ValueError(f"grad_output must be {len(input_shape)}-D like the input, but got "
                         f"grad_output of shape {_shape(go)} for input of shape {shown_input_shape}")
    if unbatched:
        input_shape = (1,) + tuple(input_shape)
        go = go[np.newaxis]
    num_threads = as_num_threads(num_threads, default_threads)
    stride, pads, dilation, groups, out_shape, far = resolve_geometry(
        input_shape, weight_shape, stride, padding, dilation, groups, shown_input_shape)
    if go.shape != out_shape:
        expected = list(out_shape[1:] if unbatched else out_shape)
        raise ValueError(f"grad_output must have the shape of conv2d's output, {expected} for "
                         f"input of shape {shown_input_shape} and weight of shape "
                         f"{list(weight_shape)}, but got grad_output of shape "
                         f"{_shape(operands['grad_output'])}")

    compute = COMPUTE_DTYPE[dtype]

    def contiguous(name):
        if name not in operands:
            return None
        a = operands[name]
        return as_kernel_array(a[np.newaxis] if unbatched and name == "input" else a,
                                    dtype=compute)

    return Conv2dGradCall(
        input=contiguous("input"), input_shape=tuple(input_shape),
        weight=contiguous("weight"), weight_shape=tuple(weight_shape),
        grad_output=as_kernel_array(go, dtype=compute),
        stride=stride, padding=pads, dilation=dilation, groups=groups,
        result_dtype=dtype, unbatched=unbatched, num_threads=num_threads, far=far,
    )


def prepare_conv_transpose2d(input, weight, bias, stride, padding, output_padding, dilation,
                             groups, num_threads, default_threads):
    """Check a conv_transpose2d call the way torch does and return a `Conv2dCall`
    whose out_shape is the transposed convolution's output and whose padding is
    the padding of the convolution it transposes."""
    operands, dtype, x, w, unbatched = _input_operands(input, weight, bias)
    if w.ndim != 4:
        raise ValueError(f"expected weight to be 4-D (C_in, C_out / groups, kH, kW), "
                         f"but got weight of shape {_shape(w)}")
    groups = as_int(groups, "groups", 1)
    stride = as_pair(stride, "stride", 1)
    padding = as_pair(padding, "padding", 0)
    output_padding = as_pair(output_padding, "output_padding", 0)
    dilation = as_pair(dilation, "dilation", 1)
    num_threads = as_num_threads(num_threads, default_threads)
    n, c_in, h, wd = x.shape
    c_in_w, c_out_g, kh, kw = w.shape
    if min(w.shape) < 1:
        raise ValueError(f"expected weight (C_in, C_out / groups, kH, kW) to have no empty "
                         f"dimension, but got weight of shape {_shape(w)}")
    if h < 1 or wd < 1:
        raise ValueError(f"expected input height and width to be at least 1, "
                         f"but got input of shape {_shape(operands['input'])}")
    if c_in_w % groups:
        raise ValueError(f"groups={groups} must divide the input channels (weight's dimension "
                         f"0), but got weight of shape {_shape(w)}")
    if c_in != c_in_w:
        raise ValueError(f"weight of shape {_shape(w)} expects input to have {c_in_w} channels, "
                         f"but got input of shape {_shape(operands['input'])} with {c_in} channels")
    for name, value in (("stride", stride), ("padding", padding), ("dilation", dilation),
                        ("output_padding", output_padding)):
        if max(value) > INT64_MAX:
            raise ValueError(f"{name} must be at most 2**63 - 1, but got {name}={value}")
    out_hw = []
    for axis in range(2):
        op, s, d = output_padding[axis], stride[axis], dilation[axis]
        if op >= s and op >= d:
            raise ValueError(f"output_padding must be smaller than either stride or dilation, "
                             f"but got output_padding={output_padding}, stride={stride}, "
                             f"dilation={dilation}")
        size = (x.shape[2 + axis] - 1) * s - 2 * padding[axis] + d * (w.shape[2 + axis] - 1) + op + 1
        if size < 1:
            raise ValueError(f"the output {('height', 'width')[axis]} would be {size}: input of "
                             f"shape {_shape(operands['input'])}, weight of shape {_shape(w)}, "
                             f"stride={stride}, padding={padding}, dilation={dilation}, "
                             f"output_padding={output_padding}")
        out_hw.append(size)
    c_out = c_out_g * groups
    out_shape = (n, c_out, out_hw[0], out_hw[1])
    if math.prod(out_shape) > _MAX_ELEMENTS:
        raise ValueError(f"the output of shape {list(out_shape)} is too large to allocate: "
                         f"input of shape {_shape(operands['input'])}, weight of shape "
                         f"{_shape(w)}, stride={stride}, padding={padding}, "
                         f"dilation={dilation}, output_padding={output_padding}")
    pads = tuple((p, p) for p in padding)
    # the geometry of the convolution it transposes: its input is this output
    far = far_geometry(out_hw, pads, (kh, kw), stride, dilation)
    compute = COMPUTE_DTYPE[dtype]
    return Conv2dCall(
        input=as_kernel_array(x, dtype=compute),
        weight=as_kernel_array(w, dtype=compute),
        bias=_checked_bias(operands, c_out, compute, "weight's dimension 1 x groups"),
        stride=stride, padding=pads, dilation=dilation,
        groups=groups, out_shape=out_shape, result_dtype=dtype, unbatched=unbatched,
        num_threads=num_threads, far=far,
    )
