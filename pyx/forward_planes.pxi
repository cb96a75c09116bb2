# FORWARD_PLANES: depthwise layers and other groups with few channels, where
# a register tile over output channels would be mostly padding and the time
# would go to gathering.  The layer is computed plane by plane.


cdef void strided_rows(const floating* x, const floating* weight, floating bias,
                       floating* out, const Geometry* geo, Py_ssize_t n, Py_ssize_t oc) noexcept nogil:
    # Any stride: each output row of plane (n, oc) accumulates the shifted
    # input rows of every tap, skipping (not reading) the zero padding.  For
    # finite weights its terms are zeros: they only turn a -0.0 sum into
    # +0.0, which the start value does (bias + 0) where a window meets the padding.
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t group = oc // (geo.out_channels // geo.groups)
    cdef Py_ssize_t oh, c, i, j, q, ih, iw0, lo, hi, ih0
    cdef Py_ssize_t reach_h = (geo.kernel_h - 1) * geo.dilation_h
    cdef Py_ssize_t reach_w = (geo.kernel_w - 1) * geo.dilation_w
    cdef const floating* row
    cdef floating* dst
    cdef floating wv
    cdef floating padded_bias = bias + 0
    for oh in range(geo.out_h):
        dst = out + ((n * geo.out_channels + oc) * geo.out_h + oh) * geo.out_w
        ih0 = oh * geo.stride_h - geo.pad_top
        if ih0 < 0 or ih0 + reach_h >= geo.in_h:
            for q in range(geo.out_w):
                dst[q] = padded_bias
        else:
            for q in range(geo.out_w):
                iw0 = q * geo.stride_w - geo.pad_left
                dst[q] = padded_bias if iw0 < 0 or iw0 + reach_w >= geo.in_w else bias
        for c in range(cin_g):
            for i in range(geo.kernel_h):
                ih = oh * geo.stride_h + i * geo.dilation_h - geo.pad_top
                if ih < 0 or ih >= geo.in_h:
                    continue
                row = x + ((n * geo.in_channels + group * cin_g + c) * geo.in_h + ih) * geo.in_w
                for j in range(geo.kernel_w):
                    wv = weight[((oc * cin_g + c) * geo.kernel_h + i) * geo.kernel_w + j]
                    iw0 = j * geo.dilation_w - geo.pad_left
                    valid_columns(iw0, geo.stride_w, geo.in_w, geo.out_w, &lo, &hi)
                    for q in range(lo, hi):
                        dst[q] += wv * row[iw0 + q * geo.stride_w]


cdef Py_ssize_t forward_planes(const floating* x, const floating* weight, const floating* bias,
                        floating* out, const Geometry* geo, const ForwardPlan* plan) noexcept nogil:
    # An item is one output plane.  At stride 1 a slice of the group's input
    # planes is zero-padded (ph x pw each, one after another); output (oh, ow)
    # sits at flat index oh * pw + ow and tap (c, i, j) is the constant shift
    # offsets[(c * kh + i) * kw + j], so the flat index runs in chunks through
    # all the slice's taps in registers (mk_1_pos_shifts; the columns past
    # out_w are computed and dropped).  Consecutive planes of a thread share
    # the padded input while it is one slice of one group of one image.  Other
    # strides take strided_rows.  Returns 0, or the bytes of a buffer it could
    # not allocate.
    cdef bint flat = geo.stride_h == 1 and geo.stride_w == 1
    cdef Py_ssize_t C = CYCONV_PLANE_CHUNK_F32 if floating is float else CYCONV_PLANE_CHUNK_F64
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t pw = plan.padded_cols
    cdef Py_ssize_t ph = plan.padded_rows
    cdef Py_ssize_t n_chunks = plan.n_chunks
    cdef Py_ssize_t slice_c = plan.slice_c
    cdef Py_ssize_t n_slices = plan.n_slices
    cdef Py_ssize_t plane, n, oc, c, k, r, sl, c0, nc, key
    cdef Py_ssize_t* offsets = NULL
    cdef Py_ssize_t* padded_for  # per thread: the (image, group, slice) in padded
    cdef floating* padded
    cdef floating* acc
    cdef const floating* src
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    if flat:
        offsets = <Py_ssize_t*>work_alloc(failed_flag, False, slice_c * taps * sizeof(Py_ssize_t))
        if offsets == NULL:
            return failed
        band_offsets(geo, slice_c, ph * pw, pw, offsets)
    with parallel(num_threads=plan.n_threads):
        padded = NULL  # thread-private: set here, not before the block
        acc = NULL
        padded_for = NULL
        if flat:
            # the last chunk reads up to C - 1 values past the last plane
            padded = <floating*>work_alloc(failed_flag, True, (slice_c * ph * pw + C) * sizeof(floating))
            acc = <floating*>work_alloc(failed_flag, True, n_chunks * C * sizeof(floating))
            padded_for = <Py_ssize_t*>work_alloc(failed_flag, False, sizeof(Py_ssize_t))
            if padded != NULL and acc != NULL and padded_for != NULL:
                # the zeros (padding and tail) once; pad_plane keeps them
                fill_zero(padded, slice_c * ph * pw + C)
                padded_for[0] = -1
        for plane in prange(plan.n_items, schedule='static'):
            n = plane // geo.out_channels
            oc = plane % geo.out_channels
            if not flat:
                strided_rows(x, weight, bias[oc], out, geo, n, oc)
                continue
            if padded == NULL or acc == NULL or padded_for == NULL:
                continue
            for sl in range(n_slices):
                c0 = sl * slice_c
                nc = min(slice_c, cin_g - c0)
                key = (n * geo.groups + oc // cout_g) * n_slices + sl
                if padded_for[0] != key:
                    padded_for[0] = key
                    src = x + (n * geo.in_channels + oc // cout_g * cin_g + c0) * geo.in_h * geo.in_w
                    for c in range(nc):
                        pad_plane(src + c * geo.in_h * geo.in_w, geo, ph, pw, padded + c * ph * pw, True)
                # the first slice sets acc, the others add: two calls with a
                # constant flag, so that gcc specialises each
                for k in range(n_chunks):
                    if sl == 0:
                        mk_1_pos_shifts(padded + k * C, offsets, nc * taps,
                                        weight + (oc * cin_g + c0) * taps, acc + k * C, False)
                    else:
                        mk_1_pos_shifts(padded + k * C, offsets, nc * taps,
                                        weight + (oc * cin_g + c0) * taps, acc + k * C, True)
            for r in range(geo.out_h):
                add_run(out + (plane * geo.out_h + r) * geo.out_w, acc + r * pw, geo.out_w, bias[oc])
        cyconv_aligned_free(padded)
        cyconv_aligned_free(acc)
        free(padded_for)
    free(offsets)
    return failed
