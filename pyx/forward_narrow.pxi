# FORWARD_NARROW: stride-1 layers with too few output channels per group to
# fill the row-band kernel's lanes (a stem's 3 -> 16, a 16 -> 8 bottleneck).
# The row-band layout (several rows of the padded width per unit, positions
# v = r * band_w + ow, the columns past out_w computed and dropped) with the
# register tile of mk_oc_pos_shifts: OC_BLOCK output channels x POS_BLOCK
# consecutive positions, accumulated in the item's acc[channel][position].


cdef Py_ssize_t forward_narrow(const floating* x, const floating* weight, const floating* bias,
                        const floating* prepacked, floating* out, const Geometry* geo,
                        const ForwardPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.  prepacked: the
    # weights packed in blocks of OC_BLOCK, or NULL to pack them here.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t band_w = plan.padded_cols
    cdef Py_ssize_t slice_c = plan.slice_c
    cdef Py_ssize_t rows = plan.rows
    cdef Py_ssize_t n_row_blocks = plan.n_row_blocks
    cdef Py_ssize_t chan = plan.chan
    cdef Py_ssize_t pos_cap = plan.pos_cap
    cdef Py_ssize_t blocks_per_item = plan.blocks_per_item
    cdef Py_ssize_t n_oc_items = plan.n_oc_items
    cdef Py_ssize_t item, pack, group, n, oh0, rows_here, n_pos, n_tiles, ld
    cdef Py_ssize_t oc_item, b, b0, b1, tile_i, o, oc, r, ow, sl, c0, nc
    cdef floating* owned = NULL
    cdef const floating* packed = prepacked
    cdef Py_ssize_t* offsets
    cdef floating* band
    cdef floating* acc
    cdef floating* dst
    cdef const floating* src
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed

    if packed == NULL:
        owned = <floating*>work_alloc(failed_flag, False, geo.groups * n_blocks * depth * OB * sizeof(floating))
        packed = owned
    offsets = <Py_ssize_t*>work_alloc(failed_flag, False, slice_c * taps * sizeof(Py_ssize_t))
    if packed == NULL or offsets == NULL:
        free(owned)
        free(offsets)
        return failed
    band_offsets(geo, slice_c, chan, band_w, offsets)
    with parallel(num_threads=plan.n_threads):
        if owned != NULL:
            for pack in prange(geo.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, geo, pack // n_blocks, pack % n_blocks, OB, owned)
        band = <floating*>work_alloc(failed_flag, True, slice_c * chan * sizeof(floating))
        acc = <floating*>work_alloc(failed_flag, True, blocks_per_item * OB * pos_cap * sizeof(floating))
        for item in prange(plan.n_items, schedule='static'):
            if band == NULL or acc == NULL:
                continue
            oc_item = item % n_oc_items
            oh0 = (item // n_oc_items) % n_row_blocks * rows
            n = (item // (n_oc_items * n_row_blocks)) % geo.batch
            group = item // (n_oc_items * n_row_blocks * geo.batch)
            rows_here = min(rows, geo.out_h - oh0)
            n_pos = (rows_here - 1) * band_w + geo.out_w
            n_tiles = ceil_div(n_pos, P)
            ld = n_tiles * P
            b0 = oc_item * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            for o in range((b1 - b0) * OB * ld):
                acc[o] = -0.0  # the sum of no terms, so that -0.0 products give -0.0
            for sl in range(ceil_div(cin_g, slice_c)):
                c0 = sl * slice_c
                nc = min(slice_c, cin_g - c0)
                load_band(x, geo, n, group * cin_g + c0, nc, oh0 - geo.pad_top,
                          input_rows(geo, rows_here), band_w, chan, band)
                for tile_i in range(n_tiles):
                    for b in range(b0, b1):
                        mk_oc_pos_shifts(band + tile_i * P, offsets, nc * taps,
                                         packed + ((group * n_blocks + b) * depth + c0 * taps) * OB,
                                         acc + (b - b0) * OB * ld + tile_i * P, ld)
            for o in range(min(cout_g - b0 * OB, (b1 - b0) * OB)):
                oc = group * cout_g + b0 * OB + o
                for r in range(rows_here):
                    dst = out + ((n * geo.out_channels + oc) * geo.out_h + oh0 + r) * geo.out_w
                    src = acc + o * ld + r * band_w
                    for ow in range(geo.out_w):
                        dst[ow] = src[ow] + bias[oc]
        cyconv_aligned_free(band)
        cyconv_aligned_free(acc)
    free(owned)
    free(offsets)
    return failed
