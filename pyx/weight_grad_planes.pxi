# WEIGHT_GRAD_PLANES: the weight gradient at stride 1 for few channels per
# group (depthwise-like), where a matrix product would pad its register tiles
# mostly with zeros.
#
# As in the forward plane kernel, on a zero-padded input plane of row length
# pw each tap is a constant shift, so with grad_output laid out at row length
# pw (zeros past out_w) the gradient of tap (i, j) is one long dot product
# (mk_tap4_dot_shifts, four taps at a time).  A work item is one output
# channel: it owns its gradient and sums images in order.


cdef Py_ssize_t weight_grad_planes(const floating* x, const floating* grad_out, floating* grad_w,
                            const Geometry* geo, const WeightGradPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t pw = input_cols(geo, geo.out_w)
    cdef Py_ssize_t ph = input_rows(geo, geo.out_h)
    cdef Py_ssize_t length = (geo.out_h - 1) * pw + geo.out_w
    cdef Py_ssize_t oc, n, c, r, group, t0, t, k
    cdef Py_ssize_t* shifts  # per thread, as every buffer here: a C array would be shared
    cdef floating* sums
    cdef floating* padded
    cdef floating* spread
    cdef floating* acc
    cdef const floating* src
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    with parallel(num_threads=plan.n_threads):
        padded = <floating*>work_alloc(failed_flag, True, ph * pw * sizeof(floating))
        spread = <floating*>work_alloc(failed_flag, True, geo.out_h * pw * sizeof(floating))
        acc = <floating*>work_alloc(failed_flag, False, (cin_g * taps + 4) * sizeof(floating))
        shifts = <Py_ssize_t*>work_alloc(failed_flag, False, 4 * sizeof(Py_ssize_t))
        for oc in prange(plan.n_items, schedule='static'):
            if padded == NULL or spread == NULL or acc == NULL or shifts == NULL:
                continue
            sums = acc + cin_g * taps
            group = oc // cout_g
            fill_zero(acc, cin_g * taps)
            for n in range(geo.batch):
                src = grad_out + (n * geo.out_channels + oc) * geo.out_h * geo.out_w
                for r in range(geo.out_h):
                    copy_run(spread + r * pw, src + r * geo.out_w, geo.out_w)
                    fill_zero(spread + r * pw + geo.out_w, pw - geo.out_w)
                for c in range(cin_g):
                    pad_plane(x + ((n * geo.in_channels + group * cin_g + c) * geo.in_h) * geo.in_w,
                              geo, ph, pw, padded, n > 0 or c > 0)
                    for t0 in range(0, taps, 4):
                        for k in range(4):  # the last group repeats its last tap
                            t = min(t0 + k, taps - 1)
                            shifts[k] = (t // geo.kernel_w * geo.dilation_h * pw
                                         + t % geo.kernel_w * geo.dilation_w)
                        mk_tap4_dot_shifts(spread, padded, shifts, length, sums)
                        for k in range(min(4, taps - t0)):
                            acc[c * taps + t0 + k] += sums[k]
            for r in range(cin_g * taps):
                grad_w[oc * cin_g * taps + r] = acc[r]
        cyconv_aligned_free(padded)
        cyconv_aligned_free(spread)
        free(acc)
        free(shifts)
    return failed
