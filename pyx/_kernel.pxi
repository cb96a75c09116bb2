# The conv2d kernels, compiled once per instruction set (see _kernel_*.pyx).
#
# Everything here trusts its arguments: cyconv/_validation.py has checked the
# shapes, dtypes and parameters, and hands over C-contiguous typed buffers.
#
# Paths, chosen per call in forward(): the plane kernel for depthwise and
# other few-channel groups; the row-band kernel for enough output channels per
# group; the narrow-band kernel for stride 1 with fewer; unpadded stride-1
# 1x1 layers as a matrix product on packed tiles of x; and, for everything
# else, the gathered kernel described here.  All but the plane kernel read
# the weights packed in blocks of output channels (block_for says which);
# forward() packs them per call, or takes them packed beforehand
# (pack_weight, for cyconv.FrozenConv2d).
#
# Gathered kernel: direct convolution as a blocked matrix product without an
# im2col buffer.  Output positions are flattened over (image, row, column) and cut into
# chunks of a few register tiles.  For each chunk a thread gathers the input
# values that chunk needs, for a slice of input channels, into a small buffer
# laid out [channel, tap][position] (zero padding, stride and dilation are
# resolved there), then runs a register-blocked micro-kernel: a tile of
# OC_BLOCK output channels x POS_BLOCK positions accumulated in registers,
# reading weights repacked as [group][channel block][channel, tap][OC_BLOCK].

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
import numpy as np

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
    int cyconv_cpu_supports_level(int level)
    void cyconv_prefetch(const void* p)
    void cyconv_transpose_block_f32(const float* src, Py_ssize_t lds, Py_ssize_t n_cols,
                                    const float* bias, float* dst, Py_ssize_t ldd)
    void cyconv_transpose_block_f64(const double* src, Py_ssize_t lds, Py_ssize_t n_cols,
                                    const double* bias, double* dst, Py_ssize_t ldd)
    void* cyconv_aligned_alloc(size_t n)
    void cyconv_aligned_free(void* p)

# Tiling targets (elements, not bytes): a chunk is up to TILES_PER_CHUNK
# register tiles wide; a gathered buffer holds up to about REDUCTION_CHUNK
# (channel, tap) rows, so it stays in L2 while each weight block
# (REDUCTION_CHUNK x OC_BLOCK) stays in L1; a work item covers up to
# OC_PER_ITEM output channels.
cdef enum:
    TILES_PER_CHUNK = 4
    REDUCTION_CHUNK = 256
    OC_PER_ITEM = 256
    # enough work items per thread to even out the last, partial ones
    ITEMS_PER_THREAD = 4
    # reduction steps (input channels x taps) per band of the row-band kernel
    BAND_DEPTH = 576
    # position tiles per unit of the row-band kernel with wide rows, about
    WIDE_TILES = 32
    # position tiles that take the channel blocks in turn (a block's weights
    # stay cached across them); at most this many, weights outweigh inputs
    FEW_TILES = 8
    # bytes of bands (and of accumulators) an item of several images holds,
    # and the weights (per group) that make it worth it
    BAND_BYTES = 262144
    MANY_WEIGHT_BYTES = 4194304
    # bytes of zero-padded input planes the plane kernel holds per thread
    PLANE_BYTES = 262144
    # bytes of a whole zero-padded input the row-band kernel pads once per
    # call instead of loading each unit's bands per work item (with AVX-512,
    # 512 channels of 7x7 at batch 8 on two threads ran 1.09x faster padded
    # whole, and no layer slower; with AVX2 on Zen 4, 64 channels of 28x28
    # measured level to 0.94x, at a 192 KiB limit)
    PADDED_INPUT_BYTES = 2097152
    # multiply-adds a forward call needs per thread it starts: waking a second
    # thread costs more than it saves on smaller calls (1 -> 32 channels on
    # 8x8, 18k: 12 us on one thread, 18 us on two)
    MIN_MACS_PER_THREAD = 65536
    # reduction rows that pack_weight_rows packs for one group of 8 (float64:
    # 4) output channels before the next group: fewer rows read at once
    PACK_CHUNK = 64
    # input channels ahead whose rows load_band asks for
    LOAD_AHEAD = 8
    # runs of output channels ahead whose weight rows pack_spread_blocks asks for
    PACK_AHEAD = 2


cdef struct Geometry:
    Py_ssize_t batch, in_channels, in_h, in_w
    Py_ssize_t out_channels, kernel_h, kernel_w, out_h, out_w, groups
    Py_ssize_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w


