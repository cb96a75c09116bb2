# Inputs staged where the micro-kernels read them: gathered chunks of
# positions (zero padding, stride and dilation resolved), zero-padded bands of
# input rows and whole zero-padded planes, and the tables of offsets a tap is
# found at in them.
#
# Positions of a chunk come as segments, 5 values each: (image, output row,
# first output column, first position in the chunk, length), runs within one
# output row that never cross a register tile (chunk_segments).


cdef Py_ssize_t chunk_segments(const Geometry* geo, Py_ssize_t q0, Py_ssize_t n_pos,
                               Py_ssize_t pos_block, Py_ssize_t* segments) noexcept nogil:
    # the flat positions q0 .. q0 + n_pos - 1 (over image, row, column) as
    # segments within one output row and one tile of pos_block; returns their count
    cdef Py_ssize_t n_seg = 0, p = 0, q, n, rest, oh, ow, length
    cdef Py_ssize_t plane = geo.out_h * geo.out_w
    while p < n_pos:
        q = q0 + p
        n = q // plane
        rest = q - n * plane
        oh = rest // geo.out_w
        ow = rest - oh * geo.out_w
        length = min(min(geo.out_w - ow, n_pos - p), pos_block - p % pos_block)
        segments[5 * n_seg] = n
        segments[5 * n_seg + 1] = oh
        segments[5 * n_seg + 2] = ow
        segments[5 * n_seg + 3] = p
        segments[5 * n_seg + 4] = length
        n_seg += 1
        p += length
    return n_seg


