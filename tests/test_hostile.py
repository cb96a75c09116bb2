"""Hostile arguments: no value a user passes may crash the process, hang it,
start thousands of threads or return a silently wrong array."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import cyconv
from cyconv import _dispatch


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300, cwd=tempfile.gettempdir())


THREAD_COUNT = r"""
import os, numpy as np, cyconv
def threads():
    return len(os.listdir("/proc/self/task"))
rng = np.random.default_rng(0)
x = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
g = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
limit = cyconv.config()["thread_limit"]
def everything(n):
    out = [cyconv.conv2d(x, w, padding=1, num_threads=n),
           cyconv.grad.conv2d_input(x.shape, w, g, padding=1, num_threads=n),
           cyconv.grad.conv2d_weight(x, w.shape, g, padding=1, num_threads=n),
           cyconv.grad.conv2d_bias(g, num_threads=n),
           cyconv.conv_transpose2d(g, w, stride=2, num_threads=n)]
    layer = cyconv.Conv2d(64, 64, 3, padding=1, num_threads=n, rng=0)
    out.append(layer.backward(layer(x)))
    out.append(layer.freeze()(x))
    return out
expected = everything(limit)
before = threads()
for n in (NUMBERS):
    got = everything(n)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected)), n
print(before, threads())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="counts threads in /proc")
def test_a_huge_num_threads_starts_no_more_threads_than_processors():
    r = _python(THREAD_COUNT.replace("NUMBERS", "40_000, 100_000, 2**31 - 1"))
    assert r.returncode == 0, r.stderr[-2000:]
    before, after = map(int, r.stdout.split())
    assert after <= before, (before, after)


def test_the_default_thread_count_is_capped_too():
    r = _python(THREAD_COUNT.replace("NUMBERS", "None,"), OMP_NUM_THREADS="5000")
    assert r.returncode == 0, r.stderr[-2000:]
    before, after = map(int, r.stdout.split())
    assert after <= before, (before, after)


@pytest.mark.parametrize("value, error, match", [
    (0, ValueError, r"num_threads must be >= 1, but got 0"),
    (-3, ValueError, r"num_threads must be >= 1"),
    (2**31, ValueError, r"num_threads must be at most 2147483647, but got 2147483648"),
    (2**100, ValueError, r"num_threads must be at most"),
    (2.0, TypeError, r"num_threads must be an int"),
    (True, TypeError, r"num_threads must be an int"),
    ("2", TypeError, r"num_threads must be an int"),
])
def test_bad_num_threads_are_clear_errors_everywhere(value, error, match):
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    g = np.ones((1, 3, 3, 3), np.float32)
    calls = [lambda: cyconv.conv2d(x, w, num_threads=value),
             lambda: cyconv.grad.conv2d_input(x.shape, w, g, num_threads=value),
             lambda: cyconv.grad.conv2d_weight(x, w.shape, g, num_threads=value),
             lambda: cyconv.grad.conv2d_bias(g, num_threads=value),
             lambda: cyconv.conv_transpose2d(g, w, num_threads=value),
             lambda: cyconv.Conv2d(2, 3, 3, num_threads=value),
             lambda: setattr(cyconv.Conv2d(2, 3, 3).freeze(), "num_threads", value),
             lambda: cyconv.plan(x.shape, w.shape, num_threads=value)]
    for call in calls:
        with pytest.raises(error, match=match):
            call()


def test_numpy_integers_are_thread_counts():
    x = np.ones((1, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    for n in (np.int64(2), np.int32(1), np.uint8(3)):
        np.testing.assert_array_equal(cyconv.conv2d(x, w, num_threads=n), cyconv.conv2d(x, w))


def test_thread_limit_is_the_processors():
    assert cyconv.config()["thread_limit"] == _dispatch.THREAD_LIMIT >= 1
    if hasattr(os, "sched_getaffinity"):
        assert _dispatch.THREAD_LIMIT == len(os.sched_getaffinity(0))
