# The structs the planner fills and the drivers read (planner.pxi,
# planner_backward.pxi), and the paths they name.

cdef struct Geometry:
    # one checked convolution, batched NCHW; for a gradient, the geometry of
    # the forward convolution it differentiates
    Py_ssize_t batch, in_channels, in_h, in_w
    Py_ssize_t out_channels, kernel_h, kernel_w, out_h, out_w, groups
    Py_ssize_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w


cdef enum ForwardPath:
    FORWARD_PLANES      # forward_planes.pxi: few channels per group, plane by plane
    FORWARD_ROW_BANDS   # forward_bands.pxi: output channels in vector lanes
    FORWARD_NARROW      # forward_narrow.pxi: stride 1, positions in vector lanes
    FORWARD_POINTWISE   # forward_pointwise.pxi: 1x1 as a matrix product
    FORWARD_GATHERED    # forward_gathered.pxi: everything else


cdef enum InputGradPath:
    INPUT_GRAD_SPREAD   # input_grad_spread.pxi: W^T grad_output added into dx
    INPUT_GRAD_FLIPPED  # stride 1: a forward path on the flipped weight, packed from weight
    INPUT_GRAD_PHASES   # cyconv/functional.py: flipped weight, one forward call per phase


cdef enum WeightGradPath:
    WEIGHT_GRAD_GATHERED  # weight_grad_gathered.pxi: a matrix product over gathered patches
    WEIGHT_GRAD_PLANES    # weight_grad_planes.pxi: stride 1, few channels, dot products
    WEIGHT_GRAD_BANDS     # weight_grad_bands.pxi: stride 1, taps from row bands


cdef struct ForwardPlan:
    # What the forward planner chose for one call; each path reads the fields
    # its planner sets (the others stay 0).
    int path                    # a ForwardPath
    int n_threads               # threads the call starts: <= the items, >= 1
    Py_ssize_t block            # output channels per block of the packed weights (0: none)
    Py_ssize_t n_items          # work items, split statically over the threads
    Py_ssize_t n_blocks         # output-channel blocks per group
    Py_ssize_t blocks_per_item  # output-channel blocks per work item
    Py_ssize_t n_oc_items       # work items per group and range of positions
    Py_ssize_t slice_c          # input channels per slice (a gather, a band, padded planes)
    Py_ssize_t n_slices         # slices per group
    Py_ssize_t padded_rows      # the zero-padded input plane the windows span
    Py_ssize_t padded_cols
    Py_ssize_t rows             # output rows per unit (bands)
    Py_ssize_t n_row_blocks     # units per image
    Py_ssize_t band_rows        # input rows of a unit's band
    Py_ssize_t chan             # values per channel of a band
    Py_ssize_t tiles_cap        # register tiles of a unit, at most
    Py_ssize_t pos_cap          # positions of a unit's tiles, at most
    Py_ssize_t n_units          # units in all images
    Py_ssize_t units            # units per work item
    Py_ssize_t n_unit_blocks    # blocks of units
    Py_ssize_t chunk_width      # positions per chunk (gathered)
    Py_ssize_t n_chunks         # chunks of positions (gathered, pointwise); per plane (planes)
    bint own_packing            # items pack their own weight blocks (bands)
    bint prepadded              # the input is zero-padded once, whole (bands)
    bint reads_in_place         # tiles are read where they lie in the input (gathered, pointwise)
    bint skips_padding          # the path adds nothing for taps on the zero padding, where a
                                # NaN or Inf weight must give NaN (0 * w): check the weights


cdef enum:
    # F(4x4, 3x3), the Winograd kernel's tile
    WINO_TILE = 4                  # output rows and columns per tile (m)
    WINO_ALPHA = 6                 # input rows and columns per patch (m + 2)
    WINO_POINTS = 36               # transformed positions per tile (alpha^2)


cdef struct WinogradPlan:
    # forward_winograd.pxi: F(4x4, 3x3) on stride-1, dilation-1 3x3 layers
    int n_threads
    Py_ssize_t n_items          # groups x tile blocks x runs of output-channel blocks
    bint oc_lanes               # output channels in the vector lanes, tiles broadcast
    Py_ssize_t block_oc         # output channels per block: OC_BLOCK, or POS_BLOCK with oc_lanes
    Py_ssize_t n_blocks         # output-channel blocks per group
    Py_ssize_t block_values     # values of a block's products per xi: block_oc x POS_BLOCK
                                # tiles, with oc_lanes the (at most POS_BLOCK) tiles in
                                # whole BAND_POSITIONS
    Py_ssize_t blocks_per_item
    Py_ssize_t n_oc_items       # runs of output-channel blocks per group and tile block
    Py_ssize_t tiles_h          # output tiles per image, down and across
    Py_ssize_t tiles_w
    Py_ssize_t n_tile_blocks    # blocks of POS_BLOCK tiles (of all images)
    Py_ssize_t slice_c          # input channels transformed at a time
    Py_ssize_t n_slices
    bint fused_weights          # items transform the weights they need, a slice at a time
    bint rows_form              # oc_lanes on few tiles, AVX-512: transform_input_channels and
                                # mk_winograd_row4 (forward_winograd.pxi)
    bint flipped                # the weights are the input gradient's (turned, transposed)


cdef struct InputGradPlan:
    int path                    # an InputGradPath
    int n_threads
    Py_ssize_t n_items
    bint pairs_padding          # the path multiplies weights by zeros where grad_output
                                # has no position, where a NaN or Inf weight must not count
    # INPUT_GRAD_SPREAD
    Py_ssize_t chunk            # grad_output positions per chunk
    Py_ssize_t n_slices         # channel slices per image and group
    Py_ssize_t slice_c          # input channels per slice
    Py_ssize_t slice_blocks     # blocks of OC_BLOCK (channel, tap) rows per slice
    Py_ssize_t n_row_slices     # slices of dx rows
    Py_ssize_t slice_h          # dx rows per slice
    bint own_packing            # items pack their own weight blocks (batch 1)
    bint pointwise              # each dx value takes one term (stored, not added)
    # INPUT_GRAD_FLIPPED: the forward convolution of grad_output it runs
    Py_ssize_t flipped_pad_top
    Py_ssize_t flipped_pad_left
    ForwardPlan forward


cdef struct WeightGradPlan:
    int path                    # a WeightGradPath
    int n_threads
    Py_ssize_t n_items
    bint pairs_outside          # the path also multiplies zeros by inputs outside the
                                # windows, where a NaN or Inf input must not count
    Py_ssize_t n_oc_blocks      # output-channel blocks per group
    # WEIGHT_GRAD_GATHERED
    Py_ssize_t chunk            # positions per chunk
    Py_ssize_t n_chunks
    Py_ssize_t n_tap_blocks     # blocks of POS_BLOCK (channel, tap) rows
    Py_ssize_t blocks_per_item
    Py_ssize_t taps_per_item    # tap blocks per item
    Py_ssize_t n_oc_items
    Py_ssize_t n_tap_items
    Py_ssize_t n_slices         # slices of positions whose partial sums add up at the end
    # WEIGHT_GRAD_BANDS
    Py_ssize_t rows             # output rows per unit
    Py_ssize_t n_row_blocks
    Py_ssize_t n_units
    Py_ssize_t band_w
    Py_ssize_t chan             # values per channel of a band
    Py_ssize_t n_v_cap          # positions of a unit, at most
    Py_ssize_t band_c           # input channels per band
    Py_ssize_t range_c          # input channels per item
    Py_ssize_t n_ranges
