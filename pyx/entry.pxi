# The module's Python entry points.  cyconv/functional.py calls them with
# checked, C-contiguous, non-empty operands (cyconv/_validation.py); each
# describes the call as a Geometry, asks the planner for its plan and runs
# the path the plan names, without the GIL.

FORWARD_PATH_NAMES = ("planes", "row_bands", "narrow", "pointwise", "gathered")
INPUT_GRAD_PATH_NAMES = ("spread", "flipped", "phases")
WEIGHT_GRAD_PATH_NAMES = ("gathered", "planes", "bands")


cdef void set_geometry(Geometry* geo, const Py_ssize_t* x_shape, const Py_ssize_t* w_shape,
                       const Py_ssize_t* out_shape,
                       Py_ssize_t stride_h, Py_ssize_t stride_w,
                       Py_ssize_t pad_top, Py_ssize_t pad_left,
                       Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t groups) noexcept:
    # shapes as NCHW, (C_out, C_in / groups, kh, kw) and NCHW
    geo.batch, geo.in_channels, geo.in_h, geo.in_w = x_shape[0], x_shape[1], x_shape[2], x_shape[3]
    geo.out_channels, geo.kernel_h, geo.kernel_w = w_shape[0], w_shape[2], w_shape[3]
    geo.out_h, geo.out_w, geo.groups = out_shape[2], out_shape[3], groups
    geo.stride_h, geo.stride_w, geo.pad_top, geo.pad_left = stride_h, stride_w, pad_top, pad_left
    geo.dilation_h, geo.dilation_w = dilation_h, dilation_w


cdef inline Py_ssize_t values(const Py_ssize_t* shape) noexcept nogil:
    # the values of a 4-D array of this shape
    return shape[0] * shape[1] * shape[2] * shape[3]


cdef void geometry_from_tuples(Geometry* geo, tuple x_shape, tuple w_shape, tuple out_shape,
                               Py_ssize_t stride_h, Py_ssize_t stride_w,
                               Py_ssize_t pad_top, Py_ssize_t pad_left,
                               Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                               Py_ssize_t groups) except *:
    cdef Py_ssize_t xs[4]
    cdef Py_ssize_t ws[4]
    cdef Py_ssize_t os[4]
    cdef int i
    for i in range(4):
        xs[i], ws[i], os[i] = x_shape[i], w_shape[i], out_shape[i]
    set_geometry(geo, xs, ws, os, stride_h, stride_w, pad_top, pad_left,
                 dilation_h, dilation_w, groups)


cdef Py_ssize_t run_forward(const floating* x, const floating* weight, const floating* bias,
                     const floating* prepacked, floating* out, const Geometry* geo,
                     const ForwardPlan* plan) noexcept nogil:
    # the forward path the plan names; 0, or the bytes of a buffer it could not allocate
    if plan.path == FORWARD_PLANES:
        return forward_planes(x, weight, bias, out, geo, plan)
    if plan.path == FORWARD_ROW_BANDS:
        return forward_bands(x, weight, bias, prepacked, out, geo, plan)
    if plan.path == FORWARD_NARROW:
        return forward_narrow(x, weight, bias, prepacked, out, geo, plan)
    if plan.path == FORWARD_POINTWISE:
        return forward_pointwise(x, weight, bias, prepacked, out, geo, plan)
    return forward_gathered(x, weight, bias, prepacked, out, geo, plan)


cdef Py_ssize_t run_weight_grad(const floating* x, const floating* grad_out, floating* grad_w,
                         const Geometry* geo, const WeightGradPlan* plan) noexcept nogil:
    # the weight-gradient path the plan names; 0, or the bytes of a buffer it could not allocate
    if plan.path == WEIGHT_GRAD_PLANES:
        return weight_grad_planes(x, grad_out, grad_w, geo, plan)
    if plan.path == WEIGHT_GRAD_BANDS:
        return weight_grad_bands(x, grad_out, grad_w, geo, plan)
    return weight_grad_gathered(x, grad_out, grad_w, geo, plan)


