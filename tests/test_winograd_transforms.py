"""The transforms of Winograd's F(m x m, 3 x 3) (cyconv/_winograd.py): the
published matrices where the points are the published ones, the exact identity
in rationals for every tile size offered, and the rounding error of the
algorithm in float32 and float64 against the float64 direct sum."""
from fractions import Fraction

import numpy as np
import pytest

from cyconv._winograd import POINTS, exact_matrices, integer_weight_matrices, matrices
from reference import conv2d_reference, conv2d_winograd_reference

F = Fraction

# Lavin & Gray (2016), "Fast Algorithms for Convolutional Neural Networks",
# section 5: F(2, 3) and F(4, 3) on the points 0, 1, -1 (, 2, -2) and infinity
LAVIN = {
    (0, 1, -1): (
        [[1, 1, 1, 0], [0, 1, -1, -1]],
        [[1, 0, 0], [F(1, 2), F(1, 2), F(1, 2)], [F(1, 2), F(-1, 2), F(1, 2)], [0, 0, 1]],
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    ),
    (0, 1, -1, 2, -2): (
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
        [[F(1, 4), 0, 0], [F(-1, 6), F(-1, 6), F(-1, 6)], [F(-1, 6), F(1, 6), F(-1, 6)],
         [F(1, 24), F(1, 12), F(1, 6)], [F(1, 24), F(-1, 12), F(1, 6)], [0, 0, 1]],
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
    ),
}


def _product(a_t, g, b_t, kernel, data):
    """A^T [(G kernel) * (B^T data)], in whatever numbers the arguments hold."""
    gk = [sum(row[k] * kernel[k] for k in range(3)) for row in g]
    bd = [sum(row[k] * data[k] for k in range(len(data))) for row in b_t]
    return [sum(row[i] * gk[i] * bd[i] for i in range(len(row))) for row in a_t]


def _signs_normalised(matrices_):
    """(A^T, G, B^T) with the sign of each transformed position moved into G, so
    that the first nonzero entries of A^T's column and B^T's row are positive:
    the products are unchanged, and two constructions that differ only in those
    signs compare equal."""
    a_t, g, b_t = (list(map(list, mat)) for mat in matrices_)
    for i, row in enumerate(b_t):
        if next(v for v in row if v != 0) < 0:
            b_t[i] = [-v for v in row]
            g[i] = [-v for v in g[i]]
        if next(row[i] for row in a_t if row[i] != 0) < 0:
            for row in a_t:
                row[i] = -row[i]
            g[i] = [-v for v in g[i]]
    return a_t, g, b_t


@pytest.mark.parametrize("points", sorted(LAVIN))
def test_published_points_give_the_published_matrices(points):
    ours = exact_matrices(tuple(F(p) for p in points))
    assert _signs_normalised(ours) == _signs_normalised(LAVIN[points])


@pytest.mark.parametrize("construction", [exact_matrices, integer_weight_matrices])
@pytest.mark.parametrize("m", sorted(POINTS))
def test_the_identity_holds_exactly_in_rationals(m, construction):
    a_t, g, b_t = construction(POINTS[m])
    assert (len(a_t), len(g), len(b_t)) == (m, m + 2, m + 2)
    rng = np.random.default_rng(m)
    for _ in range(20):
        kernel = [F(int(v)) for v in rng.integers(-9, 10, 3)]
        data = [F(int(v)) for v in rng.integers(-9, 10, m + 2)]
        correlation = [sum(kernel[k] * data[i + k] for k in range(3)) for i in range(m)]
        assert _product(a_t, g, b_t, kernel, data) == correlation


@pytest.mark.parametrize("m", sorted(POINTS))
def test_float_matrices_are_the_rationals_rounded_once(m):
    for exact, rounded in zip(integer_weight_matrices(POINTS[m]), matrices(m)):
        assert rounded.tolist() == [[float(v) for v in row] for row in exact]


@pytest.mark.parametrize("m", sorted(POINTS))
def test_the_weights_transform_is_small_integers(m):
    a_t, g, b_t = integer_weight_matrices(POINTS[m])
    assert all(v.denominator == 1 and abs(v) <= 4 for row in g for v in row)
    assert all(min(abs(v) for v in row if v != 0) == 1 for row in g)
    # the scales moved out of G, into A^T's columns; B^T is untouched
    assert b_t == exact_matrices(POINTS[m])[2]
    assert a_t != exact_matrices(POINTS[m])[0]


# the bound the docs state for each tile size and dtype (max |error| / max
# |result|, standard-normal data, up to 512 input channels), and the worst
# measured in docs/tuning-notes.md
BOUNDS = {(2, np.float32): 2e-6, (4, np.float32): 2e-5, (6, np.float32): 1e-4,
          (2, np.float64): 1e-14, (4, np.float64): 1e-13, (6, np.float64): 2e-13}


@pytest.mark.parametrize("m, dtype", sorted(BOUNDS, key=str))
@pytest.mark.parametrize("shape, padding", [((2, 48, 13, 10), (1, 1)), ((1, 32, 9, 16), (0, 2))])
def test_rounding_error_is_within_the_stated_bound(m, dtype, shape, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    weight = rng.standard_normal((40, shape[1], 3, 3))
    exact = conv2d_reference(x, weight, padding=(padding[:1] * 2, padding[1:] * 2))
    got = conv2d_winograd_reference(x.astype(dtype), weight.astype(dtype), m, dtype, padding)
    assert got.dtype == dtype and got.shape == exact.shape
    error = np.abs(got - exact).max() / np.abs(exact).max()
    assert error <= BOUNDS[m, dtype]
    # and it is a rounding error, not an exact result by accident of the data
    assert error > 0
