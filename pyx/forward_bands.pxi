# FORWARD_ROW_BANDS: layers with at least a vector of output channels per
# group and a kernel larger than 1x1, any stride: the dense layers of a CNN.
#
# A unit is a block of output rows of one image; a work item is a block of
# units and a run of output-channel blocks.  For each slice of input channels
# the item copies the input rows a unit needs into a zero-padded band
# (band_rows x band_w per channel; or reads them in place when the whole input
# was padded once), and mk_pos_oc_shifts broadcasts inputs straight from the
# band against vectors of LANES output channels (weights packed
# [group][block][C_in / groups * kh * kw][LANES]).  Tiles go into the item's
# accumulators (the first slice's set them, the others add), stored with the
# bias at the end.  A unit's output positions v = r * out_w + ow run through
# its rows without gaps, so tiles of BAND_POSITIONS positions span row ends:
# tap (c, i, j) of position v sits at band[c * chan + i * dh * band_w + j * dw
# + positions[v]], positions[v] = r * stride_h * band_w + ow * stride_w (the
# positions past the unit's last repeat it).


cdef void store_band_tiles(const floating* acc, const Geometry* geo, Py_ssize_t n,
                           Py_ssize_t group, Py_ssize_t oh0, Py_ssize_t rows_here,
                           Py_ssize_t n_tiles, Py_ssize_t b0, Py_ssize_t b1,
                           const floating* bias, floating* out) noexcept nogil:
    # out[n, channel block b, row oh0 + v // out_w, column v % out_w] = bias +
    # acc[b - b0][tile][position v][lane], for the unit's rows_here rows: in
    # blocks of B positions x B channels transposed in vector registers (a
    # scalar store per value would cost as much as a short reduction), the
    # last positions one by one
    cdef Py_ssize_t L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t n_pos = rows_here * geo.out_w
    cdef Py_ssize_t B = 8 if floating is float else 4  # the transposed blocks
    cdef Py_ssize_t n_whole = n_pos - n_pos % B
    cdef Py_ssize_t b, k, q, j, v, oc0, n_lanes
    cdef floating bias_q
    cdef const floating* src
    cdef floating* dst
    for b in range(b0, b1):
        oc0 = group * cout_g + b * L
        n_lanes = min(L, cout_g - b * L)
        src = acc + (b - b0) * n_tiles * CYCONV_BAND_POSITIONS * L
        dst = out + (n * geo.out_channels + oc0) * plane + oh0 * geo.out_w
        for k in range(ceil_div(n_lanes, B)):
            q = k * B
            for j in range(n_whole // B):
                v = j * B
                if floating is float:
                    cyconv_transpose_block_f32(src + v * L + q, L, n_lanes - q, bias + oc0 + q,
                                               dst + q * plane + v, plane)
                else:
                    cyconv_transpose_block_f64(src + v * L + q, L, n_lanes - q, bias + oc0 + q,
                                               dst + q * plane + v, plane)
        for q in range(n_lanes):
            bias_q = bias[oc0 + q]
            for v in range(n_whole, n_pos):
                dst[q * plane + v] = src[v * L + q] + bias_q


cdef Py_ssize_t forward_bands(const floating* x, const floating* weight, const floating* bias,
                       const floating* prepacked, floating* out, const Geometry* geo,
                       const ForwardPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.  prepacked: the
    # weights packed in blocks of LANES, or NULL to pack them here.
    cdef Py_ssize_t L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t band_w = plan.padded_cols
    cdef Py_ssize_t slice_c = plan.slice_c
    cdef Py_ssize_t rows = plan.rows
    cdef Py_ssize_t n_row_blocks = plan.n_row_blocks
    cdef Py_ssize_t chan = plan.chan
    cdef Py_ssize_t tiles_cap = plan.tiles_cap
    cdef Py_ssize_t pos_cap = plan.pos_cap
    cdef Py_ssize_t n_units = plan.n_units
    cdef Py_ssize_t units = plan.units
    cdef Py_ssize_t n_unit_blocks = plan.n_unit_blocks
    cdef Py_ssize_t blocks_per_item = plan.blocks_per_item
    cdef Py_ssize_t n_oc_items = plan.n_oc_items
    cdef Py_ssize_t full_rows = plan.padded_rows
    cdef Py_ssize_t full_chan = plan.padded_rows * plan.padded_cols
    cdef bint own_packing = plan.own_packing
    cdef bint prepadded = plan.prepadded
    cdef Py_ssize_t plane_i, u0, u_here, u, acc_unit, item, pack, group, n, oh0, rows_here
    cdef Py_ssize_t oc_item, b, b0, b1, tile_i, k, kg, k0, k1, group_tiles, n_tiles, sl, c0, nc, v
    cdef floating* padded = NULL
    cdef const floating* unit_band
    cdef floating* owned = NULL  # the packed weights when this call packs them all
    cdef const floating* packed = prepacked
    cdef floating* slice_w  # per thread: an item's blocks of one slice, packed
    cdef Py_ssize_t* offsets
    cdef Py_ssize_t* positions
    cdef bint* runs  # per tile: positions one after the other
    cdef floating* band
    cdef floating* acc
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed

    if packed == NULL and not own_packing:
        owned = <floating*>work_alloc(failed_flag, False, geo.groups * n_blocks * depth * L * sizeof(floating))
        packed = owned
    if prepadded:
        padded = <floating*>work_alloc(failed_flag, False, geo.batch * geo.in_channels * full_chan * sizeof(floating))
    offsets = <Py_ssize_t*>work_alloc(failed_flag, False, slice_c * taps * sizeof(Py_ssize_t))
    positions = <Py_ssize_t*>work_alloc(failed_flag, False, pos_cap * sizeof(Py_ssize_t))
    runs = <bint*>work_alloc(failed_flag, False, tiles_cap * sizeof(bint))
    if ((packed == NULL and not own_packing) or (padded == NULL and prepadded)
            or offsets == NULL or positions == NULL or runs == NULL):
        free(owned)
        free(padded)
        free(offsets)
        free(positions)
        free(runs)
        return failed
    band_offsets(geo, slice_c, full_chan if prepadded else chan, band_w, offsets)
    for v in range(pos_cap):
        k = min(v, rows * geo.out_w - 1)
        positions[v] = k // geo.out_w * geo.stride_h * band_w + k % geo.out_w * geo.stride_w
    for k in range(tiles_cap):
        runs[k] = True
        for v in range(k * Q + 1, k * Q + Q):
            runs[k] = runs[k] and positions[v] == positions[v - 1] + 1
    with parallel(num_threads=plan.n_threads):
        if prepadded:
            for plane_i in prange(geo.batch * geo.in_channels, schedule='static'):
                pad_plane(x + plane_i * geo.in_h * geo.in_w, geo, full_rows, band_w,
                          padded + plane_i * full_chan, False)
        if owned != NULL:
            for pack in prange(geo.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, geo, pack // n_blocks, pack % n_blocks, L, owned)
        slice_w = NULL
        if own_packing:
            slice_w = <floating*>work_alloc(failed_flag, True, blocks_per_item * slice_c * taps * L
                                                      * sizeof(floating))
        band = NULL
        if not prepadded:
            band = <floating*>work_alloc(failed_flag, True, units * slice_c * chan * sizeof(floating))
        acc = <floating*>work_alloc(failed_flag, True, units * blocks_per_item * pos_cap * L * sizeof(floating))
        for item in prange(plan.n_items, schedule='static'):
            if (band == NULL and not prepadded) or acc == NULL or (own_packing and slice_w == NULL):
                continue
            oc_item = item % n_oc_items
            u0 = (item // n_oc_items) % n_unit_blocks * units
            group = item // (n_oc_items * n_unit_blocks)
            u_here = min(units, n_units - u0)
            b0 = oc_item * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            acc_unit = (b1 - b0) * pos_cap * L  # the accumulators of one unit
            for sl in range(ceil_div(cin_g, slice_c)):
                c0 = sl * slice_c
                nc = min(slice_c, cin_g - c0)
                if not prepadded:
                    for u in range(u_here):
                        oh0 = (u0 + u) % n_row_blocks * rows
                        rows_here = min(rows, geo.out_h - oh0)
                        load_band(x, geo, (u0 + u) // n_row_blocks, group * cin_g + c0, nc,
                                  oh0 * geo.stride_h - geo.pad_top,
                                  input_rows(geo, rows_here),
                                  band_w, chan, band + u * slice_c * chan)
                if own_packing:
                    for b in range(b0, b1):
                        pack_weight_rows(weight, geo, group, b, L, c0 * taps, (c0 + nc) * taps,
                                         slice_w + (b - b0) * slice_c * taps * L)
                # groups of up to FEW_TILES tiles (of one or more units; groups
                # of equal size) take the channel blocks in turn: a block's
                # weights stay cached across the group's tiles, the group's
                # inputs across the blocks
                group_tiles = ceil_div(u_here * tiles_cap, ceil_div(u_here * tiles_cap, FEW_TILES))
                for kg in range(ceil_div(u_here * tiles_cap, group_tiles)):
                    k0 = kg * group_tiles
                    k1 = min(k0 + group_tiles, u_here * tiles_cap)
                    for b in range(b0, b1):
                        u = -1
                        for k in range(k0, k1):
                            if u != k // tiles_cap:
                                u = k // tiles_cap
                                # the last row block may have fewer tiles
                                oh0 = (u0 + u) % n_row_blocks * rows
                                rows_here = min(rows, geo.out_h - oh0)
                                n_tiles = ceil_div(rows_here * geo.out_w, Q)
                                if prepadded:
                                    unit_band = padded + (
                                        ((u0 + u) // n_row_blocks * geo.in_channels + group * cin_g + c0)
                                        * full_chan + oh0 * geo.stride_h * band_w)
                                else:
                                    unit_band = band + u * slice_c * chan
                            tile_i = k - u * tiles_cap
                            if tile_i >= n_tiles:
                                continue
                            mk_pos_oc_shifts(unit_band, offsets, nc * taps,
                                             positions + tile_i * Q, runs[tile_i],
                                             slice_w + (b - b0) * slice_c * taps * L if own_packing
                                             else packed + ((group * n_blocks + b) * depth + c0 * taps) * L,
                                             acc + u * acc_unit + ((b - b0) * tiles_cap + tile_i) * Q * L,
                                             sl > 0)
            for u in range(u_here):
                n = (u0 + u) // n_row_blocks
                oh0 = (u0 + u) % n_row_blocks * rows
                store_band_tiles(acc + u * acc_unit, geo, n, group, oh0, min(rows, geo.out_h - oh0),
                                 tiles_cap, b0, b1, bias, out)
        cyconv_aligned_free(band)
        cyconv_aligned_free(acc)
        cyconv_aligned_free(slice_w)
    free(owned)
    free(padded)
    free(offsets)
    free(positions)
    free(runs)
    return failed
