# The bias gradient: each channel of grad_output summed over images and positions.


cdef double channel_sum(const floating* src, Py_ssize_t n_runs, Py_ssize_t run_stride,
                        Py_ssize_t n) noexcept nogil:
    # The sum of n_runs runs of n values, run_stride apart: whole blocks of 4
    # vectors, then of one, in as many lanes (fixed trip counts gcc
    # vectorises, which it will not do for one running sum; the lanes carry
    # on from run to run, so that short runs such as 7x7 planes still fill
    # blocks), lanes and the rest added in double.
    cdef floating lanes[64]  # W <= 64
    cdef const floating* p
    cdef Py_ssize_t r, q, k
    cdef double total = 0
    cdef int V = CYCONV_VECTOR_BYTES // sizeof(floating)
    cdef int W = 4 * V
    for k in range(W):
        lanes[k] = 0
    for r in range(n_runs):
        p = src + r * run_stride
        for q in range(n // W):
            for k in range(W):
                lanes[k] += p[q * W + k]
        for q in range(n // W * W // V, n // V):
            for k in range(V):
                lanes[k] += p[q * V + k]
        for q in range(n // V * V, n):
            total += p[q]
    for k in range(W):
        total += lanes[k]
    return total

