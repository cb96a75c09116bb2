# FORWARD_GATHERED: every layer the other paths do not take (strided or
# dilated layers with few output channels, 1x1 layers with few input
# channels or padding, huge paddings): a blocked matrix product without an
# im2col buffer.
#
# Output positions are flattened over (image, row, column) and cut into
# chunks of a few register tiles.  For each chunk a thread gathers the input
# values that chunk needs, for a slice of input channels, into a small buffer
# laid out [tile][channel, tap][position] (zero padding, stride and dilation
# resolved there), then runs mk_oc_pos_rows on it: a tile of OC_BLOCK output
# channels x POS_BLOCK positions, reading weights packed as
# [group][channel block][channel, tap][OC_BLOCK].  A 1x1 layer without
# padding (plan.reads_in_place) reads tiles within one image in place.


cdef Py_ssize_t forward_gathered(const floating* x, const floating* weight, const floating* bias,
                          const floating* prepacked, floating* out, const Geometry* geo,
                          const ForwardPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.  prepacked: the
    # weights packed in blocks of OC_BLOCK, or NULL to pack them here.
    cdef Py_ssize_t pos_block = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t total_pos = geo.batch * plane
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t blocks_per_item = plan.blocks_per_item
    cdef Py_ssize_t n_oc_items = plan.n_oc_items
    cdef Py_ssize_t chunk_width = plan.chunk_width
    cdef Py_ssize_t n_chunks = plan.n_chunks
    cdef Py_ssize_t slice_c = plan.slice_c
    cdef bint reads_in_place = plan.reads_in_place
    cdef Py_ssize_t item_channels = blocks_per_item * CYCONV_OC_BLOCK
    cdef Py_ssize_t item, pack, group, chunk, oc_item, b0, b1, b, q0, n_pos, n_tiles
    cdef Py_ssize_t n_seg, s, o, oc, sl, ic0, n_ic, tile, p, r, rows, first, ld
    cdef floating* owned = NULL
    cdef const floating* packed = prepacked
    cdef floating* buf
    cdef floating* acc
    cdef floating* dst
    cdef floating value
    cdef Py_ssize_t* segments
    cdef const floating** in_place
    cdef const floating* src
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed  # shared: written through a pointer in the parallel block

    if packed == NULL:
        owned = <floating*>work_alloc(failed_flag, False, geo.groups * n_blocks * depth * CYCONV_OC_BLOCK * sizeof(floating))
        packed = owned
        if packed == NULL:
            return failed
    with parallel(num_threads=plan.n_threads):
        if owned != NULL:
            for pack in prange(geo.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, geo, pack // n_blocks, pack % n_blocks,
                                  CYCONV_OC_BLOCK, owned)

        buf = <floating*>work_alloc(failed_flag, True, slice_c * taps * chunk_width * sizeof(floating))
        acc = <floating*>work_alloc(failed_flag, False, item_channels * chunk_width * sizeof(floating))
        segments = <Py_ssize_t*>work_alloc(failed_flag, False, 5 * chunk_width * sizeof(Py_ssize_t))
        in_place = <const floating**>work_alloc(failed_flag, False, TILES_PER_CHUNK * sizeof(floating*))
        for item in prange(plan.n_items, schedule='static'):
            if buf == NULL or acc == NULL or segments == NULL or in_place == NULL:
                continue
            oc_item = item % n_oc_items
            chunk = (item // n_oc_items) % n_chunks
            group = item // (n_oc_items * n_chunks)
            q0 = chunk * chunk_width
            n_pos = min(chunk_width, total_pos - q0)
            n_tiles = ceil_div(n_pos, pos_block)
            n_seg = chunk_segments(geo, q0, n_pos, pos_block, segments)
            b0 = oc_item * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            for tile in range(n_tiles):
                in_place[tile] = NULL
                first = q0 + tile * pos_block
                if (reads_in_place and (tile + 1) * pos_block <= n_pos
                        and first // plane == (first + pos_block - 1) // plane):
                    in_place[tile] = x + (first // plane) * geo.in_channels * plane + first % plane

            # acc[o][p]: the item's output channels o, its positions p, starting at the bias
            for o in range((b1 - b0) * CYCONV_OC_BLOCK):
                oc = b0 * CYCONV_OC_BLOCK + o
                value = bias[group * cout_g + oc] if oc < cout_g else 0
                for p in range(chunk_width):
                    acc[o * chunk_width + p] = value

            for sl in range(ceil_div(cin_g, slice_c)):
                ic0 = sl * slice_c
                n_ic = min(slice_c, cin_g - ic0)
                rows = n_ic * taps
                gather(x, geo, group, ic0, n_ic, segments, n_seg, in_place, buf)
                # the unused lanes of the last tile must hold finite values
                if n_pos < n_tiles * pos_block:
                    for r in range(rows):
                        fill_zero(buf + ((n_tiles - 1) * rows + r) * pos_block + n_pos % pos_block,
                                  pos_block - n_pos % pos_block)
                # a tile (rows x pos_block) stays in L1 while the weight blocks stream
                for tile in range(n_tiles):
                    if in_place[tile] != NULL:
                        src = in_place[tile] + (group * cin_g + ic0) * plane
                        ld = plane
                    else:
                        src = buf + tile * rows * pos_block
                        ld = pos_block
                    for b in range(b0, b1):
                        mk_oc_pos_rows(
                            src, rows, ld,
                            packed + ((group * n_blocks + b) * depth + ic0 * taps) * CYCONV_OC_BLOCK,
                            acc + (b - b0) * CYCONV_OC_BLOCK * chunk_width + tile * pos_block,
                            chunk_width,
                            acc + (b - b0) * CYCONV_OC_BLOCK * chunk_width + tile * pos_block,
                            chunk_width)

            for o in range(min(cout_g - b0 * CYCONV_OC_BLOCK, (b1 - b0) * CYCONV_OC_BLOCK)):
                oc = group * cout_g + b0 * CYCONV_OC_BLOCK + o
                for s in range(n_seg):
                    dst = (out + (segments[5 * s] * geo.out_channels + oc) * plane
                           + segments[5 * s + 1] * geo.out_w + segments[5 * s + 2])
                    copy_run(dst, acc + o * chunk_width + segments[5 * s + 3],
                             segments[5 * s + 4])
        cyconv_aligned_free(buf)
        free(acc)
        free(segments)
        free(in_place)
    free(owned)
    return failed
