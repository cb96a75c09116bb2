# The pieces of the Winograd kernel (forward_winograd.pxi) that move and
# transform data, F(4x4, 3x3): the 1-D transforms of a tile's rows or columns
# (apply_rows with a matrix, bt_rows with B^T's sums), the weights' G w G^T
# in the layouts the products read
# (winograd_weight_block, transform_all_weights), the input patches of a
# block of tiles loaded a run of tiles at a time and transformed
# (tile_runs, load_patch_rows, transform_input_slice), and the output tiles
# transformed and stored (transform_output_tile, store_tile_rows with the
# tiles in the lanes, store_tile_channels with the output channels).

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


cdef inline void bt_rows(const floating* src, Py_ssize_t src_step, floating* dst,
                         Py_ssize_t dst_step) noexcept nogil:
    # dst[i * dst_step + lane] = sum_k B^T[i, k] * src[k * src_step + lane]
    # for the POS_BLOCK lanes, B^T the 6x6 matrix of the points 0, 1, -1, 2,
    # -1/2 (cyconv/_winograd.py: matrices) as sums that share s = d4 - d2 and
    # q = d3 - d1: 14 operations for the 36 of the matrix product.  The rows
    # go to a local block first: gcc then knows dst does not alias src
    cdef floating half = 0.5, two = 2, three_halves = 1.5
    cdef floating rows[WINO_ALPHA][CYCONV_POS_BLOCK_F32]
    cdef floating d0, d1, d2, d3, d4, d5, s, q, a, b
    cdef int p, i
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for p in range(P):
        d0 = src[p]
        d1 = src[src_step + p]
        d2 = src[2 * src_step + p]
        d3 = src[3 * src_step + p]
        d4 = src[4 * src_step + p]
        d5 = src[5 * src_step + p]
        s = d4 - d2
        q = d3 - d1
        a = s - three_halves * d3
        b = q - three_halves * d2
        rows[0][p] = (d0 - d2) + s - three_halves * q
        rows[1][p] = a + b
        rows[2][p] = a - b
        rows[3][p] = s + half * q
        rows[4][p] = s - two * q
        rows[5][p] = (d5 - d3) - q - three_halves * s
    for i in range(WINO_ALPHA):
        for p in range(P):
            dst[i * dst_step + p] = rows[i][p]


cdef inline int weight_lanes(floating* like) noexcept nogil:
    # output channels winograd_weight_block transforms at a time: two blocks
    # of OC_BLOCK in float32 where they fill a vector register (AVX-512),
    # else one
    if floating is float and 2 * CYCONV_OC_BLOCK * 4 == CYCONV_VECTOR_BYTES:
        return 2 * CYCONV_OC_BLOCK
    return CYCONV_OC_BLOCK


cdef inline void load_weight_chunk(const floating* weight, const Geometry* geo, bint flipped,
                                   Py_ssize_t group, Py_ssize_t o0, Py_ssize_t valid,
                                   Py_ssize_t cc, Py_ssize_t nc, floating* w) noexcept nogil:
    # w[(c * 9 + tap) * 2 OC_BLOCK + o] = the tap of output channel o0 + o
    # and input channel cc + c of the group, o < valid, c < nc: output
    # channels into the lanes (transposed in vector registers; the input
    # gradient's taps turned by a negative step).  geo is the convolution the
    # kernel runs; flipped: it is the input gradient, whose weight w[o][c] is
    # weight[c][o] (in channels, out channels / groups, 3, 3) turned by 180
    # degrees.
    cdef Py_ssize_t OB2 = 2 * CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t cout_g = geo.out_channels // geo.groups
    cdef Py_ssize_t c
    if flipped:
        for c in range(nc):
            transpose_into(weight + ((group * cin_g + cc + c) * cout_g + o0) * 9, 9, valid, 9,
                           w + (c * 9 + 8) * OB2, -OB2)
    else:
        transpose_into(weight + ((group * cout_g + o0) * cin_g + cc) * 9, cin_g * 9, valid,
                       nc * 9, w, OB2)


