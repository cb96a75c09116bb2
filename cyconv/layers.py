"""Conv2d: a layer object like torch.nn.Conv2d, holding NumPy weights."""
import math
import sys
from collections import abc
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from . import _dispatch, _winograd
from ._types import ArrayLike, DTypeLike, IntPair, Padding
from ._validation import (PADDING_MODES, as_int, as_kernel_array, as_pair, as_padding,
                          as_num_threads, check_out, pad_for_mode, prepare_conv2d)
from .functional import conv2d, result_shape, run_conv2d
from .grad import conv2d_bias, conv2d_input, conv2d_weight


def _to_numpy(value):
    """An array from a NumPy array, a list or a (CPU) torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class Conv2d:
    """A 2-D convolution layer with the constructor and results of torch.nn.Conv2d.

    ``weight`` (out_channels, in_channels / groups, kH, kW) and ``bias``
    (out_channels,) are NumPy arrays, initialised as torch does: uniform in
    +-1/sqrt(fan_in), fan_in = in_channels / groups * kH * kW.  ``rng`` (a seed
    or a numpy.random.Generator) makes the initialisation reproducible.
    ``padding_mode`` is 'zeros', 'reflect', 'replicate' or 'circular'.
    ``algorithm`` is conv2d's: 'direct' (the default), 'winograd' (3x3
    layers with stride 1 and dilation 1) or 'auto', for the output and the
    input gradient; the weight gradient is direct.

    Training without a framework: in training mode (the default; see
    ``train``/``eval``) a call keeps a reference to its input, and
    ``backward(grad_output)`` returns the gradient with respect to that input
    and sets ``weight_grad`` and ``bias_grad`` (overwriting the previous ones).
    Do not modify the input in place between the call and ``backward``.
    """

    weight: np.ndarray
    bias: Optional[np.ndarray]
    weight_grad: Optional[np.ndarray]
    bias_grad: Optional[np.ndarray]
    _saved: Optional[Tuple[np.ndarray, Any]]  # the input of the last training call, its padding

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair,
                 stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 dtype: DTypeLike = np.float32, *,
                 rng: Union[None, int, np.random.Generator] = None,
                 num_threads: Optional[int] = None, algorithm: str = "direct") -> None:
        self.in_channels = as_int(in_channels, "in_channels", 1)
        self.out_channels = as_int(out_channels, "out_channels", 1)
        self.groups = as_int(groups, "groups", 1)
        if self.in_channels % self.groups:
            raise ValueError(f"in_channels ({self.in_channels}) must be divisible by "
                             f"groups ({self.groups})")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels ({self.out_channels}) must be divisible by "
                             f"groups ({self.groups})")
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.dilation = as_pair(dilation, "dilation", 1)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, "
                             f"but got {padding_mode!r}")
        self.padding_mode = padding_mode
        # resolved once here, which also checks it; kept as given for repr
        self._pads = as_padding(padding, self.kernel_size, self.dilation, self.stride)
        self.padding = padding if isinstance(padding, str) else self._padding_as_given(padding)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, but got {self.dtype}")
        as_num_threads(num_threads, 1)
        self.num_threads = num_threads
        self.algorithm = _winograd.check_algorithm(algorithm)
        if algorithm == "winograd" and not _winograd.applies(self.kernel_size, self.stride,
                                                             self.dilation):
            raise ValueError(f"algorithm='winograd' applies to 3x3 kernels with stride 1 and "
                             f"dilation 1, but got kernel_size {self.kernel_size}, stride "
                             f"{self.stride}, dilation {self.dilation}")

        rng = np.random.default_rng(rng)
        kh, kw = self.kernel_size
        fan_in = self.in_channels // self.groups * kh * kw
        bound = 1.0 / math.sqrt(fan_in)
        shape = (self.out_channels, self.in_channels // self.groups, kh, kw)
        self.weight = rng.uniform(-bound, bound, shape).astype(self.dtype)
        self.bias = (rng.uniform(-bound, bound, self.out_channels).astype(self.dtype)
                     if bias else None)
        self.training = True
        self.weight_grad = self.bias_grad = None
        self._saved = None  # (input as the convolution saw it, its zero padding)

    def _padding_as_given(self, padding):
        if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list))
                                                      for p in padding):
            return tuple(tuple(p) for p in padding)
        return as_pair(padding, "padding", 0)

    def __call__(self, input: ArrayLike) -> np.ndarray:
        """Run the convolution on input (N, C_in, H, W) or (C_in, H, W)."""
        x, pads = _padded(input, self._pads, self.padding_mode)
        self._saved = (x, pads) if self.training else None
        return conv2d(x, self.weight, self.bias, self.stride, pads, self.dilation,
                      self.groups, num_threads=self.num_threads, algorithm=self.algorithm)

    def freeze(self) -> "FrozenConv2d":
        """A FrozenConv2d: this layer's configuration and a snapshot of its
        weights, packed once for inference (later changes to this layer do
        not reach it)."""
        return FrozenConv2d(self)

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        """Gradients for the last call's output gradient grad_output: sets
        weight_grad and bias_grad (None without bias) and returns the input's."""
        if self._saved is None:
            raise RuntimeError("Conv2d.backward needs a call in training mode first "
                               "(the layer keeps the input of its last call only while training)")
        x, pads = self._saved
        conv = dict(stride=self.stride, padding=pads, dilation=self.dilation,
                    groups=self.groups, num_threads=self.num_threads)
        self.weight_grad = conv2d_weight(x, self.weight.shape, grad_output, **conv)
        self.bias_grad = (None if self.bias is None
                          else conv2d_bias(grad_output, num_threads=self.num_threads))
        grad_input = conv2d_input(np.shape(x), self.weight, grad_output, **conv,
                                  algorithm=self.algorithm)
        if self.padding_mode != "zeros":
            grad_input = _unpad_gradient(grad_input, self._pads, self.padding_mode)
        return grad_input

    def train(self, mode: bool = True) -> "Conv2d":
        """Training mode (the default) keeps each call's input for backward; returns self."""
        self.training = bool(mode)
        if not self.training:
            self._saved = None
        return self

    def eval(self) -> "Conv2d":
        """Inference mode: calls keep nothing; returns self.  (For inference
        only, freeze() makes a faster snapshot.)"""
        return self.train(False)

    forward = __call__

    def state_dict(self) -> Dict[str, np.ndarray]:
        """{'weight': ..., 'bias': ...} (no 'bias' without bias), like torch's."""
        state = {"weight": self.weight}
        if self.bias is not None:
            state["bias"] = self.bias
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> "Conv2d":
        """Load weights from a state dict of arrays or torch tensors (torch.nn.Conv2d's)."""
        if not isinstance(state_dict, abc.Mapping):
            raise TypeError(f"state_dict must be a mapping of 'weight' (and 'bias') to arrays, "
                            f"as torch's state_dict() is, but got {type(state_dict).__name__}")
        expected = set(self.state_dict())
        given = set(state_dict)
        if given != expected:
            raise KeyError(f"state_dict must have the keys {sorted(expected)}, "
                           f"but got {sorted(given)}")
        for name, current in self.state_dict().items():
            value = _to_numpy(state_dict[name])
            if value.shape != current.shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {list(current.shape)}, "
                                 f"but got {list(value.shape)}")
            if value.dtype.kind not in "biuf":
                raise TypeError(f"state_dict[{name!r}] must hold real numbers, "
                                f"but got dtype {value.dtype}")
            setattr(self, name, np.array(value, dtype=self.dtype))
        return self

    @classmethod
    def from_torch(cls, module: Any, *, num_threads: Optional[int] = None) -> "Conv2d":
        """A Conv2d with the configuration and weights of a torch.nn.Conv2d."""
        torch = sys.modules.get("torch")  # a torch module means torch is imported
        if torch is None or not isinstance(module, torch.nn.Conv2d):
            raise TypeError(f"from_torch takes a torch.nn.Conv2d, but got "
                            f"{type(module).__module__}.{type(module).__name__}")
        dtype = np.float64 if "float64" in str(module.weight.dtype) else np.float32
        layer = cls(module.in_channels, module.out_channels, module.kernel_size,
                    stride=module.stride, padding=module.padding, dilation=module.dilation,
                    groups=module.groups, bias=module.bias is not None,
                    padding_mode=module.padding_mode, dtype=dtype, num_threads=num_threads)
        return layer.load_state_dict(module.state_dict())

    def __getstate__(self):
        # pickle and deepcopy: the configuration and the parameters, as torch's
        # state_dict; not the input kept for backward, nor the gradients
        return dict(self.__dict__, _saved=None, weight_grad=None, bias_grad=None)

    def __repr__(self) -> str:
        return f"Conv2d({_config_repr(self)})"


