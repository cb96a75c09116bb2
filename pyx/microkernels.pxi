# The register-blocked micro-kernels: the loops where the multiply-adds happen.
#
# Names read mk_<broadcast axis>_<vector axis>_<input addressing>: the tile's
# values along the first axis are broadcast one at a time, those along the
# second fill vector registers, and the input rows are found either a fixed
# stride apart (rows) or through a table of offsets into a zero-padded band or
# plane (shifts).  Axes: oc (output channels), pos (output positions), tap
# ((input channel, kernel row, kernel column) rows of the weight).  Tile sizes
# come from cyconv_platform.h and differ per instruction set (docs/design.md).
#
# Each kernel keeps its accumulators in a local array with fixed trip counts,
# so that gcc holds it in vector registers.  Its reduction loop is a `while
# True` with the exit at the bottom: it runs at least once by construction
# (callers pass a length >= 1), and where the loop could be skipped gcc keeps
# the accumulators on the stack.  Every loop that can end the kernel has its
# own stores, for the same reason.


cdef inline void mk_oc_pos_rows(const floating* x, Py_ssize_t n_rows, Py_ssize_t ldx,
                                const floating* w, const floating* start, Py_ssize_t lds,
                                floating* c, Py_ssize_t ldc) noexcept nogil:
    # c[o, p] = start[o, p] + sum_r w[r, o] * x[r * ldx + p] for one OC_BLOCK x
    # POS_BLOCK tile (start is c to accumulate, or a tile of the bias: c is
    # then only written).  Per step: POS_BLOCK inputs (two vectors), OC_BLOCK
    # weights broadcast, 2 * OC_BLOCK FMAs.
    cdef floating acc[CYCONV_OC_BLOCK][CYCONV_POS_BLOCK_F32]
    cdef floating wo
    cdef const floating* xr
    cdef Py_ssize_t r
    cdef int o, p
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for o in range(CYCONV_OC_BLOCK):
        for p in range(P):
            acc[o][p] = start[o * lds + p]
    r = 0
    while True:
        xr = x + r * ldx
        for o in range(CYCONV_OC_BLOCK):
            wo = w[r * CYCONV_OC_BLOCK + o]
            for p in range(P):
                acc[o][p] += wo * xr[p]
        r += 1
        if r >= n_rows:
            break
    for o in range(CYCONV_OC_BLOCK):
        for p in range(P):
            c[o * ldc + p] = acc[o][p]


cdef inline void mk_oc_pos_shifts(const floating* x, const Py_ssize_t* offsets, Py_ssize_t n_rows,
                                  const floating* w, floating* c, Py_ssize_t ldc) noexcept nogil:
    # c[o, p] += sum_r w[r, o] * x[offsets[r] + p]: mk_oc_pos_rows with row r
    # of x at x + offsets[r], a tile of positions read straight from a
    # zero-padded band, tap by tap
    cdef floating acc[CYCONV_OC_BLOCK][CYCONV_POS_BLOCK_F32]
    cdef floating wo
    cdef const floating* xr
    cdef Py_ssize_t r
    cdef int o, p
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for o in range(CYCONV_OC_BLOCK):
        for p in range(P):
            acc[o][p] = c[o * ldc + p]
    r = 0
    while True:
        xr = x + offsets[r]
        for o in range(CYCONV_OC_BLOCK):
            wo = w[r * CYCONV_OC_BLOCK + o]
            for p in range(P):
                acc[o][p] += wo * xr[p]
        r += 1
        if r >= n_rows:
            break
    for o in range(CYCONV_OC_BLOCK):
        for p in range(P):
            c[o * ldc + p] = acc[o][p]


