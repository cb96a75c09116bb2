"""What Dask costs: cyconv.dask on a LocalCluster against cyconv.conv2d in memory.

    python bench/dask_bench.py [--rounds 7] [--example] [--out DIR]

Two workloads above 1 GFLOP: a batch in chunks of images, and one large
multi-channel image in spatial chunks.  Each is timed on a LocalCluster of 1
and of 2 single-thread worker processes (loopback) and in memory on as many
threads, in interleaved rounds (medians of each round's ratio, the way
bench.py times).  On the cluster the input is persisted across the workers
first and the result stays there ("persisted", what a pipeline larger than
memory does), or comes back to the caller ("gathered").  With --example it
also runs examples/dask_large_image.py on its 2 GiB image and records its
throughput and each worker's peak memory.  Writes DIR/dask.md and DIR/dask.json.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

import cyconv
import cyconv.dask

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import machine_info  # noqa: E402

WORKLOADS = {  # name: (input shape, chunks, weight shape, conv2d keywords)
    "batch 64x128x28x28 3x3, chunks of 8 images": (
        (64, 128, 28, 28), (8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
    "batch 256x128x28x28 3x3, chunks of 32 images": (
        (256, 128, 28, 28), (32, 128, 28, 28), (128, 128, 3, 3), dict(padding=1)),
    "image 16x1024x1024 3x3, chunks of 256x256": (
        (1, 16, 1024, 1024), (1, 16, 256, 256), (16, 16, 3, 3), dict(padding=1)),
}


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_cluster(workers, rounds):
    rows = []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("cyconv.dask"))
        for name, (shape, chunks, w_shape, conv) in WORKLOADS.items():
            rng = np.random.default_rng(0)
            x = rng.standard_normal(shape).astype(np.float32)
            w = rng.standard_normal(w_shape).astype(np.float32)
            xd = client.persist(da.from_array(x, chunks=chunks))
            wait(xd)
            expected = cyconv.conv2d(x, w, **conv, num_threads=workers)
            y = cyconv.dask.conv2d(xd, w, **conv)
            got = y.compute()
            error = float(np.abs(got - expected).max() / np.abs(expected).max())
            assert error < 1e-5, (name, error)

            def persisted():
                result = client.persist(cyconv.dask.conv2d(xd, w, **conv))
                wait(result)
                del result

            fns = {"in memory": lambda: cyconv.conv2d(x, w, **conv, num_threads=workers),
                   "dask persisted": persisted,
                   "dask gathered": lambda: cyconv.dask.conv2d(xd, w, **conv).compute()}
            for fn in fns.values():
                fn()
            times = {k: [] for k in fns}
            for _ in range(rounds):
                for k, fn in fns.items():
                    time.sleep(0.05)
                    times[k].append(timed(fn))
            flops = 2 * np.prod(expected.shape) * np.prod(w_shape[1:])
            row = {"workload": name, "workers": workers, "gflop": flops / 1e9,
                   "ms": {k: statistics.median(t) * 1e3 for k, t in times.items()},
                   "round_ms": {k: [v * 1e3 for v in t] for k, t in times.items()}}
            for k in ("dask persisted", "dask gathered"):
                row[f"{k} / in memory"] = statistics.median(
                    a / b for a, b in zip(times[k], times["in memory"]))
            rows.append(row)
            print(f"{workers} worker(s), {name}: in memory {row['ms']['in memory']:.1f} ms, "
                  f"persisted {row['dask persisted / in memory']:.2f}x, gathered "
                  f"{row['dask gathered / in memory']:.2f}x", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--example", action="store_true",
                    help="also run examples/dask_large_image.py on its 2 GiB image")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    rows = run_cluster(1, args.rounds) + run_cluster(2, args.rounds)
    lines = [f"cyconv.dask on a LocalCluster ({machine_info()}, cyconv {cyconv.__version__}, "
             f"kernel `{cyconv.config()['kernel']}`): time on the cluster / time of "
             f"cyconv.conv2d in memory on as many threads as workers (median of {args.rounds} "
             f"interleaved rounds' ratios).", "",
             "| workload | GFLOP | workers | in memory ms | persisted | gathered |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['gflop']:.1f} | {r['workers']} | "
                     f"{r['ms']['in memory']:.1f} | {r['dask persisted / in memory']:.2f}x | "
                     f"{r['dask gathered / in memory']:.2f}x |")
    example = None
    if args.example:
        import subprocess
        proc = subprocess.run([sys.executable, str(HERE.parent / "examples" /
                                                   "dask_large_image.py")],
                              capture_output=True, text=True, timeout=3600)
        example = [l for l in proc.stdout.splitlines() if l.strip() and "%" not in l]
        lines += ["", "examples/dask_large_image.py:", "", "```"] + example + ["```"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dask.md").write_text("\n".join(lines) + "\n")
    (out / "dask.json").write_text(json.dumps({"machine": machine_info(), "rows": rows,
                                               "example": example}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
