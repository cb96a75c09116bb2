# The compile target's constants and helpers, from cyconv_platform.h: vector
# width and register-block sizes, cache-line prefetch, 8x8 / 4x4 transposes in
# vector registers, aligned buffers, OpenMP queries and the CPU's x86-64 level.

cdef extern from "cyconv_platform.h" nogil:
    enum:
        CYCONV_VECTOR_BYTES
        CYCONV_OC_BLOCK
        CYCONV_POS_BLOCK_F32
        CYCONV_POS_BLOCK_F64
        CYCONV_BAND_POSITIONS
        CYCONV_BAND_LANES_F32
        CYCONV_BAND_LANES_F64
        CYCONV_PLANE_CHUNK_F32
        CYCONV_PLANE_CHUNK_F64
        CYCONV_OPENMP
    int omp_get_max_threads()
    int omp_get_num_threads()
    int omp_get_num_procs()
    int cyconv_release_threads()
    int cyconv_cpu_supports_level(int level)
    void cyconv_prefetch(const void* p)
    void cyconv_transpose_block_f32(const float* src, Py_ssize_t lds, Py_ssize_t n_cols,
                                    const float* bias, float* dst, Py_ssize_t ldd)
    void cyconv_transpose_block_f64(const double* src, Py_ssize_t lds, Py_ssize_t n_cols,
                                    const double* bias, double* dst, Py_ssize_t ldd)
    void* cyconv_aligned_alloc(size_t n)
    void cyconv_aligned_free(void* p)