cdef inline void mk_pos_oc_shifts(const floating* band, const Py_ssize_t* offsets,
                                  Py_ssize_t depth, const Py_ssize_t* positions, bint run,
                                  const floating* w, floating* tile, bint add) noexcept nogil:
    # tile[p][v] (+)= sum_r w[r][v] * band[offsets[r] + positions[p]] for
    # BAND_POSITIONS positions x LANES output channels: per step two weight
    # vectors, one broadcast per position, 2 * BAND_POSITIONS FMAs.  One flat
    # loop over r (the offsets table): gcc schedules nested runtime loops
    # around this block much worse.  A run (positions[p] = positions[0] + p)
    # reads at constant offsets from one address; other tiles keep a pointer
    # per position in a register (one more register each).
    cdef floating acc[CYCONV_BAND_POSITIONS][CYCONV_BAND_LANES_F32]
    cdef const floating* xp[CYCONV_BAND_POSITIONS]
    cdef floating xv
    cdef const floating* xr
    cdef const floating* wr
    cdef Py_ssize_t r, o
    cdef int p, v
    cdef int L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    for p in range(CYCONV_BAND_POSITIONS):
        xp[p] = band + positions[p]
        for v in range(L):
            acc[p][v] = -0.0  # the sum of no terms: -0.0 + x is x, -0.0 included
    r = 0
    if run:
        while True:
            xr = xp[0] + offsets[r]
            wr = w + r * L
            for p in range(CYCONV_BAND_POSITIONS):
                xv = xr[p]
                for v in range(L):
                    acc[p][v] += xv * wr[v]
            r += 1
            if r >= depth:
                break
        if add:
            for p in range(CYCONV_BAND_POSITIONS):
                for v in range(L):
                    tile[p * L + v] += acc[p][v]
        else:
            for p in range(CYCONV_BAND_POSITIONS):
                for v in range(L):
                    tile[p * L + v] = acc[p][v]
        return
    else:
        while True:
            o = offsets[r]
            wr = w + r * L
            for p in range(CYCONV_BAND_POSITIONS):
                xv = xp[p][o]
                for v in range(L):
                    acc[p][v] += xv * wr[v]
            r += 1
            if r >= depth:
                break
        if add:
            for p in range(CYCONV_BAND_POSITIONS):
                for v in range(L):
                    tile[p * L + v] += acc[p][v]
        else:
            for p in range(CYCONV_BAND_POSITIONS):
                for v in range(L):
                    tile[p * L + v] = acc[p][v]


cdef inline void mk_pos4_oc_rows(const floating* x, Py_ssize_t ldx, Py_ssize_t depth,
                                 const floating* w, floating* tile, bint add) noexcept nogil:
    # tile[p][v] (+)= sum_r w[r][v] * x[r * ldx + p] for 4 positions x LANES
    # output channels: mk_pos_oc_shifts's run form for 4 positions, where
    # BAND_POSITIONS would compute 2 that nobody reads (8 accumulators: just
    # enough to keep two FMA pipes of latency 4 busy)
    cdef floating acc[4][CYCONV_BAND_LANES_F32]
    cdef floating xv
    cdef const floating* xr
    cdef const floating* wr
    cdef Py_ssize_t r
    cdef int p, v
    cdef int L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    for p in range(4):
        for v in range(L):
            acc[p][v] = -0.0  # the sum of no terms: -0.0 + x is x, -0.0 included
    for r in range(depth):
        xr = x + r * ldx
        wr = w + r * L
        for p in range(4):
            xv = xr[p]
            for v in range(L):
                acc[p][v] += xv * wr[v]
    if add:
        for p in range(4):
            for v in range(L):
                tile[p * L + v] += acc[p][v]
    else:
        for p in range(4):
            for v in range(L):
                tile[p * L + v] = acc[p][v]


cdef inline void mk_winograd_row4(const floating* t, Py_ssize_t depth, const floating* x,
                                  Py_ssize_t ldx, Py_ssize_t ld_x_pos, floating* tile,
                                  Py_ssize_t ld_xi, Py_ssize_t ld_pos, bint add) noexcept nogil:
    # tile[l * ld_xi + p * ld_pos + v] (+)= sum_r u_r[l][v] * x[l * ldx + p * ld_x_pos + r]
    # for the 6 points l of a row of the transformed tile, 4 positions and the
    # lanes of one vector (weight_lanes output channels), where u_r = t_r G^T
    # and t_r = t + r * 18 * 2 OC_BLOCK holds the row of G w (3 columns, 2
    # OC_BLOCK apart): the last step of the weights' transform done where its
    # values are used (FORWARD_WINOGRAD's rows form).  24 accumulators: for
    # 32 vector registers (AVX-512) only.
    cdef floating acc[WINO_ALPHA][4][2 * CYCONV_OC_BLOCK]
    cdef floating u[WINO_ALPHA][2 * CYCONV_OC_BLOCK]
    cdef floating xv
    cdef const floating* tr
    cdef const floating* xr
    cdef Py_ssize_t r = 0
    cdef Py_ssize_t ldt = WINO_ALPHA * 3 * 2 * CYCONV_OC_BLOCK
    cdef int OB2 = 2 * CYCONV_OC_BLOCK
    cdef int VL = weight_lanes(tile)
    cdef int l, p, v
    for l in range(WINO_ALPHA):
        for p in range(4):
            for v in range(VL):
                acc[l][p][v] = -0.0  # the sum of no terms: -0.0 + x is x, -0.0 included
    while True:
        tr = t + r * ldt
        xr = x + r
        for v in range(VL):  # u = t G^T
            g_apply(tr[v], tr[OB2 + v], tr[2 * OB2 + v], &u[0][v], 2 * CYCONV_OC_BLOCK)
        for l in range(WINO_ALPHA):
            for p in range(4):
                xv = xr[l * ldx + p * ld_x_pos]
                for v in range(VL):
                    acc[l][p][v] += xv * u[l][v]
        r += 1
        if r == depth:
            break
    if add:
        for l in range(WINO_ALPHA):
            for p in range(4):
                for v in range(VL):
                    tile[l * ld_xi + p * ld_pos + v] += acc[l][p][v]
    else:
        for l in range(WINO_ALPHA):
            for p in range(4):
                for v in range(VL):
                    tile[l * ld_xi + p * ld_pos + v] = acc[l][p][v]


