"""The types of cyconv's public signatures."""
from typing import Sequence, Union

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
# an int, or (h, w) (or (v,), as torch takes it)
IntPair = Union[int, Sequence[int]]
# an int, (h, w), ((top, bottom), (left, right)), 'valid' or 'same'
Padding = Union[int, str, Sequence[int], Sequence[Sequence[int]]]
Shape = Sequence[int]
DTypeLike = npt.DTypeLike
Array = np.ndarray
