# FORWARD_WINOGRAD: stride-1, dilation-1 3x3 layers by Winograd's minimal
# filtering F(4x4, 3x3): each 4x4 tile of an output channel is
#
#     Y = A^T [ sum_c U_c * V_c ] A,   U_c = G g_c G^T,   V_c = B^T d_c B,
#
# with d_c the 6x6 input patch of channel c under the tile and * elementwise:
# 36 products per tile and channel pair instead of 144.  The matrices come
# from cyconv/_winograd.py (exact rationals rounded once); U is computed in
# float64 and rounded once, V and Y in the dtype.
#
# The 36 positions xi = (row, column) of the transformed tile make 36
# independent matrix products M[xi] = U[xi] V[xi] over the input channels,
# each one mk_oc_pos_rows call per block of OC_BLOCK output channels, with
# POS_BLOCK tiles (of any images) in the vector lanes.  A work item is a
# group, a block of POS_BLOCK tiles and a run of output-channel blocks: it
# transforms its tiles' input patches, a slice of channels at a time, into
# a per-thread buffer V[xi][c][lane], adds the slice's products into
# M[xi][o][lane], and transforms M into the output tiles, adding the bias.
# The lanes' tiles lie in runs along tile rows (tile_runs): their input rows
# are loaded a run at a time and their output rows stored so, four columns
# per tile.  The layout of U (winograd_weight_block) is U[group][xi][block][c][o].

cdef inline void apply_rows(const floating* mat, int n_out,
                            const floating* src, Py_ssize_t src_step,
                            floating* dst, Py_ssize_t dst_step) noexcept nogil:
    # dst[i * dst_step + lane] = sum_k mat[i, k] * src[k * src_step + lane],
    # k < WINO_ALPHA, for the POS_BLOCK lanes: one 1-D transform of a tile's
    # rows or columns, the zero entries of mat skipped
    cdef floating acc[CYCONV_POS_BLOCK_F32]
    cdef floating coef
    cdef int i, k, p
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for i in range(n_out):
        for p in range(P):
            acc[p] = 0
        for k in range(WINO_ALPHA):
            coef = mat[i * WINO_ALPHA + k]
            if coef != 0:
                for p in range(P):
                    acc[p] += coef * src[k * src_step + p]
        for p in range(P):
            dst[i * dst_step + p] = acc[p]


cdef void winograd_weight_block(const floating* weight, const Geometry* geo, bint flipped,
                                const double* g_mat, Py_ssize_t group, Py_ssize_t b,
                                Py_ssize_t c0, Py_ssize_t cn, floating* dst,
                                Py_ssize_t ld_xi) noexcept nogil:
    # dst[xi * ld_xi + (c - c0) * OC_BLOCK + o] = (G w G^T)[xi] for the
    # OC_BLOCK output channels o of block b (zeros past the last) and the
    # input channels c0 <= c < c0 + cn, computed in float64.  geo is the convolution the kernel runs; flipped: it is the
    # input gradient, whose weight w[o][c] is weight[c][o] turned by 180 degrees.
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t valid = min(OB, cout_g - b * OB)
    cdef double g[WINO_ALPHA * 3]
    cdef double w[9][CYCONV_OC_BLOCK]
    cdef double t[WINO_ALPHA * 3][CYCONV_OC_BLOCK]
    cdef const floating* src
    cdef floating* row
    cdef Py_ssize_t c, o, oc
    cdef int i, a, l
    for i in range(WINO_ALPHA * 3):
        g[i] = g_mat[i]
    for i in range(9):
        for o in range(OB):
            w[i][o] = 0
    for c in range(c0, c0 + cn):
        for o in range(valid):
            oc = b * OB + o
            if flipped:  # weight is (in channels, out channels / groups, 3, 3)
                src = weight + ((group * cin_g + c) * cout_g + oc) * 9
                for i in range(9):
                    w[8 - i][o] = src[i]
            else:
                src = weight + ((group * cout_g + oc) * cin_g + c) * 9
                for i in range(9):
                    w[i][o] = src[i]
        # t = G w, then U = t G^T: whole sums, no branches, so that gcc keeps
        # them in registers (G's zeros add exact zeros)
        for a in range(WINO_ALPHA):
            for l in range(3):
                for o in range(OB):
                    t[a * 3 + l][o] = (g[a * 3] * w[l][o] + g[a * 3 + 1] * w[3 + l][o]
                                       + g[a * 3 + 2] * w[6 + l][o])
        for a in range(WINO_ALPHA):
            for l in range(WINO_ALPHA):
                row = dst + (a * WINO_ALPHA + l) * ld_xi + (c - c0) * OB
                for o in range(OB):
                    row[o] = <floating>(t[a * 3][o] * g[l * 3] + t[a * 3 + 1][o] * g[l * 3 + 1]
                                        + t[a * 3 + 2][o] * g[l * 3 + 2])


