"""cyconv on Dask arrays: convolutions of batches and images larger than memory.

``import cyconv.dask`` imports dask (``pip install cyconv[dask]``); ``import
cyconv`` never does.  Each function checks its arguments when it builds the
graph, with conv2d's errors, and returns a lazy Dask array whose chunks are
known before anything is computed:

- batch chunks map onto blocks as they are; channel chunks are merged;
- height and width chunks get exactly the rows and columns their windows
  reach past their end (dilation * (kernel - 1) + 1 - stride of them), output
  chunks start where a window starts in their input chunk (aligned to the
  stride), and chunks smaller than that halo are merged with their neighbours;
- the weights travel once to each worker, where they are packed once for each
  zero padding a block needs (first, inner and last blocks);
- a task runs on the cores its worker gives it: under the threaded scheduler
  the processors shared by the tasks that run at once, in a dask.distributed
  worker the OpenMP default its nanny sets (one thread); num_threads overrides.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import dask
import dask.array as da
import numpy as np

from . import _dispatch
from ._validation import (PADDING_MODES, as_int, as_padding, as_pair, check_input_ndim,
                          check_mode_padding, check_out, prepare_conv2d)
from .layers import Conv2d, FrozenConv2d

__all__ = ["conv2d", "apply", "conv_transpose2d", "conv2d_weight"]

_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
# output bytes a task streaming into out= computes at a time
SLAB_BYTES = 16 * 2**20
# input blocks up to this size are copied with their halo (da.overlap: fewer,
# cheaper tasks); larger ones read their neighbours' halo pieces beside them
# (_halos: no second copy of a large block in a worker's memory)
HALO_COPY_BYTES = 16 * 2**20
Pair = Union[int, Sequence[int]]
Padding = Union[str, int, Sequence[int], Sequence[Sequence[int]]]


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Pair = 1, padding: Padding = 0,
           dilation: Pair = 1, groups: int = 1, *, padding_mode: str = "zeros",
           num_threads: Optional[int] = None, out: Optional[np.ndarray] = None,
           compute: bool = True) -> Any:
    """cyconv.conv2d of a Dask array (N, C_in, H, W) or (C_in, H, W).

    weight and bias are NumPy arrays (or what np.asarray takes); padding_mode
    is torch's ('zeros', 'reflect', 'replicate', 'circular').  Returns a lazy
    Dask array; or, with out (an array or np.memmap of the output's shape and
    dtype), writes each block straight into out, as da.store would, and
    returns out (with compute=False, the dask.delayed.Delayed that does it).
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, "
                         f"but got {padding_mode!r}")
    return _convolve(_as_dask(x, "input"), np.asarray(weight),
                     None if bias is None else np.asarray(bias), stride, padding, dilation,
                     groups, padding_mode, num_threads, out, compute)


def apply(layer: Union[Conv2d, FrozenConv2d], x: Any, *, num_threads: Optional[int] = None,
          out: Optional[np.ndarray] = None, compute: bool = True) -> Any:
    """A cyconv.Conv2d or FrozenConv2d applied to a Dask array, as conv2d
    (num_threads: the layer's unless given)."""
    if not isinstance(layer, (Conv2d, FrozenConv2d)):
        raise TypeError(f"apply takes a cyconv.Conv2d or FrozenConv2d, "
                        f"but got {type(layer).__name__}")
    config: Any = layer  # Conv2d and FrozenConv2d have the same configuration attributes
    return _convolve(_as_dask(x, "input"), config.weight, config.bias, config.stride,
                     config._pads, config.dilation, config.groups, config.padding_mode,
                     config.num_threads if num_threads is None else num_threads, out, compute)


