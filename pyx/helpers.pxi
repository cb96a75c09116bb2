# Small helpers every kernel uses: integer arithmetic on the geometry, the
# columns of a window that fall inside the input, and short runs of values
# moved, zeroed or transposed.


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline Py_ssize_t gcd(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    while b:
        a, b = b, a % b
    return a


cdef inline Py_ssize_t input_rows(const Geometry* geo, Py_ssize_t n_out) noexcept nogil:
    # rows of the zero-padded input that n_out consecutive output rows reach
    return (n_out - 1) * geo.stride_h + (geo.kernel_h - 1) * geo.dilation_h + 1


cdef inline Py_ssize_t input_cols(const Geometry* geo, Py_ssize_t n_out) noexcept nogil:
    # columns of the zero-padded input that n_out consecutive output columns reach
    return (n_out - 1) * geo.stride_w + (geo.kernel_w - 1) * geo.dilation_w + 1


cdef inline void valid_columns(Py_ssize_t iw0, Py_ssize_t stride, Py_ssize_t in_w,
                               Py_ssize_t length, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    # [lo, hi): the q in [0, length) with 0 <= iw0 + q * stride < in_w
    cdef Py_ssize_t a, b
    if stride == 1:  # no division on the common path
        a = max(0, -iw0)
        b = in_w - iw0
    else:
        a = 0 if iw0 >= 0 else ceil_div(-iw0, stride)
        b = ceil_div(in_w - iw0, stride) if in_w > iw0 else 0
    lo[0] = min(a, length)
    hi[0] = max(lo[0], min(b, length))


cdef void* work_alloc(Py_ssize_t* failed, bint aligned, size_t n_bytes) noexcept nogil:
    # A buffer of n_bytes, 64-byte aligned (freed by cyconv_aligned_free) or
    # not (freed by free).  NULL when there is no memory for it: *failed then
    # holds n_bytes, which the entry point names in its MemoryError.
    cdef void* p = cyconv_aligned_alloc(n_bytes) if aligned else malloc(max(n_bytes, <size_t>1))
    if p == NULL:
        failed[0] = <Py_ssize_t>n_bytes
    return p


cdef inline void prefetch_run(const void* start, Py_ssize_t n_bytes) noexcept nogil:
    # asks for every cache line of the n_bytes from start.  Inline: gcc deletes
    # calls of a function that does nothing but prefetch, as if it had no effect.
    cdef Py_ssize_t b
    for b in range(0, n_bytes + 63, 64):
        cyconv_prefetch(<const char*>start + b)


cdef inline void fill_zero(floating* dst, Py_ssize_t n) noexcept nogil:
    # runs here are a few to a few hundred elements: an inline loop, not a
    # memset call, whose overhead would dominate
    cdef Py_ssize_t q
    for q in range(n):
        dst[q] = 0


cdef inline void copy_run(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    move_run(dst, src, n, 0, False)


cdef inline void add_run(floating* dst, const floating* src, Py_ssize_t n,
                         floating value) noexcept nogil:
    # dst[q] = src[q] + value (dst and src apart)
    move_run(dst, src, n, value, True)


cdef inline void move_run(floating* dst, const floating* src, Py_ssize_t n, floating value,
                          bint add) noexcept nogil:
    # Runs of at least a vector move as whole vectors (a fixed trip count makes
    # each one a vector move), the last one ending at n and overlapping the one
    # before: cheaper than gcc's loop for any n, with its checks and tails.
    # add is a constant at each call site, so its test compiles away.
    cdef Py_ssize_t q, k
    cdef int V = CYCONV_VECTOR_BYTES // sizeof(floating)
    if n < V:
        for q in range(n):
            dst[q] = src[q] + value if add else src[q]
        return
    q = 0
    while True:
        if q > n - V:
            q = n - V
        for k in range(V):
            dst[q + k] = src[q + k] + value if add else src[q + k]
        q += V
        if q >= n:
            break


cdef bint all_finite(const floating* p, Py_ssize_t n) noexcept nogil:
    # whether none of the n values is NaN or +-Inf: x - x is 0 for finite x and
    # NaN otherwise, summed in lanes of a fixed count (which gcc vectorises)
    cdef floating lanes[16]
    cdef Py_ssize_t q, k
    for k in range(16):
        lanes[k] = 0
    for q in range(n // 16):
        for k in range(16):
            lanes[k] += p[q * 16 + k] - p[q * 16 + k]
    for q in range(n // 16 * 16, n):
        lanes[0] += p[q] - p[q]
    for k in range(1, 16):
        lanes[0] += lanes[k]
    return lanes[0] == 0


cdef void transpose_into(const floating* src, Py_ssize_t lds, Py_ssize_t n_rows,
                         Py_ssize_t n_cols, floating* dst, Py_ssize_t ldd) noexcept nogil:
    # dst[k * ldd + r] = src[r * lds + k] for r < n_rows, k < n_cols (ldd may
    # be negative): whole blocks of 8 x 8 floats (4 x 4 doubles) in vector
    # registers (they read nothing past a row's n_cols), the rest a value at a time
    cdef Py_ssize_t B = 8 if floating is float else 4
    cdef Py_ssize_t rows_b = n_rows - n_rows % B, cols_b = n_cols - n_cols % B
    cdef Py_ssize_t i, j, r, k
    for i in range(rows_b // B):
        for j in range(cols_b // B):
            if floating is float:
                cyconv_transpose_block_f32(src + i * B * lds + j * B, lds, B, NULL,
                                           dst + j * B * ldd + i * B, ldd)
            else:
                cyconv_transpose_block_f64(src + i * B * lds + j * B, lds, B, NULL,
                                           dst + j * B * ldd + i * B, ldd)
        for r in range(i * B, i * B + B):
            for k in range(cols_b, n_cols):
                dst[k * ldd + r] = src[r * lds + k]
    for r in range(rows_b, n_rows):
        for k in range(n_cols):
            dst[k * ldd + r] = src[r * lds + k]
