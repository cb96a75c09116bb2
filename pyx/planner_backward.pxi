# The gradient planners: for the geometry of the forward convolution being
# differentiated, the path and the work split of its input gradient
# (InputGradPlan) and of its weight gradient (WeightGradPlan), in the manner
# of planner.pxi.


cdef inline bint spreads(const Geometry* geo) noexcept nogil:
    # Whether the input gradient is better spread from grad_output (one pass,
    # any stride) than gathered by the forward kernels.  Spreading is a matrix
    # product over C_out / groups, so it needs enough of them.  It wins at a
    # stride (no phases, no strided copies); at stride 1 only where the
    # gathered convolution's reduction, over C_out / groups, is long and its
    # work per weight small: 1x1 layers, and kernels over few input positions
    # (all images), where preparing the flipped weights outweighs the convolution.
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    if cout_g < SPREAD_MIN_CHANNELS:
        return False
    if geo.stride_h != 1 or geo.stride_w != 1:
        return True
    return cout_g >= SPREAD_STRIDE1_MIN_CHANNELS and (
        geo.kernel_h * geo.kernel_w == 1
        or geo.batch * geo.in_h * geo.in_w <= SPREAD_MAX_POSITIONS)


cdef void flipped_geometry(const Geometry* geo, Geometry* flipped) noexcept nogil:
    # At stride 1 the input gradient is the stride-1 convolution of
    # grad_output with the weight transposed per group to (C_in, C_out /
    # groups, kh, kw) and flipped; its padding is the kernel's reach less the
    # forward padding (negative: a shift), its dilation the forward's.
    flipped[0] = geo[0]
    flipped.in_channels, flipped.in_h, flipped.in_w = geo.out_channels, geo.out_h, geo.out_w
    flipped.out_channels, flipped.out_h, flipped.out_w = geo.in_channels, geo.in_h, geo.in_w
    flipped.pad_top = (geo.kernel_h - 1) * geo.dilation_h - geo.pad_top
    flipped.pad_left = (geo.kernel_w - 1) * geo.dilation_w - geo.pad_left


cdef void plan_input_grad(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                          bint weights_finite, InputGradPlan* plan) noexcept nogil:
    # weights_finite: False when a weight is NaN or Inf (or may be): then the
    # gradient is spread, which pairs a weight only with grad_output positions
    # that exist (the forward paths on grad_output multiply its zero padding)
    cdef Geometry flipped
    memset(plan, 0, sizeof(InputGradPlan))
    if spreads(geo) or not weights_finite:
        plan.path = INPUT_GRAD_SPREAD
        plan_spread(geo, itemsize, n_threads, plan)
        return
    plan.path = INPUT_GRAD_PHASES
    plan.n_threads = n_threads
    plan.pairs_padding = True
    if geo.stride_h == 1 and geo.stride_w == 1:
        flipped_geometry(geo, &flipped)
        plan_forward(&flipped, itemsize, n_threads, True, True, &plan.forward)
        plan.flipped_pad_top = flipped.pad_top
        plan.flipped_pad_left = flipped.pad_left
        # a path that reads packed weights: packed straight from weight;
        # the plane kernel reads the flipped weight itself
        if plan.forward.block:
            plan.path = INPUT_GRAD_FLIPPED
            plan.n_threads = plan.forward.n_threads
            plan.n_items = plan.forward.n_items


