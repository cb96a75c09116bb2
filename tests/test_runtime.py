"""OpenMP, threads, the GIL, memory and kernel-variant selection."""
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cyconv
from cyconv import _dispatch
from helpers import assert_close, random_array, torch_conv2d

SHAPES = [  # (x shape, weight shape, kwargs): batch 1 with tails in every direction
    ((1, 16, 23, 29), (13, 16, 3, 3), dict(padding=1)),
    ((1, 3, 37, 41), (20, 3, 5, 5), dict(stride=2, padding=2)),
    ((1, 8, 9, 9), (8, 1, 3, 3), dict(padding=1, groups=8)),
    ((3, 7, 6, 5), (11, 7, 1, 1), {}),
    ((2, 32, 7, 7), (64, 32, 3, 3), dict(padding=1)),
    ((1, 8, 10, 50), (17, 8, 3, 3), dict(padding=1)),
    ((1, 48, 9, 11), (40, 48, 1, 1), {}),  # 1x1 matrix product
    ((4, 24, 7, 9), (40, 24, 1, 1), {}),  # its tiles across images, chunked per thread count
    ((3, 256, 5, 4), (512, 256, 3, 3), dict(padding=1)),  # several images per item
]


def test_openmp_is_compiled_in():
    # Like scikit-learn's test_openmp_parallelism_enabled: fails when a build
    # silently lost OpenMP.  Set CYCONV_SKIP_OPENMP_TEST on a compiler without it.
    if os.environ.get("CYCONV_SKIP_OPENMP_TEST"):
        pytest.skip("CYCONV_SKIP_OPENMP_TEST is set")
    assert cyconv.config()["openmp"]
    assert _dispatch.kernel.threads_started(2) == 2


def test_config_reports_the_kernel():
    cfg = cyconv.config()
    assert cfg["kernel"] in cfg["kernels_runnable"]
    assert set(cfg["kernels_runnable"]) <= set(cfg["kernels_built"])
    assert cfg["kernel"] == cfg["kernels_runnable"][0]  # the best runnable one
    assert cfg["max_threads"] >= 1
    assert cfg["version"] == cyconv.__version__


def test_threadpoolctl_limits_the_default_thread_count():
    if not cyconv.config()["openmp"]:
        pytest.skip("built without OpenMP")
    with threadpool_limits(limits=1, user_api="openmp"):
        assert cyconv.config()["max_threads"] == 1
    with threadpool_limits(limits=2, user_api="openmp"):
        assert cyconv.config()["max_threads"] == 2


@pytest.mark.parametrize("x_shape, w_shape, kwargs", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_give_identical_results(rng, x_shape, w_shape, kwargs, dtype,
                                                    kernel_variant, many_threads):
    x = random_array(rng, x_shape, dtype)
    w = random_array(rng, w_shape, dtype)
    b = random_array(rng, w_shape[:1], dtype)
    one = cyconv.conv2d(x, w, b, num_threads=1, **kwargs)
    for threads in (2, 3, 7):
        np.testing.assert_array_equal(cyconv.conv2d(x, w, b, num_threads=threads, **kwargs), one)
    assert_close(one, torch_conv2d(x, w, b, **kwargs), dtype)


def test_gil_is_released_during_the_kernel(rng):
    x = random_array(rng, (8, 64, 56, 56), np.float32)
    w = random_array(rng, (64, 64, 3, 3), np.float32)
    start = time.perf_counter()
    cyconv.conv2d(x, w, padding=1, num_threads=1)
    single = time.perf_counter() - start
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    time.sleep(0.01)
    start = time.perf_counter()
    cyconv.conv2d(x, w, padding=1, num_threads=1)
    end = time.perf_counter()
    done.set()
    t.join()
    during = [tick for tick in ticks if start + 0.1 * single < tick < end - 0.1 * single]
    # with the GIL held, the ticker could not run at all during the call
    assert len(during) >= 3, (single, len(ticks), len(during))


def test_two_python_threads_at_once_get_correct_results(rng):
    cases = [(random_array(rng, (2, 8, 20, 20), np.float32),
              random_array(rng, (16, 8, 3, 3), np.float32)) for _ in range(4)]
    expected = [torch_conv2d(x, w, padding=1) for x, w in cases]
    results = {}

    def work(i):
        for _ in range(10):
            results[i] = cyconv.conv2d(cases[i][0], cases[i][1], padding=1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert_close(results[i], expected[i], np.float32)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_calls_do_not_grow_memory(rng):
    x = random_array(rng, (2, 64, 28, 28), np.float32)
    w = random_array(rng, (64, 64, 3, 3), np.float32)
    for _ in range(20):
        cyconv.conv2d(x, w, padding=1)
    before = _rss_bytes()
    for _ in range(300):
        cyconv.conv2d(x, w, padding=1)
    growth = _rss_bytes() - before
    # each call allocates ~0.5 MB of buffers; a leak would add ~150 MB
    assert growth < 20 * 2**20, growth


def _run_python(code, **env):
    full_env = dict(os.environ, **env)
    # outside the checkout, whose source folder would shadow the installed cyconv
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120, cwd=tempfile.gettempdir())


def test_omp_num_threads_sets_the_default():
    r = _run_python("import cyconv; print(cyconv.config()['max_threads'])", OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


@pytest.mark.parametrize("variant", _dispatch.RUNNABLE)
def test_cyconv_kernel_forces_a_variant(variant):
    code = ("import cyconv, numpy as np; print(cyconv.config()['kernel']); "
            "print(cyconv.conv2d(np.ones((1, 2, 4, 4)), np.ones((3, 2, 3, 3))).sum())")
    r = _run_python(code, CYCONV_RUN_KERNEL=variant)
    assert r.returncode == 0, r.stderr
    name, total = r.stdout.split()
    assert name == variant
    assert float(total) == 3 * 4 * 18  # 3 channels x 4 positions x 18 ones


@pytest.mark.parametrize("value, match", [
    ("avx9000", r"not a kernel variant"),
    *[(v, r"this CPU cannot run it|was not built here")
      for v in _dispatch.VARIANT_LEVELS if v not in _dispatch.RUNNABLE],
])
def test_cyconv_kernel_refuses_a_variant_it_cannot_run(value, match):
    r = _run_python("import cyconv", CYCONV_RUN_KERNEL=value)
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "Segmentation" not in r.stderr
    assert __import__("re").search(match, r.stderr), r.stderr


def test_import_does_not_import_torch_or_dask():
    r = _run_python("import sys, cyconv; cyconv.conv2d([[[[1.0]]]], [[[[2.0]]]]); "
                    "print('torch' in sys.modules, 'dask' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False False"
