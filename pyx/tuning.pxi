# Tuning numbers, in one place: the planner (planner.pxi, planner_backward.pxi)
# reads the ones that choose paths and split work; the kernels read only the
# memory-access distances at the end.  Counts are elements unless the name
# says bytes.  docs/tuning-notes.md has the measurements behind them.

cdef enum:
    # --- Work split (every path) ---
    # work items per thread, so that the last, partial items even out
    ITEMS_PER_THREAD = 4
    # multiply-adds a forward call needs per thread it starts (waking a thread
    # costs more than it saves on smaller calls)
    MIN_MACS_PER_THREAD = 65536

    # --- Choice of the forward path ---
    # the plane kernel: at most this many input channels per group, with at
    # most PLANE_MAX_OUT_CHANNELS output channels per group
    PLANE_MAX_IN_CHANNELS = 4
    PLANE_MAX_OUT_CHANNELS = 16
    # ... or output channels per group this few (the input gradient of a
    # first layer), or at a stride PLANE_FEW_OUT_CHANNELS_STRIDED
    PLANE_FEW_OUT_CHANNELS = 2
    PLANE_FEW_OUT_CHANNELS_STRIDED = 3
    # the narrow kernel instead of the plane kernel (stride 1): at least this
    # many output channels per group, filling their blocks to 3/4, over at
    # least NARROW_MIN_STEPS reduction steps
    NARROW_MIN_OUT_CHANNELS = 6
    NARROW_MIN_STEPS = 16
    # the pointwise kernel: input channels per group a 1x1 layer needs
    POINTWISE_MIN_CHANNELS = 16

    # --- Gathered forward kernel ---
    # register tiles per chunk of positions
    TILES_PER_CHUNK = 4
    # (channel, tap) rows per gathered buffer: it stays in L2, a weight block in L1
    REDUCTION_CHUNK = 256
    # output channels per work item, at most (also the row-band and narrow kernels)
    OC_PER_ITEM = 256

    # --- Row-band and narrow-band forward kernels ---
    # reduction steps (input channels x taps) per band
    BAND_DEPTH = 576
    # register tiles per unit on wide rows, about
    WIDE_TILES = 32
    # register tiles that take the channel blocks in turn (a block's weights
    # stay cached across them); units this small let the weights outweigh the inputs
    FEW_TILES = 8
    # bytes of bands (and of accumulators) an item of several units holds, and
    # the bytes of weights (per group) that make several units per item worth it
    BAND_BYTES = 262144
    MANY_WEIGHT_BYTES = 4194304
    # bytes of a whole zero-padded input that is padded once per call instead
    # of loaded band by band
    PADDED_INPUT_BYTES = 2097152
    # register tiles (of the padded width) per unit of the narrow kernel, about
    NARROW_TILES = 8

    # --- Plane kernel ---
    # bytes of zero-padded input planes a thread holds
    PLANE_BYTES = 262144

    # --- Input gradient ---
    # spreading needs this many output channels per group ...
    SPREAD_MIN_CHANNELS = 32
    # ... and at stride 1 this many, on a 1x1 kernel or at most
    # SPREAD_MAX_POSITIONS input positions (all images)
    SPREAD_STRIDE1_MIN_CHANNELS = 256
    SPREAD_MAX_POSITIONS = 200
    # grad_output values per chunk (channels x positions): L2
    SPREAD_CHUNK = 32768
    # (channel, tap) rows a channel slice has at least
    SPREAD_SLICE_ROWS = 96
    # grad_output channels whose weight rows are packed at a time (read streams)
    SPREAD_PACK_CHANNELS = 8
    # weight blocks an item packs at a time when it packs its own
    SPREAD_PACK_BLOCKS = 8

    # --- Weight gradient ---
    # positions per chunk of the gathered matrix product
    GRAD_CHUNK = 256
    # tap blocks (POS_BLOCK lanes each) and output-channel blocks per item, at most
    GRAD_TAP_BLOCKS = 32
    GRAD_OC_BLOCKS = 48
    # slices of positions summed at the end, at most; chunks per slice, at
    # least; bytes of all slices' partial gradients, at most
    GRAD_SLICES = 8
    GRAD_SLICE_CHUNKS = 2
    GRAD_PARTIAL_BYTES = 1048576
    # the band kernel: positions per unit, about; bytes of its bands (in L1
    # across a unit's taps); (input channel, tap) rows at most: with AVX-512
    # GRAD_BAND_MAX_ROWS, else GRAD_BAND_MAX_BYTES of them
    GRAD_BAND_POSITIONS = 512
    GRAD_BAND_BYTES = 16384
    GRAD_BAND_MAX_ROWS = 1152
    GRAD_BAND_MAX_BYTES = 4096

    # --- Winograd kernel ---
    # bytes of a thread's transformed input tiles (a slice of channels: they
    # stay in L2), and of the products an item accumulates (read back a block
    # at a time, from L3 where L2 is smaller; a second run of output channels
    # would transform the input again)
    WINOGRAD_SLICE_BYTES = 262144
    WINOGRAD_PRODUCT_BYTES = 2097152
    # a call that brings no transformed weights transforms them inside the
    # items (each block once per block of tiles) up to this many tile blocks;
    # every call whose transformed weights would pass
    # WINOGRAD_READ_WEIGHTS_BYTES does (read once per block of tiles, they
    # would come from memory, not L3: slower than transforming them again)
    WINOGRAD_FUSED_TILE_BLOCKS = 2
    WINOGRAD_READ_WEIGHTS_BYTES = 25165824
    # output channels in the lanes where that fills the register tiles at
    # least this many quarters as well as tiles in the lanes (its register
    # tile, BAND_POSITIONS tiles x POS_BLOCK channels, feeds fewer FMAs per load)
    WINOGRAD_OC_LANES_GAIN = 5

    # --- Memory-access distances (read by the kernels) ---
    # reduction rows pack_weight_rows packs for one group of 8 (float64: 4)
    # output channels before the next group
    PACK_CHUNK = 64
    # input channels ahead whose rows load_band asks for
    LOAD_AHEAD = 8
    # runs of output channels ahead whose weight rows pack_spread_blocks asks for
    PACK_AHEAD = 2
    # rows ahead that pack_row_tiles asks for
    PREFETCH_ROWS = 8
    # input channels whose weights winograd_weight_block gathers before it
    # transforms them
    WINOGRAD_WEIGHT_CHUNK = 16
    # values between the tiles of V with input channels in the lanes (a
    # constant, so that mk_winograd_row4 addresses its 24 operands from 6
    # registers): at least a slice of channels (WINOGRAD_SLICE_BYTES), whole
    # vectors
    WINOGRAD_ROWS_TILE_STRIDE = 64
