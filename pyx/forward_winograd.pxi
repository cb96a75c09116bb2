# FORWARD_WINOGRAD: stride-1, dilation-1 3x3 layers by Winograd's minimal
# filtering F(4x4, 3x3): each 4x4 tile of an output channel is
#
#     Y = A^T [ sum_c U_c * V_c ] A,   U_c = G g_c G^T,   V_c = B^T d_c B,
#
# with d_c the 6x6 input patch of channel c under the tile and * elementwise:
# 36 products per tile and channel pair instead of 144.  The matrices come
# from cyconv/_winograd.py (exact rationals rounded once); U, V and Y are
# computed in the dtype.
#
# The 36 positions xi = (row, column) of the transformed tile make 36
# independent matrix products M[xi] = U[xi] V[xi] over the input channels.
# A work item is a group, a block of POS_BLOCK tiles (of any images) and a
# run of output-channel blocks: it transforms its tiles' input patches, a
# slice of channels at a time, into a per-thread buffer V[xi][c][tile lane],
# adds the slice's products into M, and transforms M into the output tiles,
# adding the bias.  The tiles lie in runs along tile rows (tile_runs): their
# input rows are loaded a run at a time.  The products take one of two forms
# (the planner picks the one whose register tiles are fuller):
# - tiles in the lanes: per xi and block of OC_BLOCK output channels one
#   mk_oc_pos_rows call, M[xi][o][tile lane], U[group][xi][block][c][o]
#   (transform_all_weights, or a slice at a time inside the item);
# - output channels in the lanes (oc_lanes, calls with few tiles): per xi,
#   block of POS_BLOCK output channels and BAND_POSITIONS tiles one
#   mk_pos_oc_shifts call, M[xi][tile][o lane], the item's U a slice at a
#   time as [xi][c][o] for the block.

cdef inline void apply_rows(const floating* mat, int n_out,
                            const floating* src, Py_ssize_t src_step,
                            floating* dst, Py_ssize_t dst_step) noexcept nogil:
    # dst[i * dst_step + lane] = sum_k mat[i, k] * src[k * src_step + lane],
    # k < WINO_ALPHA, for the POS_BLOCK lanes: one 1-D transform of a tile's
    # rows or columns.  Zero entries of mat add exact zeros (a NaN from 0 *
    # Inf fails the NaN check, as the Inf would): branch-free sums, which gcc
    # keeps in registers.
    cdef floating acc[CYCONV_POS_BLOCK_F32]
    cdef floating coef
    cdef int i, k, p
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for i in range(n_out):
        for p in range(P):
            acc[p] = 0
        for k in range(WINO_ALPHA):
            coef = mat[i * WINO_ALPHA + k]
            for p in range(P):
                acc[p] += coef * src[k * src_step + p]
        for p in range(P):
            dst[i * dst_step + p] = acc[p]


cdef inline int weight_lanes(floating* like) noexcept nogil:
    # output channels winograd_weight_block transforms at a time: two blocks
    # of OC_BLOCK in float32 where they fill a vector register (AVX-512),
    # else one
    if floating is float and 2 * CYCONV_OC_BLOCK * 4 == CYCONV_VECTOR_BYTES:
        return 2 * CYCONV_OC_BLOCK
    return CYCONV_OC_BLOCK


