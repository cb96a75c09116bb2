# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# The conv2d kernels compiled for the x86-64-v3 instruction set (flags in setup.py).
include "kernel.pxi"
