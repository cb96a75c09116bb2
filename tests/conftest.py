import numpy as np
import pytest

from cyconv import _dispatch


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def many_threads(monkeypatch):
    """Calls may start up to 64 threads here, whatever the processors: the
    work splits of 3 and 7 threads are exercised on a 2-core machine too."""
    monkeypatch.setattr(_dispatch, "THREAD_LIMIT", 64)


@pytest.fixture(params=_dispatch.RUNNABLE)
def kernel_variant(request):
    """Run a test once with each compiled kernel variant this CPU can run."""
    with _dispatch.use_variant(request.param):
        yield request.param