cdef void winograd_weight_block(const floating* weight, const Geometry* geo, bint flipped,
                                const double* g_mat, Py_ssize_t group, Py_ssize_t o0,
                                Py_ssize_t n_o, Py_ssize_t c0, Py_ssize_t cn, floating* dst,
                                Py_ssize_t ld_xi, Py_ssize_t ld_block,
                                Py_ssize_t ld_c) noexcept nogil:
    # dst[xi * ld_xi + (o // OC_BLOCK) * ld_block + (c - c0) * ld_c + o %
    # OC_BLOCK] = (G w G^T)[xi] for the n_o <= weight_lanes output channels
    # o0 + o of the group (zeros past the last) and the input channels c0 <=
    # c < c0 + cn, in the dtype's arithmetic (float32's error adds nothing
    # measurable to Winograd's own, docs/tuning-notes.md).  geo is the
    # convolution the kernel runs; flipped: it is the input gradient, whose
    # weight w[o][c] is weight[c][o] turned by 180 degrees.
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef int WL = weight_lanes(dst)
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t valid = max(0, min(n_o, cout_g - o0))
    cdef floating g[WINO_ALPHA * 3]
    cdef floating w[WINOGRAD_WEIGHT_CHUNK * 9][2 * CYCONV_OC_BLOCK]  # [c][tap][o]
    cdef floating t[WINO_ALPHA * 3][2 * CYCONV_OC_BLOCK]
    cdef floating u[2 * CYCONV_OC_BLOCK]
    cdef floating* row
    cdef Py_ssize_t c, cc, nc, o, k, j, n_j
    cdef int i, a, l
    for i in range(WINO_ALPHA * 3):
        g[i] = <floating>g_mat[i]
    if valid < WL:
        memset(w, 0, sizeof(w))
    for k in range(ceil_div(cn, WINOGRAD_WEIGHT_CHUNK)):
        cc = c0 + k * WINOGRAD_WEIGHT_CHUNK
        nc = min(WINOGRAD_WEIGHT_CHUNK, c0 + cn - cc)
        # the chunk's weights, output channels into the lanes (transposed in
        # vector registers; the input gradient's taps turned by a negative step)
        if flipped:  # weight is (in channels, out channels / groups, 3, 3)
            for c in range(nc):
                transpose_into(weight + ((group * cin_g + cc + c) * cout_g + o0) * 9, 9, valid,
                               9, &w[c * 9 + 8][0], -2 * OB)
        else:
            transpose_into(weight + ((group * cout_g + o0) * cin_g + cc) * 9, cin_g * 9, valid,
                           nc * 9, &w[0][0], 2 * OB)
        for c in range(nc):
            # t = G w, then U = t G^T: whole sums, no branches, so that gcc
            # keeps them in registers (G's zeros add exact zeros)
            for a in range(WINO_ALPHA):
                for l in range(3):
                    for o in range(WL):
                        t[a * 3 + l][o] = (g[a * 3] * w[c * 9 + l][o]
                                           + g[a * 3 + 1] * w[c * 9 + 3 + l][o]
                                           + g[a * 3 + 2] * w[c * 9 + 6 + l][o])
            for a in range(WINO_ALPHA):
                for l in range(WINO_ALPHA):
                    for o in range(WL):
                        u[o] = (t[a * 3][o] * g[l * 3] + t[a * 3 + 1][o] * g[l * 3 + 1]
                                + t[a * 3 + 2][o] * g[l * 3 + 2])
                    for j in range(WL // OB):
                        n_j = min(OB, n_o - j * OB)
                        if n_j <= 0:
                            break
                        row = dst + (a * WINO_ALPHA + l) * ld_xi + j * ld_block + (cc + c - c0) * ld_c
                        if n_j == OB:
                            for o in range(OB):
                                row[o] = u[j * OB + o]
                        else:
                            for o in range(n_j):
                                row[o] = u[j * OB + o]


cdef inline Py_ssize_t weights_xi_stride(const Geometry* geo) noexcept nogil:
    # values between the xi of U[group][xi][block][c][o]: the blocks' values
    # and 16 more, so that the 36 rows a transform stores together do not
    # fall into one cache set
    return (ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK) * CYCONV_OC_BLOCK
            * (geo.in_channels // geo.groups) + 16)


cdef void transform_all_weights(const floating* weight, const Geometry* geo, bint flipped,
                                const double* g_mat, int n_threads, floating* u) noexcept nogil:
    # u = U[group][xi][block][c][o] for every block, OC_BLOCK output channels
    # each, weight_lanes channels per work item
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t n_oc = ceil_div(geo.out_channels // geo.groups, CYCONV_OC_BLOCK) * CYCONV_OC_BLOCK
    cdef Py_ssize_t WL = weight_lanes(u)
    cdef Py_ssize_t n_runs = ceil_div(n_oc, WL)
    cdef Py_ssize_t ld_xi = weights_xi_stride(geo)
    cdef Py_ssize_t item, group, o0
    for item in prange(geo.groups * n_runs, schedule='static', num_threads=n_threads):
        group = item // n_runs
        o0 = item % n_runs * WL
        winograd_weight_block(weight, geo, flipped, g_mat, group, o0, min(WL, n_oc - o0), 0, cin_g,
                              u + group * WINO_POINTS * ld_xi + o0 * cin_g, ld_xi,
                              cin_g * CYCONV_OC_BLOCK, CYCONV_OC_BLOCK)


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


cdef inline void store_tile_channels(const floating* y, const floating* bias, Py_ssize_t n_oc,
                                     const Geometry* geo, const WinogradPlan* plan,
                                     Py_ssize_t tile, floating* out_c) noexcept nogil:
    # out (from plane out_c of image 0, n_oc output channels) = y + bias for
    # one tile (numbered through the images, row by row), y[(i * 4 + j) * P
    # + o] its 4x4 values of output channel o; rows and columns past the
    # output's edge left out
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    cdef Py_ssize_t tiles_img = plan.tiles_h * plan.tiles_w
    cdef Py_ssize_t rest = tile % tiles_img
    cdef Py_ssize_t oy = rest // plan.tiles_w * WINO_TILE
    cdef Py_ssize_t ox = rest % plan.tiles_w * WINO_TILE
    cdef Py_ssize_t rows = min(WINO_TILE, geo.out_h - oy)
    cdef Py_ssize_t cols = min(WINO_TILE, geo.out_w - ox)
    cdef floating* dst
    cdef Py_ssize_t o, i, j
    out_c += tile // tiles_img * geo.out_channels * plane + oy * geo.out_w + ox
    for o in range(n_oc):
        dst = out_c + o * plane
        for i in range(rows):
            for j in range(cols):
                dst[i * geo.out_w + j] = y[(i * WINO_TILE + j) * P + o] + bias[o]


cdef inline void transform_input_slice(const floating* xc, Py_ssize_t cn, const Geometry* geo,
                                       const Py_ssize_t* runs, Py_ssize_t n_runs,
                                       const floating* bt, const floating* zeros, floating* v,
                                       Py_ssize_t ldv, floating* work,
                                       floating* check) noexcept nogil:
    # v[xi * ldv + c * P + lane] = (B^T d B)[xi] for the patches d of the
    # runs' tiles in the cn channels from plane xc (of image 0); check[lane]
    # becomes NaN once one of them is NaN or Inf.  work: 2 * 36 * P values,
    # check's P, then 4 * (P + 1) for a row of input.
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t plane = geo.in_h * geo.in_w
    cdef Py_ssize_t c, xi, p
    cdef int i, j
    for c in range(cn):
        load_patch_rows(xc + c * plane, geo, runs, n_runs, work + (2 * WINO_POINTS + 1) * P,
                        work)
        for j in range(WINO_ALPHA):  # the columns: B^T d
            apply_rows(bt, WINO_ALPHA, work + j * P, WINO_ALPHA * P,
                       work + WINO_POINTS * P + j * P, WINO_ALPHA * P)
        for i in range(WINO_ALPHA):  # the rows: (B^T d) B
            apply_rows(bt, WINO_ALPHA, work + (WINO_POINTS + i * WINO_ALPHA) * P, P,
                       v + i * WINO_ALPHA * ldv + c * P, ldv)
        for xi in range(WINO_POINTS):  # 0 * NaN and 0 * Inf are NaN
            for p in range(P):
                check[p] += zeros[p] * v[xi * ldv + c * P + p]


cdef inline void transform_output_tile(const floating* at, const floating* m, Py_ssize_t ld_xi,
                                       floating* work) noexcept nogil:
    # work[36 * P + (i * 4 + j) * P + lane] = (A^T M A)[i, j] for the P lanes
    # of m[xi * ld_xi + lane]; work's first 36 * P values are overwritten
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef int i, j
    for j in range(WINO_ALPHA):  # the columns: A^T M
        apply_rows(at, WINO_TILE, m + j * ld_xi, WINO_ALPHA * ld_xi, work + j * P, WINO_ALPHA * P)
    for i in range(WINO_TILE):  # the rows: (A^T M) A
        apply_rows(at, WINO_TILE, work + i * WINO_ALPHA * P, P,
                   work + (WINO_POINTS + i * WINO_TILE) * P, P)


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
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t BO = plan.block_oc
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t n_blocks = plan.n_blocks
    cdef Py_ssize_t n_tiles = geo.batch * plan.tiles_h * plan.tiles_w
    cdef Py_ssize_t plane_in = geo.in_h * geo.in_w
    cdef Py_ssize_t plane_out = geo.out_h * geo.out_w
    # M per block: BO x P values, or with oc_lanes the (at most P) tiles in
    # whole Qs x BO
    cdef Py_ssize_t block_m = BO * (ceil_div(min(P, n_tiles), Q) * Q if plan.oc_lanes else P)
    # between the xi of V, M and the item's U: a cache line more than their
    # values, so that the 36 rows a transform stores or reads together do not
    # fall into one cache set (whole kibibytes apart, they would)
    cdef Py_ssize_t line = 64 // sizeof(floating)
    cdef Py_ssize_t ldv = plan.slice_c * P + line
    cdef Py_ssize_t ldm = plan.blocks_per_item * block_m + line
    cdef Py_ssize_t WL = weight_lanes(out)
    cdef Py_ssize_t ldu = plan.slice_c * max(BO, WL) + line
    cdef Py_ssize_t ld_weights = weights_xi_stride(geo)  # between the xi of u
    cdef floating bt[WINO_POINTS]
    cdef floating at[WINO_TILE * WINO_ALPHA]
    cdef floating zeros[CYCONV_POS_BLOCK_F32]
    cdef const floating* zero_tile = zeros
    cdef Py_ssize_t item, tb, group, b0, b1, bl, s, c0, cn, xi, o, oc, oc0, i, k, p, g
    cdef Py_ssize_t n_runs, n_lanes
    cdef floating* v
    cdef floating* m
    cdef floating* acc
    cdef floating* u_slice  # fused: transformed weights of a slice, one or two blocks
    cdef floating* work  # the patches d, the half-transformed tiles, a row of input
    cdef floating* check  # per lane: 0, or NaN once a transformed input is NaN or Inf
    cdef Py_ssize_t* runs
    cdef Py_ssize_t* channel_rows = NULL  # oc_lanes: the rows of V's channels, c * P
    cdef Py_ssize_t first_tile = 0
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
    if plan.oc_lanes:
        channel_rows = <Py_ssize_t*>work_alloc(failed_flag, False,
                                               plan.slice_c * sizeof(Py_ssize_t))
        if channel_rows == NULL:
            return failed
        for i in range(plan.slice_c):
            channel_rows[i] = i * P
    with parallel(num_threads=plan.n_threads):
        # V: Q values more, read (never used) by the last tiles' products
        v = <floating*>work_alloc(failed_flag, True, (WINO_POINTS * ldv + Q) * sizeof(floating))
        m = <floating*>work_alloc(failed_flag, True, WINO_POINTS * ldm * sizeof(floating))
        work = <floating*>work_alloc(failed_flag, True, (2 * WINO_POINTS + 1 + 2 * WINO_TILE) * P
                                     * sizeof(floating))
        runs = <Py_ssize_t*>work_alloc(failed_flag, False, 4 * P * sizeof(Py_ssize_t))
        u_slice = NULL
        if plan.fused_weights:
            u_slice = <floating*>work_alloc(failed_flag, True, WINO_POINTS * ldu * sizeof(floating))
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
                transform_input_slice(x + (group * cin_g + c0) * plane_in, cn, geo, runs, n_runs,
                                      bt, zero_tile, v, ldv, work, check)
                # the products, started from 0 on the first slice
                if plan.oc_lanes:
                    for bl in range(b1 - b0):
                        for k in range(ceil_div(BO, WL)):
                            winograd_weight_block(weight, geo, plan.flipped, g_mat, group,
                                                  (b0 + bl) * BO + k * WL, min(WL, BO - k * WL),
                                                  c0, cn, u_slice + k * WL, ldu, OB, BO)
                        for xi in range(WINO_POINTS):
                            for g in range(ceil_div(n_lanes, Q)):
                                mk_pos_oc_shifts(v + xi * ldv + g * Q, channel_rows, cn,
                                                 &first_tile, True, u_slice + xi * ldu,
                                                 m + xi * ldm + bl * block_m + g * Q * BO, s > 0)
                elif plan.fused_weights:
                    for bl in range(b1 - b0):
                        k = bl % (WL // OB)  # the block's place in u_slice
                        if k == 0:
                            winograd_weight_block(weight, geo, plan.flipped, g_mat, group,
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
            for p in range(1, P):
                check[0] += check[p]
            if check[0] != 0:
                seen_nonfinite[0] = True
                continue
            for bl in range(b1 - b0):
                oc0 = (b0 + bl) * BO
                if plan.oc_lanes:
                    for k in range(n_lanes):
                        transform_output_tile(at, m + bl * block_m + k * BO, ldm, work)
                        store_tile_channels(work + WINO_POINTS * P, bias + group * cout_g + oc0,
                                            min(BO, cout_g - oc0), geo, plan, tb * P + k,
                                            out + (group * cout_g + oc0) * plane_out)
                    continue
                for o in range(min(BO, cout_g - oc0)):
                    oc = oc0 + o
                    transform_output_tile(at, m + bl * block_m + o * P, ldm, work)
                    store_tile_rows(work + WINO_POINTS * P, bias[group * cout_g + oc], geo, runs,
                                    n_runs, out + (group * cout_g + oc) * plane_out)
        cyconv_aligned_free(v)
        cyconv_aligned_free(m)
        cyconv_aligned_free(work)
        cyconv_aligned_free(u_slice)
        free(runs)
    free(channel_rows)
    if failed != 0:
        return failed
    return -1 if any_nonfinite else 0