cdef inline void g_apply(floating w0, floating w1, floating w2, floating* dst,
                         Py_ssize_t step) noexcept nogil:
    # dst[k * step] = (G (w0, w1, w2))[k], G the kernel's integer G
    # (cyconv/_winograd.py: matrices), rows (1 0 0), (1 1 1), (1 -1 1),
    # (1 2 4), (4 -2 1), (0 0 1): sums that share w0 + w2.  Callers pass a
    # constant step, inside loops over the lanes that gcc vectorises.
    cdef floating two = 2, four = 4  # typed: literals would make the sums double
    cdef floating e = w0 + w2
    dst[0] = w0
    dst[step] = e + w1
    dst[2 * step] = e - w1
    dst[3 * step] = w0 + four * w2 + two * w1
    dst[4 * step] = four * w0 + w2 - two * w1
    dst[5 * step] = w2


cdef inline void g_columns(const floating* w, floating* t) noexcept nogil:
    # t[(k * 3 + l) * 2 OC_BLOCK + o] = (G w)[k][l] for the weight_lanes
    # lanes o of one input channel's w[tap * 2 OC_BLOCK + o]: G on the
    # columns of w
    cdef int OB2 = 2 * CYCONV_OC_BLOCK
    cdef int WL = weight_lanes(t)
    cdef int l, o
    for l in range(3):
        for o in range(WL):
            g_apply(w[l * OB2 + o], w[(3 + l) * OB2 + o], w[(6 + l) * OB2 + o],
                    t + l * OB2 + o, 3 * OB2)


