import numpy as np
import pytest

import cyconv
from cyconv import _dispatch


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=_dispatch.RUNNABLE)
def kernel_variant(request):
    """Run a test once with each compiled kernel variant this CPU can run."""
    with _dispatch.use_variant(request.param):
        yield request.param
