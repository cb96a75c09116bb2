"""cyconv.dask against the in-memory result: on a dask.distributed LocalCluster
(processes, 2 workers, loopback), and under the threaded and synchronous schedulers."""
import os
import pickle
import signal
import tempfile
import threading
import time

import numpy as np
import pytest

import dask.array as da  # noqa: E402  (dask and distributed are development requirements)
import distributed  # noqa: E402

# a cluster that hangs fails the test instead of blocking the suite
pytestmark = pytest.mark.timeout(300)

import dask  # noqa: E402

import cyconv  # noqa: E402
import cyconv.dask as cd  # noqa: E402
from helpers import TOLERANCE, assert_close  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                  death_timeout=60) as cluster:
        with distributed.Client(cluster, timeout=60) as c:
            yield c


# (input shape, chunks, weight shape, conv2d keywords)
CASES = [
    ((6, 3, 20, 18), (2, 3, 20, 18), (5, 3, 3, 3), dict(padding=1)),               # batch chunks
    ((2, 4, 31, 29), (1, 2, 8, 7), (6, 4, 3, 3), dict(stride=2, padding=1)),
    ((1, 3, 40, 35), (1, 3, 9, 11), (4, 3, 5, 4), dict(stride=3, padding=((2, 1), (0, 3)))),
    ((2, 2, 30, 30), (1, 2, 7, 6), (3, 2, 3, 3), dict(dilation=3, padding=2)),
    ((1, 4, 25, 27), (1, 4, 6, 5), (4, 4, 4, 2), dict(padding="same")),             # even kernel
    ((1, 4, 20, 21), (1, 4, 1, 2), (4, 4, 5, 5), dict(padding=2)),                  # chunks < halo
    ((2, 6, 22, 19), (1, 3, 5, 9), (9, 2, 3, 3), dict(padding=1, groups=3)),
    ((12, 5), (4, 3), (2, 1, 3, 3), dict(padding=1)),                               # 2-D -> (1, H, W)
    ((1, 3, 17, 23), (1, 3, 5, 6), (2, 3, 3, 1), dict(padding=(1, 0))),          # no column halo
]


def _case(case, dtype, rng):
    x_shape, chunks, w_shape, conv = case
    if len(x_shape) == 2:  # an unbatched image
        x_shape, chunks = (1,) + x_shape, (1,) + chunks
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, da.from_array(x, chunks=chunks), w, b, conv


@pytest.mark.parametrize("dtype, halo_copy_bytes", [
    (np.float32, cd.HALO_COPY_BYTES), (np.float64, cd.HALO_COPY_BYTES),
    (np.float32, 0)])  # every block reads its halo pieces beside it (_halos)
@pytest.mark.parametrize("case", CASES)
def test_conv2d_on_a_cluster_equals_the_in_memory_result(client, case, dtype, halo_copy_bytes,
                                                          rng, monkeypatch):
    monkeypatch.setattr(cd, "HALO_COPY_BYTES", halo_copy_bytes)
    x, xd, w, b, conv = _case(case, dtype, rng)
    y = cd.conv2d(xd, w, b, **conv)
    expected = cyconv.conv2d(x, w, b, **conv)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    got = y.compute()
    assert got.dtype == dtype
    assert_close(got, expected, dtype)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_are_torchs(client, mode, rng):
    x, xd, w, b, _ = _case(((2, 3, 17, 15), (1, 3, 4, 5), (4, 3, 3, 3), {}), np.float64, rng)
    layer = cyconv.Conv2d(3, 4, 3, padding=(2, 1), stride=2, padding_mode=mode, dtype=np.float64)
    layer.load_state_dict({"weight": w, "bias": b})
    assert_close(cd.conv2d(xd, w, b, stride=2, padding=(2, 1), padding_mode=mode).compute(),
                 layer(x), np.float64)
    assert_close(cd.apply(layer, xd).compute(), layer(x), np.float64)
    assert_close(cd.apply(layer.freeze(), xd).compute(), layer(x), np.float64)


def test_output_chunks_are_known_without_computing(rng):
    _, xd, w, _, _ = _case(((2, 3, 40, 33), (1, 2, 10, 9), (4, 3, 3, 3), {}), np.float32, rng)
    y = cd.conv2d(xd, w, stride=2, padding=1)
    assert y.chunks[:2] == ((1, 1), (4,))
    assert sum(y.chunks[2]) == 20 and sum(y.chunks[3]) == 17
    assert all(c > 0 for c in y.chunks[2] + y.chunks[3])
    # output chunks start where a window starts in an input chunk: aligned to the stride
    assert y.chunks[2][0] == 6 and y.chunks[3][0] == 5  # windows starting in rows 0-9, cols 0-8


