# INPUT_GRAD_SPREAD: the input gradient by spreading, dx[c, ih, iw] collects
# w[o, c, i, j] * go[o, oh, ow] for ih = oh * stride_h + i * dilation_h -
# pad_top (and likewise iw).
#
# For a chunk of grad_output positions a thread forms the products of the
# (c, i, j) rows of its channels, W^T go, one OC_BLOCK x chunk block at a
# time with mk_oc_pos_rows, and adds each block into dx at once: the col2im of
# a matrix-product backward without its columns buffer, one pass for any
# stride.  A work item owns the dx rows [h0, h1) of a slice of the channels of
# one image and takes every chunk that reaches them.  Chunks are fixed runs of
# an image's positions, and within a chunk terms are added by row (c, i, j),
# then position: every dx element sums its terms in the same order whatever
# the thread count.


cdef void spread_rows(const floating* block, Py_ssize_t ldb, Py_ssize_t m0, Py_ssize_t m1,
                      const Geometry* geo, floating* dx_image, Py_ssize_t h0, Py_ssize_t h1,
                      const Py_ssize_t* segments, Py_ssize_t n_segments,
                      const floating* bias) noexcept nogil:
    # dx_image[c, ih, iw] += block[m - m0, p] for the rows m = (c, i, j) of the
    # group and the chunk positions p that reach a row ih in [h0, h1); with a
    # bias (the group's), dx_image[c, ih, iw] = bias[c] + block[m - m0, p]
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t m, c, i, j, s, ih, iw0, lo, hi, q, sw = geo.stride_w
    cdef const floating* src
    cdef floating* dst
    for m in range(m0, m1):
        c = m // taps
        i = m % taps // geo.kernel_w
        j = m % geo.kernel_w
        for s in range(n_segments):
            ih = segments[5 * s + 1] * geo.stride_h + i * geo.dilation_h - geo.pad_top
            if ih < h0 or ih >= h1:
                continue
            iw0 = segments[5 * s + 2] * sw + j * geo.dilation_w - geo.pad_left
            valid_columns(iw0, sw, geo.in_w, segments[5 * s + 4], &lo, &hi)
            dst = dx_image + (c * geo.in_h + ih) * geo.in_w + iw0
            src = block + (m - m0) * ldb + segments[5 * s + 3]
            if bias != NULL:
                for q in range(lo, hi):
                    dst[q] = src[q] + bias[c]
            elif sw == 1:
                for q in range(lo, hi):
                    dst[q] += src[q]
            else:
                for q in range(lo, hi):
                    dst[q * sw] += src[q]


