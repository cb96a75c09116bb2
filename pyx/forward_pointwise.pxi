# FORWARD_POINTWISE: 1x1 layers (stride 1, no padding) with enough input
# channels: the matrix product out = W x per image and group.
#
# Positions run through the images one after the other (f = n * plane + q),
# so that a register tile may take the end of one image and the start of the
# next (per image, small planes would end in a partial tile).  A work item is
# a chunk of these tiles for one group and a run of output-channel blocks
# (its x stays in L2 while the blocks take it).  With plan.reads_in_place,
# mk_oc_pos_rows reads a tile within one image where it lies, its rows a
# plane apart; a tile across images (or the last, short one), and every tile
# otherwise, is packed first.  Each block's tile starts from the bias and
# goes straight into out (written once: no bias pass); a tile across images,
# a partial tile or a partial channel block goes through a small buffer.


cdef Py_ssize_t forward_pointwise(const floating* x, const floating* weight, const floating* bias,
                           const floating* prepacked, floating* out, const Geometry* geo,
                           const ForwardPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.  prepacked: the
    # weights packed in blocks of OC_BLOCK, or NULL to pack them here.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t n_pos_all = geo.batch * plane
    cdef Py_ssize_t n_tiles_all = ceil_div(n_pos_all, P)
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t n_chunks = plan.n_chunks
    cdef Py_ssize_t n_oc_items = plan.n_oc_items
    cdef Py_ssize_t blocks_per_item = plan.blocks_per_item
    cdef bint in_place = plan.reads_in_place
    cdef Py_ssize_t item, pack, k, n, group, f0, f, q, n_pos, n_tiles, tile, lanes, o, p
    cdef Py_ssize_t b, b0, b1, oc0, valid, end, head, tail
    cdef floating bv
    cdef floating* owned = NULL
    cdef const floating* packed = prepacked
    cdef const floating* src
    cdef floating* x_tiles  # the chunk's packed tiles
    cdef const floating* x_tile
    cdef Py_ssize_t ldx
    cdef floating* edge  # a partial tile, then the bias as a tile
    cdef floating* bias_tile
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    if packed == NULL:
        owned = <floating*>work_alloc(failed_flag, False, geo.groups * n_blocks * cin_g * OB * sizeof(floating))
        packed = owned
        if packed == NULL:
            return failed
    with parallel(num_threads=plan.n_threads):
        if owned != NULL:
            for pack in prange(geo.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, geo, pack // n_blocks, pack % n_blocks, OB, owned)
        x_tiles = <floating*>work_alloc(failed_flag, True, ceil_div(n_tiles_all, n_chunks) * P * cin_g
                                                  * sizeof(floating))
        edge = <floating*>work_alloc(failed_flag, True, 2 * OB * P * sizeof(floating))
        bias_tile = edge + OB * P
        for item in prange(plan.n_items, schedule='static'):
            if x_tiles == NULL or edge == NULL:
                continue
            b0 = item % n_oc_items * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            k = item // n_oc_items % n_chunks
            group = item // (n_oc_items * n_chunks)
            f0 = k * n_tiles_all // n_chunks * P
            n_pos = min((k + 1) * n_tiles_all // n_chunks * P, n_pos_all) - f0
            n_tiles = ceil_div(n_pos, P)
            # x_tiles[tile][c][lane] = x[n, c, q] for f0 + tile * P + lane = n *
            # plane + q: every tile, or with in_place those that a run of one
            # image shares with another (or the short last one)
            f = f0
            while f < f0 + n_pos:
                q = f % plane
                end = min(f0 + n_pos, f - q + plane)  # the end of this image's run
                src = x + (f // plane * geo.in_channels + group * cin_g) * plane + q
                head = end
                tail = end
                if in_place:
                    head = min(end, f0 + ceil_div(f - f0, P) * P)
                    tail = max(head, f0 + (end - f0) // P * P)
                if head > f:
                    pack_row_tiles(src, plane, cin_g, f - f0, head - f, x_tiles)
                if end > tail:
                    pack_row_tiles(src + tail - f, plane, cin_g, tail - f0, end - tail, x_tiles)
                f = end
            for b in range(b0, b1):
                oc0 = group * cout_g + b * OB
                valid = min(OB, cout_g - b * OB)
                for o in range(OB):
                    bv = bias[oc0 + o] if o < valid else 0
                    for p in range(P):
                        bias_tile[o * P + p] = bv
                for tile in range(n_tiles):
                    f = f0 + tile * P
                    n = f // plane
                    q = f % plane
                    lanes = min(P, n_pos - tile * P)
                    if in_place and q + P <= plane:  # within an image: x read in place
                        x_tile = x + (n * geo.in_channels + group * cin_g) * plane + q
                        ldx = plane
                    else:
                        x_tile = x_tiles + tile * cin_g * P
                        ldx = P
                    if valid == OB and q + P <= plane:
                        mk_oc_pos_rows(x_tile, cin_g, ldx, packed + (group * n_blocks + b) * cin_g * OB,
                                       bias_tile, P, out + (n * geo.out_channels + oc0) * plane + q, plane)
                        continue
                    mk_oc_pos_rows(x_tile, cin_g, ldx, packed + (group * n_blocks + b) * cin_g * OB,
                                   bias_tile, P, edge, P)
                    p = 0
                    while p < lanes:  # the tile's runs of one image each
                        n = (f + p) // plane
                        q = (f + p) % plane
                        for o in range(valid):
                            copy_run(out + (n * geo.out_channels + oc0 + o) * plane + q,
                                     edge + o * P + p, min(lanes - p, plane - q))
                        p = p + min(lanes - p, plane - q)
        cyconv_aligned_free(x_tiles)
        cyconv_aligned_free(edge)
    free(owned)
    return failed