cdef Py_ssize_t run_input_grad_flipped(const floating* grad_out, const floating* weight,
                                       const floating* bias, floating* grad_x,
                                       const Geometry* geo, const InputGradPlan* plan,
                                       int num_threads) noexcept nogil:
    # INPUT_GRAD_FLIPPED: the flipped weight packed straight from weight, then
    # the forward path of the flipped geometry on grad_output
    cdef Geometry flipped
    cdef Py_ssize_t block = plan.forward.block
    cdef Py_ssize_t n_blocks, pack
    cdef Py_ssize_t c_in_g = geo.in_channels // geo.groups
    cdef Py_ssize_t taps = geo.kernel_h * geo.kernel_w
    cdef floating* packed
    cdef Py_ssize_t status = 0
    flipped_geometry(geo, &flipped)
    n_blocks = ceil_div(flipped.out_channels // flipped.groups, block)
    packed = <floating*>work_alloc(&status, False, packed_size(&flipped, block) * sizeof(floating))
    if packed == NULL:
        return status
    for pack in prange(geo.groups * n_blocks, schedule='static', num_threads=num_threads):
        pack_flipped_block(weight, geo.out_channels, c_in_g, taps, geo.groups,
                           pack // n_blocks, pack % n_blocks, block, packed)
    status = run_forward(grad_out, <const floating*>NULL, bias, packed, grad_x, &flipped,
                         &plan.forward)
    free(packed)
    return status


cdef raise_memory_error(Py_ssize_t n_bytes, str direction, str path):
    raise MemoryError(f"cyconv: could not allocate {n_bytes} bytes ({n_bytes / 2**20:.3g} MiB) "
                      f"of working memory for the {direction} ({path} path)")


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] weight,
                   const floating[::1] bias, floating[:, :, :, ::1] out,
                   Py_ssize_t stride_h, Py_ssize_t stride_w,
                   Py_ssize_t pad_top, Py_ssize_t pad_left,
                   Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                   Py_ssize_t groups, int num_threads, packed=None, Py_ssize_t packed_block=0):
    """out = conv2d(x, weight, bias); returns (the name of the path that
    computed it, the threads it started).

    Padding is zeros: pad_top/pad_left shift the window; the bottom/right
    padding is implied by out's shape.  packed: None, or weight as pack_weight
    packs it in blocks of packed_block, the block packing_block gives for this
    call (checked: a wrong layout would give wrong results).
    """
    cdef Geometry geo
    cdef ForwardPlan plan
    cdef Py_ssize_t status
    cdef const floating[::1] packed_view
    cdef const floating* prepacked = NULL
    set_geometry(&geo, x.shape, weight.shape, out.shape,
                 stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    plan_forward(&geo, sizeof(floating), num_threads, packed is not None, True, &plan)
    if plan.skips_padding and not all_finite(&weight[0, 0, 0, 0], values(weight.shape)):
        plan_forward(&geo, sizeof(floating), num_threads, packed is not None, False, &plan)
    if packed is not None:
        if packed_block != plan.block or packed_block == 0:
            raise ValueError(f"cyconv: weights packed in blocks of {packed_block} for a call "
                             f"that reads blocks of {plan.block}")
        packed_view = packed
        if packed_view.shape[0] != packed_size(&geo, packed_block):
            raise ValueError(f"cyconv: {packed_view.shape[0]} packed weights for a layout "
                             f"of {packed_size(&geo, packed_block)}")
        prepacked = &packed_view[0]
    with nogil:
        status = run_forward(&x[0, 0, 0, 0], &weight[0, 0, 0, 0], &bias[0], prepacked,
                             &out[0, 0, 0, 0], &geo, &plan)
    if status != 0:
        raise_memory_error(status, "forward convolution", FORWARD_PATH_NAMES[plan.path])
    return FORWARD_PATH_NAMES[plan.path], plan.n_threads


def conv2d_input_grad(const floating[:, :, :, ::1] grad_out, const floating[:, :, :, ::1] weight,
                      const floating[::1] bias, floating[:, :, :, ::1] grad_x,
                      Py_ssize_t stride_h, Py_ssize_t stride_w,
                      Py_ssize_t pad_top, Py_ssize_t pad_left,
                      Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                      Py_ssize_t groups, int num_threads):
    """grad_x = bias + the gradient of conv2d with respect to its input (bias has
    one value per input channel); returns (the path's name, its threads).  For the path
    "phases" it computes nothing: the caller runs the forward kernel once per
    phase of the stride (cyconv.functional.run_input_grad)."""
    cdef Geometry geo
    cdef InputGradPlan plan
    cdef Py_ssize_t status = 0
    set_geometry(&geo, grad_x.shape, weight.shape, grad_out.shape,
                 stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    plan_input_grad(&geo, sizeof(floating), num_threads, True, &plan)
    if plan.pairs_padding and not all_finite(&weight[0, 0, 0, 0], values(weight.shape)):
        plan_input_grad(&geo, sizeof(floating), num_threads, False, &plan)
    with nogil:
        if plan.path == INPUT_GRAD_SPREAD:
            status = input_grad_spread(&grad_out[0, 0, 0, 0], &weight[0, 0, 0, 0], &bias[0],
                                       &grad_x[0, 0, 0, 0], &geo, &plan)
        elif plan.path == INPUT_GRAD_FLIPPED:
            status = run_input_grad_flipped(&grad_out[0, 0, 0, 0], &weight[0, 0, 0, 0], &bias[0],
                                            &grad_x[0, 0, 0, 0], &geo, &plan, num_threads)
    if status != 0:
        raise_memory_error(status, "input gradient", INPUT_GRAD_PATH_NAMES[plan.path])
    return INPUT_GRAD_PATH_NAMES[plan.path], plan.n_threads


def conv2d_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] grad_out,
                       floating[:, :, :, ::1] grad_w,
                       Py_ssize_t stride_h, Py_ssize_t stride_w,
                       Py_ssize_t pad_top, Py_ssize_t pad_left,
                       Py_ssize_t dilation_h, Py_ssize_t dilation_w,
                       Py_ssize_t groups, int num_threads):
    """grad_w = the gradient of conv2d with respect to its weight; returns (the
    path's name, its threads)."""
    cdef Geometry geo
    cdef WeightGradPlan plan
    cdef Py_ssize_t status
    set_geometry(&geo, x.shape, grad_w.shape, grad_out.shape,
                 stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, groups)
    plan_weight_grad(&geo, sizeof(floating), num_threads, True, &plan)
    with nogil:
        status = run_weight_grad(&x[0, 0, 0, 0], &grad_out[0, 0, 0, 0], &grad_w[0, 0, 0, 0],
                                 &geo, &plan)
        # a NaN or Inf in the result may come from inputs the path multiplied
        # outside their windows (checking the small result, not the input)
        if status == 0 and plan.pairs_outside and not all_finite(&grad_w[0, 0, 0, 0],
                                                                 values(grad_w.shape)):
            plan_weight_grad(&geo, sizeof(floating), num_threads, False, &plan)
            status = run_weight_grad(&x[0, 0, 0, 0], &grad_out[0, 0, 0, 0],
                                     &grad_w[0, 0, 0, 0], &geo, &plan)
    if status != 0:
        raise_memory_error(status, "weight gradient", WEIGHT_GRAD_PATH_NAMES[plan.path])
    return WEIGHT_GRAD_PATH_NAMES[plan.path], plan.n_threads


