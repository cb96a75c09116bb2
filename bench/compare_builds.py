"""Two builds of cyconv side by side: identical bytes, and speed.

    pip install --no-deps --target /tmp/old-build <checkout of the old commit>
    python bench/compare_builds.py --old /tmp/old-build [--check-only] [--time-only]
                                   [--rounds 7] [--dtypes float32,float64] [--quick]

The old build's package is copied beside this process as ``cyconv_old`` and
imported next to the installed ``cyconv``, so both run in one process on the
same operands.  The check compares the bytes of every result (forward,
conv_transpose2d, the three gradients, a frozen layer) on the test grid and
the benchmark's layers, for every kernel variant both builds run and on 1 and
2 threads.  The timing interleaves the two builds' calls on the benchmark's
layers (forward and backward, every variant, 1 thread; --layers picks
others, the inference suite's too), median of each round's ratio, and
prints the geomean per dtype: new speed / old speed.
"""
import argparse
import importlib
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

import cyconv

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from bench import INFERENCE_SUITE, QUICK, SUITE, layer_operands, time_interleaved  # noqa: E402


def import_old(site_dir):
    """The package at site_dir/cyconv, imported as cyconv_old (its absolute
    references to its own modules renamed)."""
    tmp = Path(tempfile.mkdtemp(prefix="cyconv-old-"))
    shutil.copytree(Path(site_dir) / "cyconv", tmp / "cyconv_old",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for py in (tmp / "cyconv_old").glob("*.py"):
        text = py.read_text()
        py.write_text(text.replace('"cyconv._kernel_', '"cyconv_old._kernel_'))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("cyconv_old")


def kernel_module(pkg, variant):
    name = variant.replace("-", "_")
    return importlib.import_module(f"{pkg.__name__}._kernel_{name}")


def use_variant(pkg, variant):
    """Make every module of pkg that holds the kernel module hold variant's."""
    module = kernel_module(pkg, variant)
    for sub in list(sys.modules.values()):
        if sub is not None and getattr(sub, "__name__", "").startswith(pkg.__name__ + "."):
            if hasattr(sub, "kernel") and type(getattr(sub, "kernel")) is type(module):
                sub.kernel = module


def grid_cases():
    from test_conv2d import GRID
    for case in GRID:
        n, c_in, h, w, c_out, k, stride, padding, dilation, groups = case
        kh, kw = (k, k) if isinstance(k, int) else k
        yield f"grid {case}", (n, c_in, h, w), (c_out, c_in // groups, kh, kw), dict(
            stride=stride, padding=padding, dilation=dilation, groups=groups)


def layer_cases(layers):
    for layer in layers:
        yield layer.name, (layer.batch, layer.in_channels) + layer.size, (
            layer.out_channels, layer.in_channels // layer.groups, layer.kernel,
            layer.kernel), dict(stride=layer.stride, padding=layer.padding,
                                dilation=layer.dilation, groups=layer.groups)


def results(pkg, x, w, b, go, conv, threads):
    """Every result of pkg for one layer, by name."""
    kw = dict(conv, num_threads=threads)
    out = {"forward": pkg.conv2d(x, w, b, **kw),
           "input_grad": pkg.grad.conv2d_input(x.shape, w, go, **kw),
           "weight_grad": pkg.grad.conv2d_weight(x, w.shape, go, **kw),
           "bias_grad": pkg.grad.conv2d_bias(go, num_threads=threads)}
    if not isinstance(conv["padding"], str) and np.ndim(conv["padding"]) <= 1:
        out["transpose"] = pkg.conv_transpose2d(go, w, None, conv["stride"], conv["padding"],
                                                0, conv["groups"], conv["dilation"],
                                                num_threads=threads)
    layer = pkg.Conv2d(x.shape[1], w.shape[0], w.shape[2:], conv["stride"], conv["padding"],
                       conv["dilation"], conv["groups"], dtype=x.dtype, num_threads=threads)
    frozen = layer.load_state_dict({"weight": w, "bias": b}).freeze()
    out["frozen"] = frozen(x)
    out["frozen again"] = frozen(x)
    return out


def check(old, variants, dtypes, quick):
    cases = list(grid_cases()) + list(layer_cases(
        [l for l in SUITE + INFERENCE_SUITE if not quick or l.name in QUICK]))
    compared = differ = 0
    for variant in variants:
        use_variant(cyconv, variant)
        use_variant(old, variant)
        for name, x_shape, w_shape, conv in cases:
            for dtype in dtypes:
                rng = np.random.default_rng(0)
                x = rng.uniform(-1, 1, x_shape).astype(dtype)
                w = rng.uniform(-1, 1, w_shape).astype(dtype)
                b = rng.uniform(-1, 1, w_shape[0]).astype(dtype)
                out_shape = cyconv.conv2d(x, w, b, **conv).shape
                go = rng.uniform(-1, 1, out_shape).astype(dtype)
                for threads in (1, 2):
                    new_r = results(cyconv, x, w, b, go, conv, threads)
                    old_r = results(old, x, w, b, go, conv, threads)
                    for key in new_r:
                        compared += 1
                        a, e = new_r[key], old_r[key]
                        if a.dtype != e.dtype or a.shape != e.shape or a.tobytes() != e.tobytes():
                            differ += 1
                            print(f"DIFFERENT: {variant} {name} {np.dtype(dtype).name} "
                                  f"{threads}t {key}", flush=True)
        print(f"checked {variant}: {len(cases)} layers", flush=True)
    print(f"bit-identity: {compared - differ} of {compared} results identical", flush=True)
    return differ == 0


def geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def time_builds(old, variants, dtypes, quick, rounds, names=""):
    layers = [l for l in SUITE + INFERENCE_SUITE if (not quick or l.name in QUICK)
              and (not names or any(n in l.name for n in names.split(",")))]
    ratios = {}
    for variant in variants:
        use_variant(cyconv, variant)
        use_variant(old, variant)
        for dtype in dtypes:
            for layer in layers:
                x, w, b = layer_operands(layer, dtype, np.random.default_rng(0))
                conv = dict(stride=layer.stride, padding=layer.padding,
                            dilation=layer.dilation, groups=layer.groups, num_threads=1)
                go = np.random.default_rng(1).uniform(
                    -1, 1, (layer.batch, layer.out_channels) + layer.out_size).astype(dtype)
                for direction in ("forward", "backward"):
                    def make(pkg):
                        if direction == "forward":
                            return lambda: pkg.conv2d(x, w, b, **conv)
                        return lambda: (pkg.grad.conv2d_input(x.shape, w, go, **conv),
                                        pkg.grad.conv2d_weight(x, w.shape, go, **conv))
                    t = time_interleaved({"new": make(cyconv), "old": make(old)}, rounds,
                                         budget_s=2.0, pause_s=0.02)
                    r = statistics.median(o / n for o, n in zip(t["old"], t["new"]))
                    ratios.setdefault((variant, np.dtype(dtype).name), []).append(r)
                    print(f"{variant} {np.dtype(dtype).name} {direction:8s} {layer.name:28s} "
                          f"new/old speed {r:.3f}", flush=True)
    for (variant, dtype), rs in ratios.items():
        print(f"A/B {variant} {dtype}: geomean new/old speed {geomean(rs):.3f} "
              f"(min {min(rs):.3f}, max {max(rs):.3f}, {len(rs)} cases)", flush=True)
    every = [r for rs in ratios.values() for r in rs]
    for dtype in sorted({d for _, d in ratios}):
        sel = [r for (v, d), rs in ratios.items() if d == dtype for r in rs]
        print(f"A/B {dtype}, all variants: geomean {geomean(sel):.3f}", flush=True)
    print(f"A/B all: geomean {geomean(every):.3f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="a directory holding the old build's cyconv/")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--time-only", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--variants", default="", help="comma-separated; default: all runnable")
    ap.add_argument("--layers", default="", help="time only layers whose names contain one of "
                    "these comma-separated substrings (default: the benchmark's forward suite)")
    args = ap.parse_args(argv)
    old = import_old(args.old)
    runnable = [v for v in cyconv.config()["kernels_runnable"]
                if v in old.config()["kernels_runnable"]]
    variants = args.variants.split(",") if args.variants else runnable
    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    print(f"new: {cyconv.__file__}\nold: {old.__file__}\nvariants: {variants}", flush=True)
    ok = True
    if not args.time_only:
        ok = check(old, variants, dtypes, args.quick)
    if not args.check_only:
        time_builds(old, variants, dtypes, args.quick, args.rounds,
                    args.layers or ",".join(l.name for l in SUITE))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
