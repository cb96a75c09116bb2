/* Facts about the compile target that the Cython kernels need as constants.
 *
 * The register block of the micro-kernel is OC_BLOCK output channels x
 * POS_BLOCK output positions; POS_BLOCK is two vector registers of the target,
 * so the OC_BLOCK x 2 accumulators fill 16 registers.  AVX2 and SSE have only
 * 16 vector registers, so they get 6 channels (12 accumulators) to leave room
 * for the input loads and the weight broadcast. */
#ifndef CYCONV_PLATFORM_H
#define CYCONV_PLATFORM_H

#if defined(__AVX512F__)
#  define CYCONV_VECTOR_BYTES 64
#  define CYCONV_OC_BLOCK 8
#elif defined(__AVX2__)
#  define CYCONV_VECTOR_BYTES 32
#  define CYCONV_OC_BLOCK 6
#else
#  define CYCONV_VECTOR_BYTES 16
#  define CYCONV_OC_BLOCK 6
#endif
#define CYCONV_POS_BLOCK_F32 (2 * CYCONV_VECTOR_BYTES / 4)
#define CYCONV_POS_BLOCK_F64 (2 * CYCONV_VECTOR_BYTES / 8)
/* The row-band kernel's block: BAND_POSITIONS output positions (broadcast)
 * x two vectors of output channels: 12 accumulators, 2 weight vectors and a
 * broadcast fit AVX2's 16 registers. */
#define CYCONV_BAND_POSITIONS 6
#define CYCONV_BAND_LANES_F32 (2 * CYCONV_VECTOR_BYTES / 4)
#define CYCONV_BAND_LANES_F64 (2 * CYCONV_VECTOR_BYTES / 8)

/* The plane kernel's chunk of flat positions: eight vectors of accumulators. */
#define CYCONV_PLANE_CHUNK_F32 (8 * CYCONV_VECTOR_BYTES / 4)
#define CYCONV_PLANE_CHUNK_F64 (8 * CYCONV_VECTOR_BYTES / 8)

/* A hint to fetch the cache line holding p early (nothing where unsupported). */
#if defined(__GNUC__) || defined(__clang__)
#  define cyconv_prefetch(p) __builtin_prefetch(p)
#else
#  define cyconv_prefetch(p) ((void)(p))
#endif

/* dst[k * ldd + r] = src[r * lds + k] + bias[k] (bias NULL: + 0) for r < 8
 * (4 doubles) and k < min(n_cols, 8 (4)): a block of [position][channel]
 * accumulators stored into NCHW planes, or of weights packed, transposed in
 * vector registers (GCC / Clang vector extensions, lowered to the target's
 * shuffles).  A src row's 8 (4) values must be readable even where n_cols is
 * less. */
#include <stddef.h>
#if defined(__GNUC__) || defined(__clang__)
/* unaligned vectors of 8 floats / 4 doubles, and their shuffle masks */
typedef float cyconv_f32x8 __attribute__((vector_size(32), aligned(4)));
typedef int cyconv_i32x8 __attribute__((vector_size(32)));
typedef double cyconv_f64x4 __attribute__((vector_size(32), aligned(8)));
typedef long long cyconv_i64x4 __attribute__((vector_size(32)));
#  if defined(__clang__)
#    define CYCONV_SHUFFLE8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#    define CYCONV_SHUFFLE4(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#  else
#    define CYCONV_SHUFFLE8(a, b, ...) __builtin_shuffle(a, b, (cyconv_i32x8){__VA_ARGS__})
#    define CYCONV_SHUFFLE4(a, b, ...) __builtin_shuffle(a, b, (cyconv_i64x4){__VA_ARGS__})
#  endif
#  define CYCONV_ROW8(i) (*(const cyconv_f32x8 *)(src + (i) * lds))
#  define CYCONV_ROW4(i) (*(const cyconv_f64x4 *)(src + (i) * lds))

