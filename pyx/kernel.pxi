# The conv2d kernels, one source compiled once per instruction set: each
# _kernel_<variant>.pyx includes this file, so every function here is
# compiled (and inlined) with that variant's flags.  A cdef function cimported
# from another module would be compiled once and called through a pointer.
#
# Everything here trusts its arguments: cyconv/_validation.py has checked the
# shapes, dtypes and parameters and hands over C-contiguous typed buffers.
# docs/design.md maps every layer to the file and function that computes it.

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free
from libc.string cimport memset
import numpy as np

from cyconv_platform cimport *
from cyconv_plans cimport *

include "tuning.pxi"               # every tuning number, grouped by what it bounds
include "helpers.pxi"              # geometry arithmetic, runs of values, transposes
include "microkernels.pxi"         # the register-blocked loops (mk_*)
include "packing.pxi"              # weights and operands in the layouts the mk_* read
include "staging.pxi"              # gathered chunks, bands and padded planes of the input
include "planner.pxi"              # forward: path and work split (ForwardPlan)
include "planner_backward.pxi"     # gradients: InputGradPlan, WeightGradPlan
include "forward_planes.pxi"       # FORWARD_PLANES
include "forward_bands.pxi"        # FORWARD_ROW_BANDS
include "forward_narrow.pxi"       # FORWARD_NARROW
include "forward_pointwise.pxi"    # FORWARD_POINTWISE
include "forward_gathered.pxi"     # FORWARD_GATHERED
include "winograd_transforms.pxi"  # WINOGRAD: its transforms and loads and stores
include "forward_winograd.pxi"     # WINOGRAD (algorithm="winograd")
include "input_grad_spread.pxi"    # INPUT_GRAD_SPREAD
include "weight_grad_gathered.pxi" # WEIGHT_GRAD_GATHERED
include "weight_grad_bands.pxi"    # WEIGHT_GRAD_BANDS
include "weight_grad_planes.pxi"   # WEIGHT_GRAD_PLANES
include "bias_grad.pxi"            # the bias gradient
include "entry.pxi"                # the def functions cyconv.functional calls
include "entry_winograd.pxi"       # ... and those cyconv._winograd calls
