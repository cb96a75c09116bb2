# Operands rearranged into the layouts the micro-kernels stream: weights in
# blocks of output channels ([group][block][C_in / groups * kh * kw][block]),
# the flipped weight of the input gradient, tiles of planes, and grad_output
# transposed for the weight gradient.


cdef Py_ssize_t packed_size(const Geometry* geo, Py_ssize_t block) noexcept nogil:
    # values in the weights packed in blocks of block output channels
    cdef Py_ssize_t depth = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    return geo.groups * ceil_div(geo.out_channels // geo.groups, block) * depth * block


cdef void pack_weight_rows(const floating* weight, const Geometry* geo, Py_ssize_t group,
                           Py_ssize_t block, Py_ssize_t block_size, Py_ssize_t r0, Py_ssize_t r1,
                           floating* dst) noexcept nogil:
    # dst[r - r0][o] = weight[group * cout_g + block * block_size + o][r] for
    # the rows r0 <= r < r1, zero for the channels past cout_g that fill the
    # last block.  Written in order, PACK_CHUNK rows at a time for each group
    # of T channels (T read streams at a time): writing each row of weight
    # across the block would cost a store per cache line.  Whole blocks go 8 x
    # 8 floats (4 x 4 doubles) at a time through vector transposes.
    cdef Py_ssize_t T = 8 if floating is float else 4
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t depth = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t valid = min(block_size, cout_g - block * block_size)
    cdef const floating* src = weight + (group * cout_g + block * block_size) * depth
    cdef Py_ssize_t o, r, k, i, j, c0, r_tail = r0
    if valid == block_size and block_size % T == 0:
        r_tail = r0 + (r1 - r0) // T * T
        for j in range(ceil_div(r_tail - r0, PACK_CHUNK)):
            c0 = r0 + j * PACK_CHUNK
            for i in range(block_size // T):
                for k in range((min(c0 + PACK_CHUNK, r_tail) - c0) // T):
                    r = c0 + k * T
                    for o in range(T):  # the rows stream from memory (L3): ask early
                        cyconv_prefetch(src + (i * T + o) * depth + r + PACK_CHUNK)
                    if floating is float:
                        cyconv_transpose_block_f32(src + i * T * depth + r, depth, T, NULL,
                                                   dst + (r - r0) * block_size + i * T, block_size)
                    else:
                        cyconv_transpose_block_f64(src + i * T * depth + r, depth, T, NULL,
                                                   dst + (r - r0) * block_size + i * T, block_size)
    for r in range(r_tail, r1):
        for o in range(valid):
            dst[(r - r0) * block_size + o] = src[o * depth + r]
        for o in range(valid, block_size):
            dst[(r - r0) * block_size + o] = 0


cdef void pack_weight_block(const floating* weight, const Geometry* geo,
                            Py_ssize_t group, Py_ssize_t block, Py_ssize_t block_size,
                            floating* packed) noexcept nogil:
    # packed[group][block][r][o]: pack_weight_rows of every row
    cdef Py_ssize_t depth = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t n_blocks = ceil_div(geo.out_channels // geo.groups, block_size)
    pack_weight_rows(weight, geo, group, block, block_size, 0, depth,
                     packed + (group * n_blocks + block) * depth * block_size)


cdef void pack_flipped_block(const floating* weight, Py_ssize_t c_out, Py_ssize_t c_in_g,
                             Py_ssize_t taps, Py_ssize_t groups, Py_ssize_t group, Py_ssize_t block,
                             Py_ssize_t block_size, floating* packed) noexcept nogil:
    # pack_weight_block of the weight that computes the input gradient (the
    # flipped (C_in, C_out / groups, kh, kw) transpose of weight, see
    # flip_transpose_weight), straight from weight: packed[group][block][o,
    # t][c] = weight[group * C_out / groups + o, block * block_size + c,
    # tap taps - 1 - t].  Per o the block's channels are one contiguous
    # [c][tap] run, transposed into rows written last tap first.
    cdef Py_ssize_t c_out_g = c_out // groups
    cdef Py_ssize_t n_blocks = ceil_div(c_in_g, block_size)
    cdef Py_ssize_t valid = min(block_size, c_in_g - block * block_size)
    cdef floating* dst = packed + (group * n_blocks + block) * c_out_g * taps * block_size
    cdef Py_ssize_t o, t
    for o in range(c_out_g):
        transpose_into(weight + ((group * c_out_g + o) * c_in_g + block * block_size) * taps, taps,
                       valid, taps, dst + (o * taps + taps - 1) * block_size, -block_size)
        if valid < block_size:
            for t in range(taps):
                fill_zero(dst + (o * taps + t) * block_size + valid, block_size - valid)


cdef inline Py_ssize_t tile_chunk(Py_ssize_t n_rows, Py_ssize_t n_pos, Py_ssize_t P) noexcept nogil:
    # positions per chunk of pack_row_tiles: n_rows x chunk values within
    # SPREAD_CHUNK (L2), at least TILES_PER_CHUNK tiles, at most the n_pos
    # positions there are (a plane, or all images' in the pointwise kernel)
    return min(max(TILES_PER_CHUNK * P, SPREAD_CHUNK // n_rows // P * P), ceil_div(n_pos, P) * P)


cdef inline void pack_row_tiles(const floating* src, Py_ssize_t plane, Py_ssize_t n_rows,
                                Py_ssize_t p0, Py_ssize_t n_pos, floating* tiles) noexcept nogil:
    # tiles[p // P][row][p % P] = src[row * plane + p - p0] for the chunk
    # positions p0 <= p < p0 + n_pos, zeros after them to the end of their
    # last tile: n_rows planes as mk_oc_pos_rows's operand (a run of
    # positions of one image; a chunk may take several, one after the other).
    # Read row by row (tile by tile, the reads would jump between rows a cache
    # line at a time); rows a plane apart are short runs, so a few rows ahead
    # are fetched, or each would wait for memory on its own.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t p_end = p0 + n_pos
    cdef Py_ssize_t row, p, lanes, k
    cdef const floating* s
    cdef floating* dst
    for row in range(n_rows):
        s = src + row * plane
        if row + PREFETCH_ROWS < n_rows:
            prefetch_run(s + PREFETCH_ROWS * plane, n_pos * <Py_ssize_t>sizeof(floating))
        p = p0
        while p < p_end:
            lanes = min(P - p % P, p_end - p)
            dst = tiles + (p // P * n_rows + row) * P + p % P
            if lanes == P:  # a whole tile: a fixed count, two vector moves
                for k in range(P):
                    dst[k] = s[p - p0 + k]
            else:
                copy_run(dst, s + p - p0, lanes)
            p += lanes
        if p_end % P:
            fill_zero(tiles + (p_end // P * n_rows + row) * P + p_end % P, P - p_end % P)


cdef void pack_spread_blocks(const floating* weight, const Geometry* geo, Py_ssize_t group,
                             Py_ssize_t slice_c, Py_ssize_t sl, Py_ssize_t b0, Py_ssize_t b1,
                             Py_ssize_t o0, Py_ssize_t o1, floating* packed) noexcept nogil:
    # packed[blk - b0][o][r] = w[o][m] for the blocks b0 <= blk < b1 of channel
    # slice sl and the channels o0 <= o < o1 of the group's conv2d weight
    # w[o][m] (o: output channel, the grad_output's; m: row (c, i, j)), m =
    # sl * slice_c * taps + blk * OB + r, zero past the slice's rows.  A few
    # channels at a time through all the blocks, so each weight row is read in
    # order (a block at a time, all its channels, would touch a line in every
    # row, C_in * kh * kw values apart, lines that fight over a few cache sets).
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t m_end = min(cin_g, (sl + 1) * slice_c) * taps
    cdef const floating* src
    cdef Py_ssize_t i, run, blk, m0, n_m, o, r
    cdef floating* dst
    for i in range(ceil_div(o1 - o0, SPREAD_PACK_CHANNELS)):
        run = o0 + i * SPREAD_PACK_CHANNELS
        # the rows of a few runs ahead are asked for: each row's piece is a
        # short run a weight row apart, which would wait on memory on its own
        for o in range(run + PACK_AHEAD * SPREAD_PACK_CHANNELS,
                       min(o1, run + (PACK_AHEAD + 1) * SPREAD_PACK_CHANNELS)):
            prefetch_run(weight + (group * cout_g + o) * depth + sl * slice_c * taps + b0 * OB,
                         min(m_end - (sl * slice_c * taps + b0 * OB), (b1 - b0) * OB)
                         * <Py_ssize_t>sizeof(floating))
        for blk in range(b0, b1):
            m0 = sl * slice_c * taps + blk * OB
            n_m = max(0, min(m_end - m0, OB))
            dst = packed + (blk - b0) * cout_g * OB
            for o in range(run, min(o1, run + SPREAD_PACK_CHANNELS)):
                src = weight + (group * cout_g + o) * depth + m0
                if n_m == OB:  # a whole block: a fixed count gcc unrolls
                    for r in range(CYCONV_OC_BLOCK):
                        dst[o * OB + r] = src[r]
                    continue
                for r in range(n_m):
                    dst[o * OB + r] = src[r]
                for r in range(n_m, OB):
                    dst[o * OB + r] = 0


cdef void pack_grad_output(const floating* grad_out, const Geometry* geo, Py_ssize_t group,
                           Py_ssize_t b0, Py_ssize_t b1,
                           const Py_ssize_t* segments, Py_ssize_t n_segments,
                           Py_ssize_t chunk, floating* packed) noexcept nogil:
    # packed[b - b0][p][o] = grad_out[channel b * OC_BLOCK + o of the group,
    # position p of the chunk] (the layout of packed weights), zero past the
    # group's channels
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t b, s, q, length, valid
    cdef const floating* src
    cdef floating* dst
    for b in range(b0, b1):
        valid = min(<Py_ssize_t>CYCONV_OC_BLOCK, cout_g - b * CYCONV_OC_BLOCK)
        for s in range(n_segments):
            length = segments[5 * s + 4]
            dst = packed + ((b - b0) * chunk + segments[5 * s + 3]) * CYCONV_OC_BLOCK
            src = (grad_out + (segments[5 * s] * geo.out_channels + group * cout_g
                               + b * CYCONV_OC_BLOCK) * plane
                   + segments[5 * s + 1] * geo.out_w + segments[5 * s + 2])
            transpose_into(src, plane, valid, length, dst, CYCONV_OC_BLOCK)
            if valid < CYCONV_OC_BLOCK:
                for q in range(length):
                    fill_zero(dst + q * CYCONV_OC_BLOCK + valid, CYCONV_OC_BLOCK - valid)