def conv_transpose2d(x: Any, weight: Any, bias: Any = None, stride: Pair = 1,
                     padding: Pair = 0, output_padding: Pair = 0, groups: int = 1,
                     dilation: Pair = 1, *, num_threads: Optional[int] = None) -> Any:
    """cyconv.conv_transpose2d of a Dask array, block by block of its batch
    (height, width and channel chunks are merged into whole images)."""
    from .functional import conv_transpose2d as transpose
    x = _as_dask(x, "input")
    check_input_ndim(x)
    weight = np.asarray(weight)
    bias = None if bias is None else np.asarray(bias)
    conv: Dict[str, Any] = dict(stride=stride, padding=padding, output_padding=output_padding,
                                groups=groups, dilation=dilation)
    probe = transpose(np.zeros((1,) + x.shape[-3:], x.dtype), weight, bias, **conv)  # the checks
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    x = x.rechunk({1: -1, 2: -1, 3: -1})
    operands = dask.delayed((weight, bias), pure=True, traverse=False)
    result = da.map_blocks(_transpose_block, x, operands, conv, _checked(num_threads),
                           len(x.chunks[0]), dtype=probe.dtype,
                           chunks=(x.chunks[0],) + tuple((s,) for s in probe.shape[-3:]),
                           meta=np.empty((0, 0, 0, 0), probe.dtype))
    return result[0] if unbatched else result


def conv2d_weight(x: Any, weight_size: Sequence[int], grad_output: Any, stride: Pair = 1,
                  padding: Padding = 0, dilation: Pair = 1, groups: int = 1, *,
                  num_threads: Optional[int] = None, split_every: int = 8) -> Any:
    """cyconv.grad.conv2d_weight of a batch-chunked Dask array: one weight
    gradient per batch chunk (height, width and channels merged), summed in a
    tree, split_every at a time.  Returns a lazy Dask array of weight_size."""
    from .grad import conv2d_weight as weight_grad
    x = _as_dask(x, "input")
    grad_output = _as_dask(grad_output, "grad_output")
    check_input_ndim(x)
    check_input_ndim(grad_output, "grad_output")
    conv: Dict[str, Any] = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if x.ndim != grad_output.ndim:
        raise ValueError(f"grad_output must be {x.ndim}-D like the input, but got grad_output "
                         f"of shape {list(grad_output.shape)}")
    if x.ndim == 3:
        x, grad_output = x[None], grad_output[None]
    if x.shape[0] != grad_output.shape[0]:
        raise ValueError(f"grad_output must have the input's batch of {x.shape[0]}, but got "
                         f"grad_output of shape {list(grad_output.shape)}")
    probe = weight_grad(np.zeros((1,) + x.shape[1:], x.dtype), weight_size,
                        np.zeros((1,) + grad_output.shape[1:], grad_output.dtype), **conv)
    x = x.rechunk({1: -1, 2: -1, 3: -1})
    grad_output = grad_output.rechunk({0: x.chunks[0], 1: -1, 2: -1, 3: -1})
    threads = _checked(num_threads)
    n_blocks = len(x.chunks[0])
    # float16 parts are summed in float32, as a whole batch would be
    part_dtype = np.promote_types(probe.dtype, np.float32)
    parts = [da.from_delayed(
        dask.delayed(_weight_grad_block, pure=True)(xb, gb, probe.shape, conv, threads, n_blocks,
                                                    part_dtype),
        shape=probe.shape, dtype=part_dtype)
        for xb, gb in zip(x.to_delayed().ravel(), grad_output.to_delayed().ravel())]
    return da.stack(parts).sum(axis=0, split_every=split_every).astype(probe.dtype)


