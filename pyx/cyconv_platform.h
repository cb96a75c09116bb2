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

/* OpenMP is optional: without it the kernels run serially. */
#ifdef _OPENMP
#  include <omp.h>
#  define CYCONV_OPENMP 1
#else
#  define CYCONV_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif

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
