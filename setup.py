"""Build cyconv: one Cython kernel source compiled once per instruction set.

On x86-64 the kernel is built three times (baseline SSE2, x86-64-v3 with AVX2
and FMA, x86-64-v4 with AVX-512) and cyconv loads the best one the CPU runs at
import.  Elsewhere, or where the compiler lacks a flag, only the variants it
can build are built.  OpenMP is used when the compiler has it, else the build
is serial and says so.
"""
import glob
import os
import platform
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Compiler flags (docs/building.md says why each is there; docs/tuning-notes.md
# has the measurements):
# -O2 after Python's default -O3: at -O3 gcc vectorises the register-blocked
#   micro-kernels across the wrong loop and spills their accumulators.
# No -mtune: znver3 tuning folds every input load into the FMAs (load-port bound).
# No -ffast-math: gcc would link crtfastmath, which flushes denormals to zero
#   for the whole process at import, and NaN/Inf would no longer match torch.
# -fvect-cost-model=dynamic: gcc 12's -O2 default leaves the plane kernel's
#   axpys scalar (they need a runtime alias check).
# -fno-tree-loop-distribute-patterns: gcc would turn the short copy loops of
#   the gathers back into memcpy calls.
COMMON_FLAGS = ["-O2", "-funroll-loops", "-fvect-cost-model=dynamic",
                "-fno-tree-loop-distribute-patterns"]
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
# the variants, by the names cyconv.config() reports and CYCONV_RUN_KERNEL takes
VARIANT_FLAGS = {
    "baseline": [],
    "x86-64-v3": ["-march=x86-64-v3"],
    "x86-64-v4": ["-march=x86-64-v4", "-mprefer-vector-width=512"],
}
BUILD_VAR = "CYCONV_BUILD_KERNELS"


def chosen_variants():
    """The variants to build: all on x86-64 (baseline elsewhere), or baseline
    and those CYCONV_BUILD_KERNELS names (comma-separated, e.g. x86-64-v4)."""
    if not X86_64:
        return ["baseline"]
    wanted = os.environ.get(BUILD_VAR, "").strip()
    if not wanted:
        return list(VARIANT_FLAGS)
    names = [v.strip() for v in wanted.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANT_FLAGS]
    if unknown:
        sys.exit(f"{BUILD_VAR}={wanted!r}: {unknown} not among the variants {list(VARIANT_FLAGS)}")
    return ["baseline"] + [v for v in names if v != "baseline"]


def compiles_with(compiler, flags):
    """Whether the compiler builds and links a file that uses OpenMP-style flags."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("int main(void) { return 0; }\n")
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=flags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            openmp = ["/openmp"]
            for ext in self.extensions:
                ext.extra_compile_args = ["/O2"]
        else:
            openmp = ["-fopenmp"]
            kept = []
            for ext in self.extensions:
                if not compiles_with(self.compiler, ext.extra_compile_args):
                    print(f"cyconv: the compiler cannot build {ext.name} "
                          f"({' '.join(ext.extra_compile_args)}); skipping it", file=sys.stderr)
                    continue
                kept.append(ext)
            self.extensions = kept
        if compiles_with(self.compiler, openmp):
            for ext in self.extensions:
                ext.extra_compile_args += openmp
                ext.extra_link_args += openmp
        else:
            print("cyconv: WARNING: the compiler has no OpenMP; the kernels will run "
                  "on one thread (cyconv.config()['openmp'] is False)", file=sys.stderr)
        super().build_extensions()


def kernel_extension(variant):
    name = variant.replace("-", "_")  # module names take no hyphens
    return Extension(
        f"cyconv._kernel_{name}",
        [f"pyx/_kernel_{name}.pyx"],
        include_dirs=["pyx"],
        # every kernel source: an edit to any of them rebuilds each variant
        depends=sorted(glob.glob("pyx/*.pxi") + glob.glob("pyx/*.pxd") + glob.glob("pyx/*.h")),
        extra_compile_args=COMMON_FLAGS + VARIANT_FLAGS[variant],
    )


def cythonize(extensions):
    from Cython.Build import cythonize as _cythonize

    return _cythonize(extensions, include_path=["pyx"], compiler_directives={"language_level": 3})


setup(
    ext_modules=cythonize([kernel_extension(v) for v in chosen_variants()]),
    cmdclass={"build_ext": BuildExt},
)