cdef void transform_all_weights(const floating* weight, const Geometry* geo, bint flipped,
                                const double* g_mat, int n_threads, floating* u) noexcept nogil:
    # u = U[group][xi][block][c][o] for every block, OC_BLOCK output channels each
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t n_blocks = ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK)
    cdef Py_ssize_t item, group, b
    for item in prange(geo.groups * n_blocks, schedule='static', num_threads=n_threads):
        group = item // n_blocks
        b = item % n_blocks
        winograd_weight_block(weight, geo, flipped, g_mat, group, b, 0, cin_g,
                              u + (group * WINO_POINTS * n_blocks + b) * cin_g * CYCONV_OC_BLOCK,
                              n_blocks * cin_g * CYCONV_OC_BLOCK)


cdef Py_ssize_t tile_runs(const WinogradPlan* plan, Py_ssize_t first,
                          Py_ssize_t n_lanes, Py_ssize_t* runs) noexcept nogil:
    # The tiles first ... first + n_lanes - 1 (numbered through the images,
    # row by row) as runs along one tile row: runs[4 * r ...] = (image, tile
    # row, first tile column, tiles) of run r, whose first lane follows the
    # previous run's.  Returns the number of runs.
    cdef Py_ssize_t tiles_img = plan.tiles_h * plan.tiles_w
    cdef Py_ssize_t t = first, r = 0, rest, length
    while t < first + n_lanes:
        rest = t % tiles_img
        length = min(plan.tiles_w - rest % plan.tiles_w, first + n_lanes - t)
        runs[4 * r] = t // tiles_img
        runs[4 * r + 1] = rest // plan.tiles_w
        runs[4 * r + 2] = rest % plan.tiles_w
        runs[4 * r + 3] = length
        r += 1
        t += length
    return r


cdef inline void load_patch_rows(const floating* xc, const Geometry* geo, const Py_ssize_t* runs,
                                 Py_ssize_t n_runs, floating* row, floating* d) noexcept nogil:
    # d[(i * 6 + j) * P + lane] = the input of one channel (plane xc of image
    # 0) at row i, column j of the lane's 6x6 patch, 0 outside the input.  Per
    # run and patch row: the input row under the run (4 columns per tile and
    # 4 more) into row, zero-padded, then split by column within the tile;
    # the same rows LOAD_AHEAD channels on are asked for.
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t plane = geo.in_h * geo.in_w
    cdef Py_ssize_t r, lane = 0, nt, width, iy, ix0, lo, hi, t
    cdef floating* d0
    cdef const floating* src
    cdef int i
    for r in range(n_runs):
        nt = runs[4 * r + 3]
        width = WINO_TILE * (nt + 1)
        ix0 = runs[4 * r + 2] * WINO_TILE - geo.pad_left
        valid_columns(ix0, 1, geo.in_w, width, &lo, &hi)
        for i in range(WINO_ALPHA):
            iy = runs[4 * r + 1] * WINO_TILE - geo.pad_top + i
            if iy < 0 or iy >= geo.in_h or lo == hi:
                fill_zero(row, width)
            else:
                src = xc + runs[4 * r] * geo.in_channels * plane + iy * geo.in_w + ix0 + lo
                prefetch_run(src + LOAD_AHEAD * plane, (hi - lo) * sizeof(floating))
                fill_zero(row, lo)
                copy_run(row + lo, src, hi - lo)
                fill_zero(row + hi, width - hi)
            d0 = d + i * WINO_ALPHA * P + lane
            for t in range(nt):
                d0[t] = row[WINO_TILE * t]
                d0[P + t] = row[WINO_TILE * t + 1]
                d0[2 * P + t] = row[WINO_TILE * t + 2]
                d0[3 * P + t] = row[WINO_TILE * t + 3]
            for t in range(nt):
                d0[4 * P + t] = row[WINO_TILE * t + 4]
                d0[5 * P + t] = row[WINO_TILE * t + 5]
        lane += nt


