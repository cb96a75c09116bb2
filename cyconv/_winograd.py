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
"""
from fractions import Fraction
from functools import lru_cache
from typing import Dict, Sequence, Tuple

import numpy as np

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
def matrices(m: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T, G, B^T) of F(m x m, 3 x 3) as float64 arrays (each entry rounded once)."""
    return tuple(np.array([[float(v) for v in row] for row in mat])  # type: ignore[return-value]
                 for mat in exact_matrices(POINTS[m]))