def conv2d_bias_grad(const floating[:, :, ::1] grad_out, floating[::1] grad_b, int num_threads):
    """grad_b[c] = the sum of grad_out[:, c, :] (N, C, positions); returns the
    threads it started."""
    cdef Py_ssize_t N = grad_out.shape[0], C = grad_out.shape[1], n_pos = grad_out.shape[2]
    cdef Py_ssize_t c
    num_threads = bias_grad_threads(N * C * n_pos, num_threads)
    with nogil:
        for c in prange(C, schedule='static', num_threads=num_threads):
            grad_b[c] = <floating>channel_sum(&grad_out[0, c, 0], N, C * n_pos, n_pos)
    return num_threads


def packing_block(tuple x_shape, tuple weight_shape, tuple out_shape,
                  Py_ssize_t stride_h, Py_ssize_t stride_w,
                  Py_ssize_t pad_top, Py_ssize_t pad_left,
                  Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t groups,
                  Py_ssize_t itemsize, bint weights_finite=True):
    """The block of the packed weights conv2d_forward reads for this call (as
    its arguments: the operands' shapes, and 4 or 8 for float32 or float64;
    weights_finite: no weight is NaN or Inf), 0 when it reads the weights as
    they are."""
    cdef Geometry geo
    geometry_from_tuples(&geo, x_shape, weight_shape, out_shape, stride_h, stride_w,
                         pad_top, pad_left, dilation_h, dilation_w, groups)
    return packing_block_for(&geo, itemsize, weights_finite)


