"""Convolutions whose taps lie far apart: a stride, dilation, padding or
padded size beyond FAR_LIMIT (2**40), up to the 2**63 - 1 that torch allows.

Such layers are tiny in work (an output position meets the input through
few taps, if any), but their offsets would overflow the kernel's 64-bit
index arithmetic.  Here every index is a Python int: for each tap the
outputs that read inside the input form one rectangle, found exactly, and
NumPy sums that rectangle's products; outputs that read the padding get
0 * weight (NaN for a non-finite weight, as torch computes it).  Sums start
at -0.0, the sum of no terms, then take the bias, as the kernels do.  NaN and Inf pass
silently, as in the kernels.
"""
import functools

import numpy as np

FAR_LIMIT = 2**40


def is_far(sizes, pads, kernel, stride, dilation):
    """Whether a geometry needs this module: any offset beyond FAR_LIMIT."""
    for size, (before, after), k, s, d in zip(sizes, pads, kernel, stride, dilation):
        if max(s, before, after, d * (k - 1) + 1, size + before + after) > FAR_LIMIT:
            return True
    return False


def _inside(size, before, k, stride, dilation, out_size):
    """For tap k of one axis: the outputs [lo, hi) that read inside the input,
    and the input index lo reads (the next ones stride apart)."""
    offset = k * dilation - before  # output o reads o * stride + offset
    lo = 0 if offset >= 0 else -(offset // stride)  # ceil(-offset / stride)
    hi = min(out_size, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    hi = max(lo, hi)
    return lo, hi, lo * stride + offset


def _taps(x_hw, w_hw, out_hw, stride, pads, dilation):
    """(i, j, (row lo, hi, first row), (column lo, hi, first column)) of every tap."""
    rows = [_inside(x_hw[0], pads[0][0], i, stride[0], dilation[0], out_hw[0])
            for i in range(w_hw[0])]
    cols = [_inside(x_hw[1], pads[1][0], j, stride[1], dilation[1], out_hw[1])
            for j in range(w_hw[1])]
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            yield i, j, r, c


def _quiet(fn):
    """fn without NumPy's warnings on NaN and Inf arithmetic."""
    @functools.wraps(fn)
    def quiet(*args):
        with np.errstate(invalid="ignore", over="ignore"):
            return fn(*args)
    return quiet


def _rows(start, count, step):
    return slice(start, start + (count - 1) * step + 1, step)


def _outside(out_hw, r, c):
    """A mask of the outputs that read padding through the tap (r, c)."""
    mask = np.ones(out_hw, bool)
    mask[r[0]:r[1], c[0]:c[1]] = False
    return mask


@_quiet
def conv2d(x, weight, bias, stride, pads, dilation, groups, out):
    """out = conv2d(x, weight, bias)."""
    n, c_out, out_h, out_w = out.shape
    c_in_g = weight.shape[1]
    c_out_g = c_out // groups
    out[...] = -0.0
    for i, j, r, c in _taps(x.shape[2:], weight.shape[2:], (out_h, out_w), stride, pads, dilation):
        for g in range(groups):
            w = weight[g * c_out_g:(g + 1) * c_out_g, :, i, j]
            dst = out[:, g * c_out_g:(g + 1) * c_out_g]
            if r[1] > r[0] and c[1] > c[0]:
                seen = x[:, g * c_in_g:(g + 1) * c_in_g, _rows(r[2], r[1] - r[0], stride[0]),
                         _rows(c[2], c[1] - c[0], stride[1])]
                block = dst[:, :, r[0]:r[1], c[0]:c[1]]
                for k in range(c_in_g):  # term by term (a sum of -0.0 stays -0.0)
                    block += seen[:, k, None] * w[None, :, k, None, None]
            # 0 * weight on the padding (NaN for a NaN or Inf weight)
            dst[:, :, _outside((out_h, out_w), r, c)] += (0 * w).sum(axis=1)[None, :, None]
    out += bias[None, :, None, None]


@_quiet
def input_grad(grad_output, weight, bias, stride, pads, dilation, groups, dx):
    """dx = bias + the input gradient: only products with an input position count."""
    c_in_g = weight.shape[1]
    c_out_g = weight.shape[0] // groups
    out_h, out_w = grad_output.shape[2:]
    dx[...] = 0
    for i, j, r, c in _taps(dx.shape[2:], weight.shape[2:], (out_h, out_w), stride, pads,
                            dilation):
        if r[1] <= r[0] or c[1] <= c[0]:
            continue
        for g in range(groups):
            go = grad_output[:, g * c_out_g:(g + 1) * c_out_g, r[0]:r[1], c[0]:c[1]]
            dx[:, g * c_in_g:(g + 1) * c_in_g, _rows(r[2], r[1] - r[0], stride[0]),
               _rows(c[2], c[1] - c[0], stride[1])] += np.einsum(
                "nohw,oc->nchw", go, weight[g * c_out_g:(g + 1) * c_out_g, :, i, j])
    dx += bias[None, :, None, None]


@_quiet
def weight_grad(x, grad_output, stride, pads, dilation, groups, gw):
    """gw = the weight gradient; grad_output times the padding counts (0 * NaN is NaN)."""
    c_out, c_in_g = gw.shape[:2]
    c_out_g = c_out // groups
    out_hw = grad_output.shape[2:]
    gw[...] = 0
    finite = bool(np.isfinite(grad_output).all())
    for i, j, r, c in _taps(x.shape[2:], gw.shape[2:], out_hw, stride, pads, dilation):
        for g in range(groups):
            go = grad_output[:, g * c_out_g:(g + 1) * c_out_g]
            dst = gw[g * c_out_g:(g + 1) * c_out_g, :, i, j]
            if r[1] > r[0] and c[1] > c[0]:
                seen = x[:, g * c_in_g:(g + 1) * c_in_g, _rows(r[2], r[1] - r[0], stride[0]),
                         _rows(c[2], c[1] - c[0], stride[1])]
                dst += np.einsum("nohw,nchw->oc", go[:, :, r[0]:r[1], c[0]:c[1]], seen)
            if not finite:
                dst += (0 * go[:, :, _outside(out_hw, r, c)]).sum(axis=(0, 2))[:, None]