cdef void winograd_weight_block(const floating* weight, const Geometry* geo, bint flipped,
                                Py_ssize_t group, Py_ssize_t o0, Py_ssize_t n_o, Py_ssize_t c0,
                                Py_ssize_t cn, floating* dst, Py_ssize_t ld_xi,
                                Py_ssize_t ld_block, Py_ssize_t ld_c) noexcept nogil:
    # dst[xi * ld_xi + (o // OC_BLOCK) * ld_block + (c - c0) * ld_c + o %
    # OC_BLOCK] = (G w G^T)[xi] for the n_o <= weight_lanes output channels
    # o0 + o of the group (zeros past the last) and the input channels c0 <=
    # c < c0 + cn, in the dtype's arithmetic (float32's error adds nothing
    # measurable to Winograd's own, docs/tuning-notes.md): g_columns, then G
    # on the rows the same way.  geo and flipped as load_weight_chunk.
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef int WL = weight_lanes(dst)
    cdef Py_ssize_t valid = max(0, min(n_o, geo.out_channels // geo.groups - o0))
    cdef floating w[WINOGRAD_WEIGHT_CHUNK * 9][2 * CYCONV_OC_BLOCK]  # [c][tap][o]
    cdef floating t[WINO_ALPHA * 3][2 * CYCONV_OC_BLOCK]  # G w: [row][column][o]
    cdef floating u[WINO_ALPHA][2 * CYCONV_OC_BLOCK]  # a row of G w G^T
    cdef bint contiguous = ld_block == OB and n_o == WL  # all lanes, blocks side by side
    cdef floating* row
    cdef Py_ssize_t c, cc, nc, k, j, n_j, o
    cdef int a, l
    if valid < WL:
        memset(w, 0, sizeof(w))
    for k in range(ceil_div(cn, WINOGRAD_WEIGHT_CHUNK)):
        cc = c0 + k * WINOGRAD_WEIGHT_CHUNK
        nc = min(WINOGRAD_WEIGHT_CHUNK, c0 + cn - cc)
        load_weight_chunk(weight, geo, flipped, group, o0, valid, cc, nc, &w[0][0])
        for c in range(nc):
            g_columns(&w[c * 9][0], &t[0][0])
            for a in range(WINO_ALPHA):  # U = t G^T, a row of t at a time
                row = dst + a * WINO_ALPHA * ld_xi + (cc + c - c0) * ld_c
                for o in range(WL):
                    g_apply(t[a * 3][o], t[a * 3 + 1][o], t[a * 3 + 2][o], &u[0][o],
                            2 * CYCONV_OC_BLOCK)
                if contiguous:
                    for l in range(WINO_ALPHA):
                        for o in range(WL):
                            row[l * ld_xi + o] = u[l][o]
                    continue
                for j in range(ceil_div(n_o, OB)):
                    n_j = min(OB, n_o - j * OB)
                    for l in range(WINO_ALPHA):
                        if n_j == OB:
                            for o in range(OB):
                                row[l * ld_xi + j * ld_block + o] = u[l][j * OB + o]
                        else:
                            for o in range(n_j):
                                row[l * ld_xi + j * ld_block + o] = u[l][j * OB + o]


cdef void winograd_weight_columns(const floating* weight, const Geometry* geo, bint flipped,
                                  Py_ssize_t group, Py_ssize_t o0, Py_ssize_t n_o, Py_ssize_t c0,
                                  Py_ssize_t cn, floating* t) noexcept nogil:
    # t[(c - c0) * 18 * 2 OC_BLOCK + (k * 3 + l) * 2 OC_BLOCK + o] = (G w)[k][l]
    # for the n_o <= weight_lanes output channels o0 + o of the group (zeros
    # past the last) and the input channels c0 <= c < c0 + cn: the weights'
    # transform up to G^T, which mk_winograd_row4 applies.  geo and flipped as
    # load_weight_chunk.
    cdef int WL = weight_lanes(t)
    cdef Py_ssize_t OB2 = 2 * CYCONV_OC_BLOCK
    cdef Py_ssize_t valid = max(0, min(n_o, geo.out_channels // geo.groups - o0))
    cdef floating w[WINOGRAD_WEIGHT_CHUNK * 9][2 * CYCONV_OC_BLOCK]  # [c][tap][o]
    cdef Py_ssize_t c, cc, nc, k
    if valid < WL:
        memset(w, 0, sizeof(w))
    for k in range(ceil_div(cn, WINOGRAD_WEIGHT_CHUNK)):
        cc = c0 + k * WINOGRAD_WEIGHT_CHUNK
        nc = min(WINOGRAD_WEIGHT_CHUNK, c0 + cn - cc)
        load_weight_chunk(weight, geo, flipped, group, o0, valid, cc, nc, &w[0][0])
        for c in range(nc):
            g_columns(&w[c * 9][0], t + (cc + c - c0) * WINO_ALPHA * 3 * OB2)


cdef void transform_all_weights(const floating* weight, const Geometry* geo, bint flipped,
                                int n_threads, floating* u) noexcept nogil:
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
        winograd_weight_block(weight, geo, flipped, group, o0, min(WL, n_oc - o0), 0, cin_g,
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
                                       const Py_ssize_t* runs, Py_ssize_t n_runs, floating* v,
                                       Py_ssize_t ldv, floating* work) noexcept nogil:
    # v[xi * ldv + c * P + lane] = (B^T d B)[xi] for the patches d of the
    # runs' tiles in the cn channels from plane xc (of image 0).  work: 2 *
    # 36 * P values, P more (the caller's), then 4 * (P + 1) for a row of
    # input.
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t plane = geo.in_h * geo.in_w
    cdef Py_ssize_t c
    cdef int i, j
    for c in range(cn):
        load_patch_rows(xc + c * plane, geo, runs, n_runs, work + (2 * WINO_POINTS + 1) * P,
                        work)
        for j in range(WINO_ALPHA):  # the columns: B^T d
            bt_rows(work + j * P, WINO_ALPHA * P, work + WINO_POINTS * P + j * P, WINO_ALPHA * P)
        for i in range(WINO_ALPHA):  # the rows: (B^T d) B
            bt_rows(work + (WINO_POINTS + i * WINO_ALPHA) * P, P, v + i * WINO_ALPHA * ldv + c * P,
                    ldv)


cdef void transform_input_channels(const floating* xc, Py_ssize_t cn, const Geometry* geo,
                                   const WinogradPlan* plan, Py_ssize_t n_tiles, floating* v,
                                   Py_ssize_t ldv, floating* work,
                                   floating* planes) noexcept nogil:
    # v[xi * ldv + tile * ld_tile + c] = (B^T d B)[xi] for the patches d of
    # the first n_tiles tiles (numbered through the images) in the cn
    # channels from plane xc (of image 0), and 0 for the tiles after them up
    # to a whole group of 4 (mk_winograd_row4 reads 4): input channels in
    # the lanes, P at a time, for calls with one block of tiles (whose lanes
    # would hold little else).  Each image's planes of the P channels go to
    # planes[position * P + c] (in_h * in_w * P values) first; work as
    # transform_input_slice.
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t ld_tile = WINOGRAD_ROWS_TILE_STRIDE
    cdef Py_ssize_t plane = geo.in_h * geo.in_w
    cdef Py_ssize_t tiles_img = plan.tiles_h * plan.tiles_w
    cdef Py_ssize_t g, nc, t, image, loaded, rest, iy, ix, y0, x0, xi
    cdef const floating* src
    cdef floating* d
    cdef int i, j, p
    for g in range(ceil_div(cn, P)):
        nc = min(P, cn - g * P)
        loaded = -1
        for t in range(n_tiles):
            image = t // tiles_img
            if image != loaded:
                transpose_into(xc + (image * geo.in_channels + g * P) * plane, plane, nc, plane,
                               planes, P)
                loaded = image
            rest = t % tiles_img
            y0 = rest // plan.tiles_w * WINO_TILE - geo.pad_top
            x0 = rest % plan.tiles_w * WINO_TILE - geo.pad_left
            for i in range(WINO_ALPHA):  # the patch d, 0 outside the input
                iy = y0 + i
                for j in range(WINO_ALPHA):
                    ix = x0 + j
                    d = work + (i * WINO_ALPHA + j) * P
                    if 0 <= iy < geo.in_h and 0 <= ix < geo.in_w:
                        src = planes + (iy * geo.in_w + ix) * P
                        for p in range(P):
                            d[p] = src[p]
                    else:
                        for p in range(P):
                            d[p] = 0
            for j in range(WINO_ALPHA):  # the columns: B^T d
                bt_rows(work + j * P, WINO_ALPHA * P, work + WINO_POINTS * P + j * P,
                        WINO_ALPHA * P)
            for i in range(WINO_ALPHA):  # the rows: (B^T d) B
                bt_rows(work + (WINO_POINTS + i * WINO_ALPHA) * P, P,
                        v + i * WINO_ALPHA * ldv + t * ld_tile + g * P, ldv)
    for xi in range(WINO_POINTS):  # the tiles of the last group of 4 the call lacks
        for t in range(n_tiles, ceil_div(n_tiles, 4) * 4):
            fill_zero(v + xi * ldv + t * ld_tile, cn)


cdef inline void transform_output_tile(const floating* at, const floating* m, Py_ssize_t ld_xi,
                                       floating* work, floating* check) noexcept nogil:
    # work[36 * P + (i * 4 + j) * P + lane] = (A^T M A)[i, j] for the P lanes
    # of m[xi * ld_xi + lane]; work's first 36 * P values are overwritten.
    # check[lane] becomes NaN once a result is NaN or Inf: a NaN or Inf in
    # an input or weight, or a transform that overflowed, reaches every
    # result it touches (0 * Inf is NaN; apply_rows multiplies by G's zeros)
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef floating zero = 0
    cdef int i, j, p
    for j in range(WINO_ALPHA):  # the columns: A^T M
        apply_rows(at, WINO_TILE, m + j * ld_xi, WINO_ALPHA * ld_xi, work + j * P, WINO_ALPHA * P)
    for i in range(WINO_TILE):  # the rows: (A^T M) A
        apply_rows(at, WINO_TILE, work + i * WINO_ALPHA * P, P,
                   work + (WINO_POINTS + i * WINO_TILE) * P, P)
    for i in range(WINO_TILE * WINO_TILE):
        for p in range(P):
            check[p] += zero * work[(WINO_POINTS + i) * P + p]