cdef Py_ssize_t input_grad_spread(const floating* grad_out, const floating* weight, const floating* bias,
                           floating* dx, const Geometry* geo, const InputGradPlan* plan) noexcept nogil:
    # dx = bias + the input gradient of conv2d for geometry geo (whose input is
    # dx) and its weight.  Returns 0, or the bytes of a buffer it could not allocate.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t chunk = plan.chunk
    cdef Py_ssize_t n_slices = plan.n_slices
    cdef Py_ssize_t slice_c = plan.slice_c
    cdef Py_ssize_t slice_blocks = plan.slice_blocks
    cdef Py_ssize_t n_row_slices = plan.n_row_slices
    cdef Py_ssize_t slice_h = plan.slice_h
    cdef bint own_packing = plan.own_packing
    # each dx value gets one term, stored with the bias instead of added to it
    cdef bint once = plan.pointwise
    cdef Py_ssize_t n_o_runs = ceil_div(cout_g, SPREAD_PACK_CHANNELS), o0
    cdef Py_ssize_t item, pack, group, sl, blk, n, rs, h0, h1, c0, c1, m0, m1, k, k0, k1
    cdef Py_ssize_t oh0, oh1, q, n_pos, n_tiles, n_seg, tile, c, ih, iw
    cdef floating* packed = NULL
    cdef floating* own  # per thread, with own_packing: a few packed blocks
    cdef floating* wblock
    cdef floating* go_tiles
    cdef floating* block  # a block of rows, then a tile of zeros
    cdef floating* zero_tile
    cdef Py_ssize_t* segments
    cdef floating* dx_image
    cdef floating* dst
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    if not own_packing:
        packed = <floating*>work_alloc(failed_flag, False, geo.groups * n_slices * slice_blocks * cout_g * OB * sizeof(floating))
        if packed == NULL:
            return failed
    with parallel(num_threads=plan.n_threads):
        for pack in prange(0 if own_packing else geo.groups * n_o_runs, schedule='static'):
            group = pack // n_o_runs
            o0 = pack % n_o_runs * SPREAD_PACK_CHANNELS
            for sl in range(n_slices):
                pack_spread_blocks(weight, geo, group, slice_c, sl, 0, slice_blocks,
                                   o0, min(cout_g, o0 + SPREAD_PACK_CHANNELS),
                                   packed + (group * n_slices + sl) * slice_blocks * cout_g * OB)
        go_tiles = <floating*>work_alloc(failed_flag, True, chunk * cout_g * sizeof(floating))
        block = <floating*>work_alloc(failed_flag, True, OB * (chunk + P) * sizeof(floating))
        segments = <Py_ssize_t*>work_alloc(failed_flag, False, 5 * chunk * sizeof(Py_ssize_t))
        own = NULL
        if own_packing:
            own = <floating*>work_alloc(failed_flag, True, SPREAD_PACK_BLOCKS * cout_g * OB * sizeof(floating))
        if block != NULL:
            zero_tile = block + OB * chunk
            fill_zero(zero_tile, OB * P)
        for item in prange(plan.n_items, schedule='static'):
            if go_tiles == NULL or block == NULL or segments == NULL or (own_packing and own == NULL):
                continue
            rs = item % n_row_slices
            sl = item // n_row_slices % n_slices
            group = item // (n_row_slices * n_slices) % geo.groups
            n = item // (n_row_slices * n_slices * geo.groups)
            h0 = rs * slice_h
            h1 = min(geo.in_h, h0 + slice_h)
            c0 = sl * slice_c
            c1 = min(cin_g, c0 + slice_c)
            dx_image = dx + (n * geo.in_channels + group * cin_g) * geo.in_h * geo.in_w
            if not once:
                for c in range(c0, c1):
                    for ih in range(h0, h1):
                        dst = dx_image + (c * geo.in_h + ih) * geo.in_w
                        for iw in range(geo.in_w):
                            dst[iw] = bias[group * cin_g + c]
            # the grad_output rows oh with oh * stride_h - pad_top + [0, reach] meeting [h0, h1)
            oh0 = h0 + geo.pad_top - (geo.kernel_h - 1) * geo.dilation_h
            oh0 = 0 if oh0 <= 0 else ceil_div(oh0, geo.stride_h)
            oh1 = h1 - 1 + geo.pad_top
            oh1 = 0 if oh1 < 0 else min(geo.out_h, oh1 // geo.stride_h + 1)
            if oh0 >= oh1:
                continue
            k0 = oh0 * geo.out_w // chunk
            k1 = ceil_div(oh1 * geo.out_w, chunk)
            for k in range(k0, k1):
                q = k * chunk
                n_pos = min(chunk, plane - q)
                n_tiles = ceil_div(n_pos, P)
                n_seg = chunk_segments(geo, n * plane + q, n_pos, chunk, segments)
                # go_tiles[tile][o][lane] = grad_out[o, q + tile * P + lane]
                pack_row_tiles(grad_out + (n * geo.out_channels + group * cout_g) * plane + q,
                               plane, cout_g, 0, n_pos, go_tiles)
                for blk in range(slice_blocks):
                    m0 = c0 * taps + blk * OB
                    m1 = min(c1 * taps, m0 + OB)
                    if m0 >= m1:
                        break
                    if own_packing:
                        if blk % SPREAD_PACK_BLOCKS == 0:
                            pack_spread_blocks(weight, geo, group, slice_c, sl, blk,
                                               min(slice_blocks, blk + SPREAD_PACK_BLOCKS), 0, cout_g,
                                               own)
                        wblock = own + blk % SPREAD_PACK_BLOCKS * cout_g * OB
                    else:
                        wblock = packed + ((group * n_slices + sl) * slice_blocks + blk) * cout_g * OB
                    for tile in range(n_tiles):
                        mk_oc_pos_rows(go_tiles + tile * cout_g * P, cout_g, P, wblock,
                                       zero_tile, P, block + tile * P, chunk)
                    spread_rows(block, chunk, m0, m1, geo, dx_image, h0, h1, segments, n_seg,
                                bias + group * cin_g if once else NULL)
        cyconv_aligned_free(go_tiles)
        cyconv_aligned_free(block)
        cyconv_aligned_free(own)
        free(segments)
    free(packed)
    return failed
