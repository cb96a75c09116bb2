"""Bad input: a clear Python exception naming the parameter, before any computation."""
import numpy as np
import pytest

import cyconv

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)
B = np.zeros(6, np.float32)


def Z(*shape):
    return np.zeros(shape, np.float32)

BAD_CALLS = [
    # (args, kwargs, exception, message pattern)
    ((Z(4, 8, 8, 1, 1), W), {}, ValueError, r"input to be 3-D .* or 4-D .*\[4, 8, 8, 1, 1\]"),
    ((Z(8, 8), W), {}, ValueError, r"input to be 3-D"),
    ((X, Z(6, 4, 3)), {}, ValueError, r"weight to be 4-D .*\[6, 4, 3\]"),
    ((X, W, Z(6, 1)), {}, ValueError, r"bias to be 1-D with 6 elements.*\[6, 1\]"),
    ((X, W, Z(5)), {}, ValueError, r"bias to be 1-D with 6 elements.*\[5\]"),
    ((X, Z(6, 3, 3, 3)), {}, ValueError, r"expects input to have 3 channels.*with 4 channels"),
    ((X, Z(6, 2, 3, 3)), {"groups": 3}, ValueError, r"groups=3, .*expects input to have 6 channels"),
    ((X, Z(5, 2, 3, 3)), {"groups": 2}, ValueError, r"groups=2 must divide the output channels"),
    ((X, W), {"groups": 0}, ValueError, r"groups must be >= 1, but got 0"),
    ((X, W), {"groups": 1.0}, TypeError, r"groups must be an int.*float"),
    ((X, Z(6, 4, 9, 9)), {}, ValueError, r"kernel height \(9\) is larger than the padded input height \(8\)"),
    ((X, W), {"dilation": 4}, ValueError, r"dilated kernel height \(9\)"),
    ((X, W), {"dilation": (1, 4), "padding": (1, 0)}, ValueError,
     r"dilated kernel width \(9\) is larger than the padded input width \(8\): input of shape "
     r"\[2, 4, 8, 8\], weight of shape \[6, 4, 3, 3\]"),
    ((X[0], Z(6, 4, 3, 9)), {"padding": ((0, 0), (0, 0))}, ValueError,
     r"kernel width \(9\) is larger than the padded input width \(8\): input of shape \[4, 8, 8\]"),
    ((X, W), {"stride": 0}, ValueError, r"stride must be >= 1, but got 0"),
    ((X, W), {"stride": (1, -1)}, ValueError, r"stride\[1\] must be >= 1, but got -1"),
    ((X, W), {"dilation": 0}, ValueError, r"dilation must be >= 1"),
    ((X, W), {"padding": -1}, ValueError, r"padding must be >= 0, but got -1"),
    ((X, W), {"padding": ((0, -1), (0, 0))}, ValueError, r"padding\[0\]\[1\] must be >= 0"),
    ((X, W), {"padding": "same", "stride": 2}, ValueError, r"'same' is not supported for strided"),
    ((X, W), {"padding": "full"}, ValueError, r"padding must be .*'valid' or 'same', but got the string 'full'"),
    ((X, W), {"stride": (1, 1, 1)}, ValueError, r"stride must be an int or a tuple of 2 ints.*3 elements"),
    ((X, W), {"padding": ((1, 1), (1, 1), (1, 1))}, ValueError, r"padding as pairs must be"),
    ((X, W), {"padding": ((1, 1), 1)}, ValueError, r"padding as pairs must be"),
    ((X, W), {"stride": 1.5}, TypeError, r"stride must be an int, but got 1.5 of type float"),
    ((X, W), {"stride": True}, TypeError, r"stride must be an int, but got True of type bool"),
    ((X, W), {"stride": (1, True)}, TypeError, r"stride\[1\] must be an int, but got True of type bool"),
    ((X, W), {"dilation": (2, 1.0)}, TypeError, r"dilation\[1\] must be an int, but got 1.0"),
    ((X, W), {"padding": ((1, 1), (True, 1))}, TypeError, r"padding\[1\]\[0\] must be an int"),
    ((X, W), {"dilation": (1, "2")}, TypeError, r"dilation\[1\] must be an int"),
    ((X, W), {"padding": 1.0}, TypeError, r"padding must be an int"),
    ((X.astype(np.float64), W), {}, TypeError, r"same float dtype, but input is float64, weight is float32"),
    ((X, W, B.astype(np.float64)), {}, TypeError, r"bias is float64"),
    ((X.astype(np.complex64), W), {}, TypeError, r"input must hold real numbers .* complex64"),
    ((X, W.astype(object)), {}, TypeError, r"weight must hold real numbers .* object"),
    ((np.full((1, 1, 3, 3), "a"), W), {}, TypeError, r"input must hold real numbers"),
    ((X, W.astype(np.longdouble)), {}, TypeError, r"weight has dtype float128"),
    ((X, Z(0, 4, 3, 3)), {}, ValueError, r"at least 1 output channel.*\[0, 4, 3, 3\]"),
    ((Z(2, 0, 8, 8), Z(3, 0, 3, 3)), {}, ValueError, r"at least 1 input channel"),
    ((X, Z(6, 4, 0, 3)), {}, ValueError, r"kernel of at least 1 x 1"),
    ((Z(2, 4, 0, 8), W), {"padding": 2}, ValueError, r"input height and width to be at least 1"),
    ((X, W), {"num_threads": 0}, ValueError, r"num_threads must be >= 1, but got 0"),
    ((X, W), {"num_threads": 2.0}, TypeError, r"num_threads must be an int"),
    ((X, W), {"num_threads": "2"}, TypeError, r"num_threads must be an int"),
]


@pytest.mark.parametrize("args, kwargs, error, match", BAD_CALLS,
                         ids=[f"{i}-{c[2].__name__}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_raises_clear_error(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        cyconv.conv2d(*args, **kwargs)


def test_output_too_large_for_64_bit_indices_is_a_clear_error():
    # padding makes a 1-pixel input produce about 2**82 output elements
    with pytest.raises(ValueError, match=r"output of shape .* is too large"):
        cyconv.conv2d(Z(1, 1, 1, 1), Z(1, 1, 1, 1), padding=2**40)


def test_output_that_cannot_be_allocated_is_a_memory_error():
    # about 2**52 float32 outputs (16 PiB) from tiny operands
    with pytest.raises(MemoryError, match=r"cannot allocate the output of shape"):
        cyconv.conv2d(Z(1, 1, 1, 1), Z(2**10, 1, 1, 1), padding=2**20)


def test_numpy_integer_parameters_are_accepted():
    out = cyconv.conv2d(X, W, stride=np.int64(2), padding=(np.int32(1), 1), groups=np.int8(1))
    assert out.shape == (2, 6, 4, 4)
