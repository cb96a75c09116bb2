"""Build cyconv: one Cython kernel source compiled once per instruction set.

On x86-64 the kernel is built three times (baseline SSE2, x86-64-v3 with AVX2
and FMA, x86-64-v4 with AVX-512) and cyconv loads the best one the CPU runs at
import.  Elsewhere, or where the compiler lacks a flag, only the variants it
can build are built.  OpenMP is used when the compiler has it, else the build
is serial and says so.
"""
import os
import platform
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# -O2 after Python's default -O3: at -O3 gcc 12 vectorises the register-blocked
# micro-kernel across the wrong loop and spills its accumulators (3x slower).
# No -mtune=znver3: it makes gcc fold every input load into the FMAs
# (load-port bound, 49 instead of 74 GFLOP/s on Zen 4).
# No -ffast-math: gcc would link crtfastmath, which flushes denormals to zero
# for the whole process at import.
# -fvect-cost-model=dynamic: gcc 12's -O2 default ("very-cheap") leaves the
# plane kernel's axpys scalar (they need a runtime alias check, which "cheap"
# refuses too); "dynamic"
# vectorises them and also schedules the micro-kernel better (75 -> 86 GFLOP/s).
# -fno-tree-loop-distribute-patterns: gcc would turn the short copy loops of the
# gather back into memcpy calls, whose overhead was 38% of a 1x1 layer.
COMMON_FLAGS = ["-O2", "-funroll-loops", "-fvect-cost-model=dynamic",
                "-fno-tree-loop-distribute-patterns"]
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
VARIANT_FLAGS = {
    "baseline": [],
    "x86_64_v3": ["-march=x86-64-v3"],
    "x86_64_v4": ["-march=x86-64-v4", "-mprefer-vector-width=512"],
}
VARIANTS = list(VARIANT_FLAGS) if X86_64 else ["baseline"]
# CYCONV_KERNELS=baseline,x86_64_v3 builds fewer variants (faster development builds)
if os.environ.get("CYCONV_KERNELS"):
    VARIANTS = ["baseline"] + [v for v in os.environ["CYCONV_KERNELS"].split(",")
                               if v in VARIANT_FLAGS and v != "baseline"]


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
    return Extension(
        f"cyconv._kernel_{variant}",
        [f"pyx/_kernel_{variant}.pyx"],
        include_dirs=["pyx"],
        extra_compile_args=COMMON_FLAGS + VARIANT_FLAGS[variant],
    )


def cythonize(extensions):
    from Cython.Build import cythonize as _cythonize

    return _cythonize(extensions, include_path=["pyx"], compiler_directives={"language_level": 3})


setup(
    ext_modules=cythonize([kernel_extension(v) for v in VARIANTS]),
    cmdclass={"build_ext": BuildExt},
)
