"""Choose, at import, the compiled kernel variant this CPU runs best.

The same Cython source is compiled for several instruction sets (setup.py).
Importing a variant the CPU cannot execute could die with SIGILL, so the
CPU is asked first, through the baseline variant, which runs everywhere.
"""
import importlib
import importlib.util
import os

# best first; the level is the x86-64 micro-architecture level it needs
VARIANT_LEVELS = {"x86-64-v4": 4, "x86-64-v3": 3, "baseline": 1}
ENV_VAR = "CYCONV_KERNEL"


def _module_name(variant):
    return "cyconv._kernel_" + variant.replace("-", "_")


def _import(variant):
    try:
        return importlib.import_module(_module_name(variant))
    except ImportError:
        return None


def _load():
    baseline = _import("baseline")
    if baseline is None:
        raise ImportError(
            f"cyconv's compiled kernels are missing from {os.path.dirname(__file__)}: "
            "this looks like the source tree. Install cyconv (pip install .) and import it "
            "from another directory, or build it in place (pip install -e .)")
    built = [v for v in VARIANT_LEVELS if v == "baseline" or _import_spec(v)]
    runnable = [v for v in built if baseline.cpu_supports_level(VARIANT_LEVELS[v])]
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced:
        if forced not in VARIANT_LEVELS:
            raise ImportError(f"{ENV_VAR}={forced!r} is not a kernel variant; "
                              f"expected one of {list(VARIANT_LEVELS)}")
        if forced not in built:
            raise ImportError(f"{ENV_VAR}={forced!r}: that variant was not built here; "
                              f"built: {built}")
        if forced not in runnable:
            raise ImportError(f"{ENV_VAR}={forced!r}: this CPU cannot run it; "
                              f"it runs: {runnable}")
        chosen = forced
    else:
        chosen = runnable[0]
    return chosen, _import(chosen), built, runnable


def _import_spec(variant):
    return importlib.util.find_spec(_module_name(variant)) is not None


KERNEL_NAME, kernel, BUILT, RUNNABLE = _load()


def load_variant(variant):
    """The compiled module of one runnable variant (tests run them all)."""
    if variant not in RUNNABLE:
        raise ValueError(f"kernel variant {variant!r} is not runnable here; runnable: {RUNNABLE}")
    return _import(variant)