cdef void plan_spread(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                      InputGradPlan* plan) noexcept nogil:
    # An item owns the dx rows [h0, h1) of a slice of the channels of one
    # image and group: channel slices while each keeps SPREAD_SLICE_ROWS rows,
    # then slices of rows, until the items are enough or split evenly over
    # the threads.
    cdef Py_ssize_t P = pos_block_of(itemsize)
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t wanted = wanted_items(n_threads, False)
    cdef Py_ssize_t base = geo.batch * geo.groups
    plan.chunk = tile_chunk(geo.out_channels // geo.groups, plane, P)
    plan.pointwise = is_pointwise_geometry(geo)
    plan.n_slices = max(1, min(ceil_div(wanted, base), cin_g * taps // SPREAD_SLICE_ROWS))
    plan.slice_c = ceil_div(cin_g, plan.n_slices)
    plan.n_slices = ceil_div(cin_g, plan.slice_c)
    plan.slice_blocks = ceil_div(plan.slice_c * taps, CYCONV_OC_BLOCK)
    plan.n_row_slices = 1
    if base * plan.n_slices < wanted and (base * plan.n_slices) % n_threads != 0:
        plan.n_row_slices = min(geo.in_h, n_threads)
    plan.slice_h = ceil_div(geo.in_h, plan.n_row_slices)
    plan.n_row_slices = ceil_div(geo.in_h, plan.slice_h)
    plan.n_items = base * plan.n_slices * plan.n_row_slices
    # batch 1 in one chunk: each weight block is used once, by the item of its
    # slice, which packs its blocks a few at a time into a buffer of its own
    # (the weights are read from memory once, not read, written packed and read back)
    plan.own_packing = geo.batch == 1 and plan.n_row_slices == 1 and plan.chunk >= plane
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef inline bint use_grad_bands(const Geometry* geo, Py_ssize_t itemsize) noexcept nogil:
    # stride 1, enough output channels per group to fill the lanes, and few
    # (input channel, tap) rows: with many, the gathered matrix product wins
    # (its patches serve more output channels)
    cdef Py_ssize_t rows = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    return (geo.stride_h == 1 and geo.stride_w == 1 and geo.kernel_h * geo.kernel_w > 1
            and geo.out_channels // geo.groups >= band_lanes(itemsize)
            and (rows <= GRAD_BAND_MAX_ROWS if CYCONV_VECTOR_BYTES >= 64
                 else rows * itemsize <= GRAD_BAND_MAX_BYTES))


cdef void plan_weight_grad(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                           bint input_finite, WeightGradPlan* plan) noexcept nogil:
    # input_finite: False when the input holds a NaN or Inf: then the gathered
    # matrix product, which multiplies each input only within its windows
    memset(plan, 0, sizeof(WeightGradPlan))
    if not compact_span(geo) or not input_finite:
        plan.path = WEIGHT_GRAD_GATHERED
    elif few_channels(geo) and geo.stride_h == 1 and geo.stride_w == 1:
        plan.path = WEIGHT_GRAD_PLANES
    elif use_grad_bands(geo, itemsize):
        plan.path = WEIGHT_GRAD_BANDS
    else:
        plan.path = WEIGHT_GRAD_GATHERED
    plan.pairs_outside = plan.path != WEIGHT_GRAD_GATHERED
    if plan.path == WEIGHT_GRAD_PLANES:
        # an item is one output channel, summing its images in order
        plan.n_items = geo.out_channels
        plan.n_threads = capped_threads(n_threads, plan.n_items)
    elif plan.path == WEIGHT_GRAD_BANDS:
        plan_weight_grad_bands(geo, itemsize, n_threads, plan)
    else:
        plan_weight_grad_gathered(geo, itemsize, n_threads, plan)


cdef Py_ssize_t grad_slices(const Geometry* geo, Py_ssize_t n_chunks, Py_ssize_t itemsize) noexcept nogil:
    # Slices of positions whose partial weight gradients are summed at the
    # end: work for threads on layers with few output channels and taps, where
    # splitting channels and taps would make every item pack all of
    # grad_output or gather all patches again.  A function of the layer
    # alone, so that the sums come out the same on any number of threads.
    cdef Py_ssize_t weight_bytes = (geo.out_channels * (geo.in_channels // geo.groups)
                                    * geo.kernel_h * geo.kernel_w * itemsize)
    cdef Py_ssize_t n = 1
    while (2 * n <= GRAD_SLICES and n_chunks >= 2 * n * GRAD_SLICE_CHUNKS
           and 2 * n * weight_bytes <= GRAD_PARTIAL_BYTES):
        n *= 2
    return n


cdef void plan_weight_grad_gathered(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                                    WeightGradPlan* plan) noexcept nogil:
    # An item is a slice of positions x a block of output channels x a block
    # of taps.  Fewer taps, then fewer channels per item, until every thread
    # has enough items, or the same number of equal items.
    cdef Py_ssize_t P = pos_block_of(itemsize)
    cdef Py_ssize_t depth = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t total_pos = geo.batch * geo.out_h * geo.out_w
    cdef Py_ssize_t wanted = wanted_items(n_threads, False)
    plan.chunk = min(<Py_ssize_t>GRAD_CHUNK, total_pos)
    plan.n_chunks = ceil_div(total_pos, plan.chunk)
    plan.n_oc_blocks = ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK)
    plan.n_tap_blocks = ceil_div(depth, P)
    plan.blocks_per_item = min(plan.n_oc_blocks, <Py_ssize_t>GRAD_OC_BLOCKS)
    plan.taps_per_item = min(plan.n_tap_blocks, <Py_ssize_t>GRAD_TAP_BLOCKS)
    plan.n_slices = grad_slices(geo, plan.n_chunks, itemsize)
    plan.blocks_per_item = ceil_div(plan.n_oc_blocks, ceil_div(plan.n_oc_blocks, plan.blocks_per_item))
    while True:
        plan.n_oc_items = ceil_div(plan.n_oc_blocks, plan.blocks_per_item)
        plan.n_tap_items = ceil_div(plan.n_tap_blocks, plan.taps_per_item)
        plan.n_items = plan.n_slices * geo.groups * plan.n_oc_items * plan.n_tap_items
        if plan.n_items >= wanted or (plan.n_items % n_threads == 0
                                      and plan.n_tap_blocks % plan.n_tap_items == 0
                                      and plan.n_oc_blocks % plan.n_oc_items == 0):
            break
        if plan.taps_per_item > 1:
            plan.taps_per_item -= 1
        elif plan.blocks_per_item > 1:
            plan.blocks_per_item = ceil_div(plan.n_oc_blocks, 2 * plan.n_oc_items)
        else:
            break
    plan.taps_per_item = ceil_div(plan.n_tap_blocks, plan.n_tap_items)  # equal slices
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef void plan_weight_grad_bands(const Geometry* geo, Py_ssize_t itemsize, int n_threads,
                                 WeightGradPlan* plan) noexcept nogil:
    # A unit is a block of output rows of one image (about GRAD_BAND_POSITIONS
    # positions); an item is a block of LANES output channels and a range of
    # input channels, split into ranges only to give every thread enough items.
    cdef Py_ssize_t TB = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t wanted = wanted_items(n_threads, False)
    cdef Py_ssize_t whole = TB // gcd(taps, TB)
    plan.n_oc_blocks = ceil_div(geo.out_channels // geo.groups, band_lanes(itemsize))
    plan.band_w = input_cols(geo, geo.out_w)
    plan.rows = min(geo.out_h, max(1, GRAD_BAND_POSITIONS // plan.band_w))
    plan.rows = ceil_div(geo.out_h, ceil_div(geo.out_h, plan.rows))
    plan.n_row_blocks = ceil_div(geo.out_h, plan.rows)
    plan.n_units = geo.batch * plan.n_row_blocks
    plan.chan = input_rows(geo, plan.rows) * plan.band_w
    plan.n_v_cap = (plan.rows - 1) * plan.band_w + geo.out_w
    # channels per band: within GRAD_BAND_BYTES, a multiple of whole tap
    # blocks (only the range's last band may end in a partial block)
    plan.band_c = max(whole, GRAD_BAND_BYTES // (plan.chan * itemsize) // whole * whole)
    plan.n_ranges = max(1, min(cin_g, ceil_div(wanted, geo.groups * plan.n_oc_blocks)))
    plan.range_c = ceil_div(cin_g, plan.n_ranges)
    plan.n_ranges = ceil_div(cin_g, plan.range_c)
    plan.n_items = geo.groups * plan.n_ranges * plan.n_oc_blocks
    plan.n_threads = capped_threads(n_threads, plan.n_items)


cdef inline int bias_grad_threads(Py_ssize_t n_values, int n_threads) noexcept nogil:
    # the bias gradient's threads: one per MIN_MACS_PER_THREAD values at most,
    # as the forward allows per multiply-add (waking a thread costs more)
    return <int>max(1, min(<Py_ssize_t>n_threads, n_values // MIN_MACS_PER_THREAD))