def _convolve(x, weight, bias, stride, padding, dilation, groups, padding_mode, num_threads,
              out, compute):
    check_input_ndim(x)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if weight.ndim == 4 and padding_mode != "zeros":
        pads = as_padding(padding, weight.shape[2:], as_pair(dilation, "dilation", 1),
                          as_pair(stride, "stride", 1))
        check_mode_padding(x.shape, pads, padding_mode)
        x = da.pad(x, ((0, 0), (0, 0)) + tuple(map(tuple, pads)),
                   mode=_NUMPY_PAD_MODE[padding_mode])
        padding = 0
    # every check of conv2d, on an empty batch of the input's shape and dtype
    call = prepare_conv2d(np.empty((0,) + x.shape[1:], x.dtype), weight, bias, stride, padding,
                          dilation, groups, _checked(num_threads), 1)
    out_shape = (x.shape[0],) + call.out_shape[1:]
    x = x.rechunk({1: -1})
    if call.far:  # offsets beyond the kernel's reach: whole images (cyconv._far_taps)
        x = x.rechunk({2: -1, 3: -1})
    rows = _axis_plan(x.chunks[2], x.shape[2], call.padding[0], call.weight.shape[2],
                      call.stride[0], call.dilation[0])
    cols = _axis_plan(x.chunks[3], x.shape[3], call.padding[1], call.weight.shape[3],
                      call.stride[1], call.dilation[1])
    x = x.rechunk({2: rows.in_chunks, 3: cols.in_chunks})
    halos: Tuple[Any, ...] = ()
    if (rows.halo or cols.halo) and _largest_block_bytes(x) <= HALO_COPY_BYTES:
        x = da.overlap.overlap(x, depth={2: (0, rows.halo), 3: (0, cols.halo)},
                               boundary="none", allow_rechunk=False)
    elif rows.halo or cols.halo:
        halos = _halos(x, rows.halo, cols.halo)
    kernel = dask.delayed(_BlockConv(call.weight, call.bias, call.stride, call.dilation,
                                     call.groups), pure=True, traverse=False)
    out_chunks = (x.chunks[0], (out_shape[1],), rows.out_chunks, cols.out_chunks)
    n_blocks = len(x.chunks[0]) * len(rows.out_chunks) * len(cols.out_chunks)
    spec = _BlockSpec(rows, cols, num_threads, n_blocks, np.dtype(call.result_dtype))
    if out is None:
        result = da.map_blocks(_conv_block, x, *halos, kernel, spec,
                               dtype=spec.dtype, chunks=out_chunks,
                               meta=np.empty((0, 0, 0, 0), spec.dtype))
        return result[0] if unbatched else result
    check_out(out, out_shape[1:] if unbatched else out_shape, spec.dtype, {})
    if not isinstance(out, np.memmap) and not _in_this_process(x):
        raise ValueError("out must be an np.memmap (a file the workers open) for a scheduler "
                         "with other processes (dask.distributed, processes): they would "
                         "write into copies of an array in memory")
    target = _Target(out, unbatched, x.chunks[0])
    done_chunks = tuple((1,) * len(c) for c in out_chunks)
    if halos and len(cols.out_chunks) == 1:
        # bands of whole rows: a task per block for the output rows that read
        # the block alone, and one per pair of blocks for the rows between,
        # from copies of their edge rows: no block waits for its neighbour
        inside = da.map_blocks(_conv_inside_into, x, kernel, spec, target,
                               dtype=np.int64, chunks=done_chunks)
        between = da.map_blocks(_conv_between_into, _last_rows(x, rows.reach - 1),
                                _next_starts(x, 2, rows.halo), kernel, spec, target,
                                dtype=np.int64, chunks=done_chunks)
        job = inside.sum() + between.sum()
    else:
        job = da.map_blocks(_conv_block_into, x, *halos, kernel, spec, target,
                            dtype=np.int64, chunks=done_chunks).sum()
    if not compute:
        return job
    job.compute()
    return out


def _as_dask(x, name):
    if isinstance(x, da.Array):
        return x
    if isinstance(x, np.ndarray) or hasattr(x, "__array__") or isinstance(x, (list, tuple)):
        return da.from_array(np.asarray(x))
    raise TypeError(f"{name} must be a dask array (or a NumPy array), but got "
                    f"{type(x).__name__}")


def _checked(num_threads):
    if num_threads is not None:
        as_int(num_threads, "num_threads", 1)
    return num_threads


