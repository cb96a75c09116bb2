"""cyconv: torch-exact 2D convolution for NumPy arrays, in Cython + OpenMP."""
from ._version import __version__
from ._config import config
from ._plan import plan
from .functional import conv2d, conv_transpose2d
from . import grad
from .layers import Conv2d, FrozenConv2d

__all__ = ["__version__", "config", "plan", "conv2d", "conv_transpose2d", "grad", "Conv2d", "FrozenConv2d"]
