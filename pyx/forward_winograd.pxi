# FORWARD_WINOGRAD: stride-1, dilation-1 3x3 layers by Winograd's minimal
# filtering F(4x4, 3x3): each 4x4 tile of an output channel is
#
#     Y = A^T [ sum_c U_c * V_c ] A,   U_c = G g_c G^T,   V_c = B^T d_c B,
#
# with d_c the 6x6 input patch of channel c under the tile and * elementwise:
# 36 products per tile and channel pair instead of 144.  The matrices come
# from cyconv/_winograd.py (exact rationals rounded once), G's rows scaled
# to small integers (their scales moved into A^T); the kernel applies G and
# B^T as sums that share terms (winograd_weight_block, bt_rows) and A^T as
# a matrix (apply_rows).  U, V and Y are computed in the dtype.
#
# The 36 positions xi = (row, column) of the transformed tile make 36
# independent matrix products M[xi] = U[xi] V[xi] over the input channels.
# A work item is a group, a block of POS_BLOCK tiles (of any images) and a
# run of output-channel blocks: it transforms its tiles' input patches, a
# slice of channels at a time, into a per-thread buffer V[xi][c][tile lane],
# adds the slice's products into M, and transforms M into the output tiles,
# adding the bias.  The tiles lie in runs along tile rows (tile_runs): their
# input rows are loaded a run at a time.  The products take one of two forms
# (the planner picks the one whose register tiles are fuller), or a third:
# - tiles in the lanes: per xi and block of OC_BLOCK output channels one
#   mk_oc_pos_rows call, M[xi][o][tile lane], U[group][xi][block][c][o]
#   (transform_all_weights, or a slice at a time inside the item);
# - output channels in the lanes (oc_lanes, calls with few tiles): per xi,
#   block of POS_BLOCK output channels and BAND_POSITIONS tiles one
#   mk_pos_oc_shifts call (mk_pos4_oc_rows for a last group of up to 4
#   tiles), M[xi][tile][o lane], the item's U a slice at a time as
#   [xi][c][o] for the block;
# - the rows form (plan.rows_form: one block of tiles, 32 vector registers
#   (AVX-512)): output channels in the lanes of the products, 4 tiles at a
#   time, and input channels in the lanes of the input transform
#   (transform_input_channels: V[xi][tile][c]; tiles in the lanes would
#   leave many of them empty); only G w is kept, [c][row][column][o], and
#   mk_winograd_row4 applies G^T to a row of it where the products use it
#   (U is never stored: its 36 stores per channel pair cost more than the
#   4 tiles' products they feed).
# The transforms, loads and stores are in winograd_transforms.pxi.