cdef inline void mk_tap_oc_shifts(const floating* band, const Py_ssize_t* offsets, Py_ssize_t n_v,
                                  const floating* go_t, floating* acc) noexcept nogil:
    # acc[t][l] += sum over positions v of band[offsets[t] + v] * go_t[v][l] for
    # BAND_POSITIONS taps x LANES output channels: mk_pos_oc_shifts's block
    # with taps for positions and positions for the reduction (the weight
    # gradient)
    cdef floating a[CYCONV_BAND_POSITIONS][CYCONV_BAND_LANES_F32]
    cdef const floating* gv
    cdef floating xv
    cdef Py_ssize_t v
    cdef int t, l
    cdef int L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    for t in range(CYCONV_BAND_POSITIONS):
        for l in range(L):
            a[t][l] = 0
    v = 0
    while True:
        gv = go_t + v * L
        for t in range(CYCONV_BAND_POSITIONS):
            xv = band[offsets[t] + v]
            for l in range(L):
                a[t][l] += xv * gv[l]
        v += 1
        if v >= n_v:
            break
    for t in range(CYCONV_BAND_POSITIONS):
        for l in range(L):
            acc[t * L + l] += a[t][l]


cdef inline void mk_1_pos_shifts(const floating* src, const Py_ssize_t* offsets, Py_ssize_t depth,
                                 const floating* w, floating* dst, bint add) noexcept nogil:
    # dst[p] (+)= sum_r w[r] * src[offsets[r] + p] for one output channel and
    # PLANE_CHUNK flat positions: eight vectors of accumulators, enough
    # independent FMA chains to cover their latency
    cdef floating acc[CYCONV_PLANE_CHUNK_F32]
    cdef const floating* xr
    cdef floating wr
    cdef Py_ssize_t r
    cdef int p
    cdef int C = CYCONV_PLANE_CHUNK_F32 if floating is float else CYCONV_PLANE_CHUNK_F64
    for p in range(C):
        acc[p] = -0.0  # the sum of no terms: -0.0 + x is x, -0.0 included
    r = 0
    while True:
        xr = src + offsets[r]
        wr = w[r]
        for p in range(C):
            acc[p] += wr * xr[p]
        r += 1
        if r >= depth:
            break
    if add:
        for p in range(C):
            dst[p] += acc[p]
    else:
        for p in range(C):
            dst[p] = acc[p]


cdef void mk_tap4_dot_shifts(const floating* a, const floating* b, const Py_ssize_t* shifts,
                             Py_ssize_t n, floating* sums) noexcept nogil:
    # sums[k] = sum_q a[q] * b[shifts[k] + q] for 4 shifts (taps) at once: each
    # a is loaded once for 4 products, and 4 x 16 lane accumulators are
    # independent chains (gcc vectorises the fixed inner loops; a plain
    # reduction it would not, without -ffast-math)
    cdef floating lanes[4][16]
    cdef Py_ssize_t q = 0
    cdef int k, v
    cdef const floating* b0 = b + shifts[0]
    cdef const floating* b1 = b + shifts[1]
    cdef const floating* b2 = b + shifts[2]
    cdef const floating* b3 = b + shifts[3]
    for k in range(4):
        for v in range(16):
            lanes[k][v] = 0
    while q + 16 <= n:
        for v in range(16):
            lanes[0][v] += a[q + v] * b0[q + v]
            lanes[1][v] += a[q + v] * b1[q + v]
            lanes[2][v] += a[q + v] * b2[q + v]
            lanes[3][v] += a[q + v] * b3[q + v]
        q += 16
    for k in range(4):
        sums[k] = 0
        for v in range(16):
            sums[k] += lanes[k][v]
    while q < n:
        sums[0] += a[q] * b0[q]
        sums[1] += a[q] * b1[q]
        sums[2] += a[q] * b2[q]
        sums[3] += a[q] * b3[q]
        q += 1
