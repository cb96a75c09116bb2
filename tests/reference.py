"""A tiny, readable pure-NumPy conv2d: the definition, one kernel tap at a time.

out[n, o, i, j] = bias[o] + sum_{c, p, q} weight[o, c, p, q]
                  * x_padded[n, group(o) * C_in_g + c, i * sh + p * dh, j * sw + q * dw]
"""
import numpy as np


def conv2d_reference(x, weight, bias=None, stride=(1, 1), padding=((0, 0), (0, 0)),
                     dilation=(1, 1), groups=1):
    """x (N, C_in, H, W), padding ((top, bottom), (left, right)); computed in float64."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0)) + tuple(map(tuple, padding)))
    weight = np.asarray(weight, np.float64)
    n, _, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    h_out = (h - dh * (kh - 1) - 1) // sh + 1
    w_out = (w - dw * (kw - 1) - 1) // sw + 1
    c_out_g = c_out // groups
    out = np.zeros((n, c_out, h_out, w_out))
    for g in range(groups):
        xs = x[:, g * c_in_g:(g + 1) * c_in_g]
        ws = weight[g * c_out_g:(g + 1) * c_out_g]
        for p in range(kh):
            for q in range(kw):
                # the input each output position sees through tap (p, q)
                seen = xs[:, :, p * dh:p * dh + sh * (h_out - 1) + 1:sh,
                          q * dw:q * dw + sw * (w_out - 1) + 1:sw]
                out[:, g * c_out_g:(g + 1) * c_out_g] += np.einsum(
                    "nchw,oc->nohw", seen, ws[:, :, p, q])
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


def conv2d_grads_reference(x, weight, grad_out, stride=(1, 1), padding=((0, 0), (0, 0)),
                           dilation=(1, 1), groups=1):
    """The gradients (input, weight, bias) of conv2d_reference for an output
    gradient grad_out: the same loop, each tap's contribution sent backwards."""
    (top, bottom), (left, right) = padding
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    weight = np.asarray(weight, np.float64)
    grad_out = np.asarray(grad_out, np.float64)
    _, _, h_out, w_out = grad_out.shape
    c_out, c_in_g, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    c_out_g = c_out // groups
    grad_x = np.zeros_like(x)
    grad_w = np.zeros_like(weight)
    for g in range(groups):
        chans = slice(g * c_in_g, (g + 1) * c_in_g)
        outs = slice(g * c_out_g, (g + 1) * c_out_g)
        for p in range(kh):
            for q in range(kw):
                window = (slice(None), chans, slice(p * dh, p * dh + sh * (h_out - 1) + 1, sh),
                          slice(q * dw, q * dw + sw * (w_out - 1) + 1, sw))
                grad_w[outs, :, p, q] += np.einsum("nohw,nchw->oc", grad_out[:, outs], x[window])
                grad_x[window] += np.einsum("nohw,oc->nchw", grad_out[:, outs],
                                            weight[outs, :, p, q])
    h, w = x.shape[2:]
    grad_x = grad_x[:, :, top:h - bottom, left:w - right]
    return grad_x, grad_w, grad_out.sum(axis=(0, 2, 3))


def conv2d_by_definition(x, weight, bias, grad_out, stride, padding, dilation, groups):
    """(output, input gradient, weight gradient) from the definition, position
    by position, with exact integer indices: for any strides, paddings and
    dilations (up to 2**63), on small outputs.  padding is ((top, bottom),
    (left, right)); grad_out has the output's shape (None: no gradients)."""
    x, weight = np.asarray(x, np.float64), np.asarray(weight, np.float64)
    n, c_in, h, w = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    (sh, sw), (dh, dw), (top, bottom), (left, right) = stride, dilation, *padding
    h_out = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    c_out_g = c_out // groups
    out = np.zeros((n, c_out, h_out, w_out))
    grad_x, grad_w = np.zeros_like(x), np.zeros_like(weight)
    for g in range(groups):
        ins, outs = slice(g * c_in_g, (g + 1) * c_in_g), slice(g * c_out_g, (g + 1) * c_out_g)
        for i in range(h_out):
            for j in range(w_out):
                for p in range(kh):
                    r = i * sh + p * dh - top
                    if not 0 <= r < h:
                        continue  # the zero padding adds nothing to finite sums
                    for q in range(kw):
                        t = j * sw + q * dw - left
                        if not 0 <= t < w:
                            continue
                        out[:, outs, i, j] += x[:, ins, r, t] @ weight[outs, :, p, q].T
                        if grad_out is not None:
                            go = np.asarray(grad_out, np.float64)[:, outs, i, j]
                            grad_x[:, ins, r, t] += go @ weight[outs, :, p, q]
                            grad_w[outs, :, p, q] += go.T @ x[:, ins, r, t]
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out, grad_x, grad_w


def conv2d_winograd_reference(x, weight, m, dtype, padding=(1, 1)):
    """Winograd's F(m x m, 3 x 3) for a stride-1 3 x 3 layer, in NumPy, with every
    transform and product in `dtype`: the arithmetic a Winograd kernel does,
    tile by tile."""
    from cyconv._winograd import matrices
    a_t, g, b_t = (mat.astype(dtype) for mat in matrices(m))
    alpha = m + 2
    n, c, h, w = x.shape
    h_out, w_out = h + 2 * padding[0] - 2, w + 2 * padding[1] - 2
    tiles_h, tiles_w = -(-h_out // m), -(-w_out // m)
    # pad on the far sides too, so that every tile has a full patch
    xp = np.zeros((n, c, tiles_h * m + 2, tiles_w * m + 2), dtype)
    xp[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x
    s = xp.strides
    patches = np.lib.stride_tricks.as_strided(
        xp, (n, c, tiles_h, tiles_w, alpha, alpha), s[:2] + (s[2] * m, s[3] * m) + s[2:])
    v = np.einsum("ia,nctuab,jb->nctuij", b_t, patches, b_t).astype(dtype)
    t = np.einsum("ip,ocpq->ociq", g, np.asarray(weight, dtype)).astype(dtype)
    u = np.einsum("ociq,jq->ocij", t, g).astype(dtype)
    prod = np.einsum("ocij,nctuij->notuij", u, v).astype(dtype)
    y = np.einsum("ai,notuij,bj->notuab", a_t, prod, a_t).astype(dtype)
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, -1, tiles_h * m, tiles_w * m)
    return y[:, :, :h_out, :w_out]
