import numpy as np
import pytest

import cyconv
from cyconv import _dispatch


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=_dispatch.RUNNABLE)
def kernel_variant(request, monkeypatch):
    """Run a test once with each compiled kernel variant this CPU can run."""
    monkeypatch.setattr(cyconv.functional, "kernel", _dispatch.load_variant(request.param))
    return request.param