def pack_weight(const floating[:, :, :, ::1] weight, Py_ssize_t groups, Py_ssize_t block,
                int num_threads):
    """weight packed in blocks of block output channels, the layout
    conv2d_forward's packed argument takes (a new 1-D array)."""
    cdef Geometry geo
    cdef Py_ssize_t n_blocks, pack
    cdef floating[::1] dst
    geo.out_channels, geo.in_channels = weight.shape[0], weight.shape[1] * groups
    geo.kernel_h, geo.kernel_w, geo.groups = weight.shape[2], weight.shape[3], groups
    n_blocks = ceil_div(geo.out_channels // groups, block)
    packed = np.empty(packed_size(&geo, block), dtype=np.float32 if floating is float else np.float64)
    dst = packed
    with nogil:
        for pack in prange(groups * n_blocks, schedule='static', num_threads=num_threads):
            pack_weight_block(&weight[0, 0, 0, 0], &geo, pack // n_blocks, pack % n_blocks,
                              block, &dst[0])
    return packed


def flip_transpose_weight(const floating[:, :, :, ::1] weight, floating[:, :, :, ::1] out,
                          Py_ssize_t groups, int num_threads):
    """out[group * C_in_g + c, o, i, j] = weight[group * C_out_g + o, c, kh - 1 - i, kw - 1 - j]:
    the weight of the convolution that computes conv2d's input gradient."""
    cdef Py_ssize_t c_out = weight.shape[0], c_in_g = weight.shape[1]
    cdef Py_ssize_t taps = weight.shape[2] * weight.shape[3]
    cdef Py_ssize_t c_out_g = c_out // groups
    cdef Py_ssize_t n_c_blocks = ceil_div(c_in_g, 16)
    cdef Py_ssize_t item, group, c0, o0, c, o, t
    cdef const floating* src
    cdef floating* dst
    with nogil, parallel(num_threads=num_threads):
        # 16 x 16 (c, o) blocks: the rows of weight a block reads stay in L1
        # (a plain row-by-row transpose reads lines C_in_g * taps apart)
        for item in prange(groups * n_c_blocks, schedule='static'):
            group = item // n_c_blocks
            c0 = item % n_c_blocks * 16
            for o0 in range(0, c_out_g, 16):
                for c in range(c0, min(c0 + 16, c_in_g)):
                    for o in range(o0, min(o0 + 16, c_out_g)):
                        src = &weight[group * c_out_g + o, c, 0, 0]
                        dst = &out[group * c_in_g + c, o, 0, 0]
                        for t in range(taps):
                            dst[t] = src[taps - 1 - t]


def plan(str direction, tuple x_shape, tuple weight_shape, tuple out_shape,
         Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
         Py_ssize_t dilation_h, Py_ssize_t dilation_w, Py_ssize_t groups,
         Py_ssize_t itemsize, int num_threads):
    """The plan of a call (direction "forward", "input_grad" or "weight_grad";
    the shapes are the forward convolution's) as a dict, computing nothing
    (for finite operands: a NaN or Inf may move a call to an exact path)."""
    cdef Geometry geo
    cdef ForwardPlan forward
    cdef InputGradPlan input_grad
    cdef WeightGradPlan weight_grad
    geometry_from_tuples(&geo, x_shape, weight_shape, out_shape, stride_h, stride_w,
                         pad_top, pad_left, dilation_h, dilation_w, groups)
    if direction == "forward":
        plan_forward(&geo, itemsize, num_threads, False, True, &forward)
        result = forward
        result["path"] = FORWARD_PATH_NAMES[forward.path]
    elif direction == "input_grad":
        plan_input_grad(&geo, itemsize, num_threads, True, &input_grad)
        result = input_grad
        result["path"] = INPUT_GRAD_PATH_NAMES[input_grad.path]
        if input_grad.forward.n_threads:
            result["forward"]["path"] = FORWARD_PATH_NAMES[input_grad.forward.path]
        else:
            del result["forward"]
    elif direction == "weight_grad":
        plan_weight_grad(&geo, itemsize, num_threads, True, &weight_grad)
        result = weight_grad
        result["path"] = WEIGHT_GRAD_PATH_NAMES[weight_grad.path]
    else:
        raise ValueError(f"direction must be 'forward', 'input_grad' or 'weight_grad', "
                         f"but got {direction!r}")
    return result


def openmp_enabled():
    """Whether this module was compiled with OpenMP."""
    return bool(CYCONV_OPENMP)


def max_threads():
    """The OpenMP default thread count (OMP_NUM_THREADS, threadpoolctl)."""
    return omp_get_max_threads()


def num_procs():
    """The processors this process may run on, as OpenMP counts them."""
    return omp_get_num_procs()


def release_threads():
    """End the calling thread's OpenMP threads (they start again with the next
    call); True when they were released.  cyconv calls it before every
    os.fork(), whose child could not use them."""
    return cyconv_release_threads() == 0


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
            "pos_block_float64": CYCONV_POS_BLOCK_F64,
            "band_positions": CYCONV_BAND_POSITIONS,
            "band_lanes_float32": CYCONV_BAND_LANES_F32,
            "band_lanes_float64": CYCONV_BAND_LANES_F64,
            "plane_chunk_float32": CYCONV_PLANE_CHUNK_F32,
            "plane_chunk_float64": CYCONV_PLANE_CHUNK_F64}
