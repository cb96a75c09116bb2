# The Winograd kernel's entry points (forward_winograd.pxi): cyconv/_winograd.py
# calls them with checked, C-contiguous operands of a stride-1, dilation-1 3x3
# layer; the weights are transformed here or come transformed by winograd_weights.


cdef void winograd_geometry(Geometry* geo, const Py_ssize_t* x_shape, const Py_ssize_t* out_shape,
                            Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t groups) noexcept:
    # the stride-1, dilation-1 3x3 convolution of x into out
    cdef Py_ssize_t w_shape[4]
    w_shape[0], w_shape[1], w_shape[2], w_shape[3] = out_shape[1], x_shape[1] // groups, 3, 3
    set_geometry(geo, x_shape, w_shape, out_shape, 1, 1, pad_top, pad_left, 1, 1, groups)


def winograd_weights(const floating[:, :, :, ::1] weight, Py_ssize_t groups, int num_threads):
    """The 3x3 weight transformed for conv2d_winograd (a new 1-D array, in
    the dtype's arithmetic): G w G^T per (output, input) channel pair, G the
    integer 6x3 matrix of F(4x4, 3x3) (cyconv._winograd.matrices).  None
    when a weight is NaN or Inf (Winograd would spread it over whole tiles:
    such a layer is computed directly)."""
    cdef Geometry geo
    cdef floating[::1] dst
    geo.groups = groups
    geo.out_channels, geo.in_channels = weight.shape[0], weight.shape[1] * groups
    if not all_finite(&weight[0, 0, 0, 0], values(weight.shape)):
        return None
    transformed = np.empty(winograd_size(&geo), dtype=np.float32 if floating is float else np.float64)
    dst = transformed
    with nogil:
        transform_all_weights(&weight[0, 0, 0, 0], &geo, False, num_threads, &dst[0])
    return transformed


def conv2d_winograd(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                    transformed, const floating[::1] bias, floating[:, :, :, ::1] out,
                    Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t groups,
                    const double[:, ::1] a_t, int num_threads, bint flipped=False):
    """out = bias + the stride-1 3x3 convolution of x by weight, by Winograd's
    F(4x4, 3x3) (a_t its 4x6 matrix A^T; the kernel applies G and B^T as
    sums).
    transformed: weight as winograd_weights transforms it, or None to
    transform it here.  flipped: x is grad_output and out the input gradient
    of the convolution by weight (padding: 2 - its padding).  Returns
    ("winograd", the threads it started), or None when a result came out NaN
    or Inf (from a NaN or Inf input or weight, which Winograd spreads over
    whole tiles, or an overflow): out is then incomplete; compute the layer
    directly."""
    cdef Geometry geo
    cdef WinogradPlan plan
    cdef Py_ssize_t status = 0
    cdef const floating[::1] given
    cdef const floating* u = NULL
    cdef floating* owned = NULL
    winograd_geometry(&geo, x.shape, out.shape, pad_top, pad_left, groups)
    if transformed is not None:
        given = transformed
        if given.shape[0] != winograd_size(&geo):
            raise ValueError(f"cyconv: {given.shape[0]} transformed weights for a layout "
                             f"of {winograd_size(&geo)}")
        u = &given[0]
    plan_winograd(&geo, sizeof(floating), num_threads, u != NULL, &plan)
    plan.flipped = flipped
    with nogil:
        if u == NULL and not plan.fused_weights:
            owned = <floating*>work_alloc(&status, True, winograd_size(&geo) * sizeof(floating))
            if owned != NULL:
                transform_all_weights(&weight[0, 0, 0, 0], &geo, flipped, plan.n_threads, owned)
                u = owned
        if status == 0:
            status = forward_winograd(&x[0, 0, 0, 0], u, &weight[0, 0, 0, 0], &bias[0],
                                      &out[0, 0, 0, 0], &geo, &plan, &a_t[0, 0])
        cyconv_aligned_free(owned)
    if status > 0:
        raise_memory_error(status, "forward convolution", "winograd")
    return None if status < 0 else ("winograd", plan.n_threads)


def plan_winograd_call(tuple x_shape, tuple out_shape, Py_ssize_t pad_top, Py_ssize_t pad_left,
                       Py_ssize_t groups, Py_ssize_t itemsize, int num_threads,
                       bint transformed=False):
    """The WinogradPlan of a conv2d_winograd call (transformed: it brings the
    transformed weights, as a FrozenConv2d does), as a dict."""
    cdef Geometry geo
    cdef WinogradPlan plan
    cdef Py_ssize_t xs[4]
    cdef Py_ssize_t os[4]
    cdef int i
    for i in range(4):
        xs[i], os[i] = x_shape[i], out_shape[i]
    winograd_geometry(&geo, xs, os, pad_top, pad_left, groups)
    plan_winograd(&geo, itemsize, num_threads, transformed, &plan)
    return plan
