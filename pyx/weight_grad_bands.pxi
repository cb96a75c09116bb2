# WEIGHT_GRAD_BANDS: the weight gradient at stride 1 without gathering
# patches, for layers with few (input channel, tap) rows.
#
# As in the narrow forward kernel, a unit (a block of output rows of one
# image) reads its inputs from zero-padded bands of input rows, positions
# numbered v = r * band_w + ow, tap (c, i, j) at band[offsets[t] + v].  A work
# item owns a block of LANES output channels x a range of input channels of
# the gradient; per unit it transposes its grad_output rows into
# go_t[v][LANES] (zero in the padding columns), then, a few input channels at
# a time (a band that stays in L1), mk_tap_oc_shifts accumulates
# BAND_POSITIONS taps x LANES channels over the unit's positions.  Units are
# summed in order: no write races, and the order does not depend on the threads.


cdef Py_ssize_t weight_grad_bands(const floating* x, const floating* grad_out, floating* grad_w,
                           const Geometry* geo, const WeightGradPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.
    cdef Py_ssize_t L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    cdef Py_ssize_t TB = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t n_oc_blocks = plan.n_oc_blocks
    cdef Py_ssize_t band_w = plan.band_w
    cdef Py_ssize_t rows = plan.rows
    cdef Py_ssize_t n_row_blocks = plan.n_row_blocks
    cdef Py_ssize_t n_units = plan.n_units
    cdef Py_ssize_t chan = plan.chan
    cdef Py_ssize_t n_v_cap = plan.n_v_cap
    cdef Py_ssize_t band_c = plan.band_c
    cdef Py_ssize_t range_c = plan.range_c
    cdef Py_ssize_t n_ranges = plan.n_ranges
    cdef Py_ssize_t item, group, rg, ob, c0, c1, sb, s0, s1, n_tb, tb, unit, n, oh0, rows_here, n_v
    cdef Py_ssize_t r, ow, l, o, t, lanes
    cdef Py_ssize_t* offsets
    cdef floating* band
    cdef floating* go_t
    cdef floating* acc
    cdef floating* dst
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    # the taps of a band; a last, partial tap block also reads channels past
    # the band's (their sums land past the range's taps and are never stored)
    offsets = <Py_ssize_t*>work_alloc(failed_flag, False, (band_c * taps + TB) * sizeof(Py_ssize_t))
    if offsets == NULL:
        return failed
    band_offsets(geo, band_c, chan, band_w, offsets)
    for t in range(TB):
        offsets[band_c * taps + t] = 0
    with parallel(num_threads=plan.n_threads):
        band = <floating*>work_alloc(failed_flag, True, band_c * chan * sizeof(floating))
        go_t = <floating*>work_alloc(failed_flag, True, n_v_cap * L * sizeof(floating))
        acc = <floating*>work_alloc(failed_flag, True, (range_c * taps + TB) * L * sizeof(floating))
        if band != NULL:
            fill_zero(band, band_c * chan)  # what a partial tap block may read is defined
        for item in prange(plan.n_items, schedule='static'):
            if band == NULL or go_t == NULL or acc == NULL:
                continue
            ob = item % n_oc_blocks
            rg = item // n_oc_blocks % n_ranges
            group = item // (n_oc_blocks * n_ranges)
            c0 = rg * range_c
            c1 = min(cin_g, c0 + range_c)
            lanes = min(L, cout_g - ob * L)
            fill_zero(acc, ((c1 - c0) * taps + TB) * L)
            for unit in range(n_units):
                n = unit // n_row_blocks
                oh0 = unit % n_row_blocks * rows
                rows_here = min(rows, geo.out_h - oh0)
                n_v = (rows_here - 1) * band_w + geo.out_w
                # go_t[v][l] = grad_out[n, channel ob * L + l of the group, oh0 + r, ow]
                for r in range(rows_here):
                    dst = go_t + r * band_w * L
                    transpose_into(grad_out + (n * geo.out_channels + group * cout_g + ob * L) * plane
                                   + (oh0 + r) * geo.out_w, plane, lanes, geo.out_w, dst, L)
                    if lanes < L:
                        for ow in range(geo.out_w):
                            fill_zero(dst + ow * L + lanes, L - lanes)
                    if r < rows_here - 1:
                        fill_zero(dst + geo.out_w * L, (band_w - geo.out_w) * L)
                for sb in range(ceil_div(c1 - c0, band_c)):
                    s0 = c0 + sb * band_c
                    s1 = min(c1, s0 + band_c)
                    load_band(x, geo, n, group * cin_g + s0, s1 - s0, oh0 - geo.pad_top,
                              input_rows(geo, rows_here), band_w, chan, band)
                    n_tb = ceil_div((s1 - s0) * taps, TB)
                    for tb in range(n_tb):
                        mk_tap_oc_shifts(band, offsets + tb * TB, n_v, go_t,
                                         acc + ((s0 - c0) * taps + tb * TB) * L)
            for l in range(lanes):
                o = group * cout_g + ob * L + l
                for t in range((c1 - c0) * taps):
                    grad_w[o * depth + c0 * taps + t] = acc[t * L + l]
        cyconv_aligned_free(band)
        cyconv_aligned_free(go_t)
        cyconv_aligned_free(acc)
    free(offsets)
    return failed
