"""The transforms of Winograd's minimal filtering F(m x m, 3 x 3).

An m x m tile of a 3 x 3 correlation is computed from the (m + 2) x (m + 2)
input patch d and the kernel g as

    Y = A^T [(G g G^T) * (B^T d B)] A,     * elementwise,

with (m + 2)^2 multiplications instead of 9 m^2.  The matrices come from the
transposed Toom-Cook construction on m + 1 finite interpolation points and
infinity: G evaluates the kernel's polynomial at the points, B^T is the
inverse of the evaluation matrix of degree-(m + 1) polynomials (transposed),
A^T evaluates the output's polynomials; a diagonal scaling moves the
fractions from B^T (applied to data on every call) into G (applied to the
weights once).  Computed here in exact rationals, so every entry is the
float nearest to its true value.  docs/tuning-notes.md records the error
of each tile size and set of points.

The kernel (pyx/forward_winograd.pxi) computes F(4x4, 3x3) in both dtypes;
this module also holds the choice of algorithm a call makes (`use_winograd`)
and the calls into the kernel.
"""
from fractions import Fraction
from functools import lru_cache
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import _dispatch

# interpolation points by tile size: small integers and their reciprocals keep
# the transforms' entries small; among those, the sets whose float32 results
# came closest to the exact sum on standard-normal data (docs/tuning-notes.md)
POINTS: Dict[int, Tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-1, 2)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2),
        Fraction(-1, 2)),
}
KERNEL = 3


def _evaluation(points: Sequence[Fraction], n: int):
    """(len(points) + 1) x n: the values at the points, and at infinity (the
    leading coefficient), of a polynomial of n coefficients."""
    rows = [[p ** j for j in range(n)] for p in points]
    rows.append([Fraction(int(j == n - 1)) for j in range(n)])
    return rows


def _inverse(matrix):
    """The inverse of a square matrix of Fractions (Gauss-Jordan)."""
    n = len(matrix)
    work = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if work[r][col] != 0)
        work[col], work[pivot] = work[pivot], work[col]
        scale = work[col][col]
        work[col] = [v / scale for v in work[col]]
        for r in range(n):
            if r != col and work[r][col] != 0:
                factor = work[r][col]
                work[r] = [a - factor * b for a, b in zip(work[r], work[col])]
    return [row[n:] for row in work]


@lru_cache(maxsize=None)
def exact_matrices(points: Tuple[Fraction, ...]):
    """(A^T, G, B^T) of F(m x m, 3 x 3) on m + 1 finite points, as lists of
    Fractions: m x a, a x 3, a x a (a = m + 2)."""
    m = len(points) - 1
    alpha = m + KERNEL - 1
    a_t = [list(col) for col in zip(*_evaluation(points, m))]        # E_m^T
    g = _evaluation(points, KERNEL)                                   # E_r
    c_t = [list(col) for col in zip(*_inverse(_evaluation(points, alpha)))]  # (E_a^-1)^T
    # scale row i of B^T by f_i = prod_{k != i}(a_i - a_k) (1 at infinity), and
    # row i of G by 1 / f_i: the products are unchanged, B^T's entries small
    scale = []
    for i, p in enumerate(points):
        f = Fraction(1)
        for k, q in enumerate(points):
            if k != i:
                f *= p - q
        scale.append(f)
    scale.append(Fraction(1))
    if scale[0] < 0:
        scale[0] = -scale[0]
    b_t = [[v * s for v in row] for row, s in zip(c_t, scale)]
    g = [[v / s for v in row] for row, s in zip(g, scale)]
    return a_t, g, b_t


@lru_cache(maxsize=None)
def integer_weight_matrices(points: Tuple[Fraction, ...]):
    """exact_matrices with each row of G divided by its entry of least
    magnitude and the matching column of A^T multiplied by it: G's rows
    become small integers, so that the weights' transform is sums and
    doublings, and the products are unchanged (G = D G' makes
    G g G^T = D (G' g G'^T) D, and the D's move into A^T D and D A)."""
    a_t, g, b_t = exact_matrices(points)
    scale = [min((v for v in row if v != 0), key=abs) for row in g]
    g = [[v / s for v in row] for row, s in zip(g, scale)]
    a_t = [[v * s for v, s in zip(row, scale)] for row in a_t]
    return a_t, g, b_t