def test_unbatched_dask_input_gives_unbatched_output(client, rng):
    x = rng.standard_normal((3, 16, 18)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    y = cd.conv2d(da.from_array(x, chunks=(3, 5, 6)), w, padding=1)
    assert y.shape == (5, 16, 18)
    assert_close(y.compute(), cyconv.conv2d(x, w, padding=1), np.float32)


def test_bad_arguments_fail_when_the_graph_is_built(rng):
    xd = da.zeros((2, 3, 10, 10), chunks=(1, 3, 5, 5))
    w = np.ones((4, 3, 3, 3))
    with pytest.raises(ValueError, match="expects input to have 6 channels"):
        cd.conv2d(xd, np.ones((4, 6, 3, 3)))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        cd.conv2d(xd, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        cd.conv2d(xd, w, padding_mode="mirror")
    with pytest.raises(ValueError, match="padding_mode='reflect' needs each padding"):
        cd.conv2d(xd, w, padding=10, padding_mode="reflect")
    with pytest.raises(TypeError, match="must have the same float dtype"):
        cd.conv2d(xd.astype(np.float32), w)
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        cd.conv2d(xd, w, num_threads=0)
    with pytest.raises(ValueError, match="expected input to be 3-D"):
        cd.conv2d(da.zeros((3, 3)), w)
    with pytest.raises(ValueError, match="out must have the shape of the output"):
        cd.conv2d(xd, w, out=np.empty((2, 4, 8, 7)))
    with pytest.raises(TypeError, match="apply takes a cyconv.Conv2d"):
        cd.apply(w, xd)


def test_the_weights_are_in_the_graph_once(rng):
    w = rng.standard_normal((64, 64, 3, 3))  # 2.4 MB
    xd = da.zeros((8, 64, 32, 32), chunks=(1, 64, 16, 16))  # 32 blocks
    graph = cd.conv2d(xd, w, padding=1).__dask_graph__()
    assert len(pickle.dumps(dict(graph))) < 2 * w.nbytes


def test_a_worker_packs_the_weights_once_per_padding():
    kernel = cd._BlockConv(np.ones((8, 2, 3, 3), np.float32), np.zeros(8, np.float32), (1, 1),
                           (1, 1), 1)
    first = kernel.frozen(((1, 0), (1, 1)))
    assert kernel.frozen(((1, 0), (1, 1))) is first
    assert kernel.frozen(((0, 0), (1, 1))) is not first
    assert pickle.loads(pickle.dumps(kernel))._frozen == {}  # the packings stay on the worker


def test_workers_run_one_openmp_thread_per_task(client):
    # the nanny sets OMP_NUM_THREADS=1 in each worker: a task starts one thread
    assert set(client.run(lambda: cyconv.config()["max_threads"]).values()) == {1}
    assert set(client.run(lambda: cd._task_threads(None, 8)).values()) == {None}
    assert set(client.run(lambda: cd._task_threads(3, 8)).values()) == {3}


def test_pool_threads_share_the_processors():
    limit = cyconv.config()["thread_limit"]
    got = {}

    def in_a_pool_thread():
        with dask.config.set(num_workers=2):
            got["two"] = cd._task_threads(None, 100)
            got["one block"] = cd._task_threads(None, 1)
    t = threading.Thread(target=in_a_pool_thread)
    t.start()
    t.join()
    assert got == {"two": max(1, limit // 2), "one block": limit}
    assert cd._task_threads(None, 100) is None  # the calling thread: the synchronous scheduler


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_the_threaded_and_synchronous_schedulers(scheduler, rng):
    x, xd, w, b, conv = _case(CASES[2], np.float32, rng)
    expected = cyconv.conv2d(x, w, b, **conv)
    with dask.config.set(scheduler=scheduler):
        assert_close(cd.conv2d(xd, w, b, **conv).compute(), expected, np.float32)
        out = np.empty(expected.shape, np.float32)
        assert cd.conv2d(xd, w, b, **conv, out=out) is out
    assert_close(out, expected, np.float32)


def test_out_streams_into_a_memmap_on_the_cluster(client, rng):
    x, xd, w, b, conv = _case(CASES[1], np.float32, rng)
    expected = cyconv.conv2d(x, w, b, **conv)
    with tempfile.TemporaryDirectory() as tmp:
        target = np.memmap(os.path.join(tmp, "out.f32"), np.float32, "w+", shape=expected.shape)
        assert cd.conv2d(xd, w, b, **conv, out=target) is target
        assert_close(np.asarray(target), expected, np.float32)
        with pytest.raises(ValueError, match="out must be an np.memmap"):
            cd.conv2d(xd, w, b, **conv, out=np.empty(expected.shape, np.float32))
        # batch chunks of whole images: each block written in place through out=
        x, xd, w, b, conv = _case(CASES[0], np.float32, rng)
        expected = cyconv.conv2d(x, w, b, **conv)
        target = np.memmap(os.path.join(tmp, "out2.f32"), np.float32, "w+",
                           shape=expected.shape)
        job = cd.conv2d(xd, w, b, **conv, out=target, compute=False)
        assert not target.any()
        job.compute()
        assert_close(np.asarray(target), expected, np.float32)


def test_conv_transpose2d_over_batch_chunks(client, rng):
    y = rng.standard_normal((5, 4, 9, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(6)
    conv = dict(stride=2, padding=1, output_padding=1, groups=2)
    expected = cyconv.conv_transpose2d(y, w, b, **conv)
    got = cd.conv_transpose2d(da.from_array(y, chunks=(2, 2, 3, 3)), w, b, **conv)
    assert got.chunks[0] == (2, 2, 1) and got.shape == expected.shape
    assert_close(got.compute(), expected, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_weight_gradient_is_a_tree_of_batch_chunks(client, dtype, rng):
    x = rng.standard_normal((7, 4, 12, 11)).astype(dtype)
    w_shape = (6, 2, 3, 3)
    conv = dict(stride=2, padding=1, groups=2)
    go = rng.standard_normal(cyconv.conv2d(x, np.ones(w_shape, dtype), **conv).shape).astype(dtype)
    expected = cyconv.grad.conv2d_weight(x, w_shape, go, **conv)
    got = cd.conv2d_weight(da.from_array(x, chunks=(1, 4, 12, 11)), w_shape,
                           da.from_array(go, chunks=(3, 6, 6, 6)), **conv, split_every=2)
    assert got.shape == w_shape and got.dtype == dtype
    tol = TOLERANCE[np.dtype(dtype)] * 10  # sums in another order
    np.testing.assert_allclose(got.compute(), expected, rtol=tol, atol=tol * np.abs(expected).max())


def _slow(block):
    time.sleep(0.05)
    return block


def test_a_worker_killed_in_the_middle_gives_the_same_result(rng):
    x = rng.standard_normal((24, 3, 20, 20)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = cyconv.conv2d(x, w, padding=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        with distributed.Client(cluster, timeout=60) as c:
            pids = c.run(os.getpid)
            slow = da.from_array(x, chunks=(1, 3, 20, 20)).map_blocks(_slow)
            future = c.compute(cd.conv2d(slow, w, padding=1))
            deadline = time.monotonic() + 30
            while not any(c.processing().values()):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.2)  # some blocks done, some running
            os.kill(next(iter(pids.values())), signal.SIGKILL)
            got = future.result(timeout=120)
            assert c.run(os.getpid) != pids  # the nanny started a new worker
    assert_close(got, expected, np.float32)


# bands of whole rows: a task per band for the rows that read it alone, and
# one per pair of bands for the rows between them, from copies of their edge
# rows; every stride, dilation, padding and band height (a band shorter than
# a window included)
ROW_BANDS = [
    ((2, 3, 41, 23), (1, 3, 9, 23), (4, 3, 3, 3), dict(padding=1)),
    ((1, 2, 40, 17), (1, 2, 7, 17), (3, 2, 5, 3), dict(stride=2, padding=((2, 1), (1, 1)))),
    ((1, 2, 47, 15), (1, 2, 10, 15), (3, 2, 4, 3), dict(stride=3, padding=((0, 3), (0, 2)))),
    ((2, 2, 38, 12), (1, 2, 6, 12), (2, 2, 3, 3), dict(dilation=3, padding=2)),
    ((1, 3, 30, 9), (1, 3, 2, 9), (2, 3, 3, 3), dict(padding="same")),
    ((1, 2, 25, 8), (1, 2, 5, 8), (2, 2, 1, 3), dict(padding=(0, 1))),
]


@pytest.mark.parametrize("case", ROW_BANDS)
def test_row_bands_stream_into_out_with_tasks_inside_and_between_bands(client, case,
                                                                       monkeypatch):
    monkeypatch.setattr(cd, "HALO_COPY_BYTES", 0)
    shape, chunks, w_shape, conv = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    xd = da.from_array(x, chunks=chunks)
    expected = cyconv.conv2d(x, w, b, **conv)
    with tempfile.TemporaryDirectory() as tmp:
        target = np.memmap(os.path.join(tmp, "out.f32"), np.float32, "w+", shape=expected.shape)
        job = cd.conv2d(xd, w, b, **conv, out=target, compute=False)
        names = {str(k) for k in dict(job.__dask_graph__())}
        assert any("_conv_inside_into" in k for k in names)
        assert any("_conv_between_into" in k for k in names)
        job.compute()
        assert_close(np.asarray(target), expected, np.float32)
    with dask.config.set(scheduler="threads"):
        out = np.full(expected.shape, np.nan, np.float32)
        assert cd.conv2d(xd, w, b, **conv, out=out) is out
    assert_close(out, expected, np.float32)
