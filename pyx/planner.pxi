# The forward planner: for a checked geometry, a dtype (by its item size) and
# a thread count it chooses the path and fills a ForwardPlan (path, blocking,
# tiling, work items, threads), which the path's driver only reads.  Every
# choice depends on the call's shapes, dtype and thread count alone, and no
# choice changes the order in which an output's terms are summed, so results
# do not depend on the thread count.  The numbers it reads are in tuning.pxi.


cdef inline Py_ssize_t wanted_items(int n_threads, bint even_alone) noexcept nogil:
    # Work items a call wants: ITEMS_PER_THREAD per thread, so that the last,
    # partial items even out.  On one thread one item is enough, except for
    # the band kernels (even_alone): splitting a small layer's output channels
    # or rows into items keeps each item's accumulators and weights closer in
    # cache, which is faster on one thread too.
    return ITEMS_PER_THREAD * n_threads if n_threads > 1 or even_alone else 1


cdef inline int forward_thread_cap(const Geometry* geo, int n_threads) noexcept nogil:
    # at most one thread per MIN_MACS_PER_THREAD multiply-adds (the products
    # are only formed when both factors are small: no overflow)
    cdef Py_ssize_t outputs = geo.batch * geo.out_channels * geo.out_h * geo.out_w
    cdef Py_ssize_t per_output = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t enough = <Py_ssize_t>MIN_MACS_PER_THREAD * n_threads
    if outputs < enough and per_output < enough:
        return <int>max(1, min(<Py_ssize_t>n_threads, outputs * per_output // MIN_MACS_PER_THREAD))
    return n_threads


cdef inline int capped_threads(int n_threads, Py_ssize_t n_items) noexcept nogil:
    # no more threads than work items
    return <int>max(1, min(<Py_ssize_t>n_threads, n_items))


cdef inline bint is_pointwise_geometry(const Geometry* geo) noexcept nogil:
    # a 1x1 kernel with stride 1 and no padding: every input plane is already
    # the packed operand of a matrix product, and each input value meets one
    # output value (the input gradient passes negative padding, a shift, so
    # the planes' sizes are compared too)
    return (geo.kernel_h == 1 and geo.kernel_w == 1 and geo.stride_h == 1 and geo.stride_w == 1
            and geo.pad_top == 0 and geo.pad_left == 0
            and geo.out_h == geo.in_h and geo.out_w == geo.in_w)


cdef inline bint compact_span(const Geometry* geo) noexcept nogil:
    # Whether the zero-padded input region the windows span (what the plane
    # and band kernels copy, per channel) is not far larger than the input
    # and output planes.  Huge paddings with huge strides or dilations would
    # make those copies gigabytes of zeros; the gathered kernels read only
    # the taps that exist.
    cdef Py_ssize_t limit = 4 * (geo.in_h * geo.in_w + geo.out_h * geo.out_w * geo.kernel_h * geo.kernel_w) + 65536
    return input_rows(geo, geo.out_h) <= limit // input_cols(geo, geo.out_w)


cdef inline bint few_channels(const Geometry* geo) noexcept nogil:
    # Depthwise-like layers: few input channels per group and output channels
    # too few to amortise a gather; or output channels so few (the input
    # gradient of a first layer) that the other kernels' register tiles would
    # be mostly padding.  The weight gradient takes its plane kernel for these.
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    return ((geo.in_channels // geo.groups <= PLANE_MAX_IN_CHANNELS
             and cout_g <= PLANE_MAX_OUT_CHANNELS)
            or cout_g <= PLANE_FEW_OUT_CHANNELS
            or (cout_g <= PLANE_FEW_OUT_CHANNELS_STRIDED
                and (geo.stride_h > 1 or geo.stride_w > 1)))


cdef inline bint use_planes(const Geometry* geo) noexcept nogil:
    # The forward plane kernel: few_channels, but at stride 1 the narrow
    # kernel takes output channels that fill its blocks of OC_BLOCK at least
    # 3/4 over enough reduction steps, as each input it reads then serves a
    # block of output channels.  (With NARROW_MIN_OUT_CHANNELS or more output
    # channels, few_channels means few inputs and at most PLANE_MAX_OUT_CHANNELS outputs.)
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef bint fills_blocks = (cout_g >= NARROW_MIN_OUT_CHANNELS
                              and 4 * cout_g >= 3 * CYCONV_OC_BLOCK * ceil_div(cout_g, CYCONV_OC_BLOCK))
    return few_channels(geo) and not (
        geo.stride_h == 1 and geo.stride_w == 1 and fills_blocks
        and (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w >= NARROW_MIN_STEPS)


cdef inline bint use_row_bands(const Geometry* geo, Py_ssize_t lanes) noexcept nogil:
    # enough output channels per group to fill the vector lanes; not 1x1
    # kernels (the pointwise and gathered kernels read those in place)
    return geo.out_channels // geo.groups >= lanes and geo.kernel_h * geo.kernel_w > 1


cdef inline bint use_narrow(const Geometry* geo) noexcept nogil:
    # stride 1 with too few output channels per group for the row-band
    # kernel's lanes: positions in the lanes instead, read from a band without a gather
    return geo.stride_h == 1 and geo.stride_w == 1 and geo.kernel_h * geo.kernel_w > 1


cdef inline bint use_pointwise(const Geometry* geo) noexcept nogil:
    # a 1x1 layer with enough input channels per group for a matrix product
    return is_pointwise_geometry(geo) and geo.in_channels // geo.groups >= POINTWISE_MIN_CHANNELS


cdef inline Py_ssize_t band_lanes(Py_ssize_t itemsize) noexcept nogil:
    return CYCONV_BAND_LANES_F32 if itemsize == 4 else CYCONV_BAND_LANES_F64


cdef inline Py_ssize_t pos_block_of(Py_ssize_t itemsize) noexcept nogil:
    return CYCONV_POS_BLOCK_F32 if itemsize == 4 else CYCONV_POS_BLOCK_F64


cdef int forward_path(const Geometry* geo, Py_ssize_t itemsize, bint weights_finite) noexcept nogil:
    # the ForwardPath that computes the layer geo; with a NaN or Inf weight
    # not the strided plane kernel, which skips the padding
    if compact_span(geo):
        if use_planes(geo) and (weights_finite or (geo.stride_h == 1 and geo.stride_w == 1)):
            return FORWARD_PLANES
        if use_row_bands(geo, band_lanes(itemsize)):
            return FORWARD_ROW_BANDS
        if use_narrow(geo):
            return FORWARD_NARROW
    if use_pointwise(geo):
        return FORWARD_POINTWISE
    return FORWARD_GATHERED


cdef Py_ssize_t packing_block_for(const Geometry* geo, Py_ssize_t itemsize,
                                  bint weights_finite) noexcept nogil:
    # the output-channel block of the packed weights the path of geo reads;
    # 0 for the plane kernel, which reads the weights as they are
    cdef int path = forward_path(geo, itemsize, weights_finite)
    if path == FORWARD_PLANES:
        return 0
    return band_lanes(itemsize) if path == FORWARD_ROW_BANDS else CYCONV_OC_BLOCK


cdef void plan_forward(const Geometry* geo, Py_ssize_t itemsize, int n_threads, bint prepacked,
                       bint weights_finite, ForwardPlan* plan) noexcept nogil:
    # prepacked: the caller brings the weights packed in blocks of plan.block;
    # weights_finite: False when a weight is NaN or Inf (or may be)
    memset(plan, 0, sizeof(ForwardPlan))
    plan.path = forward_path(geo, itemsize, weights_finite)
    plan.block = packing_block_for(geo, itemsize, weights_finite)
    plan.skips_padding = (plan.path == FORWARD_PLANES
                          and (geo.stride_h > 1 or geo.stride_w > 1))
    n_threads = forward_thread_cap(geo, n_threads)
    if plan.path == FORWARD_PLANES:
        plan_planes(geo, itemsize, n_threads, plan)
    elif plan.path == FORWARD_ROW_BANDS:
        plan_row_bands(geo, itemsize, n_threads, prepacked, plan)
    elif plan.path == FORWARD_NARROW:
        plan_narrow(geo, itemsize, n_threads, plan)
    elif plan.path == FORWARD_POINTWISE:
        plan_pointwise(geo, itemsize, n_threads, plan)
    else:
        plan_gathered(geo, itemsize, n_threads, plan)


cdef void plan_planes(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                      ForwardPlan* plan) noexcept nogil:
    # an item is one output plane; at stride 1 a thread zero-pads a slice of
    # the group's input planes at a time (within PLANE_BYTES) and runs
    # mk_1_pos_shifts over n_chunks chunks of the flat padded plane
    cdef Py_ssize_t C = CYCONV_PLANE_CHUNK_F32 if itemsize == 4 else CYCONV_PLANE_CHUNK_F64
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    plan.padded_cols = input_cols(geo, geo.out_w)
    plan.padded_rows = input_rows(geo, geo.out_h)
    plan.n_chunks = ceil_div((geo.out_h - 1) * plan.padded_cols + geo.out_w, C)
    plan.slice_c = max(1, min(cin_g, PLANE_BYTES // (plan.padded_rows * plan.padded_cols * itemsize)))
    plan.n_slices = ceil_div(cin_g, plan.slice_c)
    plan.n_items = geo.batch * geo.out_channels
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef Py_ssize_t unit_rows(const Geometry* geo, Py_ssize_t most) noexcept nogil:
    # Rows per unit of the row-band kernel, from most down to half of it: the
    # fewest tiles per image (the last tile of a unit is partly wasted), the
    # most rows among equals; units of an image have equal rows but the last
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t r, rows, n_blocks, tiles, best = most, fewest = -1
    for r in range(most, (most - 1) // 2, -1):
        rows = ceil_div(geo.out_h, ceil_div(geo.out_h, r))
        n_blocks = ceil_div(geo.out_h, rows)
        tiles = ((n_blocks - 1) * ceil_div(rows * geo.out_w, Q)
                 + ceil_div((geo.out_h - (n_blocks - 1) * rows) * geo.out_w, Q))
        if fewest < 0 or tiles < fewest:
            fewest = tiles
            best = rows
    return best


cdef void plan_row_bands(const Geometry* geo, Py_ssize_t itemsize, int n_threads, bint prepacked,
                         ForwardPlan* plan) noexcept nogil:
    # A unit is a block of output rows of one image; an item is a block of
    # units and a run of output-channel blocks.
    cdef Py_ssize_t L = band_lanes(itemsize)
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t weight_bytes = cin_g * taps * cout_g * itemsize  # per group
    cdef Py_ssize_t wanted = wanted_items(n_threads, True)
    cdef Py_ssize_t n_blocks = ceil_div(cout_g, L)
    cdef Py_ssize_t blocks_per_item = min(n_blocks, max(1, OC_PER_ITEM // L))
    cdef Py_ssize_t units = 1, n_oc_items, n_unit_blocks, tiles, k
    plan.n_blocks = n_blocks
    plan.padded_cols = input_cols(geo, geo.out_w)
    plan.padded_rows = input_rows(geo, geo.out_h)
    # input channels per band: a tile's inputs (a line per reduction step)
    # stay in L1 across the channel blocks; equal slices, not a full one and a rest
    plan.slice_c = max(1, min(cin_g, BAND_DEPTH // taps))
    plan.slice_c = ceil_div(cin_g, ceil_div(cin_g, plan.slice_c))
    plan.n_slices = ceil_div(cin_g, plan.slice_c)
    # rows for about WIDE_TILES tiles per unit on wide rows (the band rows a
    # unit shares with the next are loaded twice), half as many where that
    # leaves fewer than two units per wanted item; FEW_TILES on narrow rows
    tiles = FEW_TILES
    if geo.out_w >= 4 * Q:
        tiles = WIDE_TILES
        if geo.batch * ceil_div(geo.out_h, ceil_div(WIDE_TILES * Q, geo.out_w)) < 2 * wanted:
            tiles = WIDE_TILES // 2
    plan.rows = unit_rows(geo, min(geo.out_h, ceil_div(tiles * Q, geo.out_w)))
    plan.n_row_blocks = ceil_div(geo.out_h, plan.rows)
    plan.n_units = geo.batch * plan.n_row_blocks
    plan.band_rows = input_rows(geo, plan.rows)
    plan.chan = plan.band_rows * plan.padded_cols
    plan.tiles_cap = ceil_div(plan.rows * geo.out_w, Q)
    plan.pos_cap = plan.tiles_cap * Q
    # few tiles (small planes): the weights outweigh the inputs, so a channel
    # block's weights stay cached across the tiles; weights far larger than
    # L2 stream from memory once per item: an item takes several units (their
    # bands within BAND_BYTES) and fewer channels
    if plan.tiles_cap <= 2 * FEW_TILES and weight_bytes >= MANY_WEIGHT_BYTES:
        units = max(1, min(plan.n_units, BAND_BYTES // (plan.slice_c * plan.chan * itemsize)))
        blocks_per_item = max(1, min(blocks_per_item,
                                     BAND_BYTES // (units * plan.pos_cap * L * itemsize)))
    blocks_per_item = ceil_div(n_blocks, ceil_div(n_blocks, blocks_per_item))
    n_oc_items = ceil_div(n_blocks, blocks_per_item)
    n_unit_blocks = ceil_div(plan.n_units, units)
    # fewer channels, then fewer units per item, until every thread has enough items
    while geo.groups * n_unit_blocks * n_oc_items < wanted:
        if blocks_per_item > 1:
            blocks_per_item = ceil_div(n_blocks, 2 * n_oc_items)
            n_oc_items = ceil_div(n_blocks, blocks_per_item)
        elif units > 1:
            units = ceil_div(plan.n_units, 2 * n_unit_blocks)
            n_unit_blocks = ceil_div(plan.n_units, units)
        else:
            break
    # unit blocks of one size where up to twice as many blocks allow it
    k = n_unit_blocks
    while k < 2 * n_unit_blocks and plan.n_units % k != 0:
        k += 1
    if plan.n_units % k == 0:
        n_unit_blocks = k
    plan.blocks_per_item = blocks_per_item
    plan.n_oc_items = n_oc_items
    plan.n_unit_blocks = n_unit_blocks
    plan.units = ceil_div(plan.n_units, n_unit_blocks)
    plan.n_items = geo.groups * n_unit_blocks * n_oc_items
    # one unit block (batch 1, or several images per item): each weight is
    # used by one item only, which packs its blocks slice by slice into a
    # buffer of its own, so the weights are read from memory once (not read,
    # written packed and read back)
    plan.own_packing = not prepacked and (n_unit_blocks == 1 or weight_bytes >= MANY_WEIGHT_BYTES)
    # a small input is zero-padded once, whole, and the units read their bands
    # in place: items that share a unit would each load it (divided, not
    # multiplied: no overflow on huge paddings)
    plan.prepadded = (plan.padded_rows * plan.padded_cols
                      <= PADDED_INPUT_BYTES // itemsize // (geo.batch * geo.in_channels))
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef void plan_narrow(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                      ForwardPlan* plan) noexcept nogil:
    # a unit is a block of rows of the padded width, about NARROW_TILES tiles;
    # an item is a unit and a run of output-channel blocks
    cdef Py_ssize_t P = pos_block_of(itemsize)
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t wanted = wanted_items(n_threads, True)
    cdef Py_ssize_t rows
    plan.n_blocks = ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK)
    plan.padded_cols = input_cols(geo, geo.out_w)
    plan.slice_c = max(1, min(cin_g, BAND_DEPTH // taps))
    plan.slice_c = ceil_div(cin_g, ceil_div(cin_g, plan.slice_c))
    plan.n_slices = ceil_div(cin_g, plan.slice_c)
    rows = min(geo.out_h, ceil_div(NARROW_TILES * P, plan.padded_cols))
    plan.rows = ceil_div(geo.out_h, ceil_div(geo.out_h, rows))
    plan.n_row_blocks = ceil_div(geo.out_h, plan.rows)
    plan.band_rows = input_rows(geo, plan.rows)
    plan.chan = plan.band_rows * plan.padded_cols + P  # + zeros the last tile may read
    plan.pos_cap = ceil_div((plan.rows - 1) * plan.padded_cols + geo.out_w, P) * P
    plan.blocks_per_item = min(plan.n_blocks, max(1, OC_PER_ITEM // CYCONV_OC_BLOCK))
    plan.blocks_per_item = ceil_div(plan.n_blocks, ceil_div(plan.n_blocks, plan.blocks_per_item))
    plan.n_oc_items = ceil_div(plan.n_blocks, plan.blocks_per_item)
    while (geo.groups * geo.batch * plan.n_row_blocks * plan.n_oc_items < wanted
           and plan.blocks_per_item > 1):
        plan.blocks_per_item = ceil_div(plan.n_blocks, 2 * plan.n_oc_items)
        plan.n_oc_items = ceil_div(plan.n_blocks, plan.blocks_per_item)
    plan.n_items = geo.groups * geo.batch * plan.n_row_blocks * plan.n_oc_items
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef void plan_pointwise(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                         ForwardPlan* plan) noexcept nogil:
    # An item is a chunk of position tiles (running on across images) for one
    # group and a run of output-channel blocks.  Chunks shrink while the items
    # are too few (down to TILES_PER_CHUNK tiles), their count a multiple of
    # the threads (chunk k takes tiles k * n_tiles // n_chunks on, about
    # equal); then the output channels split (each part packs x again).
    cdef Py_ssize_t P = pos_block_of(itemsize)
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t n_pos = geo.batch * geo.out_h * geo.out_w
    cdef Py_ssize_t n_tiles = ceil_div(n_pos, P)
    cdef Py_ssize_t wanted = wanted_items(n_threads, False)
    # tiles per chunk, at most: a chunk's tiles of x stay in L2 while the blocks take them
    cdef Py_ssize_t most = tile_chunk(cin_g, n_pos, P) // P
    cdef Py_ssize_t base
    plan.n_blocks = ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK)
    # tiles within one image are read in place with AVX-512; with AVX2 and SSE
    # every tile is packed first
    plan.reads_in_place = CYCONV_VECTOR_BYTES >= 64
    plan.n_chunks = ceil_div(n_tiles, most)
    plan.n_chunks = max(plan.n_chunks, min(ceil_div(n_tiles, TILES_PER_CHUNK),
                                           ceil_div(wanted, geo.groups)))
    plan.n_chunks = min(n_tiles, ceil_div(plan.n_chunks, n_threads) * n_threads)
    base = geo.groups * plan.n_chunks
    plan.n_oc_items = min(plan.n_blocks, ceil_div(wanted, base))
    plan.blocks_per_item = ceil_div(plan.n_blocks, plan.n_oc_items)
    plan.n_oc_items = ceil_div(plan.n_blocks, plan.blocks_per_item)
    plan.n_items = base * plan.n_oc_items
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef void plan_gathered(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                        ForwardPlan* plan) noexcept nogil:
    # An item is a chunk of positions and a run of output-channel blocks;
    # per slice of input channels it gathers the chunk's inputs.  Fewer
    # positions per chunk, then fewer channels per item, until every thread
    # has enough items.
    cdef Py_ssize_t pos_block = pos_block_of(itemsize)
    cdef Py_ssize_t total_pos = geo.batch * geo.out_h * geo.out_w
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t tiles = min(<Py_ssize_t>TILES_PER_CHUNK, ceil_div(total_pos, pos_block))
    cdef Py_ssize_t wanted = wanted_items(n_threads, False)
    plan.n_blocks = ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK)
    plan.blocks_per_item = min(plan.n_blocks, max(1, OC_PER_ITEM // CYCONV_OC_BLOCK))
    plan.blocks_per_item = ceil_div(plan.n_blocks, ceil_div(plan.n_blocks, plan.blocks_per_item))
    while True:
        plan.chunk_width = tiles * pos_block
        plan.n_chunks = ceil_div(total_pos, plan.chunk_width)
        plan.n_oc_items = ceil_div(plan.n_blocks, plan.blocks_per_item)
        plan.n_items = geo.groups * plan.n_chunks * plan.n_oc_items
        if plan.n_items >= wanted:
            break
        if tiles > 1:
            tiles -= 1
        elif plan.blocks_per_item > 1:
            plan.blocks_per_item = ceil_div(plan.n_blocks,
                                            2 * ceil_div(plan.n_blocks, plan.blocks_per_item))
        else:
            break
    # (channel, tap) rows per gather within REDUCTION_CHUNK, in equal slices
    plan.slice_c = max(1, min(cin_g, REDUCTION_CHUNK // taps))
    plan.slice_c = ceil_div(cin_g, ceil_div(cin_g, plan.slice_c))
    plan.n_slices = ceil_div(cin_g, plan.slice_c)
    plan.reads_in_place = is_pointwise_geometry(geo)
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef inline Py_ssize_t weights_xi_stride(const Geometry* geo) noexcept nogil:
    # values between the xi of U[group][xi][block][c][o]: the blocks' values
    # and 16 more, so that the 36 rows a transform stores together do not
    # fall into one cache set
    return (ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK) * CYCONV_OC_BLOCK
            * (geo.in_channels // geo.groups) + 16)


cdef inline Py_ssize_t winograd_size(const Geometry* geo) noexcept nogil:
    # values of the transformed weights, U[group][xi][block][c][o]
    return geo.groups * WINO_POINTS * weights_xi_stride(geo)


cdef void plan_winograd(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                        bint transformed, WinogradPlan* plan) noexcept nogil:
    # FORWARD_WINOGRAD's blocking and work split: tiles of all images in the
    # lanes, or, where that fills the register tiles worse (few tiles), output
    # channels in the lanes and the tiles broadcast (oc_lanes); input channels
    # in slices whose transformed tiles fit WINOGRAD_SLICE_BYTES; runs of
    # output-channel blocks whose products fit WINOGRAD_PRODUCT_BYTES, shorter
    # where the call needs more items.  transformed: the caller brings the
    # transformed weights; else the items transform them where few tile
    # blocks would use each (fused_weights), and always where the transformed
    # weights are too large to read fast and with oc_lanes, whose weights have
    # another layout.
    cdef Py_ssize_t P = pos_block_of(itemsize)
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t n_tiles, block_bytes, per_block
    memset(plan, 0, sizeof(WinogradPlan))
    plan.tiles_h = ceil_div(geo.out_h, WINO_TILE)
    plan.tiles_w = ceil_div(geo.out_w, WINO_TILE)
    n_tiles = geo.batch * plan.tiles_h * plan.tiles_w
    plan.n_tile_blocks = ceil_div(n_tiles, P)
    plan.slice_c = max(1, min(cin_g, WINOGRAD_SLICE_BYTES // (WINO_POINTS * P * itemsize)))
    plan.n_slices = ceil_div(cin_g, plan.slice_c)
    plan.slice_c = ceil_div(cin_g, plan.n_slices)
    # filled share of the register tiles' multiply-adds, cross-multiplied:
    # tiles in the lanes (n_tiles of P lanes, cout_g of whole OC_BLOCKs), or
    # output channels in the lanes (cout_g of P lanes, n_tiles of whole
    # groups: of 4 in the rows form, which needs 32 vector registers, at
    # least as full; else of BAND_POSITIONS, paying WINOGRAD_OC_LANES_GAIN /
    # 4 for a smaller register tile)
    plan.rows_form = (CYCONV_VECTOR_BYTES == 64 and plan.n_tile_blocks == 1
                      and plan.slice_c <= WINOGRAD_ROWS_TILE_STRIDE
                      and P * ceil_div(cout_g, CYCONV_OC_BLOCK) * CYCONV_OC_BLOCK
                      >= ceil_div(n_tiles, 4) * 4 * P * ceil_div(cout_g, P))
    plan.oc_lanes = plan.rows_form or (
        plan.n_tile_blocks == 1 and 4 * P * ceil_div(cout_g, CYCONV_OC_BLOCK)
        * CYCONV_OC_BLOCK >= WINOGRAD_OC_LANES_GAIN * Q * ceil_div(n_tiles, Q)
        * P * ceil_div(cout_g, P))
    plan.block_oc = P if plan.oc_lanes else CYCONV_OC_BLOCK
    if plan.rows_form:  # groups of 4 tiles
        plan.block_values = plan.block_oc * ceil_div(n_tiles, 4) * 4
    elif plan.oc_lanes:  # groups of BAND_POSITIONS tiles
        plan.block_values = plan.block_oc * ceil_div(min(P, n_tiles), Q) * Q
    else:
        plan.block_values = plan.block_oc * P
    block_bytes = WINO_POINTS * itemsize * plan.block_values
    plan.n_blocks = ceil_div(cout_g, plan.block_oc)
    n_threads = forward_thread_cap(geo, n_threads)
    per_block = geo.groups * plan.n_tile_blocks
    plan.n_oc_items = ceil_div(plan.n_blocks, max(1, WINOGRAD_PRODUCT_BYTES // block_bytes))
    if per_block < n_threads:
        # each run of channel blocks transforms the tiles' input again: just
        # enough runs for every thread to take as many items (with at least
        # one tile block per thread, uneven shares cost less than that)
        plan.n_oc_items = max(plan.n_oc_items, ceil_div(n_threads, per_block))
        while (per_block * plan.n_oc_items) % n_threads and plan.n_oc_items < plan.n_blocks:
            plan.n_oc_items += 1
    plan.n_oc_items = min(plan.n_oc_items, plan.n_blocks)
    plan.blocks_per_item = ceil_div(plan.n_blocks, plan.n_oc_items)
    plan.n_oc_items = ceil_div(plan.n_blocks, plan.blocks_per_item)
    plan.n_items = per_block * plan.n_oc_items
    plan.n_threads = capped_threads(n_threads, plan.n_items)
    plan.fused_weights = (plan.oc_lanes
                          or winograd_size(geo) * itemsize > WINOGRAD_READ_WEIGHTS_BYTES
                          or (not transformed
                              and plan.n_tile_blocks <= WINOGRAD_FUSED_TILE_BLOCKS))