class FrozenConv2d:
    """An inference-only snapshot of a Conv2d (made by Conv2d.freeze()).

    It computes what the layer computed when it was frozen, faster on small
    inputs: the kernels read their weights in a packed layout, which Conv2d
    and cyconv.conv2d make on every call (a large part of a batch-1 layer's
    time on small planes) and a frozen layer makes once per layout (up to two,
    chosen by the input's shape; each about the size of the weights); and an
    input of a shape and dtype it has seen before is not checked again.
    ``weight`` and ``bias`` are read-only copies and the configuration is
    fixed (only ``num_threads`` may change): the packed weights and kept
    checks cannot go stale.  Like torch's frozen modules, it has no backward.
    """

    in_channels: int
    out_channels: int
    kernel_size: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Any
    dilation: Tuple[int, int]
    groups: int
    padding_mode: str
    dtype: np.dtype
    num_threads: Optional[int]
    algorithm: str
    _pads: Tuple[Tuple[int, int], Tuple[int, int]]
    _weight: np.ndarray
    _bias: Optional[np.ndarray]
    _weights_finite: bool
    _calls: Dict[Any, Any]
    _packed: Dict[Any, np.ndarray]

    def __init__(self, layer: Conv2d) -> None:
        if not isinstance(layer, Conv2d):
            raise TypeError(f"FrozenConv2d freezes a cyconv.Conv2d, "
                            f"but got {type(layer).__name__}")
        self.__dict__.update(
            {name: getattr(layer, name) for name in ("in_channels", "out_channels",
                                                     "kernel_size", "stride", "padding",
                                                     "dilation", "groups", "padding_mode",
                                                     "dtype", "num_threads", "algorithm",
                                                     "_pads")},
            _weight=_read_only_copy(layer.weight),
            _bias=None if layer.bias is None else _read_only_copy(layer.bias),
            # a NaN or Inf weight may move the layer to another path (and packing)
            _weights_finite=bool(np.isfinite(layer.weight).all()),
            # (input shape, dtype) -> that input's checked call and the packing
            # block its kernel reads: an input like one checked before needs no
            # checks again (they depend on its shape and dtype only)
            _calls={},
            _packed={})  # packing block (or the Winograd key) -> the weights packed so (read-only)

    def __setattr__(self, name, value):
        # the cached calls hold the configuration: only the thread count may change
        if name != "num_threads":
            raise AttributeError(f"a FrozenConv2d cannot change ({name!r}); change the Conv2d "
                                 f"and freeze it again")
        as_num_threads(value, 1)  # checked now, as Conv2d checks it
        self.__dict__[name] = value

    def __delattr__(self, name):
        raise AttributeError(f"a FrozenConv2d cannot change ({name!r}); change the Conv2d "
                             f"and freeze it again")

    @property
    def weight(self) -> np.ndarray:
        """The weights (read-only)."""
        return self._weight

    @property
    def bias(self) -> Optional[np.ndarray]:
        """The bias (read-only), or None."""
        return self._bias

    def __call__(self, input: ArrayLike, *, num_threads: Optional[int] = None,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
        """Run the convolution on input (N, C_in, H, W) or (C_in, H, W).
        num_threads: this call's (default: the layer's); out: as conv2d's."""
        x, pads = _padded(input, self._pads, self.padding_mode)
        kernel = _dispatch.kernel
        threads = self.num_threads if num_threads is None else num_threads
        # the packing block depends on the kernel variant too
        key = (x.shape, x.dtype, kernel) if type(x) is np.ndarray else None
        known = self._calls.get(key)
        if known is not None:
            call, block = known
            if out is not None:
                check_out(out, result_shape(call), call.result_dtype, {"input": input})
            return self._run(call, block, as_kernel_array(x[np.newaxis] if call.unbatched else x,
                                                          call.weight.dtype),
                             as_num_threads(threads, kernel.max_threads()), out)
        call = prepare_conv2d(x, self._weight, self._bias, self.stride, pads, self.dilation,
                              self.groups, threads, kernel.max_threads())
        if out is not None:
            check_out(out, result_shape(call), call.result_dtype, {"input": input})
        if self._weights_finite and _winograd.use_winograd(call, self.algorithm):
            block = ("winograd", kernel)  # the transformed layout depends on the variant
            if block not in self._packed and _winograd.reads_transformed(call):
                # finite weights: transformed, never None
                transformed = _winograd.transform_weights(call.weight, call.groups,
                                                          call.num_threads)
                assert transformed is not None
                transformed.flags.writeable = False
                self._packed[block] = transformed
        else:
            block = 0 if call.far else kernel.packing_block(
                call.input.shape, call.weight.shape, call.out_shape, *call.stride,
                call.padding[0][0], call.padding[1][0], *call.dilation, call.groups,
                call.weight.dtype.itemsize, self._weights_finite)
            if block and block not in self._packed:
                # filled before it is shared: threads may race to pack, not to read half a packing
                packed = kernel.pack_weight(call.weight, call.groups, block, call.num_threads)
                packed.flags.writeable = False
                self._packed[block] = packed
        if key is not None:
            if len(self._calls) >= _MAX_SHAPES_KEPT:
                self._calls.clear()
            self._calls[key] = (call._replace(input=None), block)  # not kept alive
        return self._run(call, block, None, None, out)

    def _run(self, call, block, input, num_threads, out):
        # the call by the kernel its packing block names
        if isinstance(block, tuple):
            return run_conv2d(call, input=input, num_threads=num_threads, out=out,
                              winograd=True, transformed=self._packed.get(block))
        return run_conv2d(call, self._packed.get(block), block, input, num_threads, out)

    forward = __call__

    def __getstate__(self):  # pickle and deepcopy: the configuration and weights, no caches
        return {k: v for k, v in self.__dict__.items() if k not in ("_calls", "_packed")}

    def __setstate__(self, state):
        # unpickled arrays are writeable: read-only again, so nothing packed can go stale
        bias = state["_bias"]
        self.__dict__.update(state, _weight=_read_only_copy(state["_weight"]),
                             _bias=None if bias is None else _read_only_copy(bias),
                             _calls={}, _packed={})

    def state_dict(self) -> Dict[str, np.ndarray]:
        """{'weight': ..., 'bias': ...} (read-only arrays), like Conv2d's."""
        state = {"weight": self._weight}
        if self._bias is not None:
            state["bias"] = self._bias
        return state

    def __repr__(self) -> str:
        return f"FrozenConv2d({_config_repr(self)})"


_MAX_SHAPES_KEPT = 64  # input shapes whose checked calls a frozen layer keeps


def _read_only_copy(array):
    """A read-only C-contiguous copy, of the array's own dtype (the layer's
    checks then see what they would see in the layer)."""
    copy = np.array(array, order="C", copy=True)
    copy.flags.writeable = False
    return copy


def _padded(input, pads, mode):
    """The input the convolution sees and the zero padding it still needs."""
    if mode == "zeros":
        return input, pads
    return pad_for_mode(input, pads, mode), 0


def _config_repr(layer):
    """A layer's constructor arguments, as its repr shows them."""
    s = (f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, "
         f"stride={layer.stride}")
    if layer.padding != (0, 0):
        s += f", padding={layer.padding}"
    if layer.dilation != (1, 1):
        s += f", dilation={layer.dilation}"
    if layer.groups != 1:
        s += f", groups={layer.groups}"
    if layer.bias is None:
        s += ", bias=False"
    if layer.padding_mode != "zeros":
        s += f", padding_mode={layer.padding_mode}"
    if layer.dtype != np.float32:
        s += f", dtype={layer.dtype.name}"
    if layer.algorithm != "direct":
        s += f", algorithm={layer.algorithm!r}"
    return s


def _unpad_gradient(grad, pads, mode):
    """The gradient of pad_for_mode: each padded row/column's gradient is added
    to the input row/column it copies (reflect, replicate or circular)."""
    for axis, (before, after) in zip((-2, -1), pads):
        size = grad.shape[axis] - before - after
        inner = [slice(None)] * grad.ndim
        inner[axis] = slice(before, before + size)
        folded = grad[tuple(inner)].copy()
        for j in list(range(before)) + list(range(before + size, before + size + after)):
            pos = j - before
            if mode == "reflect":
                source = -pos if pos < 0 else 2 * (size - 1) - pos
            elif mode == "replicate":
                source = min(max(pos, 0), size - 1)
            else:  # circular
                source = pos % size
            dst = [slice(None)] * grad.ndim
            src = [slice(None)] * grad.ndim
            dst[axis], src[axis] = source, j
            folded[tuple(dst)] += grad[tuple(src)]
        grad = folded
    return grad