class _AxisPlan:
    """How one spatial axis is cut: the input chunks (each starting where an
    output chunk's first window does), the halo each block takes from the
    next, the output chunks, and per block its zero padding (before, after)
    and the input positions it reads; and the axis's stride and the span of
    a window (reach)."""

    def __init__(self, in_chunks: Tuple[int, ...], halo: int, out_chunks: Tuple[int, ...],
                 pads: List[Tuple[int, int]], used: List[int], stride: int, reach: int):
        self.in_chunks, self.halo, self.out_chunks = in_chunks, halo, out_chunks
        self.pads, self.used, self.stride, self.reach = pads, used, stride, reach


def _axis_plan(chunks, size, pads, kernel, stride, dilation):
    before, after = pads
    reach = dilation * (kernel - 1) + 1
    out_size = (size + before + after - reach) // stride + 1
    halo = max(0, reach - stride)
    # an output chunk starts at the first window that starts in an input
    # chunk; input chunks (but the first) at least the halo long
    starts: List[int] = [0]
    edge = 0
    for length in chunks[:-1]:
        edge += length
        o = -(-(edge + before) // stride)
        begin = o * stride - before
        previous = starts[-1] * stride - before if len(starts) > 1 else 0
        if starts[-1] < o < out_size and begin < size and begin - previous >= max(halo, 1):
            starts.append(o)
    while len(starts) > 1 and size - (starts[-1] * stride - before) < halo:
        starts.pop()  # the last input chunk would be shorter than the halo
    ends = starts[1:] + [out_size]
    bounds = [0] + [o * stride - before for o in starts[1:]] + [size]
    block_pads, used = [], []
    for o0, o1 in zip(starts, ends):
        first = o0 * stride - before                  # the first position read
        last = (o1 - 1) * stride - before + reach      # one past the last
        block_pads.append((max(0, -first), max(0, last - size)))
        used.append(min(last, size) - max(first, 0))
    return _AxisPlan(tuple(b - a for a, b in zip(bounds[:-1], bounds[1:])), halo,
                     tuple(b - a for a, b in zip(starts, ends)), block_pads, used, stride, reach)


class _BlockSpec:
    """What every task of one convolution shares, besides its kernel."""

    def __init__(self, rows: _AxisPlan, cols: _AxisPlan, num_threads: Optional[int],
                 n_blocks: int, dtype: np.dtype):
        self.rows, self.cols, self.num_threads = rows, cols, num_threads
        self.n_blocks, self.dtype = n_blocks, dtype

    def run(self, kernel, pieces, i, j, out=None, rows=None, offset=0):
        """Output rows [a, b) (default: all) of the output block (i, j), from
        its input block's pieces (_window), into out if given.  offset: the
        pieces start at this row of the block (a window of its last rows)."""
        plan = self.rows
        a, b = rows or (0, plan.out_chunks[i])
        top, bottom = plan.pads[i]
        first = a * plan.stride - top                     # in the block's rows
        last = (b - 1) * plan.stride - top + plan.reach    # one past the last
        x = _window(pieces, (max(0, first) - offset, min(last, plan.used[i]) - offset),
                    (0, self.cols.used[j]))
        pads = ((max(0, -first), max(0, last - plan.used[i]) if b == plan.out_chunks[i]
                 else 0), self.cols.pads[j])
        frozen = kernel.frozen(pads)
        if x.dtype != frozen.dtype:  # integer or float16 input, computed as conv2d does
            x = x.astype(frozen.dtype)
        threads = _task_threads(self.num_threads, self.n_blocks)
        if out is not None and out.dtype == frozen.dtype:
            return frozen(x, num_threads=threads, out=out)
        result = frozen(x, num_threads=threads)
        if result.dtype != self.dtype:
            with np.errstate(over="ignore"):
                result = result.astype(self.dtype)
        if out is not None:
            out[...] = result
        return result

    def row_slabs(self, i, batch, channels, width, start=0, stop=None):
        """[(a, b)]: output rows [start, stop) (default: all) of block row i in
        slabs of at most SLAB_BYTES."""
        per_row = max(1, batch * channels * width * self.dtype.itemsize)
        step = max(1, SLAB_BYTES // per_row)
        n = self.rows.out_chunks[i] if stop is None else stop
        return [(a, min(n, a + step)) for a in range(start, n, step)]

    def rows_within(self, i):
        """How many of block row i's first output rows read its input block
        alone: all of the last block row's; the others' last rows read on
        into the next block."""
        plan = self.rows
        n = plan.out_chunks[i]
        if i == len(plan.out_chunks) - 1:
            return n
        room = plan.in_chunks[i] - plan.reach + plan.pads[i][0]
        return 0 if room < 0 else min(n, room // plan.stride + 1)


class _BlockConv:
    """The weights a task runs, as they travel to the workers; on each worker
    one frozen layer per zero padding a block needs, each packing its weights
    once."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride, dilation, groups: int):
        self.weight, self.bias = weight, bias
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self._frozen: Dict[Any, FrozenConv2d] = {}
        self._lock = threading.Lock()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_frozen", "_lock")}

    def __setstate__(self, state):
        self.__dict__.update(state, _frozen={}, _lock=threading.Lock())

    def frozen(self, pads) -> FrozenConv2d:
        with self._lock:
            if pads not in self._frozen:
                w = self.weight
                layer = Conv2d(w.shape[1] * self.groups, w.shape[0], w.shape[2:], self.stride,
                               pads, self.dilation, self.groups, dtype=w.dtype)
                layer.weight, layer.bias = w, self.bias
                self._frozen[pads] = layer.freeze()
            return self._frozen[pads]


def _task_threads(num_threads, n_blocks):
    """The threads one task may start: num_threads if given; in a
    dask.distributed worker, the OpenMP default (its nanny sets
    OMP_NUM_THREADS, to one thread by default); in a pool thread of the
    threaded scheduler, the processors shared by the tasks that run at once;
    on the calling thread (the synchronous scheduler), the OpenMP default."""
    if num_threads is not None:
        return num_threads
    try:
        from distributed import get_worker
        get_worker()
        return None
    except (ImportError, ValueError):
        pass
    if threading.current_thread() is threading.main_thread():
        return None
    pool = dask.config.get("num_workers", None) or os.cpu_count() or 1
    return max(1, _dispatch.THREAD_LIMIT // max(1, min(pool, n_blocks)))


def _largest_block_bytes(x):
    return x.dtype.itemsize * int(np.prod([max(c) for c in x.chunks]))


def _halos(x, rows_halo, cols_halo):
    """The Dask arrays of what each block reads past its end, block for block
    beside x's: the first rows of the block below, the first columns of the
    block to the right, and the corner of the block below that one (empty for
    the last blocks).  A task reads them beside its block instead of a copy
    of the block with its halo, so that a block's memory is held once."""
    below = _next_starts(x, 2, rows_halo)
    return below, _next_starts(x, 3, cols_halo), _next_starts(below, 3, cols_halo)


def _next_starts(x, axis, depth):
    """For each chunk of x along axis, the first depth positions of the next
    chunk, each piece one chunk; where a chunk reads nothing past its end (the
    last, or all when depth is 0), one position of zeros instead (Dask drops
    empty pieces)."""
    n = len(x.chunks[axis])
    stand_ins = x.chunks[:axis] + ((1,) * (n if depth == 0 else 1),) + x.chunks[axis + 1:]
    zeros = da.zeros(tuple(map(sum, stand_ins)), x.dtype, chunks=stand_ins)
    if depth == 0:
        return zeros
    parts = []
    for start, end in _spans(x.chunks[axis], range(1, n)):
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, min(start + depth, end))
        parts.append(x[tuple(index)].map_blocks(np.copy))  # a view would keep the chunk
    return da.concatenate(parts + [zeros], axis=axis)


def _last_rows(x, depth):
    """For each chunk of x along the rows, a copy of its last depth rows (at
    least one, at most the whole chunk)."""
    parts = []
    for start, end in _spans(x.chunks[2], range(len(x.chunks[2]))):
        parts.append(x[:, :, max(start, end - max(depth, 1)):end].map_blocks(np.copy))
    return da.concatenate(parts, axis=2)


def _window(pieces, rows, cols):
    """Rows [r0, r1) and columns [c0, c1) of a block followed by its halo,
    from its pieces (the block with its halo; or the block, below, right,
    corner): a view of the block where the window lies in it, a copy of the
    window otherwise."""
    block = pieces[0]
    height, width = block.shape[2:]
    (r0, r1), (c0, c1) = rows, cols
    if r1 <= height and c1 <= width:
        return block[:, :, r0:r1, c0:c1]
    window = np.empty(block.shape[:2] + (r1 - r0, c1 - c0), block.dtype)
    for piece, top, left in zip(pieces, (0, height, 0, height), (0, 0, width, width)):
        a, b = max(r0, top), min(r1, top + piece.shape[2])
        c, d = max(c0, left), min(c1, left + piece.shape[3])
        if a < b and c < d:
            window[:, :, a - r0:b - r0, c - c0:d - c0] = piece[:, :, a - top:b - top,
                                                                c - left:d - left]
    return window


def _conv_block(*args, block_info=None):
    """A block's output from (block, [below, right, corner], kernel, spec)."""
    *pieces, kernel, spec = args
    _, _, i, j = block_info[0]["chunk-location"]
    return spec.run(kernel, pieces, i, j)


def _in_this_process(x):
    """Whether the scheduler that would compute x runs its tasks in this
    process (the threaded and synchronous ones)."""
    from dask.base import get_scheduler
    from dask.local import get_sync
    from dask.threaded import get as get_threaded
    return get_scheduler(collections=[x]) in (get_threaded, get_sync)


def _spans(chunks, indices):
    """[(start, end)] of the chunks at these indices."""
    starts = np.cumsum((0,) + tuple(chunks))
    return [(int(starts[k]), int(starts[k + 1])) for k in indices]


class _Target:
    """Where out= blocks are written: the array itself for the threaded and
    synchronous schedulers; an np.memmap by its file, which each worker
    process writes with os.pwrite (a pickled memmap would arrive as a copy,
    and pages written through a mapping would count in the worker's memory)."""

    def __init__(self, array: np.ndarray, unbatched: bool, batch_chunks: Tuple[int, ...]):
        self.array, self.batch_chunks = array, batch_chunks
        self.shape = ((1,) if unbatched else ()) + array.shape  # batched
        self.file = None
        if isinstance(array, np.memmap) and array.filename is not None:
            self.file = (array.filename, array.offset)

    def __getstate__(self):
        return dict(self.__dict__, array=None if self.file else self.array)

    def region(self, n, h, w) -> Optional[np.ndarray]:
        """The batched region [n0:n1, :, h0:h1, w0:w1] of an array in memory
        (None for a file)."""
        if self.file is not None:
            return None
        return self.array.reshape(self.shape)[n[0]:n[1], :, h[0]:h[1], w[0]:w[1]]

    def write(self, n, h, w, values):
        """values into the batched region [n0:n1, :, h0:h1, w0:w1]."""
        region = self.region(n, h, w)
        if region is not None:
            region[...] = values
            return
        filename, offset = self.file
        _, channels, height, width = self.shape
        item = values.dtype.itemsize
        full_rows = w == (0, width)  # then a channel's rows are one run
        fd = os.open(filename, os.O_WRONLY)
        try:
            for k in range(n[1] - n[0]):
                for c in range(channels):
                    start = offset + (((n[0] + k) * channels + c) * height + h[0]) * width * item
                    if full_rows:
                        os.pwrite(fd, np.ascontiguousarray(values[k, c]).data, start)
                        continue
                    for r in range(h[1] - h[0]):
                        os.pwrite(fd, np.ascontiguousarray(values[k, c, r]).data,
                                  start + (r * width + w[0]) * item)
        finally:
            os.close(fd)


def _conv_block_into(*args, block_info=None):
    """A block's output, from (block, [below, right, corner], kernel, spec,
    target), written into the target."""
    *pieces, kernel, spec, target = args
    n, _, i, j = block_info[0]["chunk-location"]
    (n_span,) = _spans(target.batch_chunks, [n])
    (h0, h1), (w0, w1) = _spans(spec.rows.out_chunks, [i]) + _spans(spec.cols.out_chunks, [j])
    region = target.region(n_span, (h0, h1), (w0, w1))
    if region is not None and region.flags.c_contiguous:  # whole images, in memory
        spec.run(kernel, pieces, i, j, out=region)
    else:  # computed and written a slab of rows at a time: little memory beside the block
        for a, b in spec.row_slabs(i, n_span[1] - n_span[0], target.shape[1], w1 - w0):
            target.write(n_span, (h0 + a, h0 + b), (w0, w1),
                         spec.run(kernel, pieces, i, j, rows=(a, b)))
    return np.ones((1, 1, 1, 1), np.int64)


def _conv_inside_into(block, kernel, spec, target, block_info=None):
    """For a block of whole rows, from (block, kernel, spec, target): the
    output rows of its block row that read the block alone, written into the
    target."""
    n, _, i, j = block_info[0]["chunk-location"]
    (n_span,), ((h0, _),), ((w0, w1),) = (_spans(target.batch_chunks, [n]),
                                          _spans(spec.rows.out_chunks, [i]),
                                          _spans(spec.cols.out_chunks, [j]))
    for a, b in spec.row_slabs(i, n_span[1] - n_span[0], target.shape[1], w1 - w0, 0,
                               spec.rows_within(i)):
        target.write(n_span, (h0 + a, h0 + b), (w0, w1),
                     spec.run(kernel, [block], i, j, rows=(a, b)))
    return np.ones((1, 1, 1, 1), np.int64)


def _conv_between_into(tail, head, kernel, spec, target, block_info=None):
    """For blocks of whole rows, from (tail, head, kernel, spec, target): the
    last output rows of a block row, which read the last rows of its block
    (tail) and the first rows of the next block (head), written into the
    target."""
    n, _, i, j = block_info[0]["chunk-location"]
    plan = spec.rows
    inside = spec.rows_within(i)
    if inside < plan.out_chunks[i]:
        (n_span,), ((h0, _),), ((w0, w1),) = (_spans(target.batch_chunks, [n]),
                                              _spans(plan.out_chunks, [i]),
                                              _spans(spec.cols.out_chunks, [j]))
        window = np.concatenate([tail, head], axis=2)
        offset = plan.in_chunks[i] - tail.shape[2]
        for a, b in spec.row_slabs(i, n_span[1] - n_span[0], target.shape[1], w1 - w0, inside):
            target.write(n_span, (h0 + a, h0 + b), (w0, w1),
                         spec.run(kernel, [window], i, j, rows=(a, b), offset=offset))
    return np.ones((1, 1, 1, 1), np.int64)


def _transpose_block(block, operands, conv, num_threads, n_blocks):
    from .functional import conv_transpose2d as transpose
    weight, bias = operands
    return transpose(block, weight, bias, **conv,
                     num_threads=_task_threads(num_threads, n_blocks))


def _weight_grad_block(x, grad_output, weight_size, conv, num_threads, n_blocks, dtype):
    from .grad import conv2d_weight as weight_grad
    return weight_grad(x.astype(dtype, copy=False), weight_size,
                       grad_output.astype(dtype, copy=False), **conv,
                       num_threads=_task_threads(num_threads, n_blocks))
