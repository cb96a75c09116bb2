"""Winograd against the direct kernels and the peers, on the 3x3 layers it is for.

    python bench/winograd.py [--rounds 6] [--threads 1 2] [--out DIR]

The stride-1 3x3 layers of bench.py's suite with at least 32 input and output
channels (the dilated one excluded), float32 and float64, at 1 and 2 threads.
Each case times, in interleaved rounds (bench.py's time_interleaved):
cyconv.conv2d with algorithm "direct", "winograd" (weights transformed on
every call) and "auto", a FrozenConv2d with algorithm "winograd" (weights
transformed once), torch and ONNX Runtime (float32); and the input gradient
(cyconv.grad.conv2d_input, "winograd" and "direct", and torch.nn.grad's).  GFLOP/s count the
direct convolution's multiply-adds ("effective" for Winograd, which does
fewer).  Speed-ups are medians of per-round ratios.  Accuracy: max |result -
float64 direct sum| / max |sum| on standard-normal data, for Winograd, the
direct kernel and torch.  Writes DIR/winograd.md and DIR/winograd.json.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

import cyconv
import cyconv.grad

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import SUITE, geomean, machine_info, round_ratio, time_interleaved  # noqa: E402
from peers import make_onnxruntime, make_torch  # noqa: E402

LAYERS = [layer for layer in SUITE
          if layer.kernel == 3 and layer.stride == (1, 1) and layer.dilation == (1, 1)
          and layer.groups == 1 and min(layer.in_channels, layer.out_channels) >= 32]
RUNS = ["direct", "winograd", "frozen winograd", "auto", "torch", "onnxruntime"]


def make_runs(layer, x, w, b, threads):
    conv = dict(stride=layer.stride, padding=layer.padding, num_threads=threads)
    frozen = cyconv.Conv2d(layer.in_channels, layer.out_channels, 3, padding=layer.padding,
                           dtype=x.dtype, num_threads=threads, algorithm="winograd")
    frozen = frozen.load_state_dict({"weight": w, "bias": b}).freeze()
    fns = {name: (lambda a=algorithm: cyconv.conv2d(x, w, b, algorithm=a, **conv))
           for name, algorithm in (("direct", "direct"), ("winograd", "winograd"),
                                   ("auto", "auto"))}
    fns["frozen winograd"] = lambda: frozen(x)
    grad_out = np.ascontiguousarray(cyconv.conv2d(x, w, b, **conv)[:, :, ::-1])
    for name, algorithm in (("grad winograd", "winograd"), ("grad direct", "direct")):
        fns[name] = (lambda a=algorithm: cyconv.grad.conv2d_input(
            x.shape, w, grad_out, padding=layer.padding, num_threads=threads, algorithm=a))
    fns["grad torch"] = make_torch_input_grad(x, w, grad_out, layer, threads)
    fns["torch"] = make_torch(x, w, b, layer, threads)
    ort = make_onnxruntime(x, w, b, layer, threads)
    if ort is not None:
        fns["onnxruntime"] = ort
    return fns


def make_torch_input_grad(x, w, grad_out, layer, threads):
    import torch
    tw, tg = torch.from_numpy(w), torch.from_numpy(grad_out)

    def run():
        torch.set_num_threads(threads)
        return torch.nn.grad.conv2d_input(x.shape, tw, tg, padding=layer.padding).numpy()
    return run


def errors(layer, dtype):
    """max relative error of winograd, direct and torch on standard-normal data."""
    import torch
    rng = np.random.default_rng(1)
    x = rng.standard_normal((layer.batch, layer.in_channels) + layer.size)
    w = rng.standard_normal((layer.out_channels, layer.in_channels, 3, 3))
    exact = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                       padding=layer.padding).numpy()
    xd, wd = x.astype(dtype), w.astype(dtype)
    got = {"winograd": cyconv.conv2d(xd, wd, padding=layer.padding, algorithm="winograd"),
           "direct": cyconv.conv2d(xd, wd, padding=layer.padding),
           "torch": torch.nn.functional.conv2d(torch.from_numpy(xd), torch.from_numpy(wd),
                                               padding=layer.padding).numpy()}
    scale = np.abs(exact).max()
    return {k: float(np.abs(v - exact).max() / scale) for k, v in got.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per case, about")
    ap.add_argument("--layers", nargs="*", help="names of layers (default: all eligible)")
    ap.add_argument("--out", type=Path, default=HERE / "latest")
    args = ap.parse_args(argv)
    layers = [l for l in LAYERS if not args.layers or l.name in args.layers]
    rows = []
    for dtype in map(np.dtype, args.dtypes):
        for layer in layers:
            err = errors(layer, dtype)
            for threads in args.threads:
                rng = np.random.default_rng(0)
                x = rng.uniform(-1, 1, (layer.batch, layer.in_channels) + layer.size).astype(dtype)
                w = rng.uniform(-1, 1, (layer.out_channels, layer.in_channels, 3, 3)).astype(dtype)
                b = rng.uniform(-1, 1, layer.out_channels).astype(dtype)
                fns = make_runs(layer, x, w, b, threads)
                times = time_interleaved(fns, args.rounds, args.budget, 0.05)
                row = {"layer": layer.name, "dtype": dtype.name, "threads": threads,
                       "gflop": layer.flops / 1e9, "errors": err,
                       "path_auto": cyconv.plan(x.shape, w.shape, padding=layer.padding,
                                                dtype=dtype, num_threads=threads,
                                                algorithm="auto")["path"]}
                for name, t in times.items():
                    row[f"{name} ms"] = statistics.median(t) * 1e3
                for name in ("grad direct", "grad torch"):
                    row[f"grad winograd vs {name[5:]}"] = round_ratio(times, name, "grad winograd")
                for name in fns:
                    if name not in ("winograd", "frozen winograd") and not name.startswith("grad"):
                        row[f"winograd vs {name}"] = round_ratio(times, name, "winograd")
                        row[f"frozen vs {name}"] = round_ratio(times, name, "frozen winograd")
                rows.append(row)
                print(f"{layer.name} {dtype.name} {threads}t: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in row.items() if k.endswith("ms")
                    or " vs " in k), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "winograd.json").write_text(json.dumps(rows, indent=1))
    (args.out / "winograd.md").write_text(markdown(rows))
    print(markdown(rows))


def summary(rows):
    lines = []
    for dtype in sorted({r["dtype"] for r in rows}):
        for threads in sorted({r["threads"] for r in rows}):
            sel = [r for r in rows if r["dtype"] == dtype and r["threads"] == threads]
            parts = []
            for run, peer in (("winograd", "torch"), ("winograd", "onnxruntime"),
                              ("winograd", "direct"), ("frozen", "torch"), ("frozen", "direct"),
                              ("auto", "direct"), ("auto", "torch"), ("auto", "onnxruntime"),
                              ("grad winograd", "torch"), ("grad winograd", "direct")):
                key = f"{run} vs {peer}" if run != "auto" else None
                values = ([r[f"winograd vs {peer}"] / r["winograd vs auto"] for r in sel
                           if f"winograd vs {peer}" in r]
                          if run == "auto" else [r[key] for r in sel if key in r])
                if not values:
                    continue
                worst = min(range(len(values)), key=values.__getitem__)
                parts.append(f"{run} vs {peer}: geomean {geomean(values):.2f}x, worst "
                             f"{values[worst]:.2f}x ({sel[worst]['layer']})")
            lines.append(f"- {dtype}, {threads} thread{'s' if threads > 1 else ''}: "
                         + "; ".join(parts))
    return lines


def markdown(rows):
    out = [f"cyconv {cyconv.__version__} (kernel `{cyconv.config()['kernel']}`); "
           f"{machine_info()}.", "",
           "Winograd F(4x4, 3x3) (`algorithm=\"winograd\"`): `winograd` transforms the weights "
           "on every call (conv2d, Conv2d), `frozen` once (FrozenConv2d), except where "
           "the kernel transforms them piece by piece inside (calls whose tiles fit one "
           "block of 32 (16 in float64), more than 24 MiB transformed); `auto` is what "
           "`algorithm=\"auto\"` chose. Effective GFLOP/s count the direct convolution's "
           "multiply-adds. Speed-up = the other's time / Winograd's (median of per-round "
           "ratios). Error = max |result - float64 sum| / max |sum|, standard-normal data "
           "(torch's float64 result is that sum). `grad winograd`: the input gradient "
           "(cyconv.grad.conv2d_input) by Winograd against torch.nn.grad.conv2d_input and "
           "the direct kernels.",
           "", "**Summary**", ""] + summary(rows) + ["",
           "| layer | dtype | thr | winograd ms | eff. GFLOP/s | frozen ms | direct ms | "
           "torch ms | onnxruntime ms | winograd vs torch | frozen vs torch | "
           "winograd vs onnxruntime | winograd vs direct | auto takes | error winograd | "
           "error direct | error torch | input grad ms | vs torch | vs direct |",
           "|" + "---|" * 20]
    for r in rows:
        def ms(name):
            v = r.get(f"{name} ms")
            return "-" if v is None else f"{v:.2f}"

        def ratio(key):
            v = r.get(key)
            return "-" if v is None else f"**{v:.2f}x**"
        e = r["errors"]
        out.append(f"| {r['layer']} | {r['dtype']} | {r['threads']} | {ms('winograd')} | "
                   f"{r['gflop'] / r['winograd ms'] * 1e3:.0f} | {ms('frozen winograd')} | "
                   f"{ms('direct')} | {ms('torch')} | {ms('onnxruntime')} | "
                   f"{ratio('winograd vs torch')} | {ratio('frozen vs torch')} | "
                   f"{ratio('winograd vs onnxruntime')} | {ratio('winograd vs direct')} | "
                   f"{r['path_auto']} | {e['winograd']:.1e} | {e['direct']:.1e} | "
                   f"{e['torch']:.1e} | {ms('grad winograd')} | "
                   f"{ratio('grad winograd vs torch')} | {ratio('grad winograd vs direct')} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
