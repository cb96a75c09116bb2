# WEIGHT_GRAD_GATHERED: the weight gradient as a blocked matrix product,
# gw[o, t] = sum over output positions p of grad_output[o, p] * patch[p, t],
# t = (input channel, tap), reduced over positions without an im2col buffer.
#
# Positions are cut into chunks; per chunk a thread transposes the grad_output
# rows of its output channels into [block][position][OC_BLOCK] (the layout of
# packed weights, pack_grad_output) and gathers the input patches of its taps
# into [tap block][position][POS_BLOCK lanes] (gather_patches), and
# mk_oc_pos_rows accumulates an OC_BLOCK x POS_BLOCK tile of gw over the
# chunk.  A work item owns a block of output channels x a block of taps over
# a slice of positions (plan.n_slices, a function of the layer alone): no two
# threads write the same value, and with several slices the partial gradients
# are summed in slice order at the end, so the result does not depend on the
# thread count.


cdef Py_ssize_t weight_grad_gathered(const floating* x, const floating* grad_out, floating* grad_w,
                              const Geometry* geo, const WeightGradPlan* plan) noexcept nogil:
    # Returns 0, or the bytes of a buffer it could not allocate.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t depth = (geo.in_channels // geo.groups) * geo.kernel_h * geo.kernel_w
    cdef Py_ssize_t total_pos = geo.batch * geo.out_h * geo.out_w
    cdef Py_ssize_t chunk = plan.chunk
    cdef Py_ssize_t n_chunks = plan.n_chunks
    cdef Py_ssize_t n_oc_blocks = plan.n_oc_blocks
    cdef Py_ssize_t n_tap_blocks = plan.n_tap_blocks
    cdef Py_ssize_t blocks_per_item = plan.blocks_per_item
    cdef Py_ssize_t taps_per_item = plan.taps_per_item
    cdef Py_ssize_t n_slices = plan.n_slices
    cdef Py_ssize_t n_oc_items = plan.n_oc_items
    cdef Py_ssize_t n_tap_items = plan.n_tap_items
    cdef Py_ssize_t ldc = taps_per_item * P
    cdef Py_ssize_t weight_size = geo.out_channels * depth
    cdef Py_ssize_t item, group, oc_item, tap_item, b0, b1, tb0, tb1, t0, n_taps
    cdef Py_ssize_t ch, q0, n_pos, n_seg, tb, b, o, oc, t, sl, i
    cdef floating* partials = NULL  # [slice][output channel][tap], with slices
    cdef floating* dst
    cdef floating* patches
    cdef floating* packed
    cdef floating* acc
    cdef Py_ssize_t* segments
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    if n_slices > 1:
        partials = <floating*>work_alloc(failed_flag, False, n_slices * weight_size * sizeof(floating))
        if partials == NULL:
            return failed
    with parallel(num_threads=plan.n_threads):
        patches = <floating*>work_alloc(failed_flag, True, taps_per_item * chunk * P * sizeof(floating))
        packed = <floating*>work_alloc(failed_flag, True, blocks_per_item * chunk * CYCONV_OC_BLOCK * sizeof(floating))
        acc = <floating*>work_alloc(failed_flag, False, blocks_per_item * CYCONV_OC_BLOCK * ldc * sizeof(floating))
        segments = <Py_ssize_t*>work_alloc(failed_flag, False, 5 * chunk * sizeof(Py_ssize_t))
        for item in prange(plan.n_items, schedule='static'):
            if patches == NULL or packed == NULL or acc == NULL or segments == NULL:
                continue
            tap_item = item % n_tap_items
            oc_item = (item // n_tap_items) % n_oc_items
            group = item // (n_tap_items * n_oc_items) % geo.groups
            sl = item // (n_tap_items * n_oc_items * geo.groups)
            b0 = oc_item * blocks_per_item
            b1 = min(n_oc_blocks, b0 + blocks_per_item)
            tb0 = tap_item * taps_per_item
            tb1 = min(n_tap_blocks, tb0 + taps_per_item)
            t0 = tb0 * P
            n_taps = min(depth, tb1 * P) - t0
            fill_zero(acc, (b1 - b0) * CYCONV_OC_BLOCK * ldc)
            # lanes past the last tap stay zero through every chunk
            fill_zero(patches + (tb1 - tb0 - 1) * chunk * P, chunk * P)
            for ch in range(sl * n_chunks // n_slices, (sl + 1) * n_chunks // n_slices):
                q0 = ch * chunk
                n_pos = min(chunk, total_pos - q0)
                n_seg = chunk_segments(geo, q0, n_pos, chunk, segments)
                pack_grad_output(grad_out, geo, group, b0, b1, segments, n_seg, chunk, packed)
                gather_patches(x, geo, group, t0, n_taps, segments, n_seg, chunk, patches)
                # a patch block (chunk x P) stays in L1 while the channel blocks stream
                for tb in range(tb1 - tb0):
                    for b in range(b0, b1):
                        mk_oc_pos_rows(patches + tb * chunk * P, n_pos, P,
                                       packed + (b - b0) * chunk * CYCONV_OC_BLOCK,
                                       acc + (b - b0) * CYCONV_OC_BLOCK * ldc + tb * P, ldc,
                                       acc + (b - b0) * CYCONV_OC_BLOCK * ldc + tb * P, ldc)
            dst = partials + sl * weight_size if n_slices > 1 else grad_w
            for o in range(min(cout_g - b0 * CYCONV_OC_BLOCK, (b1 - b0) * CYCONV_OC_BLOCK)):
                oc = group * cout_g + b0 * CYCONV_OC_BLOCK + o
                for t in range(n_taps):
                    dst[oc * depth + t0 + t] = acc[o * ldc + t]
        if n_slices > 1:
            for oc in prange(geo.out_channels, schedule='static'):
                copy_run(grad_w + oc * depth, partials + oc * depth, depth)
                for i in range(1, n_slices):
                    for t in range(depth):
                        grad_w[oc * depth + t] += partials[i * weight_size + oc * depth + t]
        cyconv_aligned_free(patches)
        cyconv_aligned_free(packed)
        free(acc)
        free(segments)
    free(partials)
    return failed