cdef struct Tiling:
    Py_ssize_t chunk_width, n_chunks
    Py_ssize_t n_oc_blocks, blocks_per_item, n_oc_items
    Py_ssize_t channels_per_gather, n_items


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef inline Py_ssize_t input_rows(const Geometry* g, Py_ssize_t n_out) noexcept nogil:
    # rows of the zero-padded input that n_out consecutive output rows reach
    return (n_out - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1


cdef inline Py_ssize_t input_cols(const Geometry* g, Py_ssize_t n_out) noexcept nogil:
    # columns of the zero-padded input that n_out consecutive output columns reach
    return (n_out - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1


cdef inline Py_ssize_t gcd(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    while b:
        a, b = b, a % b
    return a


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


cdef inline void micro_kernel(const floating* x, Py_ssize_t n_rows, Py_ssize_t ldx,
                              const floating* w, const floating* start, Py_ssize_t lds,
                              floating* c, Py_ssize_t ldc) noexcept nogil:
    # c[o, p] = start[o, p] + sum_r w[r, o] * x[r * ldx + p] for one OC_BLOCK x
    # POS_BLOCK tile (start is c to accumulate, or a tile of the bias: c is
    # then only written).  Fixed trip counts inside let gcc keep acc in
    # registers: per step it loads POS_BLOCK inputs (two vectors), broadcasts
    # OC_BLOCK weights and issues 2 * OC_BLOCK FMAs.
    cdef floating acc[CYCONV_OC_BLOCK][CYCONV_POS_BLOCK_F32]
    cdef floating wo
    cdef const floating* xr
    cdef Py_ssize_t r
    cdef int o, p
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for o in range(CYCONV_OC_BLOCK):
        for p in range(P):
            acc[o][p] = start[o * lds + p]
    # a loop with no way around it (n_rows >= 1): where the loop could be
    # skipped gcc kept acc on the stack too, a tenth of short reductions
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


cdef inline void prefetch_run(const void* start, Py_ssize_t n_bytes) noexcept nogil:
    # asks for every cache line of the n_bytes from start
    cdef Py_ssize_t b
    for b in range(0, n_bytes + 63, 64):
        cyconv_prefetch(<const char*>start + b)


cdef inline void fill_zero(floating* dst, Py_ssize_t n) noexcept nogil:
    # runs here are a few to a few hundred elements: an inline loop beats a
    # memset/memcpy call, whose overhead dominated 1x1 layers
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
    # runs of at least a vector: whole vectors (a fixed trip count makes each
    # one vector move), the last one ending at n and overlapping the one
    # before; gcc's loop for any n spends more on its checks and tails (add
    # is a constant at each call site, so the test goes)
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


cdef void gather(const floating* x, const Geometry* g, Py_ssize_t group,
                 Py_ssize_t ic0, Py_ssize_t n_ic,
                 const Py_ssize_t* segments, Py_ssize_t n_segments,
                 const floating** in_place, floating* buf) noexcept nogil:
    # buf[tile][r][lane], r = (c * kh + i) * kw + j: the zero-padded input that
    # output position tile * pos_block + lane sees through tap (i, j) of input
    # channel ic0 + c.  Each tile is contiguous, so the micro-kernel streams it.
    # Positions come as segments (image, output row, first column, first
    # position, length) that never cross a tile.  Tiles read in place
    # (in_place[tile] != NULL) are skipped.  Channel and kernel row are the
    # outer loops so that each input row is read front to back.
    cdef Py_ssize_t s, c, i, j, q, lo, hi, n, oh, ow0, p0, length, ih, iw0
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t rows = n_ic * g.kernel_h * g.kernel_w
    # a compile-time constant, so p0 // pos_block is a shift, not an idiv
    cdef Py_ssize_t pos_block = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t reach_w = (g.kernel_w - 1) * g.dilation_w
    cdef const floating* row
    cdef floating* dst
    for c in range(n_ic):
        for i in range(g.kernel_h):
            for s in range(n_segments):
                n = segments[5 * s]
                oh = segments[5 * s + 1]
                ow0 = segments[5 * s + 2]
                p0 = segments[5 * s + 3]
                length = segments[5 * s + 4]
                if in_place[p0 // pos_block] != NULL:
                    continue
                dst = (buf + (p0 // pos_block) * rows * pos_block + p0 % pos_block
                       + (c * g.kernel_h + i) * g.kernel_w * pos_block)
                ih = oh * g.stride_h + i * g.dilation_h - g.pad_top
                if ih < 0 or ih >= g.in_h:
                    for j in range(g.kernel_w):
                        fill_zero(dst + j * pos_block, length)
                    continue
                row = x + ((n * g.in_channels + group * cin_g + ic0 + c) * g.in_h + ih) * g.in_w
                iw0 = ow0 * g.stride_w - g.pad_left
                if iw0 >= 0 and iw0 + (length - 1) * g.stride_w + reach_w < g.in_w:
                    # every tap inside the row: no bounds, no zeros
                    for j in range(g.kernel_w):
                        if g.stride_w == 1:
                            copy_run(dst + j * pos_block, row + iw0 + j * g.dilation_w, length)
                        else:
                            for q in range(length):
                                dst[j * pos_block + q] = row[iw0 + j * g.dilation_w + q * g.stride_w]
                    continue
                for j in range(g.kernel_w):
                    valid_columns(iw0 + j * g.dilation_w, g.stride_w, g.in_w, length, &lo, &hi)
                    fill_zero(dst + j * pos_block, lo)
                    for q in range(lo, hi):
                        dst[j * pos_block + q] = row[iw0 + j * g.dilation_w + q * g.stride_w]
                    fill_zero(dst + j * pos_block + hi, length - hi)


cdef Py_ssize_t chunk_segments(const Geometry* g, Py_ssize_t q0, Py_ssize_t n_pos,
                               Py_ssize_t pos_block, Py_ssize_t* segments) noexcept nogil:
    # Split flat positions q0 .. q0 + n_pos - 1 into runs within one output
    # row and one register tile.
    cdef Py_ssize_t n_seg = 0, p = 0, q, n, rest, oh, ow, length
    cdef Py_ssize_t plane = g.out_h * g.out_w
    while p < n_pos:
        q = q0 + p
        n = q // plane
        rest = q - n * plane
        oh = rest // g.out_w
        ow = rest - oh * g.out_w
        length = min(min(g.out_w - ow, n_pos - p), pos_block - p % pos_block)
        segments[5 * n_seg] = n
        segments[5 * n_seg + 1] = oh
        segments[5 * n_seg + 2] = ow
        segments[5 * n_seg + 3] = p
        segments[5 * n_seg + 4] = length
        n_seg += 1
        p += length
    return n_seg


cdef void pack_weight_rows(const floating* weight, const Geometry* g, Py_ssize_t group,
                           Py_ssize_t block, Py_ssize_t block_size, Py_ssize_t r0, Py_ssize_t r1,
                           floating* dst) noexcept nogil:
    # dst[r - r0][o] = weight[group * cout_g + block * block_size + o][r] for
    # the rows r0 <= r < r1, zero for the channels past cout_g that fill the
    # last block.  Written in order, PACK_CHUNK rows at a time for each group
    # of T channels (T read streams; all block_size at once ran the batch-1
    # 512-channel layer 0.96-0.98x as fast): writing each row of weight across
    # the block, a store per cache line, cost as much as the convolution of a
    # 512-channel 7x7 layer.  Whole blocks go 8 x 8
    # floats (4 x 4 doubles) at a time through vector transposes: a value at a
    # time, the packing took a quarter of a batch-1 512-channel layer.
    cdef Py_ssize_t T = 8 if floating is float else 4
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t depth = (g.in_channels // g.groups) * g.kernel_h * g.kernel_w
    cdef Py_ssize_t valid = min(block_size, cout_g - block * block_size)
    cdef const floating* src = weight + (group * cout_g + block * block_size) * depth
    cdef Py_ssize_t o, r, k, i, j, c0, r_tail = r0
    if valid == block_size and block_size % T == 0:
        r_tail = r0 + (r1 - r0) // T * T
        for j in range(ceil_div(r_tail - r0, PACK_CHUNK)):
            c0 = r0 + j * PACK_CHUNK
            for i in range(block_size // T):
                for k in range((min(c0 + PACK_CHUNK, r_tail) - c0) // T):
                    r = c0 + k * T
                    for o in range(T):  # the rows stream from memory (L3): ask early
                        cyconv_prefetch(src + (i * T + o) * depth + r + PACK_CHUNK)
                    if floating is float:
                        cyconv_transpose_block_f32(src + i * T * depth + r, depth, T, NULL,
                                                   dst + (r - r0) * block_size + i * T, block_size)
                    else:
                        cyconv_transpose_block_f64(src + i * T * depth + r, depth, T, NULL,
                                                   dst + (r - r0) * block_size + i * T, block_size)
    for r in range(r_tail, r1):
        for o in range(valid):
            dst[(r - r0) * block_size + o] = src[o * depth + r]
        for o in range(valid, block_size):
            dst[(r - r0) * block_size + o] = 0


cdef void pack_weight_block(const floating* weight, const Geometry* g,
                            Py_ssize_t group, Py_ssize_t block, Py_ssize_t block_size,
                            floating* packed) noexcept nogil:
    # packed[group][block][r][o]: pack_weight_rows of every row
    cdef Py_ssize_t depth = (g.in_channels // g.groups) * g.kernel_h * g.kernel_w
    cdef Py_ssize_t n_blocks = ceil_div(g.out_channels // g.groups, block_size)
    pack_weight_rows(weight, g, group, block, block_size, 0, depth,
                     packed + (group * n_blocks + block) * depth * block_size)


cdef void pack_flipped_block(const floating* weight, Py_ssize_t c_out, Py_ssize_t c_in_g,
                             Py_ssize_t taps, Py_ssize_t groups, Py_ssize_t group, Py_ssize_t block,
                             Py_ssize_t block_size, floating* packed) noexcept nogil:
    # pack_weight_block of the weight that computes the input gradient (the
    # flipped (C_in, C_out / groups, kh, kw) transpose of weight, see
    # flip_transpose_weight), straight from weight: packed[group][block][o,
    # t][c] = weight[group * C_out / groups + o, block * block_size + c,
    # tap taps - 1 - t].  Per o the block's channels are one contiguous
    # [c][tap] run, transposed into rows written last tap first.
    cdef Py_ssize_t c_out_g = c_out // groups
    cdef Py_ssize_t n_blocks = ceil_div(c_in_g, block_size)
    cdef Py_ssize_t valid = min(block_size, c_in_g - block * block_size)
    cdef floating* dst = packed + (group * n_blocks + block) * c_out_g * taps * block_size
    cdef Py_ssize_t o, t
    for o in range(c_out_g):
        transpose_into(weight + ((group * c_out_g + o) * c_in_g + block * block_size) * taps, taps,
                       valid, taps, dst + (o * taps + taps - 1) * block_size, -block_size)
        if valid < block_size:
            for t in range(taps):
                fill_zero(dst + (o * taps + t) * block_size + valid, block_size - valid)


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


cdef Tiling choose_tiling(const Geometry* g, Py_ssize_t pos_block, int n_threads) noexcept nogil:
    cdef Tiling t
    cdef Py_ssize_t total_pos = g.batch * g.out_h * g.out_w
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t tiles = min(<Py_ssize_t>TILES_PER_CHUNK, ceil_div(total_pos, pos_block))
    cdef Py_ssize_t wanted = ITEMS_PER_THREAD * n_threads if n_threads > 1 else 1
    t.n_oc_blocks = ceil_div(g.out_channels // g.groups, CYCONV_OC_BLOCK)
    t.blocks_per_item = min(t.n_oc_blocks, max(1, OC_PER_ITEM // CYCONV_OC_BLOCK))
    t.blocks_per_item = ceil_div(t.n_oc_blocks, ceil_div(t.n_oc_blocks, t.blocks_per_item))
    # Fewer positions per chunk, then fewer channels per item, until every
    # thread has enough items.
    while True:
        t.chunk_width = tiles * pos_block
        t.n_chunks = ceil_div(total_pos, t.chunk_width)
        t.n_oc_items = ceil_div(t.n_oc_blocks, t.blocks_per_item)
        t.n_items = g.groups * t.n_chunks * t.n_oc_items
        if t.n_items >= wanted:
            break
        if tiles > 1:
            tiles -= 1
        elif t.blocks_per_item > 1:
            t.blocks_per_item = ceil_div(t.n_oc_blocks, 2 * ceil_div(t.n_oc_blocks, t.blocks_per_item))
        else:
            break
    t.channels_per_gather = max(1, min(cin_g, REDUCTION_CHUNK // taps))
    # equal slices of input channels rather than a full one and a small rest
    t.channels_per_gather = ceil_div(cin_g, ceil_div(cin_g, t.channels_per_gather))
    return t


cdef void band_offsets(const Geometry* g, Py_ssize_t n_channels, Py_ssize_t chan,
                       Py_ssize_t band_w, Py_ssize_t* offsets) noexcept nogil:
    # offsets[(c * kh + i) * kw + j] = where tap (c, i, j) of a band's first
    # position sits, for bands of chan values per channel and rows of band_w
    cdef Py_ssize_t c, i, j
    for c in range(n_channels):
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                offsets[(c * g.kernel_h + i) * g.kernel_w + j] = (
                    c * chan + i * g.dilation_h * band_w + j * g.dilation_w)


cdef inline bint compact_span(const Geometry* g) noexcept nogil:
    # Whether the zero-padded input region the windows span (what the plane
    # and band kernels copy, per channel) is not far larger than the input
    # and output planes.  Huge paddings with huge strides or dilations would
    # make those copies gigabytes of zeros (padding and stride 2**13 on a
    # 1x1 input took 4 s); the gathered kernels read only the taps that exist.
    cdef Py_ssize_t limit = 4 * (g.in_h * g.in_w + g.out_h * g.out_w * g.kernel_h * g.kernel_w) + 65536
    return input_rows(g, g.out_h) <= limit // input_cols(g, g.out_w)


cdef inline bint few_channels(const Geometry* g) noexcept nogil:
    # depthwise-like: few input channels per group and output channels too
    # few to amortise a gather over; or output channels so few (the input
    # gradient of a first layer) that the register tiles of the other kernels
    # would be mostly padding (at stride 1 the narrow kernel wins from 3).
    # The weight gradient takes its plane kernel for these.
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    return ((g.in_channels // g.groups <= 4 and cout_g <= 16) or cout_g <= 2
            or (cout_g <= 3 and (g.stride_h > 1 or g.stride_w > 1)))


cdef inline bint use_planes(const Geometry* g) noexcept nogil:
    # The forward plane kernel: few_channels, but at stride 1 the narrow
    # kernel takes 6-16 output channels that fill its blocks of OC_BLOCK at
    # least 3/4, over at least 16 reduction steps: each input it reads serves
    # a block of output channels.  With AVX-512 (a block of 8): 3 -> 8 3x3
    # 1.12-1.42x, 3 -> 16 1.26-1.61x, 1 -> 16 5x5 1.2-1.5x, 3 -> 6 1.07x, 3 -> 4
    # 0.89-0.98x, 1 -> 8 3x3 (9 steps) 0.96-1.08x; with AVX2 (a block of 6):
    # 3 -> 16 1.24x, 3 -> 6 1.04x, 3 -> 8 0.92x.
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef bint fills_blocks = (cout_g >= 6 and 4 * cout_g >= 3 * CYCONV_OC_BLOCK
                              * ceil_div(cout_g, CYCONV_OC_BLOCK))
    # (6 or more output channels make few_channels mean <= 4 inputs, <= 16 outputs)
    return few_channels(g) and not (
        g.stride_h == 1 and g.stride_w == 1 and fills_blocks
        and (g.in_channels // g.groups) * g.kernel_h * g.kernel_w >= 16)


cdef void pad_plane(const floating* src, const Geometry* g, Py_ssize_t ph, Py_ssize_t pw,
                    floating* padded, bint zeros_kept) noexcept nogil:
    # padded (ph rows of pw): the input plane src as the convolution's windows
    # see it, row r and column q at input row r - pad_top and column q -
    # pad_left, zero padding included (or, with zeros_kept, left as an
    # earlier call of the same geometry wrote it).  The zeros go first, in one
    # pass (row by row, the short runs' loop overheads cost more than the
    # values), then the input rows over them.
    cdef Py_ssize_t r, lo, hi
    valid_columns(-g.pad_left, 1, g.in_w, pw, &lo, &hi)
    if not zeros_kept:
        fill_zero(padded, ph * pw)
    for r in range(max(0, g.pad_top), min(ph, g.pad_top + g.in_h)):
        copy_run(padded + r * pw + lo, src + (r - g.pad_top) * g.in_w + lo - g.pad_left, hi - lo)


cdef inline void plane_chunk(const floating* src, const Py_ssize_t* offsets, Py_ssize_t depth,
                             const floating* w, floating* dst, bint add) noexcept nogil:
    # dst[p] (+)= sum_r w[r] * src[offsets[r] + p] for one chunk of PLANE_CHUNK
    # flat positions, accumulated in registers (eight vectors: enough
    # independent FMA chains to cover their latency)
    cdef floating acc[CYCONV_PLANE_CHUNK_F32]
    cdef const floating* xr
    cdef floating wr
    cdef Py_ssize_t r
    cdef int p
    cdef int C = CYCONV_PLANE_CHUNK_F32 if floating is float else CYCONV_PLANE_CHUNK_F64
    for p in range(C):
        acc[p] = 0
    r = 0  # depth >= 1: a loop with no way around it, see micro_kernel
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


cdef void strided_rows(const floating* x, const floating* weight, floating bias,
                       floating* out, const Geometry* g, Py_ssize_t n, Py_ssize_t oc) noexcept nogil:
    # Any stride: each output row accumulates the shifted input rows of every
    # tap, skipping (not reading) the zero padding.
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t group = oc // (g.out_channels // g.groups)
    cdef Py_ssize_t oh, c, i, j, q, ih, iw0, lo, hi
    cdef const floating* row
    cdef floating* dst
    cdef floating wv
    for oh in range(g.out_h):
        dst = out + ((n * g.out_channels + oc) * g.out_h + oh) * g.out_w
        for q in range(g.out_w):
            dst[q] = bias
        for c in range(cin_g):
            for i in range(g.kernel_h):
                ih = oh * g.stride_h + i * g.dilation_h - g.pad_top
                if ih < 0 or ih >= g.in_h:
                    continue
                row = x + ((n * g.in_channels + group * cin_g + c) * g.in_h + ih) * g.in_w
                for j in range(g.kernel_w):
                    wv = weight[((oc * cin_g + c) * g.kernel_h + i) * g.kernel_w + j]
                    iw0 = j * g.dilation_w - g.pad_left
                    valid_columns(iw0, g.stride_w, g.in_w, g.out_w, &lo, &hi)
                    for q in range(lo, hi):
                        dst[q] += wv * row[iw0 + q * g.stride_w]


cdef int forward_planes(const floating* x, const floating* weight, const floating* bias,
                        floating* out, const Geometry* g, int n_threads) noexcept nogil:
    # For few channels per group (depthwise, single-channel inputs) the
    # register-blocked kernel would fill its lanes mostly with padding and
    # spend its time gathering: work plane by plane instead.  Stride 1: a
    # slice of the group's input planes is zero-padded (ph x pw each, one
    # after another); output (oh, ow) sits at flat index oh * pw + ow and tap
    # (c, i, j) is the constant shift offsets[(c * kh + i) * kw + j], so the
    # flat index runs in chunks through all the slice's taps in registers (the
    # columns past out_w are computed and dropped).  Consecutive planes of a
    # thread share the padded input while it is one slice of one group of one
    # image.
    cdef Py_ssize_t planes = g.batch * g.out_channels
    cdef bint flat = g.stride_h == 1 and g.stride_w == 1
    cdef Py_ssize_t C = CYCONV_PLANE_CHUNK_F32 if floating is float else CYCONV_PLANE_CHUNK_F64
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t pw = input_cols(g, g.out_w)  # the padded plane (used at stride 1)
    cdef Py_ssize_t ph = input_rows(g, g.out_h)
    cdef Py_ssize_t n_chunks = ceil_div((g.out_h - 1) * pw + g.out_w, C)
    # input channels padded at a time: within PLANE_BYTES (one at least)
    cdef Py_ssize_t slice_c = max(1, min(cin_g, PLANE_BYTES // (ph * pw * <Py_ssize_t>sizeof(floating))))
    cdef Py_ssize_t n_slices = ceil_div(cin_g, slice_c)
    cdef Py_ssize_t plane, n, oc, c, k, r, q, sl, c0, nc, key
    cdef Py_ssize_t* offsets = NULL
    cdef Py_ssize_t* padded_for  # per thread: the (image, group, slice) in padded
    cdef floating* padded
    cdef floating* acc
    cdef floating* dst
    cdef const floating* src
    cdef int failed = 0
    cdef int* failed_flag = &failed
    if flat:
        offsets = <Py_ssize_t*>malloc(slice_c * taps * sizeof(Py_ssize_t))
        if offsets == NULL:
            return -1
        band_offsets(g, slice_c, ph * pw, pw, offsets)
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, planes))
    with parallel(num_threads=n_threads):
        padded = NULL  # thread-private: set here, not before the block
        acc = NULL
        padded_for = NULL
        if flat:
            # the last chunk reads up to C - 1 values past the last plane
            padded = <floating*>cyconv_aligned_alloc((slice_c * ph * pw + C) * sizeof(floating))
            acc = <floating*>cyconv_aligned_alloc(n_chunks * C * sizeof(floating))
            padded_for = <Py_ssize_t*>malloc(sizeof(Py_ssize_t))
            if padded == NULL or acc == NULL or padded_for == NULL:
                failed_flag[0] = 1
            else:  # the zeros (padding and tail) once; pad_plane keeps them
                fill_zero(padded, slice_c * ph * pw + C)
                padded_for[0] = -1
        for plane in prange(planes, schedule='static'):
            n = plane // g.out_channels
            oc = plane % g.out_channels
            if not flat:
                strided_rows(x, weight, bias[oc], out, g, n, oc)
                continue
            if padded == NULL or acc == NULL or padded_for == NULL:
                continue
            for sl in range(n_slices):
                c0 = sl * slice_c
                nc = min(slice_c, cin_g - c0)
                key = (n * g.groups + oc // cout_g) * n_slices + sl
                if padded_for[0] != key:
                    padded_for[0] = key
                    src = x + (n * g.in_channels + oc // cout_g * cin_g + c0) * g.in_h * g.in_w
                    for c in range(nc):
                        pad_plane(src + c * g.in_h * g.in_w, g, ph, pw, padded + c * ph * pw, True)
                # the first slice sets acc, the others add; two calls with a
                # constant flag, as gcc then specialises each (one call with
                # sl > 0 measured 5-15% slower on 1-channel and depthwise layers)
                for k in range(n_chunks):
                    if sl == 0:
                        plane_chunk(padded + k * C, offsets, nc * taps,
                                    weight + (oc * cin_g + c0) * taps, acc + k * C, False)
                    else:
                        plane_chunk(padded + k * C, offsets, nc * taps,
                                    weight + (oc * cin_g + c0) * taps, acc + k * C, True)
            for r in range(g.out_h):
                add_run(out + (plane * g.out_h + r) * g.out_w, acc + r * pw, g.out_w, bias[oc])
        cyconv_aligned_free(padded)
        cyconv_aligned_free(acc)
        free(padded_for)
    free(offsets)
    return -1 if failed else 0


cdef void load_band(const floating* x, const Geometry* g, Py_ssize_t n, Py_ssize_t ic0,
                    Py_ssize_t n_ic, Py_ssize_t ih0, Py_ssize_t band_rows, Py_ssize_t band_w,
                    Py_ssize_t chan, floating* band) noexcept nogil:
    # band[c * chan + k * band_w + q] = input channel ic0 + c of image n at row
    # ih0 + k, column q - pad_left, zero outside the input; zeros after the
    # band_rows rows up to chan
    cdef Py_ssize_t c, k, ih, lo, hi
    cdef const floating* row
    cdef floating* dst
    cdef Py_ssize_t ih_lo = max(0, ih0), ih_hi = min(g.in_h, ih0 + band_rows)
    valid_columns(-g.pad_left, 1, g.in_w, band_w, &lo, &hi)
    for c in range(n_ic):
        # a channel's rows are one short run: asked for LOAD_AHEAD channels
        # ahead, or each waits for memory on its own (a tenth of a 64-channel
        # 56x56 layer's time); past n_ic too, as the next band of the unit
        # usually takes the next channels
        if ic0 + c + LOAD_AHEAD < g.in_channels and ih_hi > ih_lo:
            prefetch_run(x + ((n * g.in_channels + ic0 + c + LOAD_AHEAD) * g.in_h + ih_lo) * g.in_w,
                         (ih_hi - ih_lo) * g.in_w * <Py_ssize_t>sizeof(floating))
        for k in range(band_rows):
            dst = band + c * chan + k * band_w
            ih = ih0 + k
            if ih < 0 or ih >= g.in_h:
                fill_zero(dst, band_w)
                continue
            row = x + ((n * g.in_channels + ic0 + c) * g.in_h + ih) * g.in_w
            fill_zero(dst, lo)
            copy_run(dst + lo, row + lo - g.pad_left, hi - lo)
            fill_zero(dst + hi, band_w - hi)
        fill_zero(band + c * chan + band_rows * band_w, chan - band_rows * band_w)


cdef inline void band_kernel(const floating* band, const Py_ssize_t* offsets,
                             Py_ssize_t depth, const Py_ssize_t* positions, bint run,
                             const floating* w, floating* tile, bint add) noexcept nogil:
    # tile[p][v] (+)= sum_r w[r][v] * band[offsets[r] + positions[p]] for
    # BAND_POSITIONS positions x LANES output channels, in registers: per step
    # two weight vectors, one broadcast per position, 2 * BAND_POSITIONS FMAs.
    # One flat loop over r (offsets table): gcc schedules nested runtime
    # loops around this block much worse.  A run (positions[p] = positions[0]
    # + p) reads at constant offsets from one address; other tiles keep a
    # pointer per position in a register (one more register each).
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
            acc[p][v] = 0
    # depth >= 1: loops with no way around them, each with its own stores
    # (see micro_kernel; where the two met, gcc stored acc on the stack)
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


cdef inline bint use_bands(const Geometry* g, Py_ssize_t lanes) noexcept nogil:
    # Enough output channels per group to fill the vector lanes; not 1x1
    # kernels (pointwise or gathered paths read those in place).
    return (g.out_channels // g.groups >= lanes
            and g.kernel_h * g.kernel_w > 1)


cdef void store_band_tiles(const floating* acc, const Geometry* g, Py_ssize_t n,
                           Py_ssize_t group, Py_ssize_t oh0, Py_ssize_t rows_here,
                           Py_ssize_t n_tiles, Py_ssize_t b0, Py_ssize_t b1,
                           const floating* bias, floating* out) noexcept nogil:
    # out[n, channel block b, row oh0 + v // out_w, column v % out_w] = bias +
    # acc[b - b0][tile][position v][lane], for the unit's rows_here rows: in
    # blocks of B positions x B channels transposed in vector registers (one
    # scalar store per value took 15-20% of short reductions), the last
    # positions one by one
    cdef Py_ssize_t L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t plane = g.out_h * g.out_w
    cdef Py_ssize_t n_pos = rows_here * g.out_w
    cdef Py_ssize_t B = 8 if floating is float else 4  # the transposed blocks
    cdef Py_ssize_t n_whole = n_pos - n_pos % B
    cdef Py_ssize_t b, k, q, j, v, oc0, n_lanes
    cdef floating bias_q
    cdef const floating* src
    cdef floating* dst
    for b in range(b0, b1):
        oc0 = group * cout_g + b * L
        n_lanes = min(L, cout_g - b * L)
        src = acc + (b - b0) * n_tiles * CYCONV_BAND_POSITIONS * L
        dst = out + (n * g.out_channels + oc0) * plane + oh0 * g.out_w
        for k in range(ceil_div(n_lanes, B)):
            q = k * B
            for j in range(n_whole // B):
                v = j * B
                if floating is float:
                    cyconv_transpose_block_f32(src + v * L + q, L, n_lanes - q, bias + oc0 + q,
                                               dst + q * plane + v, plane)
                else:
                    cyconv_transpose_block_f64(src + v * L + q, L, n_lanes - q, bias + oc0 + q,
                                               dst + q * plane + v, plane)
        for q in range(n_lanes):
            bias_q = bias[oc0 + q]
            for v in range(n_whole, n_pos):
                dst[q * plane + v] = src[v * L + q] + bias_q


cdef Py_ssize_t unit_rows(const Geometry* g, Py_ssize_t most) noexcept nogil:
    # Rows per unit of the row-band kernel, from most down to half of it: the
    # fewest tiles per image (the last tile of a unit is partly wasted), the
    # most rows among equals; units of an image have equal rows but the last
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t r, rows, n_blocks, tiles, best = most, fewest = -1
    for r in range(most, (most - 1) // 2, -1):
        rows = ceil_div(g.out_h, ceil_div(g.out_h, r))
        n_blocks = ceil_div(g.out_h, rows)
        tiles = ((n_blocks - 1) * ceil_div(rows * g.out_w, Q)
                 + ceil_div((g.out_h - (n_blocks - 1) * rows) * g.out_w, Q))
        if fewest < 0 or tiles < fewest:
            fewest = tiles
            best = rows
    return best


cdef int forward_bands(const floating* x, const floating* weight, const floating* bias,
                       const floating* prepacked, floating* out, const Geometry* g,
                       int n_threads) noexcept nogil:
    # Gather-free dense kernel.  A unit is a block of output rows of one image;
    # a work item is a unit (or several, see below) and a slice of output
    # channels.  For each slice of input channels the thread copies the input
    # rows a unit needs into a zero-padded band (band_rows x band_w per
    # channel), and the band kernel broadcasts inputs straight from it against
    # vectors of LANES output channels (weights packed [group][block][C_in /
    # groups * kh * kw][LANES]); tiles go into the item's accumulator (the
    # first slice's set it, the others add), stored with the bias at the end.
    # A unit's output positions v = r * out_w + ow run through its rows
    # without gaps, so tiles of BAND_POSITIONS positions span row ends; tap
    # (c, i, j) of position v sits at band[c * chan + i * dh * band_w + j * dw
    # + positions[v]], positions[v] = r * stride_h * band_w + ow * stride_w
    # (the positions past the unit's last repeat it).
    cdef Py_ssize_t L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    cdef Py_ssize_t Q = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t n_blocks = ceil_div(cout_g, L)
    cdef Py_ssize_t band_w = input_cols(g, g.out_w)
    # input channels per band: a tile's inputs (one line per reduction step)
    # stay in L1 across the channel blocks
    cdef Py_ssize_t slice_c = max(1, min(cin_g, BAND_DEPTH // taps))
    cdef Py_ssize_t rows, band_rows, chan, n_row_blocks, pos_cap, tiles_cap, v
    # the input as the kernel sees it: all rows a column of windows reaches
    cdef Py_ssize_t full_rows = input_rows(g, g.out_h)
    cdef Py_ssize_t full_chan
    cdef Py_ssize_t plane_i
    cdef bint prepadded
    cdef floating* padded = NULL
    cdef const floating* unit_band
    cdef Py_ssize_t blocks_per_item = min(n_blocks, max(1, OC_PER_ITEM // L))
    cdef Py_ssize_t n_oc_items, n_items, wanted = ITEMS_PER_THREAD * n_threads
    cdef Py_ssize_t n_units, units = 1, n_unit_blocks, u0, u_here, u, acc_unit, tiles
    cdef Py_ssize_t item, pack, c, group, n, oh0, rows_here
    cdef Py_ssize_t oc_item, b, b0, b1, tile_i, k, kg, k0, k1, group_tiles, n_tiles, sl, c0, nc
    cdef bint own_packing
    cdef floating* owned = NULL  # the packed weights when this call packs them
    cdef const floating* packed = prepacked
    cdef floating* slice_w  # per thread: an item's blocks of one slice, packed
    cdef Py_ssize_t* offsets
    cdef Py_ssize_t* positions
    cdef bint* runs  # per tile: positions one after the other
    cdef floating* band
    cdef floating* acc
    cdef floating* dst
    cdef int failed = 0
    cdef int* failed_flag = &failed
    slice_c = ceil_div(cin_g, ceil_div(cin_g, slice_c))
    # rows enough for about WIDE_TILES tiles per unit on wide rows (the band
    # rows a unit shares with the next are loaded twice: 32 tiles ran 1.01-1.09x
    # faster than 16 with AVX-512), half as many where that leaves fewer than
    # two units per wanted item (a 56x56 image on two threads: 0.95-0.98x);
    # FEW_TILES on narrow rows
    tiles = FEW_TILES
    if g.out_w >= 4 * Q:
        tiles = WIDE_TILES
        if g.batch * ceil_div(g.out_h, ceil_div(WIDE_TILES * Q, g.out_w)) < 2 * wanted:
            tiles = WIDE_TILES // 2
    rows = unit_rows(g, min(g.out_h, ceil_div(tiles * Q, g.out_w)))
    n_row_blocks = ceil_div(g.out_h, rows)
    n_units = g.batch * n_row_blocks
    band_rows = input_rows(g, rows)
    chan = band_rows * band_w
    tiles_cap = ceil_div(rows * g.out_w, Q)
    pos_cap = tiles_cap * Q
    # few tiles (small planes): the weights outweigh the inputs, so a channel
    # block's weights stay cached across the tiles; and weights far larger
    # than L2 stream from memory once per item: an item takes several units
    # (their bands within BAND_BYTES) and fewer channels
    if tiles_cap <= 2 * FEW_TILES and depth * cout_g * <Py_ssize_t>sizeof(floating) >= MANY_WEIGHT_BYTES:
        units = max(1, min(n_units, BAND_BYTES // (slice_c * chan * <Py_ssize_t>sizeof(floating))))
        blocks_per_item = max(1, min(blocks_per_item,
                                     BAND_BYTES // (units * pos_cap * L * <Py_ssize_t>sizeof(floating))))
    blocks_per_item = ceil_div(n_blocks, ceil_div(n_blocks, blocks_per_item))
    n_oc_items = ceil_div(n_blocks, blocks_per_item)
    n_unit_blocks = ceil_div(n_units, units)
    # fewer channels, then fewer units per item, until every thread has enough items
    while g.groups * n_unit_blocks * n_oc_items < wanted:
        if blocks_per_item > 1:
            blocks_per_item = ceil_div(n_blocks, 2 * n_oc_items)
            n_oc_items = ceil_div(n_blocks, blocks_per_item)
        elif units > 1:
            units = ceil_div(n_units, 2 * n_unit_blocks)
            n_unit_blocks = ceil_div(n_units, units)
        else:
            break
    # unit blocks of one size where up to twice as many allow it (40 units in
    # 7 blocks left two threads 42 and 38 units' work; 8 blocks of 5 even)
    k = n_unit_blocks
    while k < 2 * n_unit_blocks and n_units % k != 0:
        k += 1
    if n_units % k == 0:
        n_unit_blocks = k
    units = ceil_div(n_units, n_unit_blocks)  # equal unit blocks
    n_items = g.groups * n_unit_blocks * n_oc_items
    # one unit block (batch 1, or several images per item): each weight is
    # used by one item only, which packs its blocks slice by slice into a
    # buffer of its own, so the weights are read from memory once (not read,
    # written packed and read back)
    own_packing = prepacked == NULL and (
        n_unit_blocks == 1 or depth * cout_g * <Py_ssize_t>sizeof(floating) >= MANY_WEIGHT_BYTES)
    # a small input is zero-padded once, whole, and the units read their
    # bands in place: items that share a unit (its output channels split
    # between threads) would each load it, and on small planes loading bands
    # row by row took a fifth of the time
    full_chan = full_rows * band_w
    prepadded = (full_chan <= PADDED_INPUT_BYTES // <Py_ssize_t>sizeof(floating)
                 // (g.batch * g.in_channels))  # divided: no overflow on huge paddings

    if packed == NULL and not own_packing:
        owned = <floating*>malloc(g.groups * n_blocks * depth * L * sizeof(floating))
        packed = owned
    if prepadded:
        padded = <floating*>malloc(g.batch * g.in_channels * full_chan * sizeof(floating))
    offsets = <Py_ssize_t*>malloc(slice_c * taps * sizeof(Py_ssize_t))
    positions = <Py_ssize_t*>malloc(pos_cap * sizeof(Py_ssize_t))
    runs = <bint*>malloc(tiles_cap * sizeof(bint))
    if ((packed == NULL and not own_packing) or (padded == NULL and prepadded)
            or offsets == NULL or positions == NULL or runs == NULL):
        free(owned)
        free(padded)
        free(offsets)
        free(positions)
        free(runs)
        return -1
    band_offsets(g, slice_c, full_chan if prepadded else chan, band_w, offsets)
    for v in range(pos_cap):
        k = min(v, rows * g.out_w - 1)
        positions[v] = k // g.out_w * g.stride_h * band_w + k % g.out_w * g.stride_w
    for k in range(tiles_cap):
        runs[k] = True
        for v in range(k * Q + 1, k * Q + Q):
            runs[k] = runs[k] and positions[v] == positions[v - 1] + 1
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, n_items))
    with parallel(num_threads=n_threads):
        if prepadded:
            for plane_i in prange(g.batch * g.in_channels, schedule='static'):
                pad_plane(x + plane_i * g.in_h * g.in_w, g, full_rows, band_w,
                          padded + plane_i * full_chan, False)
        if owned != NULL:
            for pack in prange(g.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, g, pack // n_blocks, pack % n_blocks, L, owned)
        slice_w = NULL
        if own_packing:
            slice_w = <floating*>cyconv_aligned_alloc(blocks_per_item * slice_c * taps * L
                                                      * sizeof(floating))
            if slice_w == NULL:
                failed_flag[0] = 1
        band = NULL
        if not prepadded:
            band = <floating*>cyconv_aligned_alloc(units * slice_c * chan * sizeof(floating))
        acc = <floating*>cyconv_aligned_alloc(units * blocks_per_item * pos_cap * L * sizeof(floating))
        if (band == NULL and not prepadded) or acc == NULL:
            failed_flag[0] = 1
        for item in prange(n_items, schedule='static'):
            if (band == NULL and not prepadded) or acc == NULL or (own_packing and slice_w == NULL):
                continue
            oc_item = item % n_oc_items
            u0 = (item // n_oc_items) % n_unit_blocks * units
            group = item // (n_oc_items * n_unit_blocks)
            u_here = min(units, n_units - u0)
            b0 = oc_item * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            acc_unit = (b1 - b0) * pos_cap * L  # the accumulators of one unit
            for sl in range(ceil_div(cin_g, slice_c)):
                c0 = sl * slice_c
                nc = min(slice_c, cin_g - c0)
                if not prepadded:
                    for u in range(u_here):
                        oh0 = (u0 + u) % n_row_blocks * rows
                        rows_here = min(rows, g.out_h - oh0)
                        load_band(x, g, (u0 + u) // n_row_blocks, group * cin_g + c0, nc,
                                  oh0 * g.stride_h - g.pad_top,
                                  input_rows(g, rows_here),
                                  band_w, chan, band + u * slice_c * chan)
                if own_packing:
                    for b in range(b0, b1):
                        pack_weight_rows(weight, g, group, b, L, c0 * taps, (c0 + nc) * taps,
                                         slice_w + (b - b0) * slice_c * taps * L)
                # groups of up to FEW_TILES tiles (of one or more units; groups
                # of equal size) take the channel blocks in turn: a block's
                # weights stay cached across the group's tiles, the group's
                # inputs across the blocks
                group_tiles = ceil_div(u_here * tiles_cap, ceil_div(u_here * tiles_cap, FEW_TILES))
                for kg in range(ceil_div(u_here * tiles_cap, group_tiles)):
                    k0 = kg * group_tiles
                    k1 = min(k0 + group_tiles, u_here * tiles_cap)
                    for b in range(b0, b1):
                        u = -1
                        for k in range(k0, k1):
                            if u != k // tiles_cap:
                                u = k // tiles_cap
                                # the last row block may have fewer tiles
                                oh0 = (u0 + u) % n_row_blocks * rows
                                rows_here = min(rows, g.out_h - oh0)
                                n_tiles = ceil_div(rows_here * g.out_w, Q)
                                if prepadded:
                                    unit_band = padded + (
                                        ((u0 + u) // n_row_blocks * g.in_channels + group * cin_g + c0)
                                        * full_chan + oh0 * g.stride_h * band_w)
                                else:
                                    unit_band = band + u * slice_c * chan
                            tile_i = k - u * tiles_cap
                            if tile_i >= n_tiles:
                                continue
                            band_kernel(unit_band, offsets, nc * taps,
                                        positions + tile_i * Q, runs[tile_i],
                                        slice_w + (b - b0) * slice_c * taps * L if own_packing
                                        else packed + ((group * n_blocks + b) * depth + c0 * taps) * L,
                                        acc + u * acc_unit + ((b - b0) * tiles_cap + tile_i) * Q * L,
                                        sl > 0)
            for u in range(u_here):
                n = (u0 + u) // n_row_blocks
                oh0 = (u0 + u) % n_row_blocks * rows
                store_band_tiles(acc + u * acc_unit, g, n, group, oh0, min(rows, g.out_h - oh0),
                                 tiles_cap, b0, b1, bias, out)
        cyconv_aligned_free(band)
        cyconv_aligned_free(acc)
        cyconv_aligned_free(slice_w)
    free(owned)
    free(padded)
    free(offsets)
    free(positions)
    free(runs)
    return -1 if failed else 0


cdef inline void shifted_kernel(const floating* x, const Py_ssize_t* offsets, Py_ssize_t n_rows,
                                const floating* w, floating* c, Py_ssize_t ldc) noexcept nogil:
    # micro_kernel with row r of x at x + offsets[r]: a tile of positions read
    # straight from a zero-padded band, tap by tap
    cdef floating acc[CYCONV_OC_BLOCK][CYCONV_POS_BLOCK_F32]
    cdef floating wo
    cdef const floating* xr
    cdef Py_ssize_t r
    cdef int o, p
    cdef int P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    for o in range(CYCONV_OC_BLOCK):
        for p in range(P):
            acc[o][p] = c[o * ldc + p]
    r = 0  # n_rows >= 1: a loop with no way around it, see micro_kernel
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


cdef inline bint use_narrow(const Geometry* g) noexcept nogil:
    # stride 1 with too few output channels per group for the row-band kernel's
    # lanes: positions in the lanes instead, read from a band without a gather
    return (g.stride_h == 1 and g.stride_w == 1 and g.kernel_h * g.kernel_w > 1)


cdef int forward_narrow(const floating* x, const floating* weight, const floating* bias,
                        const floating* prepacked, floating* out, const Geometry* g,
                        int n_threads) noexcept nogil:
    # The row-band layout of forward_bands (stride 1, several rows of the
    # padded width per item, positions v = r * band_w + ow) with the gathered
    # kernel's register tile: OC_BLOCK output channels x POS_BLOCK consecutive
    # positions, accumulated in place in the item's acc[channel][position].
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t n_blocks = ceil_div(cout_g, OB)
    cdef Py_ssize_t band_w = input_cols(g, g.out_w)
    cdef Py_ssize_t slice_c = max(1, min(cin_g, BAND_DEPTH // taps))
    cdef Py_ssize_t rows = min(g.out_h, ceil_div(8 * P, band_w))
    cdef Py_ssize_t n_row_blocks, band_rows, chan, pos_cap, n_oc_items, n_items
    cdef Py_ssize_t blocks_per_item = min(n_blocks, max(1, OC_PER_ITEM // OB))
    cdef Py_ssize_t wanted = ITEMS_PER_THREAD * n_threads
    cdef Py_ssize_t item, pack, group, n, oh0, rows_here, n_pos, n_tiles, ld
    cdef Py_ssize_t oc_item, b, b0, b1, tile_i, o, oc, r, ow, sl, c0, nc
    cdef floating* owned = NULL
    cdef const floating* packed = prepacked
    cdef Py_ssize_t* offsets
    cdef floating* band
    cdef floating* acc
    cdef floating* dst
    cdef const floating* src
    cdef int failed = 0
    cdef int* failed_flag = &failed
    slice_c = ceil_div(cin_g, ceil_div(cin_g, slice_c))
    rows = ceil_div(g.out_h, ceil_div(g.out_h, rows))
    n_row_blocks = ceil_div(g.out_h, rows)
    band_rows = input_rows(g, rows)
    chan = band_rows * band_w + P  # + zeros the last tile may read
    pos_cap = ceil_div((rows - 1) * band_w + g.out_w, P) * P
    blocks_per_item = ceil_div(n_blocks, ceil_div(n_blocks, blocks_per_item))
    n_oc_items = ceil_div(n_blocks, blocks_per_item)
    while g.groups * g.batch * n_row_blocks * n_oc_items < wanted and blocks_per_item > 1:
        blocks_per_item = ceil_div(n_blocks, 2 * n_oc_items)
        n_oc_items = ceil_div(n_blocks, blocks_per_item)
    n_items = g.groups * g.batch * n_row_blocks * n_oc_items

    if packed == NULL:
        owned = <floating*>malloc(g.groups * n_blocks * depth * OB * sizeof(floating))
        packed = owned
    offsets = <Py_ssize_t*>malloc(slice_c * taps * sizeof(Py_ssize_t))
    if packed == NULL or offsets == NULL:
        free(owned)
        free(offsets)
        return -1
    band_offsets(g, slice_c, chan, band_w, offsets)
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, n_items))
    with parallel(num_threads=n_threads):
        if owned != NULL:
            for pack in prange(g.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, g, pack // n_blocks, pack % n_blocks, OB, owned)
        band = <floating*>cyconv_aligned_alloc(slice_c * chan * sizeof(floating))
        acc = <floating*>cyconv_aligned_alloc(blocks_per_item * OB * pos_cap * sizeof(floating))
        if band == NULL or acc == NULL:
            failed_flag[0] = 1
        for item in prange(n_items, schedule='static'):
            if band == NULL or acc == NULL:
                continue
            oc_item = item % n_oc_items
            oh0 = (item // n_oc_items) % n_row_blocks * rows
            n = (item // (n_oc_items * n_row_blocks)) % g.batch
            group = item // (n_oc_items * n_row_blocks * g.batch)
            rows_here = min(rows, g.out_h - oh0)
            n_pos = (rows_here - 1) * band_w + g.out_w
            n_tiles = ceil_div(n_pos, P)
            ld = n_tiles * P
            b0 = oc_item * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            fill_zero(acc, (b1 - b0) * OB * ld)
            for sl in range(ceil_div(cin_g, slice_c)):
                c0 = sl * slice_c
                nc = min(slice_c, cin_g - c0)
                load_band(x, g, n, group * cin_g + c0, nc, oh0 - g.pad_top,
                          input_rows(g, rows_here), band_w, chan, band)
                for tile_i in range(n_tiles):
                    for b in range(b0, b1):
                        shifted_kernel(band + tile_i * P, offsets, nc * taps,
                                       packed + ((group * n_blocks + b) * depth + c0 * taps) * OB,
                                       acc + (b - b0) * OB * ld + tile_i * P, ld)
            for o in range(min(cout_g - b0 * OB, (b1 - b0) * OB)):
                oc = group * cout_g + b0 * OB + o
                for r in range(rows_here):
                    dst = out + ((n * g.out_channels + oc) * g.out_h + oh0 + r) * g.out_w
                    src = acc + o * ld + r * band_w
                    for ow in range(g.out_w):
                        dst[ow] = src[ow] + bias[oc]
        cyconv_aligned_free(band)
        cyconv_aligned_free(acc)
    free(owned)
    free(offsets)
    return -1 if failed else 0


cdef enum:
    PATH_PLANES, PATH_BANDS, PATH_NARROW, PATH_POINTWISE, PATH_GATHERED


cdef int forward_path(const Geometry* g, Py_ssize_t lanes) noexcept nogil:
    # the kernel that computes the layer g (lanes: the row-band kernel's)
    if compact_span(g):
        if use_planes(g):
            return PATH_PLANES
        if use_bands(g, lanes):
            return PATH_BANDS
        if use_narrow(g):
            return PATH_NARROW
    if use_pointwise(g):
        return PATH_POINTWISE
    return PATH_GATHERED


cdef Py_ssize_t block_for(const Geometry* g, bint double) noexcept nogil:
    # The output-channel block of the packed weights ([group][block][C_in /
    # groups * kh * kw][block]) that the kernel computing g reads; 0 for the
    # plane kernel, which reads the weights as they are.
    cdef Py_ssize_t lanes = CYCONV_BAND_LANES_F64 if double else CYCONV_BAND_LANES_F32
    cdef int path = forward_path(g, lanes)
    if path == PATH_PLANES:
        return 0
    return lanes if path == PATH_BANDS else CYCONV_OC_BLOCK


cdef int forward(const floating* x, const floating* weight, const floating* bias,
                 const floating* prepacked, floating* out, const Geometry* g,
                 int n_threads) noexcept nogil:
    # Returns 0, or -1 when a buffer could not be allocated.  prepacked: the
    # weights packed as block_for says, or NULL to pack them here.
    cdef int path = forward_path(
        g, CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64)
    cdef Py_ssize_t outputs = g.batch * g.out_channels * g.out_h * g.out_w
    cdef Py_ssize_t per_output = (g.in_channels // g.groups) * g.kernel_h * g.kernel_w
    cdef Py_ssize_t enough = <Py_ssize_t>MIN_MACS_PER_THREAD * n_threads
    if outputs < enough and per_output < enough:  # else enough work (and no overflow)
        n_threads = <int>max(1, min(<Py_ssize_t>n_threads,
                                    outputs * per_output // MIN_MACS_PER_THREAD))
    if path == PATH_PLANES:
        return forward_planes(x, weight, bias, out, g, n_threads)
    if path == PATH_BANDS:
        return forward_bands(x, weight, bias, prepacked, out, g, n_threads)
    if path == PATH_NARROW:
        return forward_narrow(x, weight, bias, prepacked, out, g, n_threads)
    if path == PATH_POINTWISE:
        return forward_pointwise(x, weight, bias, prepacked, out, g, n_threads)
    cdef Py_ssize_t pos_block = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Tiling t = choose_tiling(g, pos_block, n_threads)
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t plane = g.out_h * g.out_w
    cdef Py_ssize_t total_pos = g.batch * plane
    cdef Py_ssize_t item_channels = t.blocks_per_item * CYCONV_OC_BLOCK
    cdef Py_ssize_t item, pack, group, chunk, oc_item, b0, b1, b, q0, n_pos, n_tiles
    cdef Py_ssize_t n_seg, s, o, oc, slice_, ic0, n_ic, tile, p, r, rows
    cdef floating* owned = NULL
    cdef const floating* packed = prepacked
    cdef floating* buf
    cdef floating* acc
    cdef floating* dst
    cdef floating value
    cdef Py_ssize_t* segments
    cdef const floating** in_place
    cdef const floating* src
    cdef Py_ssize_t first, ld
    cdef int failed = 0
    cdef int* failed_flag = &failed  # shared: written through a pointer in the parallel block
    # A 1x1 kernel with stride 1 and no padding (the input gradient passes
    # negative padding, a shift): each input plane already is
    # the packed operand, so a tile inside one image is read where it lies.
    cdef bint reads_in_place = (g.kernel_h == 1 and g.kernel_w == 1 and g.stride_h == 1
                                and g.stride_w == 1 and g.pad_top == 0 and g.pad_left == 0
                                and g.out_h == g.in_h and g.out_w == g.in_w)

    if packed == NULL:
        owned = <floating*>malloc(g.groups * t.n_oc_blocks * depth * CYCONV_OC_BLOCK * sizeof(floating))
        packed = owned
        if packed == NULL:
            return -1
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, t.n_items))
    with parallel(num_threads=n_threads):
        if owned != NULL:
            for pack in prange(g.groups * t.n_oc_blocks, schedule='static'):
                pack_weight_block(weight, g, pack // t.n_oc_blocks, pack % t.n_oc_blocks,
                                  CYCONV_OC_BLOCK, owned)

        buf = <floating*>cyconv_aligned_alloc(t.channels_per_gather * taps * t.chunk_width * sizeof(floating))
        acc = <floating*>malloc(item_channels * t.chunk_width * sizeof(floating))
        segments = <Py_ssize_t*>malloc(5 * t.chunk_width * sizeof(Py_ssize_t))
        in_place = <const floating**>malloc(TILES_PER_CHUNK * sizeof(floating*))
        if buf == NULL or acc == NULL or segments == NULL or in_place == NULL:
            failed_flag[0] = 1
        for item in prange(t.n_items, schedule='static'):
            if buf == NULL or acc == NULL or segments == NULL or in_place == NULL:
                continue
            oc_item = item % t.n_oc_items
            chunk = (item // t.n_oc_items) % t.n_chunks
            group = item // (t.n_oc_items * t.n_chunks)
            q0 = chunk * t.chunk_width
            n_pos = min(t.chunk_width, total_pos - q0)
            n_tiles = ceil_div(n_pos, pos_block)
            n_seg = chunk_segments(g, q0, n_pos, pos_block, segments)
            b0 = oc_item * t.blocks_per_item
            b1 = min(t.n_oc_blocks, b0 + t.blocks_per_item)
            for tile in range(n_tiles):
                in_place[tile] = NULL
                first = q0 + tile * pos_block
                if (reads_in_place and (tile + 1) * pos_block <= n_pos
                        and first // plane == (first + pos_block - 1) // plane):
                    in_place[tile] = x + (first // plane) * g.in_channels * plane + first % plane

            # acc[o][p]: the item's output channels o, its positions p, starting at the bias
            for o in range((b1 - b0) * CYCONV_OC_BLOCK):
                oc = b0 * CYCONV_OC_BLOCK + o
                value = bias[group * cout_g + oc] if oc < cout_g else 0
                for p in range(t.chunk_width):
                    acc[o * t.chunk_width + p] = value

            for slice_ in range(ceil_div(cin_g, t.channels_per_gather)):
                ic0 = slice_ * t.channels_per_gather
                n_ic = min(t.channels_per_gather, cin_g - ic0)
                rows = n_ic * taps
                gather(x, g, group, ic0, n_ic, segments, n_seg, in_place, buf)
                # the unused lanes of the last tile must hold finite values
                if n_pos < n_tiles * pos_block:
                    for r in range(rows):
                        fill_zero(buf + ((n_tiles - 1) * rows + r) * pos_block + n_pos % pos_block,
                                  pos_block - n_pos % pos_block)
                # a tile (rows x pos_block) stays in L1 while the weight blocks stream
                for tile in range(n_tiles):
                    if in_place[tile] != NULL:
                        src = in_place[tile] + (group * cin_g + ic0) * plane
                        ld = plane
                    else:
                        src = buf + tile * rows * pos_block
                        ld = pos_block
                    for b in range(b0, b1):
                        micro_kernel(
                            src, rows, ld,
                            packed + ((group * t.n_oc_blocks + b) * depth + ic0 * taps) * CYCONV_OC_BLOCK,
                            acc + (b - b0) * CYCONV_OC_BLOCK * t.chunk_width + tile * pos_block,
                            t.chunk_width,
                            acc + (b - b0) * CYCONV_OC_BLOCK * t.chunk_width + tile * pos_block,
                            t.chunk_width)

            for o in range(min(cout_g - b0 * CYCONV_OC_BLOCK, (b1 - b0) * CYCONV_OC_BLOCK)):
                oc = group * cout_g + b0 * CYCONV_OC_BLOCK + o
                for s in range(n_seg):
                    dst = (out + (segments[5 * s] * g.out_channels + oc) * plane
                           + segments[5 * s + 1] * g.out_w + segments[5 * s + 2])
                    copy_run(dst, acc + o * t.chunk_width + segments[5 * s + 3],
                             segments[5 * s + 4])
        cyconv_aligned_free(buf)
        free(acc)
        free(segments)
        free(in_place)
    free(owned)
    return -1 if failed else 0


# Weight gradient: gw[o, t] = sum over output positions p of
# grad_output[o, p] * patch[p, t], t = (input channel, tap), as a blocked
# matrix product reduced over positions, again without an im2col buffer.
# Positions are cut into chunks; per chunk a thread transposes the grad_output
# rows of its output channels into [block][position][OC_BLOCK] (the layout the
# forward kernel's weights have) and gathers the input patches of its taps
# into [tap block][position][POS_BLOCK lanes], and micro_kernel accumulates an
# OC_BLOCK x POS_BLOCK tile of gw over the chunk.  A work item owns a slice of
# output channels x a slice of taps over all positions: no two threads write
# the same gw entry, and the summation order does not depend on the threads.
cdef enum:
    GRAD_CHUNK = 256           # positions per chunk
    GRAD_TAP_BLOCKS = 32       # tap blocks (POS_BLOCK lanes each) per item, at most
    GRAD_OC_BLOCKS = 48        # output-channel blocks per item, at most
    GRAD_BAND_POSITIONS = 512  # positions per unit of weight_grad_bands, about
    GRAD_BAND_BYTES = 16384    # its bands: in L1 across a unit's taps
    GRAD_BAND_MAX_BYTES = 4096  # its (input channel, tap) rows x the size of a value, at most
    GRAD_BAND_MAX_ROWS = 1152  # its (input channel, tap) rows with AVX-512, at most
    GRAD_SLICES = 8            # slices of positions weight_grad sums at the end, at most
    GRAD_SLICE_CHUNKS = 2      # chunks per slice, at least
    GRAD_PARTIAL_BYTES = 1048576  # the slices' partial gradients, at most


cdef void gather_patches(const floating* x, const Geometry* g, Py_ssize_t group,
                         Py_ssize_t t0, Py_ssize_t n_taps,
                         const Py_ssize_t* segments, Py_ssize_t n_segments,
                         Py_ssize_t chunk, floating* buf) noexcept nogil:
    # buf[tb][p][lane] = the zero-padded input that position p of the chunk
    # sees through tap t0 + tb * pos_block + lane of the group's input channels
    cdef Py_ssize_t pos_block = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t t, c, i, j, s, n, oh, ow0, p0, length, ih, iw0, lo, hi, q
    cdef const floating* row
    cdef floating* dst
    for t in range(n_taps):
        j = (t0 + t) % g.kernel_w
        i = (t0 + t) // g.kernel_w % g.kernel_h
        c = (t0 + t) // (g.kernel_w * g.kernel_h)
        for s in range(n_segments):
            n = segments[5 * s]
            oh = segments[5 * s + 1]
            ow0 = segments[5 * s + 2]
            p0 = segments[5 * s + 3]
            length = segments[5 * s + 4]
            dst = buf + ((t // pos_block) * chunk + p0) * pos_block + t % pos_block
            ih = oh * g.stride_h + i * g.dilation_h - g.pad_top
            if ih < 0 or ih >= g.in_h:
                for q in range(length):
                    dst[q * pos_block] = 0
                continue
            row = x + ((n * g.in_channels + group * cin_g + c) * g.in_h + ih) * g.in_w
            iw0 = ow0 * g.stride_w + j * g.dilation_w - g.pad_left
            valid_columns(iw0, g.stride_w, g.in_w, length, &lo, &hi)
            for q in range(lo):
                dst[q * pos_block] = 0
            for q in range(lo, hi):
                dst[q * pos_block] = row[iw0 + q * g.stride_w]
            for q in range(hi, length):
                dst[q * pos_block] = 0


cdef void pack_grad_output(const floating* grad_out, const Geometry* g, Py_ssize_t group,
                           Py_ssize_t b0, Py_ssize_t b1,
                           const Py_ssize_t* segments, Py_ssize_t n_segments,
                           Py_ssize_t chunk, floating* packed) noexcept nogil:
    # packed[b - b0][p][o] = grad_out[channel b * OC_BLOCK + o of the group, position p]
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t plane = g.out_h * g.out_w
    cdef Py_ssize_t b, o, s, q, length, valid
    cdef const floating* src
    cdef floating* dst
    for b in range(b0, b1):
        valid = min(<Py_ssize_t>CYCONV_OC_BLOCK, cout_g - b * CYCONV_OC_BLOCK)
        for s in range(n_segments):
            length = segments[5 * s + 4]
            dst = packed + ((b - b0) * chunk + segments[5 * s + 3]) * CYCONV_OC_BLOCK
            src = (grad_out + (segments[5 * s] * g.out_channels + group * cout_g
                               + b * CYCONV_OC_BLOCK) * plane
                   + segments[5 * s + 1] * g.out_w + segments[5 * s + 2])
            transpose_into(src, plane, valid, length, dst, CYCONV_OC_BLOCK)
            if valid < CYCONV_OC_BLOCK:
                for q in range(length):
                    fill_zero(dst + q * CYCONV_OC_BLOCK + valid, CYCONV_OC_BLOCK - valid)


cdef Py_ssize_t grad_slices(const Geometry* g, Py_ssize_t n_chunks, Py_ssize_t itemsize) noexcept nogil:
    # Slices of positions whose partial weight gradients weight_grad sums at
    # the end: work for threads on layers with few output channels and taps
    # (an RGB stem: split by channels and taps instead, each item packed all
    # of grad_output or gathered all patches again, and 2 threads ran 1.2x
    # as fast as one).  A function of the layer alone, so that the sums come
    # out the same on any number of threads.
    cdef Py_ssize_t weight_bytes = (g.out_channels * (g.in_channels // g.groups)
                                    * g.kernel_h * g.kernel_w * itemsize)
    cdef Py_ssize_t n = 1
    while (2 * n <= GRAD_SLICES and n_chunks >= 2 * n * GRAD_SLICE_CHUNKS
           and 2 * n * weight_bytes <= GRAD_PARTIAL_BYTES):
        n *= 2
    return n


cdef int weight_grad(const floating* x, const floating* grad_out, floating* grad_w,
                     const Geometry* g, int n_threads) noexcept nogil:
    # Returns 0, or -1 when a buffer could not be allocated.  A work item is
    # a slice of positions (see grad_slices) x a block of output channels x
    # a block of taps; with several slices, items write partial gradients,
    # summed in slice order at the end.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t depth = (g.in_channels // g.groups) * g.kernel_h * g.kernel_w
    cdef Py_ssize_t total_pos = g.batch * g.out_h * g.out_w
    cdef Py_ssize_t chunk = min(<Py_ssize_t>GRAD_CHUNK, total_pos)
    cdef Py_ssize_t n_chunks = ceil_div(total_pos, chunk)
    cdef Py_ssize_t n_oc_blocks = ceil_div(cout_g, CYCONV_OC_BLOCK)
    cdef Py_ssize_t n_tap_blocks = ceil_div(depth, P)
    cdef Py_ssize_t blocks_per_item = min(n_oc_blocks, <Py_ssize_t>GRAD_OC_BLOCKS)
    cdef Py_ssize_t taps_per_item = min(n_tap_blocks, <Py_ssize_t>GRAD_TAP_BLOCKS)
    cdef Py_ssize_t n_slices = grad_slices(g, n_chunks, sizeof(floating))
    cdef Py_ssize_t n_oc_items, n_tap_items, n_items
    cdef Py_ssize_t wanted = ITEMS_PER_THREAD * n_threads if n_threads > 1 else 1
    cdef Py_ssize_t item, group, oc_item, tap_item, b0, b1, tb0, tb1, t0, n_taps, ldc
    cdef Py_ssize_t ch, q0, n_pos, n_seg, tb, b, o, oc, t, sl, i
    cdef Py_ssize_t weight_size = g.out_channels * depth
    cdef floating* partials = NULL  # [slice][output channel][tap], with slices
    cdef floating* dst
    cdef floating* patches
    cdef floating* packed
    cdef floating* acc
    cdef Py_ssize_t* segments
    cdef int failed = 0
    cdef int* failed_flag = &failed
    blocks_per_item = ceil_div(n_oc_blocks, ceil_div(n_oc_blocks, blocks_per_item))
    # fewer taps, then fewer channels per item, until every thread has enough
    # items, or the same number of equal items (all the same size)
    while True:
        n_oc_items = ceil_div(n_oc_blocks, blocks_per_item)
        n_tap_items = ceil_div(n_tap_blocks, taps_per_item)
        n_items = n_slices * g.groups * n_oc_items * n_tap_items
        if n_items >= wanted or (n_items % n_threads == 0 and n_tap_blocks % n_tap_items == 0
                                 and n_oc_blocks % n_oc_items == 0):
            break
        if taps_per_item > 1:
            taps_per_item -= 1
        elif blocks_per_item > 1:
            blocks_per_item = ceil_div(n_oc_blocks, 2 * n_oc_items)
        else:
            break
    taps_per_item = ceil_div(n_tap_blocks, n_tap_items)  # equal slices
    ldc = taps_per_item * P
    if n_slices > 1:
        partials = <floating*>malloc(n_slices * weight_size * sizeof(floating))
        if partials == NULL:
            return -1
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, n_items))
    with parallel(num_threads=n_threads):
        patches = <floating*>cyconv_aligned_alloc(taps_per_item * chunk * P * sizeof(floating))
        packed = <floating*>cyconv_aligned_alloc(blocks_per_item * chunk * CYCONV_OC_BLOCK * sizeof(floating))
        acc = <floating*>malloc(blocks_per_item * CYCONV_OC_BLOCK * ldc * sizeof(floating))
        segments = <Py_ssize_t*>malloc(5 * chunk * sizeof(Py_ssize_t))
        if patches == NULL or packed == NULL or acc == NULL or segments == NULL:
            failed_flag[0] = 1
        for item in prange(n_items, schedule='static'):
            if patches == NULL or packed == NULL or acc == NULL or segments == NULL:
                continue
            tap_item = item % n_tap_items
            oc_item = (item // n_tap_items) % n_oc_items
            group = item // (n_tap_items * n_oc_items) % g.groups
            sl = item // (n_tap_items * n_oc_items * g.groups)
            b0 = oc_item * blocks_per_item
            b1 = min(n_oc_blocks, b0 + blocks_per_item)
            tb0 = tap_item * taps_per_item
            tb1 = min(n_tap_blocks, tb0 + taps_per_item)
            t0 = tb0 * P
            n_taps = min(depth, tb1 * P) - t0
            fill_zero(acc, (b1 - b0) * CYCONV_OC_BLOCK * ldc)
            # lanes past the last tap stay zero through every chunk
            fill_zero(patches + (tb1 - tb0 - 1) * chunk * P, chunk * P)
            for ch in range(sl * n_chunks // n_slices, (sl + 1) * n_chunks // n_slices):
                q0 = ch * chunk
                n_pos = min(chunk, total_pos - q0)
                n_seg = chunk_segments(g, q0, n_pos, chunk, segments)
                pack_grad_output(grad_out, g, group, b0, b1, segments, n_seg, chunk, packed)
                gather_patches(x, g, group, t0, n_taps, segments, n_seg, chunk, patches)
                # a patch block (chunk x P) stays in L1 while the channel blocks stream
                for tb in range(tb1 - tb0):
                    for b in range(b0, b1):
                        micro_kernel(patches + tb * chunk * P, n_pos, P,
                                     packed + (b - b0) * chunk * CYCONV_OC_BLOCK,
                                     acc + (b - b0) * CYCONV_OC_BLOCK * ldc + tb * P, ldc,
                                     acc + (b - b0) * CYCONV_OC_BLOCK * ldc + tb * P, ldc)
            dst = partials + sl * weight_size if n_slices > 1 else grad_w
            for o in range(min(cout_g - b0 * CYCONV_OC_BLOCK, (b1 - b0) * CYCONV_OC_BLOCK)):
                oc = group * cout_g + b0 * CYCONV_OC_BLOCK + o
                for t in range(n_taps):
                    dst[oc * depth + t0 + t] = acc[o * ldc + t]
        if n_slices > 1:
            for oc in prange(g.out_channels, schedule='static'):
                copy_run(grad_w + oc * depth, partials + oc * depth, depth)
                for i in range(1, n_slices):
                    for t in range(depth):
                        grad_w[oc * depth + t] += partials[i * weight_size + oc * depth + t]
        cyconv_aligned_free(patches)
        cyconv_aligned_free(packed)
        free(acc)
        free(segments)
    free(partials)
    return -1 if failed else 0


cdef inline void tap_kernel(const floating* band, const Py_ssize_t* offsets, Py_ssize_t n_v,
                            const floating* go_t, floating* acc) noexcept nogil:
    # acc[t][l] += sum over positions v of band[offsets[t] + v] * go_t[v][l] for
    # BAND_POSITIONS taps x LANES output channels in registers: band_kernel's
    # block with taps for positions and positions for the reduction.
    cdef floating a[CYCONV_BAND_POSITIONS][CYCONV_BAND_LANES_F32]
    cdef const floating* gv
    cdef floating xv
    cdef Py_ssize_t v
    cdef int t, l
    cdef int L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    for t in range(CYCONV_BAND_POSITIONS):
        for l in range(L):
            a[t][l] = 0
    v = 0  # n_v >= 1: a loop with no way around it, see micro_kernel
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


cdef inline bint use_grad_bands(const Geometry* g, Py_ssize_t lanes,
                                Py_ssize_t itemsize) noexcept nogil:
    # stride 1, enough output channels per group to fill the lanes, and few
    # (input channel, tap) rows: with many, the gathered matrix product wins
    # (its patches are reused across more output channels).  Measured with
    # AVX2 on Zen 4: bands win up to 1008 float32 rows (64-112 channels 3x3,
    # 1.04-1.21x) and lose at 1152 (0.95x), and at 576 float64 rows
    # (0.8-0.9x).  With AVX-512 on Zen 5 they win up to 1152 rows in both
    # dtypes (128 channels 3x3 on 28x28: float32 1.18-1.24x, float64 1.07x;
    # 64 channels float64 1.07-1.2x) and lose from 2304 (256 channels on
    # 14x14: float32 0.99-1.01x, float64 0.92-0.94x; 512 on 7x7 0.62-0.86x).
    cdef Py_ssize_t rows = (g.in_channels // g.groups) * g.kernel_h * g.kernel_w
    return (g.stride_h == 1 and g.stride_w == 1 and g.kernel_h * g.kernel_w > 1
            and g.out_channels // g.groups >= lanes
            and (rows <= GRAD_BAND_MAX_ROWS if CYCONV_VECTOR_BYTES >= 64
                 else rows * itemsize <= GRAD_BAND_MAX_BYTES))


cdef int weight_grad_bands(const floating* x, const floating* grad_out, floating* grad_w,
                           const Geometry* g, int n_threads) noexcept nogil:
    # Stride 1: the weight gradient without gathering patches.  As in the
    # narrow-band forward, a unit (a block of output rows of one image) reads
    # its inputs from zero-padded bands of input rows, positions numbered
    # v = r * band_w + ow, tap (c, i, j) at band[offsets[t] + v].  A work item
    # owns a block of LANES output channels x a range of input channels of the
    # gradient; per unit it transposes its grad_output rows into go_t[v][LANES]
    # (zero in the padding columns), then, a few input channels at a time (a
    # band that stays in L1), tap_kernel accumulates 6 taps x LANES channels
    # over the unit's positions.  Units are summed in order: no write races,
    # and the order does not depend on the threads.
    cdef Py_ssize_t L = CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64
    cdef Py_ssize_t TB = CYCONV_BAND_POSITIONS
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t plane = g.out_h * g.out_w
    cdef Py_ssize_t n_oc_blocks = ceil_div(cout_g, L)
    cdef Py_ssize_t band_w = input_cols(g, g.out_w)
    cdef Py_ssize_t rows = min(g.out_h, max(1, GRAD_BAND_POSITIONS // band_w))
    cdef Py_ssize_t n_row_blocks, n_units, chan, n_v_cap, band_c, whole
    cdef Py_ssize_t range_c, n_ranges, n_items, wanted
    cdef Py_ssize_t item, group, rg, ob, c0, c1, sb, s0, s1, n_tb, tb, unit, n, oh0, rows_here, n_v
    cdef Py_ssize_t r, ow, l, o, t, lanes
    cdef Py_ssize_t* offsets
    cdef floating* band
    cdef floating* go_t
    cdef floating* acc
    cdef floating* dst
    cdef const floating* src
    cdef int failed = 0
    cdef int* failed_flag = &failed
    rows = ceil_div(g.out_h, ceil_div(g.out_h, rows))
    n_row_blocks = ceil_div(g.out_h, rows)
    n_units = g.batch * n_row_blocks
    chan = input_rows(g, rows) * band_w
    n_v_cap = (rows - 1) * band_w + g.out_w
    # channels per band: within GRAD_BAND_BYTES, a multiple of whole tap blocks
    # (only the range's last band may end in a partial block)
    whole = TB // gcd(taps, TB)
    band_c = max(whole, GRAD_BAND_BYTES // (chan * <Py_ssize_t>sizeof(floating)) // whole * whole)
    # input-channel ranges only to give every thread enough items
    wanted = ITEMS_PER_THREAD * n_threads if n_threads > 1 else 1
    n_ranges = max(1, min(cin_g, ceil_div(wanted, g.groups * n_oc_blocks)))
    range_c = ceil_div(cin_g, n_ranges)
    n_ranges = ceil_div(cin_g, range_c)
    n_items = g.groups * n_ranges * n_oc_blocks
    # the taps of a band; a last, partial tap block also reads channels past
    # the band's (their sums land past the range's taps and are never stored)
    offsets = <Py_ssize_t*>malloc((band_c * taps + TB) * sizeof(Py_ssize_t))
    if offsets == NULL:
        return -1
    band_offsets(g, band_c, chan, band_w, offsets)
    for t in range(TB):
        offsets[band_c * taps + t] = 0
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, n_items))
    with parallel(num_threads=n_threads):
        band = <floating*>cyconv_aligned_alloc(band_c * chan * sizeof(floating))
        go_t = <floating*>cyconv_aligned_alloc(n_v_cap * L * sizeof(floating))
        acc = <floating*>cyconv_aligned_alloc((range_c * taps + TB) * L * sizeof(floating))
        if band == NULL or go_t == NULL or acc == NULL:
            failed_flag[0] = 1
        else:
            fill_zero(band, band_c * chan)  # what a partial tap block may read is defined
        for item in prange(n_items, schedule='static'):
            if band == NULL or go_t == NULL or acc == NULL:
                continue
            ob = item % n_oc_blocks
            rg = item // n_oc_blocks % n_ranges
            group = item // (n_oc_blocks * n_ranges)
            c0 = rg * range_c
            c1 = min(cin_g, c0 + range_c)
            lanes = min(L, cout_g - ob * L)
            fill_zero(acc, ((c1 - c0) * taps + TB) * L)
            for unit in range(n_units):
                n = unit // n_row_blocks
                oh0 = unit % n_row_blocks * rows
                rows_here = min(rows, g.out_h - oh0)
                n_v = (rows_here - 1) * band_w + g.out_w
                # go_t[v][l] = grad_out[n, channel ob * L + l of the group, oh0 + r, ow]
                for r in range(rows_here):
                    dst = go_t + r * band_w * L
                    transpose_into(grad_out + (n * g.out_channels + group * cout_g + ob * L) * plane
                                   + (oh0 + r) * g.out_w, plane, lanes, g.out_w, dst, L)
                    if lanes < L:
                        for ow in range(g.out_w):
                            fill_zero(dst + ow * L + lanes, L - lanes)
                    if r < rows_here - 1:
                        fill_zero(dst + g.out_w * L, (band_w - g.out_w) * L)
                for sb in range(ceil_div(c1 - c0, band_c)):
                    s0 = c0 + sb * band_c
                    s1 = min(c1, s0 + band_c)
                    load_band(x, g, n, group * cin_g + s0, s1 - s0, oh0 - g.pad_top,
                              input_rows(g, rows_here), band_w, chan, band)
                    n_tb = ceil_div((s1 - s0) * taps, TB)
                    for tb in range(n_tb):
                        tap_kernel(band, offsets + tb * TB, n_v, go_t,
                                   acc + ((s0 - c0) * taps + tb * TB) * L)
            for l in range(lanes):
                o = group * cout_g + ob * L + l
                for t in range((c1 - c0) * taps):
                    grad_w[o * depth + c0 * taps + t] = acc[t * L + l]
        cyconv_aligned_free(band)
        cyconv_aligned_free(go_t)
        cyconv_aligned_free(acc)
    free(offsets)
    return -1 if failed else 0


cdef void dot4(const floating* a, const floating* b, const Py_ssize_t* shifts,
               Py_ssize_t n, floating* sums) noexcept nogil:
    # sums[k] = sum_q a[q] * b[shifts[k] + q] for 4 shifts at once: each a is
    # loaded once for 4 products, and 4 x 16 lane accumulators are independent
    # chains (gcc vectorises the fixed inner loops; a plain reduction it would
    # not, without -ffast-math)
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


cdef int weight_grad_planes(const floating* x, const floating* grad_out, floating* grad_w,
                            const Geometry* g, int n_threads) noexcept nogil:
    # Stride 1, few channels per group (depthwise-like): the matrix product
    # would pad its register tiles mostly with zeros.  As in forward_planes, on a
    # zero-padded input plane of row length pw each tap is a constant shift,
    # so with grad_output laid out at row length pw (zeros past out_w) the
    # gradient of tap (i, j) is one long dot product.  A work item is one
    # output channel: it owns its gradient and sums images in order.
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t pw = input_cols(g, g.out_w)
    cdef Py_ssize_t ph = input_rows(g, g.out_h)
    cdef Py_ssize_t length = (g.out_h - 1) * pw + g.out_w
    cdef Py_ssize_t oc, n, c, r, group, t0, t, k
    cdef Py_ssize_t* shifts  # per thread, as every buffer here: a C array would be shared
    cdef floating* sums
    cdef floating* padded
    cdef floating* spread
    cdef floating* acc
    cdef const floating* src
    cdef int failed = 0
    cdef int* failed_flag = &failed
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, g.out_channels))
    with parallel(num_threads=n_threads):
        padded = <floating*>cyconv_aligned_alloc(ph * pw * sizeof(floating))
        spread = <floating*>cyconv_aligned_alloc(g.out_h * pw * sizeof(floating))
        acc = <floating*>malloc((cin_g * taps + 4) * sizeof(floating))
        shifts = <Py_ssize_t*>malloc(4 * sizeof(Py_ssize_t))
        if padded == NULL or spread == NULL or acc == NULL or shifts == NULL:
            failed_flag[0] = 1
        for oc in prange(g.out_channels, schedule='static'):
            if padded == NULL or spread == NULL or acc == NULL or shifts == NULL:
                continue
            sums = acc + cin_g * taps
            group = oc // cout_g
            fill_zero(acc, cin_g * taps)
            for n in range(g.batch):
                src = grad_out + (n * g.out_channels + oc) * g.out_h * g.out_w
                for r in range(g.out_h):
                    copy_run(spread + r * pw, src + r * g.out_w, g.out_w)
                    fill_zero(spread + r * pw + g.out_w, pw - g.out_w)
                for c in range(cin_g):
                    pad_plane(x + ((n * g.in_channels + group * cin_g + c) * g.in_h) * g.in_w,
                              g, ph, pw, padded, n > 0 or c > 0)
                    for t0 in range(0, taps, 4):
                        for k in range(4):  # the last group repeats its last tap
                            t = min(t0 + k, taps - 1)
                            shifts[k] = (t // g.kernel_w * g.dilation_h * pw
                                         + t % g.kernel_w * g.dilation_w)
                        dot4(spread, padded, shifts, length, sums)
                        for k in range(min(4, taps - t0)):
                            acc[c * taps + t0 + k] += sums[k]
            for r in range(cin_g * taps):
                grad_w[oc * cin_g * taps + r] = acc[r]
        cyconv_aligned_free(padded)
        cyconv_aligned_free(spread)
        free(acc)
        free(shifts)
    return -1 if failed else 0


cdef void set_geometry(Geometry* g, const Py_ssize_t* x_shape, const Py_ssize_t* w_shape,
                       const Py_ssize_t* out_shape,
                       Py_ssize_t stride_h, Py_ssize_t stride_w,
                       Py_ssize_t pad_top, Py_ssize_t pad_left,
                       Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t groups) noexcept:
    # shapes as NCHW, (C_out, C_in / groups, kh, kw) and NCHW
    g.batch, g.in_channels, g.in_h, g.in_w = x_shape[0], x_shape[1], x_shape[2], x_shape[3]
    g.out_channels, g.kernel_h, g.kernel_w = w_shape[0], w_shape[2], w_shape[3]
    g.out_h, g.out_w, g.groups = out_shape[2], out_shape[3], groups
    g.stride_h, g.stride_w, g.pad_top, g.pad_left = stride_h, stride_w, pad_top, pad_left
    g.dilation_h, g.dilation_w = dilation_h, dilation_w


# Input gradient by spreading: dx[c, ih, iw] collects w[o, c, i, j] * go[o, oh, ow]
# for ih = oh * stride_h + i * dilation_h - pad_top (and likewise iw).  For a
# chunk of grad_output positions a thread forms the products of the (c, i, j)
# rows of its channels, W^T go, one OC_BLOCK x chunk block at a time with
# micro_kernel, and adds each block into dx at once: the col2im of a
# matrix-product backward without its columns buffer, and one pass for any
# stride.  A work item owns the dx rows [h0, h1) of a slice of the channels of
# one image and takes every chunk that reaches them.  Chunks are fixed runs of
# an image's positions, and within a chunk terms are added by row (c, i, j),
# then position: every dx element sums its terms in the same order whatever the
# thread count.
cdef enum:
    SPREAD_CHUNK = 32768     # grad_output values per chunk (channels x positions): L2
    SPREAD_SLICE_ROWS = 96   # (c, i, j) rows a channel slice has at least
    SPREAD_PACK_CHANNELS = 8  # grad_output channels packed at a time (read streams)
    SPREAD_PACK_BLOCKS = 8    # weight blocks an item packs at a time when it packs its own
    POINTWISE_MIN_CHANNELS = 16  # input channels per group a 1x1 layer needs for its product
    PREFETCH_ROWS = 8  # rows pack_row_tiles fetches ahead


cdef inline Py_ssize_t tile_chunk(Py_ssize_t n_rows, Py_ssize_t n_pos, Py_ssize_t P) noexcept nogil:
    # positions per chunk of pack_row_tiles: n_rows x chunk values within
    # SPREAD_CHUNK (L2), at least TILES_PER_CHUNK tiles, at most the n_pos
    # positions there are (a plane, or all images' in the pointwise kernel)
    return min(max(TILES_PER_CHUNK * P, SPREAD_CHUNK // n_rows // P * P), ceil_div(n_pos, P) * P)


cdef inline void pack_row_tiles(const floating* src, Py_ssize_t plane, Py_ssize_t n_rows,
                                Py_ssize_t p0, Py_ssize_t n_pos, floating* tiles) noexcept nogil:
    # tiles[p // P][row][p % P] = src[row * plane + p - p0] for the chunk
    # positions p0 <= p < p0 + n_pos, zeros after them to the end of their
    # last tile: n_rows planes as the micro-kernel's operand (a run of
    # positions of one image; a chunk may take several, one after the other).
    # Read row by row (tile by tile, the reads would jump between rows a cache
    # line at a time); rows a plane apart are short runs, so a few rows ahead
    # are fetched, or each would wait for memory on its own.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t p_end = p0 + n_pos
    cdef Py_ssize_t row, p, lanes, k
    cdef const floating* s
    cdef floating* dst
    for row in range(n_rows):
        s = src + row * plane
        if row + PREFETCH_ROWS < n_rows:
            prefetch_run(s + PREFETCH_ROWS * plane, n_pos * <Py_ssize_t>sizeof(floating))
        p = p0
        while p < p_end:
            lanes = min(P - p % P, p_end - p)
            dst = tiles + (p // P * n_rows + row) * P + p % P
            if lanes == P:  # a whole tile: a fixed count, two vector moves
                for k in range(P):
                    dst[k] = s[p - p0 + k]
            else:
                copy_run(dst, s + p - p0, lanes)
            p += lanes
        if p_end % P:
            fill_zero(tiles + (p_end // P * n_rows + row) * P + p_end % P, P - p_end % P)


cdef void pack_spread_blocks(const floating* weight, const Geometry* g, Py_ssize_t group,
                             Py_ssize_t slice_c, Py_ssize_t sl, Py_ssize_t b0, Py_ssize_t b1,
                             Py_ssize_t o0, Py_ssize_t o1, floating* packed) noexcept nogil:
    # packed[blk - b0][o][r] = w[o][m] for the blocks b0 <= blk < b1 of channel
    # slice sl and the channels o0 <= o < o1 of the group's conv2d weight
    # w[o][m] (o: output channel, the grad_output's; m: row (c, i, j)), m =
    # sl * slice_c * taps + blk * OB + r, zero past the slice's rows.  A few
    # channels at a time through all the blocks: each weight row is read in
    # order.  (A block at a time, all its channels, touched a line in every
    # row, C_in * kh * kw values apart: with 512 channels 3x3 these lines
    # fought over a few cache sets, and the packing took half the time.)
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t m_end = min(cin_g, (sl + 1) * slice_c) * taps
    cdef const floating* src
    cdef Py_ssize_t i, run, blk, m0, n_m, o, r
    cdef floating* dst
    for i in range(ceil_div(o1 - o0, SPREAD_PACK_CHANNELS)):
        run = o0 + i * SPREAD_PACK_CHANNELS
        # the rows of a few runs ahead are asked for: each row's piece is a
        # short run a weight row apart, which would wait on memory on its own
        for o in range(run + PACK_AHEAD * SPREAD_PACK_CHANNELS,
                       min(o1, run + (PACK_AHEAD + 1) * SPREAD_PACK_CHANNELS)):
            prefetch_run(weight + (group * cout_g + o) * depth + sl * slice_c * taps + b0 * OB,
                         min(m_end - (sl * slice_c * taps + b0 * OB), (b1 - b0) * OB)
                         * <Py_ssize_t>sizeof(floating))
        for blk in range(b0, b1):
            m0 = sl * slice_c * taps + blk * OB
            n_m = max(0, min(m_end - m0, OB))
            dst = packed + (blk - b0) * cout_g * OB
            for o in range(run, min(o1, run + SPREAD_PACK_CHANNELS)):
                src = weight + (group * cout_g + o) * depth + m0
                if n_m == OB:  # a whole block: a fixed count gcc unrolls
                    for r in range(CYCONV_OC_BLOCK):
                        dst[o * OB + r] = src[r]
                    continue
                for r in range(n_m):
                    dst[o * OB + r] = src[r]
                for r in range(n_m, OB):
                    dst[o * OB + r] = 0


cdef void spread_rows(const floating* block, Py_ssize_t ldb, Py_ssize_t m0, Py_ssize_t m1,
                      const Geometry* g, floating* dx_image, Py_ssize_t h0, Py_ssize_t h1,
                      const Py_ssize_t* segments, Py_ssize_t n_segments,
                      const floating* bias) noexcept nogil:
    # dx_image[c, ih, iw] += block[m - m0, p] for the rows m = (c, i, j) of the
    # group and the chunk positions p that reach a row ih in [h0, h1); with a
    # bias (the group's), dx_image[c, ih, iw] = bias[c] + block[m - m0, p]
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t m, c, i, j, s, ih, iw0, lo, hi, q, sw = g.stride_w
    cdef const floating* src
    cdef floating* dst
    for m in range(m0, m1):
        c = m // taps
        i = m % taps // g.kernel_w
        j = m % g.kernel_w
        for s in range(n_segments):
            ih = segments[5 * s + 1] * g.stride_h + i * g.dilation_h - g.pad_top
            if ih < h0 or ih >= h1:
                continue
            iw0 = segments[5 * s + 2] * sw + j * g.dilation_w - g.pad_left
            valid_columns(iw0, sw, g.in_w, segments[5 * s + 4], &lo, &hi)
            dst = dx_image + (c * g.in_h + ih) * g.in_w + iw0
            src = block + (m - m0) * ldb + segments[5 * s + 3]
            if bias != NULL:
                for q in range(lo, hi):
                    dst[q] = src[q] + bias[c]
            elif sw == 1:
                for q in range(lo, hi):
                    dst[q] += src[q]
            else:
                for q in range(lo, hi):
                    dst[q * sw] += src[q]


cdef int spread(const floating* grad_out, const floating* weight, const floating* bias,
                floating* dx, const Geometry* g, int n_threads) noexcept nogil:
    # dx = bias + the input gradient of conv2d for geometry g (x is dx) and its
    # weight.  Returns 0, or -1 when a buffer could not be allocated.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w
    cdef Py_ssize_t depth = cin_g * taps
    cdef Py_ssize_t plane = g.out_h * g.out_w
    cdef Py_ssize_t chunk = tile_chunk(cout_g, plane, P)
    cdef Py_ssize_t wanted = ITEMS_PER_THREAD * n_threads if n_threads > 1 else 1
    cdef Py_ssize_t base = g.batch * g.groups
    # 1x1 with the same positions in and out (pointwise): every dx value gets
    # one term, stored with the bias instead of added to it
    cdef bint once = (taps == 1 and g.stride_h == 1 and g.stride_w == 1 and g.pad_top == 0
                      and g.pad_left == 0 and g.in_h == g.out_h and g.in_w == g.out_w)
    cdef Py_ssize_t n_slices, slice_c, slice_blocks, n_row_slices, slice_h, n_items
    cdef Py_ssize_t n_o_runs = ceil_div(cout_g, SPREAD_PACK_CHANNELS), o0
    cdef Py_ssize_t item, pack, group, sl, blk, n, rs, h0, h1, c0, c1, m0, m1, k, k0, k1
    cdef Py_ssize_t oh0, oh1, q, n_pos, n_tiles, n_seg, tile, c, ih, iw
    cdef bint own_packing
    cdef floating* packed
    cdef floating* own  # per thread, with own_packing: a few packed blocks
    cdef floating* wblock
    cdef floating* go_tiles
    cdef floating* block  # a block of rows, then a tile of zeros
    cdef floating* zero_tile
    cdef Py_ssize_t* segments
    cdef floating* dx_image
    cdef floating* dst
    cdef int failed = 0
    cdef int* failed_flag = &failed
    # channel slices only while each keeps enough rows; then rows of dx, until
    # the items are enough or split evenly over the threads
    n_slices = max(1, min(ceil_div(wanted, base), depth // SPREAD_SLICE_ROWS))
    slice_c = ceil_div(cin_g, n_slices)
    n_slices = ceil_div(cin_g, slice_c)
    slice_blocks = ceil_div(slice_c * taps, OB)
    n_row_slices = 1
    if base * n_slices < wanted and (base * n_slices) % n_threads != 0:
        n_row_slices = min(g.in_h, n_threads)
    slice_h = ceil_div(g.in_h, n_row_slices)
    n_row_slices = ceil_div(g.in_h, slice_h)
    n_items = base * n_slices * n_row_slices

    # batch 1 in one chunk: each weight block is used once, by the item of its
    # slice, which packs its blocks a few at a time into a buffer of its own
    # (the weights are read from memory once, not read, written packed and
    # read back: 512 channels 3x3 1.6x)
    own_packing = g.batch == 1 and n_row_slices == 1 and chunk >= plane
    packed = NULL
    if not own_packing:
        packed = <floating*>malloc(g.groups * n_slices * slice_blocks * cout_g * OB * sizeof(floating))
        if packed == NULL:
            return -1
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, n_items))
    with parallel(num_threads=n_threads):
        for pack in prange(0 if own_packing else g.groups * n_o_runs, schedule='static'):
            group = pack // n_o_runs
            o0 = pack % n_o_runs * SPREAD_PACK_CHANNELS
            for sl in range(n_slices):
                pack_spread_blocks(weight, g, group, slice_c, sl, 0, slice_blocks,
                                   o0, min(cout_g, o0 + SPREAD_PACK_CHANNELS),
                                   packed + (group * n_slices + sl) * slice_blocks * cout_g * OB)
        go_tiles = <floating*>cyconv_aligned_alloc(chunk * cout_g * sizeof(floating))
        block = <floating*>cyconv_aligned_alloc(OB * (chunk + P) * sizeof(floating))
        segments = <Py_ssize_t*>malloc(5 * chunk * sizeof(Py_ssize_t))
        own = NULL
        if own_packing:
            own = <floating*>cyconv_aligned_alloc(SPREAD_PACK_BLOCKS * cout_g * OB * sizeof(floating))
        if go_tiles == NULL or block == NULL or segments == NULL or (own_packing and own == NULL):
            failed_flag[0] = 1
        else:
            zero_tile = block + OB * chunk
            fill_zero(zero_tile, OB * P)
        for item in prange(n_items, schedule='static'):
            if go_tiles == NULL or block == NULL or segments == NULL or (own_packing and own == NULL):
                continue
            rs = item % n_row_slices
            sl = item // n_row_slices % n_slices
            group = item // (n_row_slices * n_slices) % g.groups
            n = item // (n_row_slices * n_slices * g.groups)
            h0 = rs * slice_h
            h1 = min(g.in_h, h0 + slice_h)
            c0 = sl * slice_c
            c1 = min(cin_g, c0 + slice_c)
            dx_image = dx + (n * g.in_channels + group * cin_g) * g.in_h * g.in_w
            if not once:
                for c in range(c0, c1):
                    for ih in range(h0, h1):
                        dst = dx_image + (c * g.in_h + ih) * g.in_w
                        for iw in range(g.in_w):
                            dst[iw] = bias[group * cin_g + c]
            # the grad_output rows oh with oh * stride_h - pad_top + [0, reach] meeting [h0, h1)
            oh0 = h0 + g.pad_top - (g.kernel_h - 1) * g.dilation_h
            oh0 = 0 if oh0 <= 0 else ceil_div(oh0, g.stride_h)
            oh1 = h1 - 1 + g.pad_top
            oh1 = 0 if oh1 < 0 else min(g.out_h, oh1 // g.stride_h + 1)
            if oh0 >= oh1:
                continue
            k0 = oh0 * g.out_w // chunk
            k1 = ceil_div(oh1 * g.out_w, chunk)
            for k in range(k0, k1):
                q = k * chunk
                n_pos = min(chunk, plane - q)
                n_tiles = ceil_div(n_pos, P)
                n_seg = chunk_segments(g, n * plane + q, n_pos, chunk, segments)
                # go_tiles[tile][o][lane] = grad_out[o, q + tile * P + lane]
                pack_row_tiles(grad_out + (n * g.out_channels + group * cout_g) * plane + q,
                               plane, cout_g, 0, n_pos, go_tiles)
                for blk in range(slice_blocks):
                    m0 = c0 * taps + blk * OB
                    m1 = min(c1 * taps, m0 + OB)
                    if m0 >= m1:
                        break
                    if own_packing:
                        if blk % SPREAD_PACK_BLOCKS == 0:
                            pack_spread_blocks(weight, g, group, slice_c, sl, blk,
                                               min(slice_blocks, blk + SPREAD_PACK_BLOCKS), 0, cout_g,
                                               own)
                        wblock = own + blk % SPREAD_PACK_BLOCKS * cout_g * OB
                    else:
                        wblock = packed + ((group * n_slices + sl) * slice_blocks + blk) * cout_g * OB
                    for tile in range(n_tiles):
                        micro_kernel(go_tiles + tile * cout_g * P, cout_g, P, wblock,
                                     zero_tile, P, block + tile * P, chunk)
                    spread_rows(block, chunk, m0, m1, g, dx_image, h0, h1, segments, n_seg,
                                bias + group * cin_g if once else NULL)
        cyconv_aligned_free(go_tiles)
        cyconv_aligned_free(block)
        cyconv_aligned_free(own)
        free(segments)
    free(packed)
    return -1 if failed else 0


cdef inline bint use_pointwise(const Geometry* g) noexcept nogil:
    # 1x1, stride 1, no padding, and enough input channels per group for a
    # matrix product
    return (g.kernel_h == 1 and g.kernel_w == 1 and g.stride_h == 1 and g.stride_w == 1
            and g.pad_top == 0 and g.pad_left == 0 and g.out_h == g.in_h and g.out_w == g.in_w
            and g.in_channels // g.groups >= POINTWISE_MIN_CHANNELS)


cdef int forward_pointwise(const floating* x, const floating* weight, const floating* bias,
                           const floating* prepacked, floating* out, const Geometry* g,
                           int n_threads) noexcept nogil:
    # A 1x1 convolution (stride 1, no padding) is the matrix product out = W x
    # per image and group.  Positions run through the images one after the
    # other (f = n * plane + q), so that a tile takes the end of one image and
    # the start of the next: 14x14 planes in tiles of 32 positions computed 7
    # tiles for 6.1, a tenth in vain.  A work item is a chunk of these tiles
    # for one group and a run of output-channel blocks (its x stays in L2
    # while the blocks take it).  With AVX-512 the micro-kernel reads a tile
    # within one image in place, its rows a plane apart (packing every tile
    # took a fifth of a 256-channel 14x14 layer on Zen 5, and the AVX2 kernel
    # there gained 1.08x too; but on a Zen 4 with AVX2 an earlier version read
    # in place at 0.52-1.08x the speed, float64 worst, so AVX2 and SSE pack
    # every tile); a tile across images (or the last, short one) is packed
    # first.  Each block's tile starts from the bias and goes straight into
    # out (written once: no bias pass); a tile across images, a partial tile
    # or channel block goes through a small buffer.
    cdef Py_ssize_t P = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t OB = CYCONV_OC_BLOCK
    cdef Py_ssize_t cin_g = g.in_channels // g.groups
    cdef Py_ssize_t cout_g = g.out_channels // g.groups
    cdef Py_ssize_t plane = g.out_h * g.out_w
    cdef Py_ssize_t n_pos_all = g.batch * plane
    cdef Py_ssize_t n_tiles_all = ceil_div(n_pos_all, P)
    cdef Py_ssize_t n_blocks = ceil_div(cout_g, OB)
    # tiles per chunk, at most: its tiles of x stay in L2 while the blocks take them
    cdef Py_ssize_t most = tile_chunk(cin_g, n_pos_all, P) // P
    cdef bint in_place = CYCONV_VECTOR_BYTES >= 64  # AVX-512, see above
    cdef Py_ssize_t n_chunks = ceil_div(n_tiles_all, most)
    cdef Py_ssize_t base, n_oc_items, blocks_per_item
    cdef Py_ssize_t wanted = ITEMS_PER_THREAD * n_threads if n_threads > 1 else 1
    cdef Py_ssize_t n_items, item, pack, k, n, group, f0, f, q, n_pos, n_tiles, tile, lanes, o, p
    cdef Py_ssize_t b, b0, b1, oc0, valid, end, head, tail
    cdef floating bv
    cdef floating* owned = NULL
    cdef const floating* packed = prepacked
    cdef const floating* src
    cdef floating* x_tiles  # the chunk's packed tiles
    cdef const floating* x_tile
    cdef Py_ssize_t ldx
    cdef floating* edge  # a partial tile, then the bias as a tile
    cdef floating* bias_tile
    cdef int failed = 0
    cdef int* failed_flag = &failed
    # smaller chunks while the items are too few (down to TILES_PER_CHUNK
    # tiles), a multiple of the threads (chunk k: tiles k * n_tiles_all //
    # n_chunks on, about equal), then split the output channels (each part
    # packs x again)
    n_chunks = max(n_chunks, min(ceil_div(n_tiles_all, TILES_PER_CHUNK), ceil_div(wanted, g.groups)))
    n_chunks = min(n_tiles_all, ceil_div(n_chunks, n_threads) * n_threads)
    base = g.groups * n_chunks
    n_oc_items = min(n_blocks, ceil_div(wanted, base))
    blocks_per_item = ceil_div(n_blocks, n_oc_items)
    n_oc_items = ceil_div(n_blocks, blocks_per_item)
    n_items = base * n_oc_items
    if packed == NULL:
        owned = <floating*>malloc(g.groups * n_blocks * cin_g * OB * sizeof(floating))
        packed = owned
        if packed == NULL:
            return -1
    n_threads = <int>max(1, min(<Py_ssize_t>n_threads, n_items))
    with parallel(num_threads=n_threads):
        if owned != NULL:
            for pack in prange(g.groups * n_blocks, schedule='static'):
                pack_weight_block(weight, g, pack // n_blocks, pack % n_blocks, OB, owned)
        x_tiles = <floating*>cyconv_aligned_alloc(ceil_div(n_tiles_all, n_chunks) * P * cin_g
                                                  * sizeof(floating))
        edge = <floating*>cyconv_aligned_alloc(2 * OB * P * sizeof(floating))
        bias_tile = edge + OB * P
        if x_tiles == NULL or edge == NULL:
            failed_flag[0] = 1
        for item in prange(n_items, schedule='static'):
            if x_tiles == NULL or edge == NULL:
                continue
            b0 = item % n_oc_items * blocks_per_item
            b1 = min(n_blocks, b0 + blocks_per_item)
            k = item // n_oc_items % n_chunks
            group = item // (n_oc_items * n_chunks)
            f0 = k * n_tiles_all // n_chunks * P
            n_pos = min((k + 1) * n_tiles_all // n_chunks * P, n_pos_all) - f0
            n_tiles = ceil_div(n_pos, P)
            # x_tiles[tile][c][lane] = x[n, c, q] for f0 + tile * P + lane = n *
            # plane + q: every tile, or with in_place those that a run of one
            # image shares with another (or the short last one)
            f = f0
            while f < f0 + n_pos:
                q = f % plane
                end = min(f0 + n_pos, f - q + plane)  # the end of this image's run
                src = x + (f // plane * g.in_channels + group * cin_g) * plane + q
                head = end
                tail = end
                if in_place:
                    head = min(end, f0 + ceil_div(f - f0, P) * P)
                    tail = max(head, f0 + (end - f0) // P * P)
                if head > f:
                    pack_row_tiles(src, plane, cin_g, f - f0, head - f, x_tiles)
                if end > tail:
                    pack_row_tiles(src + tail - f, plane, cin_g, tail - f0, end - tail, x_tiles)
                f = end
            for b in range(b0, b1):
                oc0 = group * cout_g + b * OB
                valid = min(OB, cout_g - b * OB)
                for o in range(OB):
                    bv = bias[oc0 + o] if o < valid else 0
                    for p in range(P):
                        bias_tile[o * P + p] = bv
                for tile in range(n_tiles):
                    f = f0 + tile * P
                    n = f // plane
                    q = f % plane
                    lanes = min(P, n_pos - tile * P)
                    if in_place and q + P <= plane:  # within an image: x read in place
                        x_tile = x + (n * g.in_channels + group * cin_g) * plane + q
                        ldx = plane
                    else:
                        x_tile = x_tiles + tile * cin_g * P
                        ldx = P
                    if valid == OB and q + P <= plane:
                        micro_kernel(x_tile, cin_g, ldx, packed + (group * n_blocks + b) * cin_g * OB,
                                     bias_tile, P, out + (n * g.out_channels + oc0) * plane + q, plane)
                        continue
                    micro_kernel(x_tile, cin_g, ldx, packed + (group * n_blocks + b) * cin_g * OB,
                                 bias_tile, P, edge, P)
                    p = 0
                    while p < lanes:  # the tile's runs of one image each
                        n = (f + p) // plane
                        q = (f + p) % plane
                        for o in range(valid):
                            copy_run(out + (n * g.out_channels + oc0 + o) * plane + q,
                                     edge + o * P + p, min(lanes - p, plane - q))
                        p = p + min(lanes - p, plane - q)
        cyconv_aligned_free(x_tiles)
        cyconv_aligned_free(edge)
    free(owned)
    return -1 if failed else 0


def conv2d_input_grad(const floating[:, :, :, ::1] grad_out, const floating[:, :, :, ::1] weight,
                      const floating[::1] bias, floating[:, :, :, ::1] grad_x,
                      Py_ssize_t stride_h, Py_ssize_t stride_w,
                      Py_ssize_t pad_top, Py_ssize_t pad_left,
                      Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                      Py_ssize_t groups, int num_threads):
    """grad_x = bias + the gradient of conv2d with respect to its input, for
    checked, contiguous, non-empty operands (bias has one value per input channel)."""
    cdef Geometry g
    cdef int status
    set_geometry(&g, grad_x.shape, weight.shape, grad_out.shape,
                 stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    with nogil:
        status = spread(&grad_out[0, 0, 0, 0], &weight[0, 0, 0, 0], &bias[0],
                        &grad_x[0, 0, 0, 0], &g, num_threads)
    if status != 0:
        raise MemoryError("cyconv: could not allocate the per-thread conv2d buffers")


def conv2d_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] grad_out,
                       floating[:, :, :, ::1] grad_w,
                       Py_ssize_t stride_h, Py_ssize_t stride_w,
                       Py_ssize_t pad_top, Py_ssize_t pad_left,
                       Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                       Py_ssize_t groups, int num_threads):
    """grad_w = the gradient of conv2d's weight, for checked, contiguous, non-empty operands."""
    cdef Geometry g
    cdef int status
    set_geometry(&g, x.shape, grad_w.shape, grad_out.shape,
                 stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    with nogil:
        if not compact_span(&g):
            status = weight_grad(&x[0, 0, 0, 0], &grad_out[0, 0, 0, 0], &grad_w[0, 0, 0, 0],
                                 &g, num_threads)
        elif few_channels(&g) and stride_h == 1 and stride_w == 1:
            status = weight_grad_planes(&x[0, 0, 0, 0], &grad_out[0, 0, 0, 0],
                                        &grad_w[0, 0, 0, 0], &g, num_threads)
        elif use_grad_bands(&g, CYCONV_BAND_LANES_F32 if floating is float else CYCONV_BAND_LANES_F64,
                            sizeof(floating)):
            status = weight_grad_bands(&x[0, 0, 0, 0], &grad_out[0, 0, 0, 0],
                                       &grad_w[0, 0, 0, 0], &g, num_threads)
        else:
            status = weight_grad(&x[0, 0, 0, 0], &grad_out[0, 0, 0, 0], &grad_w[0, 0, 0, 0],
                                 &g, num_threads)
    if status != 0:
        raise MemoryError("cyconv: could not allocate the per-thread conv2d buffers")


cdef double channel_sum(const floating* src, Py_ssize_t n_runs, Py_ssize_t run_stride,
                        Py_ssize_t n) noexcept nogil:
    # the sum of n_runs runs of n values, run_stride apart: whole blocks of 4
    # vectors, then of one, in as many lanes (fixed trip counts gcc
    # vectorises, which it will not do for one running sum; the lanes carry
    # on from run to run, as planes of 7x7 fill no block of 4), lanes and the
    # rest added in double
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


def conv2d_bias_grad(const floating[:, :, ::1] grad_out, floating[::1] grad_b, int num_threads):
    """grad_b[c] = the sum of grad_out[:, c, :] (N, C, positions), by channel
    on num_threads threads."""
    cdef Py_ssize_t N = grad_out.shape[0], C = grad_out.shape[1], n_pos = grad_out.shape[2]
    cdef Py_ssize_t c
    # a thread per MIN_MACS_PER_THREAD values at most, as forward() (waking one costs more)
    num_threads = <int>max(1, min(<Py_ssize_t>num_threads, N * C * n_pos // MIN_MACS_PER_THREAD))
    with nogil:
        for c in prange(C, schedule='static', num_threads=num_threads):
            grad_b[c] = <floating>channel_sum(&grad_out[0, c, 0], N, C * n_pos, n_pos)


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                   const floating[::1] bias, floating[:, :, :, ::1] out,
                   Py_ssize_t stride_h, Py_ssize_t stride_w,
                   Py_ssize_t pad_top, Py_ssize_t pad_left,
                   Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                   Py_ssize_t groups, int num_threads, packed=None, Py_ssize_t packed_block=0,
                   tuple weight_shape=None):
    """out = conv2d(x, weight, bias) for checked, contiguous, non-empty operands.

    Padding is zeros: pad_top/pad_left shift the window; the bottom/right
    padding is implied by out's shape.  packed: None, or weight as pack_weight
    packs it in blocks of packed_block, the block packing_block gives for
    this call (checked: a wrong layout would give wrong results); weight may
    then be None, its shape given as weight_shape.
    """
    cdef Geometry g
    cdef int status
    cdef const floating[::1] packed_view
    cdef const floating* prepacked = NULL
    cdef const floating* weight_data = NULL
    cdef Py_ssize_t w_shape[4]
    cdef int i
    if weight is None:
        if packed is None or weight_shape is None or len(weight_shape) != 4:
            raise ValueError("cyconv: conv2d_forward without weight needs packed and weight_shape")
        for i in range(4):
            w_shape[i] = weight_shape[i]
    else:
        for i in range(4):
            w_shape[i] = weight.shape[i]
        weight_data = &weight[0, 0, 0, 0]
    set_geometry(&g, x.shape, w_shape, out.shape,
                 stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    if packed is not None:
        if packed_block != block_for(&g, sizeof(floating) == 8) or packed_block == 0:
            raise ValueError(f"cyconv: weights packed in blocks of {packed_block} for a call "
                             f"that reads blocks of {block_for(&g, sizeof(floating) == 8)}")
        packed_view = packed
        if packed_view.shape[0] != packed_size(&g, packed_block):
            raise ValueError(f"cyconv: {packed_view.shape[0]} packed weights for a layout "
                             f"of {packed_size(&g, packed_block)}")
        prepacked = &packed_view[0]
    with nogil:
        status = forward(&x[0, 0, 0, 0], weight_data, &bias[0], prepacked,
                         &out[0, 0, 0, 0], &g, num_threads)
    if status != 0:
        raise MemoryError("cyconv: could not allocate the per-thread conv2d buffers")


cdef Py_ssize_t packed_size(const Geometry* g, Py_ssize_t block) noexcept nogil:
    # values in the weights packed in blocks of block, pack_weight_block's layout
    cdef Py_ssize_t depth = (g.in_channels // g.groups) * g.kernel_h * g.kernel_w
    return g.groups * ceil_div(g.out_channels // g.groups, block) * depth * block


def packing_block(tuple x_shape, tuple weight_shape, tuple out_shape,
                  Py_ssize_t stride_h, Py_ssize_t stride_w,
                  Py_ssize_t pad_top, Py_ssize_t pad_left,
                  Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t groups, bint double):
    """The block of the packed weights conv2d_forward reads for this call (as
    its arguments, the operands' shapes; double for float64), 0 when it reads
    the weights as they are."""
    cdef Geometry g
    cdef Py_ssize_t xs[4]
    cdef Py_ssize_t ws[4]
    cdef Py_ssize_t os[4]
    cdef int i
    for i in range(4):
        xs[i], ws[i], os[i] = x_shape[i], weight_shape[i], out_shape[i]
    set_geometry(&g, xs, ws, os, stride_h, stride_w, pad_top, pad_left,
                 dilation_h, dilation_w, groups)
    return block_for(&g, double)


def pack_weight(const floating[:, :, :, ::1] weight, Py_ssize_t groups, Py_ssize_t block,
                int num_threads, bint flipped=False):
    """weight packed in blocks of block output channels, the layout
    conv2d_forward's packed argument takes (a new 1-D array); flipped: the
    weight of the input gradient's convolution (as flip_transpose_weight
    makes it) packed, without making it."""
    cdef Geometry g
    cdef Py_ssize_t n_blocks, pack
    cdef Py_ssize_t c_out = weight.shape[0], c_in_g = weight.shape[1]
    cdef Py_ssize_t taps = weight.shape[2] * weight.shape[3]
    cdef floating[::1] dst
    g.out_channels, g.in_channels = c_out, c_in_g * groups
    if flipped:
        g.out_channels, g.in_channels = c_in_g * groups, c_out
    g.kernel_h, g.kernel_w, g.groups = weight.shape[2], weight.shape[3], groups
    n_blocks = ceil_div(g.out_channels // groups, block)
    packed = np.empty(packed_size(&g, block), dtype=np.float32 if floating is float else np.float64)
    dst = packed
    with nogil:
        for pack in prange(groups * n_blocks, schedule='static', num_threads=num_threads):
            if flipped:
                pack_flipped_block(&weight[0, 0, 0, 0], c_out, c_in_g, taps, groups,
                                   pack // n_blocks, pack % n_blocks, block, &dst[0])
            else:
                pack_weight_block(&weight[0, 0, 0, 0], &g, pack // n_blocks, pack % n_blocks,
                                  block, &dst[0])
    return packed


def flip_transpose_weight(const floating[:, :, :, ::1] weight, floating[:, :, :, ::1] out,
                          Py_ssize_t groups, int num_threads):
    """out[g * C_in_g + c, o, i, j] = weight[g * C_out_g + o, c, kh - 1 - i, kw - 1 - j]:
    the weight of the convolution that computes conv2d's input gradient."""
    cdef Py_ssize_t c_out = weight.shape[0], c_in_g = weight.shape[1]
    cdef Py_ssize_t taps = weight.shape[2] * weight.shape[3]
    cdef Py_ssize_t c_out_g = c_out // groups
    cdef Py_ssize_t n_c_blocks = ceil_div(c_in_g, 16)
    cdef Py_ssize_t item, g, c0, o0, c, o, t
    cdef const floating* src
    cdef floating* dst
    with nogil, parallel(num_threads=num_threads):
        # 16 x 16 (c, o) blocks: the rows of weight a block reads stay in L1
        # (a plain row-by-row transpose reads lines C_in_g * taps apart)
        for item in prange(groups * n_c_blocks, schedule='static'):
            g = item // n_c_blocks
            c0 = item % n_c_blocks * 16
            for o0 in range(0, c_out_g, 16):
                for c in range(c0, min(c0 + 16, c_in_g)):
                    for o in range(o0, min(o0 + 16, c_out_g)):
                        src = &weight[g * c_out_g + o, c, 0, 0]
                        dst = &out[g * c_in_g + c, o, 0, 0]
                        for t in range(taps):
                            dst[t] = src[taps - 1 - t]


def openmp_enabled():
    """Whether this module was compiled with OpenMP."""
    return bool(CYCONV_OPENMP)


def max_threads():
    """The OpenMP default thread count (OMP_NUM_THREADS, threadpoolctl)."""
    return omp_get_max_threads()


def threads_started(int num_threads):
    """How many threads a parallel region asked for num_threads really gets."""
    cdef int started = 1
    cdef int* started_out = &started
    with nogil, parallel(num_threads=num_threads):
        started_out[0] = omp_get_num_threads()
    return started


def cpu_supports_level(int level):
    """Whether this CPU and OS run x86-64 micro-architecture level 1, 3 or 4."""
    return bool(cyconv_cpu_supports_level(level))


def blocking():
    """The register-block sizes this variant was compiled with."""
    return {"vector_bytes": CYCONV_VECTOR_BYTES, "oc_block": CYCONV_OC_BLOCK,
            "pos_block_float32": CYCONV_POS_BLOCK_F32,
            "pos_block_float64": CYCONV_POS_BLOCK_F64}