@lru_cache(maxsize=None)
def matrices(m: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) of F(m x m, 3 x 3), G of integers (integer_weight_matrices),
    as float64 arrays (each entry rounded once): the matrices the kernel applies."""
    return tuple(np.array([[float(v) for v in row] for row in mat])  # type: ignore[return-value]
                 for mat in integer_weight_matrices(POINTS[m]))


# --- The algorithm a conv2d call uses ---

ALGORITHMS = ("direct", "winograd", "auto")
TILE = 4  # the kernel's F(4x4, 3x3)
# "auto" takes Winograd for at least this many input and output channels per
# group and this many output tiles (of TILE x TILE, all images), or from
# AUTO_WIDE_CHANNELS channels on AUTO_WIDE_MIN_TILES tiles: on fewer tiles
# or channels the transforms cost about what the products save
# (docs/tuning-notes.md)
AUTO_MIN_CHANNELS = 32
AUTO_MIN_TILES = 32
AUTO_WIDE_CHANNELS = 64
AUTO_WIDE_MIN_TILES = 16
# ... and, with 32 vector registers (AVX-512: the kernel's rows form on
# calls of one block of tiles), from AUTO_FEW_TILES_CHANNELS channels on
# AUTO_FEW_TILES tiles at least AUTO_FEW_TILES_FILL full (a 7x7 plane at
# batch 1; a 5x5 or 6x6 plane computes too many positions nobody reads)
AUTO_FEW_TILES_CHANNELS = 64
AUTO_FEW_TILES = 4
AUTO_FEW_TILES_FILL = 0.75


def check_algorithm(algorithm) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {list(ALGORITHMS)}, but got {algorithm!r}")
    return algorithm


def use_winograd(call, algorithm: str) -> bool:
    """Whether a checked conv2d call runs the Winograd kernel: always for
    "winograd" (a ValueError where it does not apply), never for "direct",
    and for "auto" where it was measured faster."""
    return chooses_winograd(algorithm, call.weight.shape, call.stride, call.dilation,
                            call.groups, call.out_shape, call.far)


def applies(kernel_hw, stride, dilation) -> bool:
    """Whether the Winograd kernel computes a layer of this kernel size,
    stride and dilation (pairs)."""
    return tuple(kernel_hw) == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)


def chooses_winograd(algorithm: str, weight_shape, stride, dilation, groups, out_shape,
                     far: bool) -> bool:
    """use_winograd from a call's shapes and parameters (cyconv.plan)."""
    if algorithm == "direct":
        return False
    c_out, c_in_g, kh, kw = weight_shape
    applies_here = applies((kh, kw), stride, dilation) and not far
    if algorithm == "winograd":
        if not applies_here:
            raise ValueError(
                f"algorithm='winograd' applies to 3x3 kernels with stride 1 and dilation 1 "
                f"(and paddings under 2**40), but got kernel {kh}x{kw}, stride "
                f"{stride}, dilation {dilation}")
        return True
    if not applies_here:
        return False
    n, _, h, w = out_shape
    tiles = n * -(-h // TILE) * -(-w // TILE)
    channels = min(c_in_g, c_out // groups)
    return ((channels >= AUTO_MIN_CHANNELS and tiles >= AUTO_MIN_TILES)
            or (channels >= AUTO_WIDE_CHANNELS and tiles >= AUTO_WIDE_MIN_TILES)
            or (channels >= AUTO_FEW_TILES_CHANNELS and tiles >= AUTO_FEW_TILES
                and n * h * w >= AUTO_FEW_TILES_FILL * tiles * TILE * TILE
                and _dispatch.kernel.blocking()["vector_bytes"] == 64))


def transform_weights(weight: np.ndarray, groups: int,
                      num_threads: int) -> Optional[np.ndarray]:
    """The kernel's transformed weights (G w G^T per channel pair, in the
    dtype's arithmetic), or None when a weight is NaN or Inf."""
    return _dispatch.kernel.winograd_weights(weight, groups, num_threads)


def reads_transformed(call) -> bool:
    """Whether the kernel reads transformed weights on this checked call when
    it is given them: on calls with few tiles (output channels in the vector
    lanes), and on calls whose transformed weights are too large to read
    fast, it transforms the weights it needs inside, a piece at a time."""
    x = call.input
    plan = _dispatch.kernel.plan_winograd_call(x.shape, call.out_shape, call.padding[0][0],
                                               call.padding[1][0], call.groups,
                                               x.dtype.itemsize, call.num_threads, True)
    return not plan["fused_weights"]


def forward(x, weight, transformed, bias, out, pad_top, pad_left, groups, num_threads,
            flipped=False):
    """out = the call's result by Winograd, from the weights transform_weights
    made (transformed), or from weight (transformed in the call); returns the
    kernel's (path, threads), or None when a result came out NaN or Inf (a
    NaN or Inf input or weight, or an overflow; out is then incomplete).
    flipped: x is grad_output, out the input gradient of the convolution by
    weight, the paddings 2 - its paddings."""
    a_t = matrices(TILE)[0]  # the kernel applies G and B^T as sums
    return _dispatch.kernel.conv2d_winograd(x, weight, transformed, bias, out, pad_top,
                                            pad_left, groups, a_t, num_threads, flipped)


def use_winograd_input_grad(algorithm: str, weight_shape, stride, dilation, groups,
                            input_shape, far: bool) -> bool:
    """Whether the input gradient of a conv2d call runs the Winograd kernel:
    use_winograd for the stride-1 convolution of grad_output that computes
    it (input_shape is its output, the weight transposed per group)."""
    c_out, c_in_g, kh, kw = weight_shape
    return chooses_winograd(algorithm, (c_in_g * groups, c_out // groups, kh, kw), stride,
                            dilation, groups, input_shape, far)
