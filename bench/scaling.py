"""OpenMP scaling of cyconv beside torch's, to more threads than the project's
2-core machine has: the forward pass of the benchmark's larger layers (over
0.1 GFLOP) on 1, 2, 4, ... threads, every thread count of both libraries timed
in the same interleaved rounds (medians; see bench.time_interleaved).

    python bench/scaling.py [--threads 1,2,4,8,16] [--dtypes float32] [--out DIR]

Prints a markdown table (and writes DIR/scaling.md and DIR/scaling.json): per
layer and thread count, cyconv's time, its speed-up over its own 1-thread
time in the same rounds, the same for torch, and cyconv against torch.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (SUITE, agree, layer_operands, machine_info, round_ratio,  # noqa: E402
                   time_interleaved)
from peers import make_cyconv, make_torch  # noqa: E402


def scaling_rows(layer, dtype, threads, rounds, budget, pause):
    x, w, b = layer_operands(layer, dtype, np.random.default_rng(0))
    fns = {}
    for t in threads:
        fns[f"cyconv {t}"] = make_cyconv(x, w, b, layer, t)
        fns[f"torch {t}"] = make_torch(x, w, b, layer, t)
    bad = agree({name: fn() for name, fn in fns.items()}, dtype, reference=f"torch {threads[0]}")
    if bad:
        raise SystemExit(f"{layer.name} {dtype.__name__}: results differ from torch: {bad}")
    return rows_from_times(layer, dtype, threads,
                           time_interleaved(fns, rounds, budget, pause))


def rows_from_times(layer, dtype, threads, times):
    """A row per thread count from the rounds' times ({'cyconv 2': [s, ...], ...})."""
    one = threads[0]
    return [dict(layer=layer.name, dtype=dtype.__name__, threads=t, gflop=layer.flops / 1e9,
                 cyconv_ms=statistics.median(times[f"cyconv {t}"]) * 1e3,
                 cyconv_scaling=round_ratio(times, f"cyconv {one}", f"cyconv {t}"),
                 torch_ms=statistics.median(times[f"torch {t}"]) * 1e3,
                 torch_scaling=round_ratio(times, f"torch {one}", f"torch {t}"),
                 vs_torch=round_ratio(times, f"torch {t}", f"cyconv {t}"))
            for t in threads]


def markdown(rows, meta):
    lines = [f"cyconv {meta['cyconv']} (kernel `{meta['kernel']}`), torch {meta['torch']}, "
             f"numpy {meta['numpy']}; {meta['machine']}.", "",
             "Scaling = the 1-thread time / the time on this many threads, both timed in the "
             "same rounds; vs torch = torch's time / cyconv's on the same threads.", "",
             "| layer | dtype | thr | GFLOP | cyconv ms | cyconv GFLOP/s | cyconv scaling "
             "| torch ms | torch scaling | vs torch |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['dtype']} | {r['threads']} | {r['gflop']:.3f} "
                     f"| {r['cyconv_ms']:.2f} | {r['gflop'] / r['cyconv_ms'] * 1e3:.1f} "
                     f"| {r['cyconv_scaling']:.2f}x | {r['torch_ms']:.2f} "
                     f"| {r['torch_scaling']:.2f}x | **{r['vs_torch']:.2f}x** |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--dtypes", default="float32")
    ap.add_argument("--layers", default="", help="comma-separated substrings of layer names")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=10.0, help="seconds per layer, soft")
    ap.add_argument("--pause", type=float, default=0.05)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch

    import cyconv
    threads = [int(t) for t in args.threads.split(",")]
    wanted = [s for s in args.layers.split(",") if s]
    layers = [l for l in SUITE if l.flops > 1e8
              and (not wanted or any(s in l.name for s in wanted))]
    rows = []
    for dtype in (np.dtype(d).type for d in args.dtypes.split(",")):
        for layer in layers:
            rows += scaling_rows(layer, dtype, threads, args.rounds, args.budget, args.pause)
            last = rows[-1]
            print(f"{layer.name:28s} {dtype.__name__} {last['threads']}t: scaling cyconv "
                  f"{last['cyconv_scaling']:.2f}x torch {last['torch_scaling']:.2f}x, "
                  f"vs torch {last['vs_torch']:.2f}x", flush=True)
    meta = dict(cyconv=cyconv.__version__, kernel=cyconv.config()["kernel"],
                torch=torch.__version__, numpy=np.__version__, machine=machine_info())
    text = markdown(rows, meta)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "scaling.md").write_text(text)
        (out / "scaling.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))


if __name__ == "__main__":
    main()
