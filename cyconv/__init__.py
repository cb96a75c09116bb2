"""cyconv: torch-exact 2D convolution for NumPy arrays, in Cython + OpenMP."""
from ._version import __version__
from ._config import config
from .functional import conv2d
from .layers import Conv2d

__all__ = ["__version__", "config", "conv2d", "Conv2d"]