static inline __attribute__((always_inline)) void cyconv_transpose_block_f32(
        const float *src, ptrdiff_t lds, ptrdiff_t n_cols, const float *bias,
        float *dst, ptrdiff_t ldd) {
    /* rows interleaved in pairs (t), then pairs of pairs (u), then halves */
    cyconv_f32x8 t0 = CYCONV_SHUFFLE8(CYCONV_ROW8(0), CYCONV_ROW8(1), 0, 8, 1, 9, 4, 12, 5, 13);
    cyconv_f32x8 t1 = CYCONV_SHUFFLE8(CYCONV_ROW8(0), CYCONV_ROW8(1), 2, 10, 3, 11, 6, 14, 7, 15);
    cyconv_f32x8 t2 = CYCONV_SHUFFLE8(CYCONV_ROW8(2), CYCONV_ROW8(3), 0, 8, 1, 9, 4, 12, 5, 13);
    cyconv_f32x8 t3 = CYCONV_SHUFFLE8(CYCONV_ROW8(2), CYCONV_ROW8(3), 2, 10, 3, 11, 6, 14, 7, 15);
    cyconv_f32x8 t4 = CYCONV_SHUFFLE8(CYCONV_ROW8(4), CYCONV_ROW8(5), 0, 8, 1, 9, 4, 12, 5, 13);
    cyconv_f32x8 t5 = CYCONV_SHUFFLE8(CYCONV_ROW8(4), CYCONV_ROW8(5), 2, 10, 3, 11, 6, 14, 7, 15);
    cyconv_f32x8 t6 = CYCONV_SHUFFLE8(CYCONV_ROW8(6), CYCONV_ROW8(7), 0, 8, 1, 9, 4, 12, 5, 13);
    cyconv_f32x8 t7 = CYCONV_SHUFFLE8(CYCONV_ROW8(6), CYCONV_ROW8(7), 2, 10, 3, 11, 6, 14, 7, 15);
    cyconv_f32x8 u[8], col;
    int k;
    u[0] = CYCONV_SHUFFLE8(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
    u[1] = CYCONV_SHUFFLE8(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    u[2] = CYCONV_SHUFFLE8(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
    u[3] = CYCONV_SHUFFLE8(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    u[4] = CYCONV_SHUFFLE8(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
    u[5] = CYCONV_SHUFFLE8(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    u[6] = CYCONV_SHUFFLE8(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
    u[7] = CYCONV_SHUFFLE8(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    for (k = 0; k < 8 && k < n_cols; k++) {  /* column k */
        col = (k < 4 ? CYCONV_SHUFFLE8(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11)
                     : CYCONV_SHUFFLE8(u[k - 4], u[k], 4, 5, 6, 7, 12, 13, 14, 15));
        *(cyconv_f32x8 *)(dst + k * ldd) = bias ? col + bias[k] : col;
    }
}

static inline __attribute__((always_inline)) void cyconv_transpose_block_f64(
        const double *src, ptrdiff_t lds, ptrdiff_t n_cols, const double *bias,
        double *dst, ptrdiff_t ldd) {
    cyconv_f64x4 t[4], col;
    int k;
    t[0] = CYCONV_SHUFFLE4(CYCONV_ROW4(0), CYCONV_ROW4(1), 0, 4, 2, 6);
    t[1] = CYCONV_SHUFFLE4(CYCONV_ROW4(0), CYCONV_ROW4(1), 1, 5, 3, 7);
    t[2] = CYCONV_SHUFFLE4(CYCONV_ROW4(2), CYCONV_ROW4(3), 0, 4, 2, 6);
    t[3] = CYCONV_SHUFFLE4(CYCONV_ROW4(2), CYCONV_ROW4(3), 1, 5, 3, 7);
    for (k = 0; k < 4 && k < n_cols; k++) {
        col = (k < 2 ? CYCONV_SHUFFLE4(t[k], t[k + 2], 0, 1, 4, 5)
                     : CYCONV_SHUFFLE4(t[k - 2], t[k], 2, 3, 6, 7));
        *(cyconv_f64x4 *)(dst + k * ldd) = bias ? col + bias[k] : col;
    }
}
#else
#  define CYCONV_TRANSPOSE_BLOCK(NAME, T, N)                                                 \
    static inline void cyconv_transpose_block_##NAME(const T *src, ptrdiff_t lds, ptrdiff_t n_cols, \
            const T *bias, T *dst, ptrdiff_t ldd) {                                         \
        int r, k;                                                                           \
        for (k = 0; k < N && k < n_cols; k++)                                               \
            for (r = 0; r < N; r++)                                                         \
                dst[k * ldd + r] = src[r * lds + k] + (bias ? bias[k] : 0);                 \
    }
CYCONV_TRANSPOSE_BLOCK(f32, float, 8)
CYCONV_TRANSPOSE_BLOCK(f64, double, 4)
#endif

/* OpenMP is optional: without it the kernels run serially. */
#ifdef _OPENMP
#  include <omp.h>
#  define CYCONV_OPENMP 1
#else
#  define CYCONV_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_procs(void) { return 1; }
#endif

/* Ends the calling thread's pool of OpenMP threads (the next parallel region
 * starts it again): before fork(), as a child cannot use the parent's
 * threads and would wait for them forever.  OpenMP 5's omp_pause_resource_all,
 * which libgomp (gcc 9 and newer) and LLVM's libomp provide; 0 when it
 * released them, -1 when it could not. */
static inline int cyconv_release_threads(void) {
#if defined(_OPENMP) && ((defined(__clang__) && __clang_major__ >= 10) || \
                         (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 9))
    return omp_pause_resource_all(omp_pause_hard);
#elif defined(_OPENMP)
    return -1;
#else
    return 0;
#endif
}

/* 64-byte aligned buffers, so a register tile starts on a cache line. */
#include <stdlib.h>
#ifdef _MSC_VER
#  include <malloc.h>
static inline void *cyconv_aligned_alloc(size_t n) { return _aligned_malloc(n ? n : 1, 64); }
static inline void cyconv_aligned_free(void *p) { _aligned_free(p); }
#else
static inline void *cyconv_aligned_alloc(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, 64, n ? n : 1) == 0 ? p : NULL;
}
static inline void cyconv_aligned_free(void *p) { free(p); }
#endif

/* Which x86-64 micro-architecture levels this CPU (and its OS) can run.
 * libgcc's / compiler-rt's CPU model also checks that the OS saves the
 * AVX and AVX-512 register state (XGETBV), not only the CPUID bits. */
static int cyconv_cpu_supports_level(int level) {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (level <= 1) return 1;
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
          __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")))
        return 0;
    if (level == 3) return 1;
    if (level == 4)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    return 0;
#else
    return level <= 1;
#endif
}

#endif