cdef void gather(const floating* x, const Geometry* geo, Py_ssize_t group,
                 Py_ssize_t ic0, Py_ssize_t n_ic,
                 const Py_ssize_t* segments, Py_ssize_t n_segments,
                 const floating** in_place, floating* buf) noexcept nogil:
    # buf[tile][r][lane], r = (c * kh + i) * kw + j: the zero-padded input that
    # output position tile * pos_block + lane sees through tap (i, j) of input
    # channel ic0 + c.  Each tile is contiguous, so the micro-kernel streams it.
    # Tiles read in place (in_place[tile] != NULL) are skipped.  Channel and
    # kernel row are the outer loops so that each input row is read front to back.
    cdef Py_ssize_t s, c, i, j, q, lo, hi, n, oh, ow0, p0, length, ih, iw0
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t rows = n_ic * geo.kernel_h * geo.kernel_w
    # a compile-time constant, so p0 // pos_block is a shift, not an idiv
    cdef Py_ssize_t pos_block = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t reach_w = (geo.kernel_w - 1) * geo.dilation_w
    cdef const floating* row
    cdef floating* dst
    for c in range(n_ic):
        for i in range(geo.kernel_h):
            for s in range(n_segments):
                n = segments[5 * s]
                oh = segments[5 * s + 1]
                ow0 = segments[5 * s + 2]
                p0 = segments[5 * s + 3]
                length = segments[5 * s + 4]
                if in_place[p0 // pos_block] != NULL:
                    continue
                dst = (buf + (p0 // pos_block) * rows * pos_block + p0 % pos_block
                       + (c * geo.kernel_h + i) * geo.kernel_w * pos_block)
                ih = oh * geo.stride_h + i * geo.dilation_h - geo.pad_top
                if ih < 0 or ih >= geo.in_h:
                    for j in range(geo.kernel_w):
                        fill_zero(dst + j * pos_block, length)
                    continue
                row = x + ((n * geo.in_channels + group * cin_g + ic0 + c) * geo.in_h + ih) * geo.in_w
                iw0 = ow0 * geo.stride_w - geo.pad_left
                if iw0 >= 0 and iw0 + (length - 1) * geo.stride_w + reach_w < geo.in_w:
                    # every tap inside the row: no bounds, no zeros
                    for j in range(geo.kernel_w):
                        if geo.stride_w == 1:
                            copy_run(dst + j * pos_block, row + iw0 + j * geo.dilation_w, length)
                        else:
                            for q in range(length):
                                dst[j * pos_block + q] = row[iw0 + j * geo.dilation_w + q * geo.stride_w]
                    continue
                for j in range(geo.kernel_w):
                    valid_columns(iw0 + j * geo.dilation_w, geo.stride_w, geo.in_w, length, &lo, &hi)
                    fill_zero(dst + j * pos_block, lo)
                    for q in range(lo, hi):
                        dst[j * pos_block + q] = row[iw0 + j * geo.dilation_w + q * geo.stride_w]
                    fill_zero(dst + j * pos_block + hi, length - hi)


cdef void gather_patches(const floating* x, const Geometry* geo, Py_ssize_t group,
                         Py_ssize_t t0, Py_ssize_t n_taps,
                         const Py_ssize_t* segments, Py_ssize_t n_segments,
                         Py_ssize_t chunk, floating* buf) noexcept nogil:
    # buf[tb][p][lane] = the zero-padded input that position p of the chunk
    # sees through tap t0 + tb * pos_block + lane of the group's input
    # channels (the weight gradient's patches, taps in the lanes)
    cdef Py_ssize_t pos_block = CYCONV_POS_BLOCK_F32 if floating is float else CYCONV_POS_BLOCK_F64
    cdef Py_ssize_t cin_g = geo.in_channels // geo.groups
    cdef Py_ssize_t t, c, i, j, s, n, oh, ow0, p0, length, ih, iw0, lo, hi, q
    cdef const floating* row
    cdef floating* dst
    for t in range(n_taps):
        j = (t0 + t) % geo.kernel_w
        i = (t0 + t) // geo.kernel_w % geo.kernel_h
        c = (t0 + t) // (geo.kernel_w * geo.kernel_h)
        for s in range(n_segments):
            n = segments[5 * s]
            oh = segments[5 * s + 1]
            ow0 = segments[5 * s + 2]
            p0 = segments[5 * s + 3]
            length = segments[5 * s + 4]
            dst = buf + ((t // pos_block) * chunk + p0) * pos_block + t % pos_block
            ih = oh * geo.stride_h + i * geo.dilation_h - geo.pad_top
            if ih < 0 or ih >= geo.in_h:
                for q in range(length):
                    dst[q * pos_block] = 0
                continue
            row = x + ((n * geo.in_channels + group * cin_g + c) * geo.in_h + ih) * geo.in_w
            iw0 = ow0 * geo.stride_w + j * geo.dilation_w - geo.pad_left
            valid_columns(iw0, geo.stride_w, geo.in_w, length, &lo, &hi)
            for q in range(lo):
                dst[q * pos_block] = 0
            for q in range(lo, hi):
                dst[q * pos_block] = row[iw0 + q * geo.stride_w]
            for q in range(hi, length):
                dst[q * pos_block] = 0


cdef void band_offsets(const Geometry* geo, Py_ssize_t n_channels, Py_ssize_t chan,
                       Py_ssize_t band_w, Py_ssize_t* offsets) noexcept nogil:
    # offsets[(c * kh + i) * kw + j] = where tap (c, i, j) of a band's first
    # position sits, for bands of chan values per channel and rows of band_w
    cdef Py_ssize_t c, i, j
    for c in range(n_channels):
        for i in range(geo.kernel_h):
            for j in range(geo.kernel_w):
                offsets[(c * geo.kernel_h + i) * geo.kernel_w + j] = (
                    c * chan + i * geo.dilation_h * band_w + j * geo.dilation_w)


cdef void load_band(const floating* x, const Geometry* geo, Py_ssize_t n, Py_ssize_t ic0,
                    Py_ssize_t n_ic, Py_ssize_t ih0, Py_ssize_t band_rows, Py_ssize_t band_w,
                    Py_ssize_t chan, floating* band) noexcept nogil:
    # band[c * chan + k * band_w + q] = input channel ic0 + c of image n at row
    # ih0 + k, column q - pad_left, zero outside the input; zeros after the
    # band_rows rows up to chan
    cdef Py_ssize_t c, k, ih, lo, hi
    cdef const floating* row
    cdef floating* dst
    cdef Py_ssize_t ih_lo = max(0, ih0), ih_hi = min(geo.in_h, ih0 + band_rows)
    valid_columns(-geo.pad_left, 1, geo.in_w, band_w, &lo, &hi)
    for c in range(n_ic):
        # a channel's rows are one short run, asked for LOAD_AHEAD channels
        # ahead (or each waits for memory on its own); past n_ic too, as the
        # next band of the unit usually takes the next channels
        if ic0 + c + LOAD_AHEAD < geo.in_channels and ih_hi > ih_lo:
            prefetch_run(x + ((n * geo.in_channels + ic0 + c + LOAD_AHEAD) * geo.in_h + ih_lo) * geo.in_w,
                         (ih_hi - ih_lo) * geo.in_w * <Py_ssize_t>sizeof(floating))
        for k in range(band_rows):
            dst = band + c * chan + k * band_w
            ih = ih0 + k
            if ih < 0 or ih >= geo.in_h:
                fill_zero(dst, band_w)
                continue
            row = x + ((n * geo.in_channels + ic0 + c) * geo.in_h + ih) * geo.in_w
            fill_zero(dst, lo)
            copy_run(dst + lo, row + lo - geo.pad_left, hi - lo)
            fill_zero(dst + hi, band_w - hi)
        fill_zero(band + c * chan + band_rows * band_w, chan - band_rows * band_w)


cdef void pad_plane(const floating* src, const Geometry* geo, Py_ssize_t ph, Py_ssize_t pw,
                    floating* padded, bint zeros_kept) noexcept nogil:
    # padded (ph rows of pw): the input plane src as the convolution's windows
    # see it, row r and column q at input row r - pad_top and column q -
    # pad_left, zero padding included (or, with zeros_kept, left as an
    # earlier call of the same geometry wrote it).  The zeros go first, in one
    # pass (row by row, the short runs' loop overheads cost more than the
    # values), then the input rows over them.
    cdef Py_ssize_t r, lo, hi
    valid_columns(-geo.pad_left, 1, geo.in_w, pw, &lo, &hi)
    if not zeros_kept:
        fill_zero(padded, ph * pw)
    for r in range(max(0, geo.pad_top), min(ph, geo.pad_top + geo.in_h)):
        copy_run(padded + r * pw + lo, src + (r - geo.pad_top) * geo.in_w + lo - geo.pad_left, hi - lo)
