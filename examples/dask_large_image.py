"""Convolve an image larger than one would hold in memory, on a Dask cluster.

    python examples/dask_large_image.py [--size 23170] [--rows 1024] [--tile 0]
                                        [--workers 2] [--out FILE] [--keep]

A single-channel float32 image of size x size (23170 x 23170: 2 GiB) is
generated lazily, chunk by chunk, on the workers of a dask.distributed
LocalCluster (processes, one thread each, loopback only): no process ever
holds all of it.  Its chunks are bands of whole rows (--rows; --tile N cuts
square N x N tiles instead): a band needs only the first rows of the next
one, where a tile needs its neighbours below and to the right, so a row of
tiles stays in memory until the next row is made.  cyconv.dask.conv2d
applies a small filter bank (a 5x5
Gaussian blur and Sobel edges across and along) with 'same' padding, and
each block of the result is written straight into an np.memmap on disk
through out=, while Dask's progress bar runs.  Then a window of the result is
checked against cyconv.conv2d on the same window in memory, and each
worker's peak memory is printed beside the size of the data.
"""
import argparse
import os
import resource
import tempfile
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, progress, wait

import cyconv
import cyconv.dask


def filter_bank():
    """(3, 1, 5, 5): a Gaussian blur, and Sobel edges across and along."""
    g = np.exp(-0.5 * (np.arange(-2, 3) / 1.0) ** 2)
    blur = np.outer(g, g) / np.outer(g, g).sum()
    sobel = np.zeros((5, 5))
    sobel[1:4, 1:4] = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    return np.stack([blur, sobel, sobel.T])[:, None].astype(np.float32)


def image(size, chunks, seed=0):
    """A lazy (1, size, size) float32 image: each chunk made where it is needed."""
    return da.random.default_rng(seed).random((1, size, size), dtype=np.float32,
                                              chunks=(1,) + chunks)


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=23170, help="image height and width")
    ap.add_argument("--rows", type=int, default=1024, help="rows per chunk (whole rows)")
    ap.add_argument("--tile", type=int, default=0, help="square tiles of this side instead")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="", help="the result's file (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the result's file")
    args = ap.parse_args(argv)

    bank = filter_bank()
    chunks = (args.tile, args.tile) if args.tile else (args.rows, args.size)
    x = image(args.size, chunks)
    out_path = args.out or os.path.join(tempfile.mkdtemp(), "filtered.f32")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("cyconv.dask"))  # the libraries, before the baseline
        baseline = client.run(peak_rss_bytes)
        target = np.memmap(out_path, np.float32, "w+", shape=(len(bank), args.size, args.size))
        job = cyconv.dask.conv2d(x, bank, padding="same", out=target, compute=False)
        start = time.perf_counter()
        future = client.compute(job)
        progress(future)
        wait(future)
        future.result()
        seconds = time.perf_counter() - start
        peaks = client.run(peak_rss_bytes)

        # a window, recomputed in memory from the same lazy image
        r0, c0, n = args.size // 3, args.size // 2, min(300, args.size // 4)
        window = x[:, max(0, r0 - 2):r0 + n + 2, max(0, c0 - 2):c0 + n + 2].compute()
        expected = cyconv.conv2d(window, bank)
        got = np.asarray(target[:, r0:r0 + n, c0:c0 + n])
        error = float(np.abs(got - expected[:, :got.shape[1], :got.shape[2]]).max())

    gib = 2**30
    data, result = x.nbytes, target.nbytes
    flops = 2 * bank[0].size * len(bank) * args.size ** 2
    print(f"\ncyconv {cyconv.__version__} ({cyconv.config()['kernel']}), "
          f"{args.workers} workers x 1 thread")
    chunk = chunks[0] * chunks[1] * 4
    print(f"image {args.size} x {args.size} float32: {data / gib:.2f} GiB, in chunks of "
          f"{chunks[0]} x {chunks[1]} ({chunk / 2**20:.0f} MiB); result "
          f"{len(bank)} x {args.size} x {args.size}: {result / gib:.2f} GiB -> {out_path}")
    print(f"{seconds:.1f} s: {args.size ** 2 / seconds / 1e6:.0f} Mpixel/s, "
          f"{flops / seconds / 1e9:.1f} GFLOP/s, {(data + result) / seconds / gib:.2f} GiB/s "
          f"in and out")
    for address, peak in peaks.items():
        print(f"worker {address}: peak memory {peak / 2**20:.0f} MiB, "
              f"{(peak - baseline[address]) / 2**20:.0f} MiB above its start: "
              f"{(peak - baseline[address]) / chunk:.1f} chunks, {peak / data:.3f} of the image")
    print(f"a {n} x {n} window against cyconv.conv2d in memory: max difference {error:.2e}")
    del target
    if not (args.keep or args.out):
        os.remove(out_path)
    return error


if __name__ == "__main__":
    main()
