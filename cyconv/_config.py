"""config(): how this build of cyconv runs."""
from typing import Any, Dict

from . import _dispatch


def config() -> Dict[str, Any]:
    """What this cyconv runs: OpenMP, default threads and the compiled kernel variant.

    Returns a dict with
    - ``openmp``: whether the kernels were compiled with OpenMP;
    - ``max_threads``: the OpenMP default thread count (OMP_NUM_THREADS, threadpoolctl);
    - ``thread_limit``: the most threads a call starts (the processors this
      process may run on);
    - ``kernel``: the instruction-set variant in use (``CYCONV_RUN_KERNEL`` forces one);
    - ``kernels_built`` / ``kernels_runnable``: the variants built, and those this CPU runs;
    - ``blocking``: the register-block sizes of the kernel in use.
    """
    from ._version import __version__

    k = _dispatch.kernel
    return {
        "version": __version__,
        "openmp": k.openmp_enabled(),
        "max_threads": k.max_threads(),
        "thread_limit": _dispatch.THREAD_LIMIT,
        "kernel": _dispatch.KERNEL_NAME,
        "kernels_built": list(_dispatch.BUILT),
        "kernels_runnable": list(_dispatch.RUNNABLE),
        "blocking": k.blocking(),
    }