cdef Py_ssize_t forward_winograd(const floating* x, const floating* u, const floating* weight,
                                 const floating* bias, floating* out, const Geometry* geo,
                                 const WinogradPlan* plan, const double* a_t) noexcept nogil:
    # u: the transformed weights (transform_all_weights); with
    # plan.fused_weights NULL, and each item transforms the blocks of weight
    # it needs, a slice at a time.  Returns 0, -1 when a result before the
    # bias is NaN or Inf (transform_output_tile's check: Winograd spreads a
    # NaN or Inf over whole tiles, so the caller computes the layer
    # directly), or the bytes of a buffer it could not allocate.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t BO = plan.block_oc
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t n_tiles = geo.batch * plan.tiles_h * plan.tiles_w
    cdef Py_ssize_t plane_in = geo.in_h * geo.in_w
    cdef Py_ssize_t plane_out = geo.out_h * geo.out_w
    cdef Py_ssize_t block_m = plan.block_values  # between the blocks in M
    # between the xi of V, M and the item's U: a cache line more than their
    # values, so that the 36 rows a transform stores or reads together do not
    # fall into one cache set (whole kibibytes apart, they would)
    cdef Py_ssize_t line = 64 // sizeof(floating)
    # rows form: V[xi][tile][c], its tiles in groups of 4, WINOGRAD_ROWS_TILE_STRIDE
    # apart (a constant at every use, so that gcc addresses the operands of
    # mk_winograd_row4 from a few registers)
    cdef Py_ssize_t tiles4 = ceil_div(n_tiles, 4) * 4
    cdef Py_ssize_t ldv = (tiles4 * WINOGRAD_ROWS_TILE_STRIDE if plan.rows_form
                           else plan.slice_c * P) + line
    cdef Py_ssize_t planes_values = geo.in_h * geo.in_w * P if plan.rows_form else 0
    cdef Py_ssize_t ldm = plan.blocks_per_item * block_m + line
    cdef Py_ssize_t WL = weight_lanes(out)
    cdef Py_ssize_t ldu = plan.slice_c * max(BO, WL) + line
    cdef Py_ssize_t ld_weights = weights_xi_stride(geo)  # between the xi of u
    cdef floating at[WINO_TILE * WINO_ALPHA]
    cdef floating zeros[CYCONV_POS_BLOCK_F32]
    cdef const floating* zero_tile = zeros
    cdef Py_ssize_t item, tb, group, b0, b1, bl, s, c0, cn, xi, o, oc, oc0, i, k, p, g, a
    cdef Py_ssize_t n_runs, n_lanes
    cdef floating* v
    cdef floating* m
    cdef floating* acc
    cdef floating* u_slice  # fused: transformed weights of a slice, one or two blocks
    cdef floating* work  # the patches d, the half-transformed tiles, a row of input
    cdef floating* check  # per lane: 0, or NaN once a result is NaN or Inf
    cdef Py_ssize_t* runs
    cdef Py_ssize_t* channel_rows = NULL  # oc_lanes: the rows of V's channels, c * P
    cdef Py_ssize_t first_tile = 0
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    cdef bint* seen_nonfinite
    cdef bint any_nonfinite = False
    for i in range(WINO_TILE * WINO_ALPHA):
        at[i] = <floating>a_t[i]
    for p in range(P):
        zeros[p] = 0
    seen_nonfinite = &any_nonfinite
    if plan.oc_lanes:
        channel_rows = <Py_ssize_t*>work_alloc(failed_flag, False,
                                               plan.slice_c * sizeof(Py_ssize_t))
        if channel_rows == NULL:
            return failed
        for i in range(plan.slice_c):
            channel_rows[i] = i * P
    # a thread's large buffers: V (Q values more, read (never used) by the
    # last tiles' products), M and, with fused_weights, the slice's U, each
    # a whole number of cache lines.  One allocation, freed and taken again
    # on every call, stays below what makes malloc return its pages to the
    # system (three can pass it, and each call then faults them in again)
    cdef Py_ssize_t v_values = ceil_div(WINO_POINTS * ldv + Q, line) * line
    cdef Py_ssize_t m_values = WINO_POINTS * ldm
    cdef Py_ssize_t u_values = WINO_POINTS * ldu if plan.fused_weights else 0
    with parallel(num_threads=plan.n_threads):
        v = <floating*>work_alloc(failed_flag, True, (v_values + m_values + u_values)
                                  * sizeof(floating))
        m = v + v_values
        u_slice = m + m_values
        work = <floating*>work_alloc(failed_flag, True, ((2 * WINO_POINTS + 1 + 2 * WINO_TILE) * P
                                                        + planes_values) * sizeof(floating))
        runs = <Py_ssize_t*>work_alloc(failed_flag, False, 4 * P * sizeof(Py_ssize_t))
        for item in prange(plan.n_items, schedule='static'):
            if v == NULL or work == NULL or runs == NULL:
                continue
            # tile blocks vary fastest: a thread's consecutive items read the
            # same run of transformed weights (from cache, not memory); the
            # last, partial block first: of an odd number of items, the
            # thread that takes one more takes the small one
            tb = plan.n_tile_blocks - 1 - item % plan.n_tile_blocks
            b0 = item // plan.n_tile_blocks % plan.n_oc_items * plan.blocks_per_item
            b1 = min(n_blocks, b0 + plan.blocks_per_item)
            group = item // (plan.n_oc_items * plan.n_tile_blocks)
            n_lanes = min(P, n_tiles - tb * P)
            n_runs = tile_runs(plan, tb * P, n_lanes, runs)
            check = work + 2 * WINO_POINTS * P
            for p in range(P):
                check[p] = 0
            for xi in range(WINO_POINTS):  # lanes without a tile
                for p in range(n_lanes, P):
                    work[xi * P + p] = 0
            for s in range(plan.n_slices):
                c0 = s * plan.slice_c
                cn = min(plan.slice_c, cin_g - c0)
                if plan.rows_form:
                    transform_input_channels(x + (group * cin_g + c0) * plane_in, cn, geo, plan,
                                             n_tiles, v, ldv, work,
                                             work + (2 * WINO_POINTS + 1 + 2 * WINO_TILE) * P)
                else:
                    transform_input_slice(x + (group * cin_g + c0) * plane_in, cn, geo, runs,
                                          n_runs, v, ldv, work)
                # the products, started from 0 on the first slice
                if plan.rows_form:
                    for bl in range(b1 - b0):
                        for k in range(ceil_div(BO, WL)):
                            winograd_weight_columns(weight, geo, plan.flipped, group,
                                                    (b0 + bl) * BO + k * WL,
                                                    min(WL, BO - k * WL), c0, cn, u_slice)
                            for a in range(WINO_ALPHA):
                                for g in range(tiles4 // 4):
                                    mk_winograd_row4(u_slice + a * 3 * 2 * OB, cn,
                                                     v + a * WINO_ALPHA * ldv
                                                     + g * 4 * WINOGRAD_ROWS_TILE_STRIDE,
                                                     ldv, WINOGRAD_ROWS_TILE_STRIDE,
                                                     m + a * WINO_ALPHA * ldm + bl * block_m
                                                     + g * 4 * BO + k * WL, ldm, BO, s > 0)
                elif plan.oc_lanes:
                    for bl in range(b1 - b0):
                        for k in range(ceil_div(BO, WL)):
                            winograd_weight_block(weight, geo, plan.flipped, group,
                                                  (b0 + bl) * BO + k * WL, min(WL, BO - k * WL),
                                                  c0, cn, u_slice + k * WL, ldu, OB, BO)
                        for xi in range(WINO_POINTS):
                            for g in range(ceil_div(n_lanes, Q)):
                                if n_lanes - g * Q <= 4:
                                    mk_pos4_oc_rows(v + xi * ldv + g * Q, P, cn, u_slice + xi * ldu,
                                                    m + xi * ldm + bl * block_m + g * Q * BO, s > 0)
                                else:
                                    mk_pos_oc_shifts(v + xi * ldv + g * Q, channel_rows, cn,
                                                     &first_tile, True, u_slice + xi * ldu,
                                                     m + xi * ldm + bl * block_m + g * Q * BO,
                                                     s > 0)
                elif plan.fused_weights:
                    for bl in range(b1 - b0):
                        k = bl % (WL // OB)  # the block's place in u_slice
                        if k == 0:
                            winograd_weight_block(weight, geo, plan.flipped, group,
                                                  (b0 + bl) * OB, min(WL, (b1 - b0 - bl) * OB),
                                                  c0, cn, u_slice, ldu, cn * OB, OB)
                        for xi in range(WINO_POINTS):
                            acc = m + xi * ldm + bl * block_m
                            mk_oc_pos_rows(v + xi * ldv, cn, P, u_slice + xi * ldu + k * cn * OB,
                                           acc if s > 0 else zero_tile, P if s > 0 else 0, acc, P)
                else:
                    for xi in range(WINO_POINTS):
                        for bl in range(b1 - b0):
                            acc = m + xi * ldm + bl * block_m
                            mk_oc_pos_rows(v + xi * ldv, cn, P,
                                           u + (group * WINO_POINTS + xi) * ld_weights
                                           + ((b0 + bl) * cin_g + c0) * OB,
                                           acc if s > 0 else zero_tile, P if s > 0 else 0, acc, P)
            for bl in range(b1 - b0):
                oc0 = (b0 + bl) * BO
                if plan.oc_lanes:
                    for k in range(n_lanes):
                        transform_output_tile(at, m + bl * block_m + k * BO, ldm, work, check)
                        store_tile_channels(work + WINO_POINTS * P, bias + group * cout_g + oc0,
                                            min(BO, cout_g - oc0), geo, plan, tb * P + k,
                                            out + (group * cout_g + oc0) * plane_out)
                    continue
                for o in range(min(BO, cout_g - oc0)):
                    oc = oc0 + o
                    transform_output_tile(at, m + bl * block_m + o * P, ldm, work, check)
                    store_tile_rows(work + WINO_POINTS * P, bias[group * cout_g + oc], geo, runs,
                                    n_runs, out + (group * cout_g + oc) * plane_out)
            for p in range(1, P):
                check[0] += check[p]
            if check[0] != 0:
                seen_nonfinite[0] = True
        cyconv_aligned_free(v)
        cyconv_aligned_free(work)
        free(runs)
    free(channel_rows)
    if failed != 0:
        return failed
    return -1 if any_nonfinite else 0