cdef inline void store_tile_rows(const floating* y, floating bias, const Geometry* geo,
                                 const Py_ssize_t* runs, Py_ssize_t n_runs,
                                 floating* out_c) noexcept nogil:
    # out (plane out_c of image 0, one output channel) = y + bias, y[(i * 4 +
    # j) * P + lane] the lane's 4x4 output tile; rows and columns past the
    # output's edge left out
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t r, lane = 0, nt, full, oy, ox0, t, j
    cdef floating* dst
    cdef const floating* y0
    cdef int i
    for r in range(n_runs):
        nt = runs[4 * r + 3]
        ox0 = runs[4 * r + 2] * WINO_TILE
        full = min(nt, (geo.out_w - ox0) // WINO_TILE)
        for i in range(WINO_TILE):
            oy = runs[4 * r + 1] * WINO_TILE + i
            if oy >= geo.out_h:
                break
            dst = out_c + runs[4 * r] * geo.out_channels * plane + oy * geo.out_w + ox0
            y0 = y + i * WINO_TILE * P + lane
            for t in range(full):
                dst[WINO_TILE * t] = y0[t] + bias
                dst[WINO_TILE * t + 1] = y0[P + t] + bias
                dst[WINO_TILE * t + 2] = y0[2 * P + t] + bias
                dst[WINO_TILE * t + 3] = y0[3 * P + t] + bias
            if full < nt:  # the last tile, cut by the right edge
                for j in range(geo.out_w - ox0 - WINO_TILE * full):
                    dst[WINO_TILE * full + j] = y0[j * P + full] + bias
        lane += nt


cdef Py_ssize_t forward_winograd(const floating* x, const floating* u, const floating* weight,
                                 const floating* bias, floating* out, const Geometry* geo,
                                 const WinogradPlan* plan, const double* a_t, const double* g_mat,
                                 const double* b_t) noexcept nogil:
    # u: the transformed weights (transform_all_weights); with
    # plan.fused_weights NULL, and each item transforms the blocks of weight
    # it needs, a slice at a time.  Returns 0, -1 when a transformed input is
    # NaN or Inf (the output is then incomplete: Winograd would spread it
    # over whole tiles, so the caller computes the layer directly), or the
    # bytes of a buffer it could not allocate.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t n_tiles = geo.batch * plan.tiles_h * plan.tiles_w
    cdef Py_ssize_t plane_in = geo.in_h * geo.in_w
    cdef Py_ssize_t plane_out = geo.out_h * geo.out_w
    cdef Py_ssize_t ldv = plan.slice_c * P               # between the xi of V
    cdef Py_ssize_t ldm = plan.blocks_per_item * OB * P  # between the xi of M
    cdef floating bt[WINO_POINTS]
    cdef floating at[WINO_TILE * WINO_ALPHA]
    cdef floating zeros[CYCONV_POS_BLOCK_F32]
    cdef const floating* zero_tile = zeros
    cdef Py_ssize_t item, tb, group, b0, b1, bl, s, c0, cn, c, xi, o, oc, i, j, p, n_runs, n_lanes
    cdef floating* v
    cdef floating* m
    cdef floating* acc
    cdef floating* u_slice  # fused: one block's transformed weights for a slice
    cdef floating* work  # the patches d, the half-transformed tiles, a row of input
    cdef floating* check  # per lane: 0, or NaN once a transformed input is NaN or Inf
    cdef Py_ssize_t* runs
    cdef Py_ssize_t failed = 0
    cdef Py_ssize_t* failed_flag = &failed
    cdef bint* seen_nonfinite
    cdef bint any_nonfinite = False
    for i in range(WINO_POINTS):
        bt[i] = <floating>b_t[i]
    for i in range(WINO_TILE * WINO_ALPHA):
        at[i] = <floating>a_t[i]
    for p in range(P):
        zeros[p] = 0
    seen_nonfinite = &any_nonfinite
    with parallel(num_threads=plan.n_threads):
        v = <floating*>work_alloc(failed_flag, True, WINO_POINTS * ldv * sizeof(floating))
        m = <floating*>work_alloc(failed_flag, True, WINO_POINTS * ldm * sizeof(floating))
        work = <floating*>work_alloc(failed_flag, True, (2 * WINO_POINTS + 1 + 2 * WINO_TILE) * P
                                     * sizeof(floating))
        runs = <Py_ssize_t*>work_alloc(failed_flag, False, 4 * P * sizeof(Py_ssize_t))
        u_slice = NULL
        if plan.fused_weights:
            u_slice = <floating*>work_alloc(failed_flag, True, WINO_POINTS * plan.slice_c * OB
                                            * sizeof(floating))
        for item in prange(plan.n_items, schedule='static'):
            if (v == NULL or m == NULL or work == NULL or runs == NULL
                    or (plan.fused_weights and u_slice == NULL)):
                continue
            b0 = item % plan.n_oc_items * plan.blocks_per_item
            b1 = min(n_blocks, b0 + plan.blocks_per_item)
            tb = item // plan.n_oc_items % plan.n_tile_blocks
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
                for c in range(cn):
                    load_patch_rows(x + (group * cin_g + c0 + c) * plane_in, geo, runs, n_runs,
                                    check + P, work)
                    for j in range(WINO_ALPHA):  # the columns: B^T d
                        apply_rows(bt, WINO_ALPHA, work + j * P, WINO_ALPHA * P,
                                   work + WINO_POINTS * P + j * P, WINO_ALPHA * P)
                    for i in range(WINO_ALPHA):  # the rows: (B^T d) B
                        apply_rows(bt, WINO_ALPHA, work + (WINO_POINTS + i * WINO_ALPHA) * P, P,
                                   v + i * WINO_ALPHA * ldv + c * P, ldv)
                    for xi in range(WINO_POINTS):  # 0 * NaN and 0 * Inf are NaN
                        for p in range(P):
                            check[p] += zero_tile[p] * v[xi * ldv + c * P + p]
                # the products, started from 0 on the first slice
                if plan.fused_weights:
                    for bl in range(b1 - b0):
                        winograd_weight_block(weight, geo, plan.flipped, g_mat, group, b0 + bl,
                                              c0, cn, u_slice, cn * OB)
                        for xi in range(WINO_POINTS):
                            acc = m + xi * ldm + bl * OB * P
                            mk_oc_pos_rows(v + xi * ldv, cn, P, u_slice + xi * cn * OB,
                                           acc if s > 0 else zero_tile, P if s > 0 else 0, acc, P)
                    continue
                for xi in range(WINO_POINTS):
                    for bl in range(b1 - b0):
                        acc = m + xi * ldm + bl * OB * P
                        mk_oc_pos_rows(v + xi * ldv, cn, P,
                                       u + (((group * WINO_POINTS + xi) * n_blocks + b0 + bl) * cin_g + c0) * OB,
                                       acc if s > 0 else zero_tile, P if s > 0 else 0, acc, P)
            for p in range(1, P):
                check[0] += check[p]
            if check[0] != 0:
                seen_nonfinite[0] = True
                continue
            for bl in range(b1 - b0):
                for o in range(OB):
                    oc = (b0 + bl) * OB + o
                    if oc >= cout_g:
                        break
                    for j in range(WINO_ALPHA):  # the columns: A^T M
                        apply_rows(at, WINO_TILE, m + j * ldm + (bl * OB + o) * P,
                                   WINO_ALPHA * ldm, work + j * P, WINO_ALPHA * P)
                    for i in range(WINO_TILE):  # the rows: (A^T M) A
                        apply_rows(at, WINO_TILE, work + i * WINO_ALPHA * P, P,
                                   work + (WINO_POINTS + i * WINO_TILE) * P, P)
                    store_tile_rows(work + WINO_POINTS * P, bias[group * cout_g + oc], geo, runs,
                                    n_runs, out + (group * cout_g + oc) * plane_out)
        cyconv_aligned_free(v)
        cyconv_aligned_free(m)
        cyconv_aligned_free(work)
        cyconv_aligned_free(u_slice)
        free(runs)
    if failed != 0:
        return failed
    return -1 if any_nonfinite else 0
