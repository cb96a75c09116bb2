"""Which compiled kernel variant runs: chosen at import, switchable for tests.

The same Cython source is compiled for several instruction sets (setup.py).
Importing a variant the CPU cannot execute could die with SIGILL, so the
CPU is asked first, through the baseline variant, which runs everywhere.

Every module of cyconv reaches the kernel as ``_dispatch.kernel`` at call
time, so ``use_variant`` switches all of them at once.
"""
import contextlib
import importlib
import importlib.util
import os

# best first; the level is the x86-64 micro-architecture level it needs
VARIANT_LEVELS = {"x86-64-v4": 4, "x86-64-v3": 3, "baseline": 1}
RUN_VAR = "CYCONV_RUN_KERNEL"  # the variant to run; setup.py's CYCONV_BUILD_KERNELS builds them


def _module_name(variant):
    return "cyconv._kernel_" + variant.replace("-", "_")


def _import(variant):
    try:
        return importlib.import_module(_module_name(variant))
    except ImportError:
        return None


def _built(variant):
    return variant == "baseline" or importlib.util.find_spec(_module_name(variant)) is not None


def _load():
    baseline = _import("baseline")
    if baseline is None:
        raise ImportError(
            f"cyconv's compiled kernels are missing from {os.path.dirname(__file__)}: "
            "this looks like the source tree. Install cyconv (pip install .) and import it "
            "from another directory, or build it in place (pip install -e .)")
    built = [v for v in VARIANT_LEVELS if _built(v)]
    runnable = [v for v in built if baseline.cpu_supports_level(VARIANT_LEVELS[v])]
    forced = os.environ.get(RUN_VAR, "").strip()
    if forced:
        if forced not in VARIANT_LEVELS:
            raise ImportError(f"{RUN_VAR}={forced!r} is not a kernel variant; "
                              f"expected one of {list(VARIANT_LEVELS)}")
        if forced not in built:
            raise ImportError(f"{RUN_VAR}={forced!r}: that variant was not built here; "
                              f"built: {built}")
        if forced not in runnable:
            raise ImportError(f"{RUN_VAR}={forced!r}: this CPU cannot run it; "
                              f"it runs: {runnable}")
        chosen = forced
    else:
        chosen = runnable[0]
    return chosen, _import(chosen), built, runnable


KERNEL_NAME, kernel, BUILT, RUNNABLE = _load()
# the most threads a call starts: the processors this process may run on
THREAD_LIMIT = max(1, kernel.num_procs())


def load_variant(variant):
    """The compiled module of one runnable variant."""
    if variant not in RUNNABLE:
        raise ValueError(f"kernel variant {variant!r} is not runnable here; runnable: {RUNNABLE}")
    return _import(variant)


@contextlib.contextmanager
def use_variant(variant):
    """Within the block every entry point of cyconv (conv2d, the gradients,
    conv_transpose2d, the layers, plan and config) runs the kernel variant
    `variant`; yields its module.  For tests and benchmarks: not thread-safe."""
    global KERNEL_NAME, kernel
    module = load_variant(variant)
    saved = KERNEL_NAME, kernel
    KERNEL_NAME, kernel = variant, module
    try:
        yield module
    finally:
        KERNEL_NAME, kernel = saved


def _release_threads_before_fork():
    # a child of fork() has none of the parent's threads, and libgomp's pool
    # would wait for them forever at the child's first parallel call: the
    # pool ends before every fork and starts again at the parent's next call
    kernel.release_threads()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_release_threads_before_fork)
