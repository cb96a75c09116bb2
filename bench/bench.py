"""Side-by-side speed of cyconv, torch, plain NumPy and ONNX Runtime on real layer shapes.

    python bench/bench.py [--quick] [--dtypes float32,float64] [--threads 1,2]
                          [--sections forward,backward,inference] [--passes 3] [--out DIR]

Three sections: forward (conv2d); backward (the input, weight and bias
gradients together, against torch's autograd backward of the same conv); and
inference: the layers of a small CNN at batch 1 as frozen layers
(cyconv.FrozenConv2d, weights packed once, as ONNX Runtime's session packs
them), with cyconv.conv2d as a peer.
For each layer, dtype and thread count it checks that the implementations
agree, then times them in interleaved rounds (one call of each per round),
spread over several passes through the suite (a slow spell of the VM then
spoils a few rounds of a case, not all), and keeps medians: of the times, and
of each ratio taken within a round.  It prints progress, then writes DIR/results.md (table),
DIR/results.json (raw numbers, machine, versions, thread settings) and
DIR/speedup.png and DIR/speedup_backward.png (charts).  Speed-up = peer time / cyconv time: > 1 means
cyconv is faster.  "% peak" is cyconv's GFLOP/s over a single-thread NumPy
BLAS matrix product (times the thread count) timed in the same interleaved
rounds as the row: the VM's speed drifts during a run, so a ratio to a
reading taken minutes away would say more about the drift than the kernel.
For the same reason a row on several threads also times cyconv on one thread
in its rounds: "vs own 1 thr" is cyconv's scaling (the summary also reads it from
each side's fastest round; results.json keeps every round's times).
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

import cyconv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (BACKWARD_PEERS, BLAS_THREADS, INFERENCE_PEERS,  # noqa: E402
                   make_cyconv, make_cyconv_backward, make_cyconv_frozen,
                   onnxruntime_available)


@dataclass(frozen=True)
class Layer:
    name: str
    batch: int
    in_channels: int
    size: tuple  # (H, W)
    out_channels: int
    kernel: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1

    @property
    def out_size(self):
        return tuple((s + 2 * p - d * (self.kernel - 1) - 1) // st + 1
                     for s, p, d, st in zip(self.size, self.padding, self.dilation, self.stride))

    @property
    def flops(self):
        h, w = self.out_size
        return (2 * self.batch * self.out_channels * h * w
                * self.in_channels // self.groups * self.kernel ** 2)


def L(name, n, c, hw, o, k, s=1, p=0, d=1, g=1):
    pair = lambda v: (v, v)  # noqa: E731
    return Layer(name, n, c, pair(hw) if isinstance(hw, int) else hw, o, k, pair(s), pair(p),
                 pair(d), g)


SUITE = [
    L("mnist 1->8 3x3", 32, 1, 28, 8, 3, p=1),
    L("lenet c1 1->6 5x5", 32, 1, 32, 6, 5),
    L("lenet c2 6->16 5x5", 32, 6, 14, 16, 5),
    L("rgb stem 3->64 7x7 s2", 1, 3, 224, 64, 7, s=2, p=3),
    L("rgb 3->32 5x5 s2", 8, 3, 64, 32, 5, s=2, p=2),
    L("resnet 64 3x3 56 b8", 8, 64, 56, 64, 3, p=1),
    L("resnet 64 3x3 56 b1", 1, 64, 56, 64, 3, p=1),
    L("resnet 128 3x3 28 b8", 8, 128, 28, 128, 3, p=1),
    L("resnet 256 3x3 14 b8", 8, 256, 14, 256, 3, p=1),
    L("resnet 512 3x3 7 b8", 8, 512, 7, 512, 3, p=1),
    L("resnet 512 3x3 7 b1", 1, 512, 7, 512, 3, p=1),
    L("cifar 64 3x3 8 b1", 1, 64, 8, 64, 3, p=1),  # a small CNN's last stage, one image
    L("down 64->128 3x3 s2", 8, 64, 56, 128, 3, s=2, p=1),
    L("pointwise 256->64 1x1", 8, 256, 14, 64, 1),
    L("pointwise 64->256 1x1 b1", 1, 64, 56, 256, 1),
    L("dilated 64 3x3 d2", 8, 64, 28, 64, 3, p=2, d=2),
    L("grouped 128 3x3 g4", 8, 128, 28, 128, 3, p=1, g=4),
    L("depthwise 128 3x3", 8, 128, 28, 128, 3, p=1, g=128),
    L("odd 17->23 5x5 31x37", 4, 17, (31, 37), 23, 5, p=2),
]
QUICK = ["mnist 1->8 3x3", "rgb stem 3->64 7x7 s2", "resnet 64 3x3 56 b8",
         "resnet 512 3x3 7 b1", "pointwise 256->64 1x1", "depthwise 128 3x3"]
# a small CNN at batch 1 (CIFAR-sized ResNet stages, a shortcut, a depthwise layer)
INFERENCE_SUITE = [
    L("cifar stem 3->16 3x3 32", 1, 3, 32, 16, 3, p=1),
    L("cifar 16 3x3 32", 1, 16, 32, 16, 3, p=1),
    L("cifar 16->32 3x3 s2 32", 1, 16, 32, 32, 3, s=2, p=1),
    L("cifar 32 3x3 16", 1, 32, 16, 32, 3, p=1),
    L("cifar 32->64 1x1 s2 16", 1, 32, 16, 64, 1, s=2),
    L("cifar 64 3x3 8", 1, 64, 8, 64, 3, p=1),
    L("cifar 64 1x1 8", 1, 64, 8, 64, 1),
    L("cifar 128 3x3 4", 1, 128, 4, 128, 3, p=1),
    L("depthwise 64 3x3 16", 1, 64, 16, 64, 3, p=1, g=64),
]
QUICK_INFERENCE = ["cifar 16 3x3 32", "cifar 64 1x1 8", "cifar 128 3x3 4"]
MEMORY_LAYER = "resnet 64 3x3 56 b8"
EFFICIENCY_LAYER = "resnet 64 3x3 56 b8"  # the 3x3 layer "% peak" is judged on
SCALING_MIN_GFLOP = 0.1  # shapes too small to split are left out of the worst scaling


BLAS_N = 1024  # the smallest square product at the BLAS peak here
BLAS_FLOPS = 2 * BLAS_N ** 3


def blas_peak(dtype, rounds=5, n=1536):
    """GFLOP/s of a large single-thread matrix product through NumPy's BLAS, hot."""
    run = make_blas_product(dtype, n)
    run()
    return 2 * n ** 3 / min(_timed(run) for _ in range(rounds)) / 1e9


def make_blas_product(dtype, n=BLAS_N):
    """A single-thread NumPy BLAS product of two n x n matrices (BLAS_FLOPS by
    default), timed in every case's interleaved rounds beside the convolutions."""
    a = np.random.default_rng(0).random((n, n)).astype(dtype)

    def run():
        with BLAS_THREADS.limit(limits=1, user_api="blas"):
            return a @ a
    return run


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def warm(fn, seconds=0.005):
    """Untimed calls for at least `seconds` (at least one)."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def _repeat(fn, n):
    """n calls of fn, each result dropped before the next call (as in a network,
    where a layer's output is freed after the next layer): keeping them all would
    time the page faults of fresh memory for every output, not the convolution."""
    for _ in range(n):
        fn()


def time_interleaved(fns, rounds, budget_s, pause_s):
    """Seconds per call of each function, a list with one time per round: calls
    interleaved round by round.

    Idle thread pools spin after a call (OpenBLAS for ~2**28 cycles, libgomp,
    ONNX Runtime) and would steal the cores from the next peer's call: each
    timed call starts after a pause, on a quiet machine.  Untimed calls for
    5 ms just before it wake the idle cores and the peer's own threads, as
    back-to-back layers of a network would: on this VM the first calls after
    an idle spell are slow (waking an idle vCPU costs milliseconds, and
    libgomp's threads, unlike torch's, need two or three calls to stay awake).
    """
    times = {name: [] for name in fns}
    # sub-millisecond calls are timed in batches of at least ~20 ms (like timeit.autorange)
    batch = {}
    for name, fn in fns.items():
        warm(fn)
        batch[name] = max(1, min(200, int(0.02 / max(min(_timed(fn) for _ in range(3)), 1e-6))))
    deadline = time.perf_counter() + budget_s
    for r in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause_s)
            warm(fn)
            times[name].append(_timed(lambda: _repeat(fn, batch[name])) / batch[name])
        if r >= 2 and time.perf_counter() > deadline:
            break
    return times


def agree(outputs, dtype, reference="torch"):
    """{name: max relative error} of the results that differ from the
    reference's (a result is an array or a tuple of arrays)."""
    tol = 1e-4 if dtype == np.float32 else 1e-10
    parts = {name: out if isinstance(out, tuple) else (out,) for name, out in outputs.items()}
    bad = {}
    for name, arrays in parts.items():
        if name == reference:
            continue
        for got, ref in zip(arrays, parts[reference]):
            got, ref = np.asarray(got), np.asarray(ref)
            error = float(np.abs(got - ref).max() / max(1.0, float(np.abs(ref).max())))
            if error > tol:
                bad[name] = max(bad.get(name, 0.0), error)
    return bad


def layer_operands(layer, dtype, rng):
    """Random input, weight and bias of a layer, uniform in [-1, 1)."""
    x = rng.uniform(-1, 1, (layer.batch, layer.in_channels) + layer.size).astype(dtype)
    w = rng.uniform(-1, 1, (layer.out_channels, layer.in_channels // layer.groups,
                            layer.kernel, layer.kernel)).astype(dtype)
    b = rng.uniform(-1, 1, layer.out_channels).astype(dtype)
    return x, w, b


def make_case(layer, dtype, threads, peers, section, check):
    """The functions a case times, and the flops of one cyconv call.  With check,
    their results are first compared with torch's."""
    rng = np.random.default_rng(0)
    x, w, b = layer_operands(layer, dtype, rng)
    flops = layer.flops
    if section in ("forward", "inference"):
        make_own = make_cyconv if section == "forward" else make_cyconv_frozen
        makers = {name: INFERENCE_PEERS[name] for name in section_peers(section, peers)}
        operands = (x, w, b, layer, threads)
    else:
        grad_out = rng.uniform(-1, 1, (layer.batch, layer.out_channels) + layer.out_size)
        grad_out = grad_out.astype(dtype)
        make_own = make_cyconv_backward
        makers = {name: BACKWARD_PEERS[name] for name in peers if name in BACKWARD_PEERS}
        operands = (x, w, b, grad_out, layer, threads)
        flops = 2 * layer.flops  # the input and the weight gradient: a convolution each
    fns = {"cyconv": make_own(*operands)}
    for name, make in makers.items():
        fn = make(*operands)
        if fn is not None:
            fns[name] = fn
    if check:
        bad = agree({name: fn() for name, fn in fns.items()}, dtype)
        if bad:
            raise AssertionError(f"{layer.name} {np.dtype(dtype).name} {section}: results "
                                 f"disagree with torch (max relative error {bad})")
    # the VM's speed drifts (by 20% and more within a run): "% peak" divides by
    # a BLAS product timed in the same rounds, not by a reading minutes away
    fns["blas"] = make_blas_product(dtype)
    if threads > 1:  # the scaling, from cyconv on one thread timed in the same rounds
        fns["cyconv 1 thread"] = make_own(*operands[:-1], 1)
    return fns, flops


def round_ratio(times, a, b):
    """The median over rounds of times[a] / times[b], each taken within its
    round (a round's calls run within a second or so, so its ratios are not
    moved by the VM's drift)."""
    return statistics.median(ta / tb for ta, tb in zip(times[a], times[b]))


def make_row(section, layer, dtype, threads, flops, times):
    """A table row from the per-round times of a case: medians of the times,
    and medians of the per-round ratios (round_ratio)."""
    def ratio(a, b):
        return round_ratio(times, a, b)
    row = {"section": section, "layer": layer.name, "dtype": np.dtype(dtype).name,
           "threads": threads, "gflop": flops / 1e9, "rounds": len(times["cyconv"])}
    for name, t in times.items():
        seconds = statistics.median(t)
        if name == "blas":
            row["blas_gflops"] = BLAS_FLOPS / seconds / 1e9
            # cyconv's GFLOP/s over the BLAS product's, per thread
            row["peak_fraction"] = flops / BLAS_FLOPS * ratio("blas", "cyconv") / threads
        elif name == "cyconv 1 thread":
            row["scaling"] = ratio(name, "cyconv")
            # the VM's interference only slows calls down: each side's
            # fastest round is the reading it moves least
            row["scaling_fastest"] = min(t) / min(times["cyconv"])
        else:
            row[f"{name}_ms"] = seconds * 1e3
            row[f"{name}_gflops"] = flops / seconds / 1e9
            if name != "cyconv":
                row[f"speedup_vs_{name}"] = ratio(name, "cyconv")
    row["round_ms"] = {name: [t_r * 1e3 for t_r in t] for name, t in times.items()}
    return row


MEMORY_PROBE = r"""
import json, sys, numpy as np
which, n, c, h, o, k, p = sys.argv[1], *map(int, sys.argv[2:])
x = np.random.default_rng(0).random((n, c, h, h), dtype=np.float32)
w = np.random.default_rng(1).random((o, c, k, k), dtype=np.float32)
if which == "torch":
    import torch, torch.nn.functional as F
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    run = lambda: F.conv2d(tx, tw, None, 1, p).numpy()
else:
    import cyconv
    run = lambda: cyconv.conv2d(x, w, None, 1, p)
def status(key):  # kB fields of /proc/self/status
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
before = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
out = run()
peak = status("VmHWM:")
print(json.dumps({"extra_bytes": max(peak, before) - before - out.nbytes,
                  "output_bytes": out.nbytes, "input_bytes": x.nbytes}))
"""


def peak_extra_memory(layer):
    """Peak RSS growth of one float32 call beyond its output, in a fresh process."""
    result = {}
    for which in ("cyconv", "torch"):
        args = [str(v) for v in (layer.batch, layer.in_channels, layer.size[0],
                                 layer.out_channels, layer.kernel, layer.padding[0])]
        # outside the checkout, whose source folder would shadow the installed cyconv
        proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, which, *args],
                              capture_output=True, text=True, timeout=300,
                              cwd=tempfile.gettempdir())
        if proc.returncode != 0:
            raise RuntimeError(f"the {which} memory probe failed:\n{proc.stderr}")
        result[which] = json.loads(proc.stdout)
    return result


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def summarise(rows, peers, peak, prefix=""):
    lines = []
    for dtype in sorted({r["dtype"] for r in rows}):
        for threads in sorted({r["threads"] for r in rows}):
            sel = [r for r in rows if r["dtype"] == dtype and r["threads"] == threads]
            parts = []
            for peer in peers:
                vals = [r.get(f"speedup_vs_{peer}") for r in sel if f"speedup_vs_{peer}" in r]
                if vals:
                    worst = min(sel, key=lambda r: r.get(f"speedup_vs_{peer}", float("inf")))
                    parts.append(f"vs {peer}: geomean {geomean(vals):.2f}x, worst "
                                 f"{worst[f'speedup_vs_{peer}']:.2f}x ({worst['layer']})")
            if parts:
                lines.append(f"{prefix}{dtype}, {threads} thread{'s' if threads > 1 else ''}: "
                             + "; ".join(parts))
    for r in rows:
        if r["layer"] == EFFICIENCY_LAYER and r["dtype"] == "float32":
            lines.append(f"{prefix}{EFFICIENCY_LAYER}, float32, {r['threads']} thread"
                         f"{'s' if r['threads'] > 1 else ''}: {r['cyconv_gflops']:.1f} GFLOP/s, "
                         f"{100 * r['peak_fraction']:.0f}% of the BLAS product timed beside "
                         f"it ({100 * r['cyconv_gflops'] / (peak['float32'] * r['threads']):.0f}% "
                         f"of the run's best BLAS reading, {peak['float32']:.0f} GFLOP/s)")
    scaling = [r for r in rows if "scaling" in r]
    for threads in sorted({r["threads"] for r in scaling}):
        sel = [r for r in scaling if r["threads"] == threads]
        for key, how in (("scaling", "both timed in the same rounds"),
                         ("scaling_fastest", "from each side's fastest round")):
            lines.append(f"{prefix}scaling 1 -> {threads} threads (cyconv, {how}): "
                         + scaling_summary(sel, key, threads))
    return lines


def scaling_summary(rows, key, threads):
    """The geomean of rows[i][key], and its worst and count at 0.9 x threads
    or more among the rows large enough to split."""
    text = f"geomean {geomean([r[key] for r in rows]):.2f}x"
    big = [r for r in rows if r["gflop"] > SCALING_MIN_GFLOP]
    if big:
        worst = min(big, key=lambda r: r[key])
        text += (f"; above {SCALING_MIN_GFLOP} GFLOP: worst {worst[key]:.2f}x "
                 f"({worst['layer']}, {worst['dtype']}), "
                 f"{sum(r[key] >= 0.9 * threads for r in big)} of {len(big)} "
                 f"at {0.9 * threads:.1f}x or more")
    return text


def peak_ranges(rows):
    """{dtype: (lowest, highest)} BLAS reading of the rows."""
    return {d: (min(r["blas_gflops"] for r in rows if r["dtype"] == d),
                max(r["blas_gflops"] for r in rows if r["dtype"] == d))
            for d in sorted({r["dtype"] for r in rows})}


def markdown(rows, peers, peak, meta, memory, summary):
    out = [f"cyconv {meta['cyconv']['version']} (kernel `{meta['cyconv']['kernel']}`), "
           f"torch {meta['versions'].get('torch')}, numpy {meta['versions']['numpy']}, "
           f"onnxruntime {meta['versions'].get('onnxruntime')}; {meta['machine']}.",
           f"Speed-up = peer time / cyconv time (> 1: cyconv is faster): the median over "
           f"{rows[0]['rounds']} interleaved rounds, spread over passes through the suite, of "
           f"the ratio within each round (times in ms: medians). % peak = cyconv GFLOP/s / "
           f"(threads x a single-thread NumPy BLAS product timed in the same rounds); those "
           f"BLAS readings ranged "
           + ", ".join(f"{lo:.0f}-{hi:.0f} GFLOP/s {d}" for d, (lo, hi) in peak_ranges(rows).items())
           + f" (the better of two hot-loop readings, at the start and at the end of the "
           f"run: {peak['float32']:.0f} float32, {peak['float64']:.0f} float64).", "",
           "**Summary**", ""] + [f"- {line}" for line in summary] + [""]
    if memory:
        parts = [f"{k} {v['extra_bytes'] / 2**20:.1f} MiB" for k, v in memory.items()]
        out += [f"Peak extra memory of one float32 call on `{MEMORY_LAYER}` beyond input and "
                f"output (fresh process, RSS): " + ", ".join(parts) + ".", ""]
    for section in SECTION_TITLES:
        sel = [r for r in rows if r["section"] == section]
        if sel:
            out += [SECTION_TITLES[section], "", table(sel, section_peers(section, peers)), ""]
    return "\n".join(out)


SECTION_TITLES = {
    "forward": "**Forward** (conv2d)",
    "backward": "**Backward** (input + weight + bias gradients; torch: autograd backward of "
                "the same conv; GFLOP counts both gradient convolutions)",
    "inference": "**Inference** (a small CNN's layers at batch 1, cyconv as frozen layers: "
                 "`Conv2d.freeze()`, weights packed once; vs conv2d: over `cyconv.conv2d`)",
}
SECTION_SUMMARY_PREFIX = {"forward": "", "backward": "backward, ",
                          "inference": "inference (frozen layers, batch 1), "}
CHART_FILES = {"forward": "speedup.png", "backward": "speedup_backward.png",
               "inference": "speedup_inference.png"}


def section_peers(section, peers):
    return peers + ["conv2d"] if section == "inference" else peers


def table(rows, peers):
    peers = [p for p in peers if any(f"{p}_ms" in r for r in rows)]
    head = ["layer", "dtype", "thr", "GFLOP", "cyconv ms", "cyconv GFLOP/s", "% peak",
            "vs own 1 thr"]
    for p in peers:
        head += [f"{p} ms", f"vs {p}"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["layer"], r["dtype"], str(r["threads"]), f"{r['gflop']:.3f}",
                 f"{r['cyconv_ms']:.2f}", f"{r['cyconv_gflops']:.1f}",
                 f"{100 * r['peak_fraction']:.0f}%",
                 f"{r['scaling']:.2f}x" if "scaling" in r else "-"]
        for p in peers:
            if f"{p}_ms" in r:
                cells += [f"{r[f'{p}_ms']:.2f}", f"**{r[f'speedup_vs_{p}']:.2f}x**"]
            else:
                cells += ["-", "-"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def chart(rows, peers, path, title):
    if not rows:
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    peers = [p for p in peers if any(f"speedup_vs_{p}" in r for r in rows)]
    combos = sorted({(r["dtype"], r["threads"]) for r in rows})
    fig, axes = plt.subplots(1, len(combos), figsize=(6 * len(combos), 7), sharey=True,
                             squeeze=False)
    for ax, (dtype, threads) in zip(axes[0], combos):
        sel = [r for r in rows if r["dtype"] == dtype and r["threads"] == threads]
        y = np.arange(len(sel))
        height = 0.8 / len(peers)
        for i, peer in enumerate(peers):
            vals = [r.get(f"speedup_vs_{peer}", np.nan) for r in sel]
            ax.barh(y + i * height, vals, height, label=f"vs {peer}")
        ax.axvline(1.0, color="black", lw=1)
        ax.set_xscale("log")
        ax.set_yticks(y + 0.4 - height / 2, [r["layer"] for r in sel], fontsize=8)
        ax.set_title(f"{dtype}, {threads} thread{'s' if threads > 1 else ''}")
        ax.set_xlabel("speed-up of cyconv (peer time / cyconv time, log)")
    axes[0][0].invert_yaxis()  # once: the axes share y, and each inversion would toggle all
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=len(peers))
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def machine_info():
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def add_case_arguments(ap, dtypes, threads, budget, pause):
    """The options bench.py and variants.py share: which cases, how they are timed, where
    the results go."""
    ap.add_argument("--dtypes", default=dtypes)
    ap.add_argument("--threads", default=threads)
    ap.add_argument("--quick", action="store_true", help="a representative subset")
    ap.add_argument("--layers", default="", help="comma-separated substrings of layer names")
    ap.add_argument("--rounds", type=int, default=2,
                    help="interleaved rounds per case and pass")
    ap.add_argument("--passes", type=int, default=3, help="passes through the suite")
    ap.add_argument("--budget", type=float, default=budget, help="seconds per case, soft")
    ap.add_argument("--pause", type=float, default=pause,
                    help="seconds of quiet before each timed call (spinning thread pools)")
    ap.add_argument("--out", default="bench/results")


def chosen_layers(suite, quick, args):
    """The layers of suite that --quick and --layers select."""
    return [l for l in suite if (not args.quick or l.name in quick)
            and (not args.layers or any(s in l.name for s in args.layers.split(",")))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_case_arguments(ap, "float32,float64", "1,2", budget=4.0, pause=0.1)
    ap.add_argument("--peers", default="torch,numpy,onnxruntime")
    ap.add_argument("--sections", default="forward,backward,inference",
                    help="forward (conv2d), backward (gradients), inference (frozen layers)")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args(argv)

    dtypes = [np.dtype(d).type for d in args.dtypes.split(",")]
    threads_list = [int(t) for t in args.threads.split(",")]
    peers = [p for p in args.peers.split(",") if p != "onnxruntime" or onnxruntime_available()]

    layers = chosen_layers(SUITE, QUICK, args)
    inference_layers = chosen_layers(INFERENCE_SUITE, QUICK_INFERENCE, args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    print(f"cyconv {cyconv.__version__}: {cyconv.config()}", flush=True)
    print("BLAS libraries:", [(i["internal_api"], i.get("architecture"))
                              for i in threadpool_info()], flush=True)
    peak = {np.dtype(d).name: blas_peak(d) for d in (np.float32, np.float64)}
    print(f"single-thread BLAS peak: {peak['float32']:.1f} GFLOP/s float32, "
          f"{peak['float64']:.1f} float64", flush=True)

    sections = args.sections.split(",")
    cases = [(s, l, d, t) for s in sections for d in dtypes
             for l in (inference_layers if s == "inference" else layers) for t in threads_list]
    # the rounds of a case are spread over passes through the whole suite, minutes
    # apart: a slow spell of the VM then spoils a few rounds of a case, not all
    times = [{} for _ in cases]
    flops = [0.0] * len(cases)
    for p in range(args.passes):
        for i, (section, layer, dtype, threads) in enumerate(cases):
            fns, flops[i] = make_case(layer, dtype, threads, peers, section, check=p == 0)
            for name, t in time_interleaved(fns, args.rounds, args.budget, args.pause).items():
                times[i].setdefault(name, []).extend(t)
            row = make_row(section, layer, dtype, threads, flops[i], times[i])
            speed = "  ".join(f"vs {p} {row[f'speedup_vs_{p}']:.2f}x"
                              for p in section_peers(section, peers) if f"speedup_vs_{p}" in row)
            print(f"[pass {p + 1}/{args.passes}, {i + 1}/{len(cases)}] {section[:3]} "
                  f"{layer.name:28s} {row['dtype']} {threads}t: cyconv "
                  f"{row['cyconv_gflops']:6.1f} GFLOP/s  {speed}", flush=True)
    rows = [make_row(*case, flops[i], times[i]) for i, case in enumerate(cases)]

    # the VM's speed drifts: a peak read once, in a slow spell, would flatter
    # every row, so it is read again at the end and the higher reading kept
    end_peak = {np.dtype(d).name: blas_peak(d) for d in (np.float32, np.float64)}
    print(f"single-thread BLAS peak at the end: {end_peak['float32']:.1f} GFLOP/s float32, "
          f"{end_peak['float64']:.1f} float64", flush=True)
    peak = {d: max(peak[d], end_peak[d]) for d in peak}

    memory = {}
    if not args.no_memory and os.path.exists("/proc/self/statm"):
        memory = peak_extra_memory(next(l for l in SUITE if l.name == MEMORY_LAYER))
        print("peak extra memory (MiB):",
              {k: round(v["extra_bytes"] / 2**20, 1) for k, v in memory.items()}, flush=True)

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "onnxruntime"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    meta = {"machine": machine_info(), "versions": versions, "cyconv": cyconv.config(),
            "blas": threadpool_info(), "blas_peak_gflops": peak,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE",
                                                    "OPENBLAS_L2_SIZE")},
            "threads": threads_list, "suite": [asdict(l) for l in layers],
            "inference_suite": [asdict(l) for l in inference_layers]}
    summary = sum((summarise([r for r in rows if r["section"] == section],
                             section_peers(section, peers), peak, prefix)
                   for section, prefix in SECTION_SUMMARY_PREFIX.items()), [])
    (out_dir / "results.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "memory": memory, "rows": rows}, indent=1,
        default=str))
    (out_dir / "results.md").write_text(markdown(rows, peers, peak, meta, memory, summary))
    charts = [out_dir / name for section, name in CHART_FILES.items()
              if chart([r for r in rows if r["section"] == section],
                       section_peers(section, peers), out_dir / name,
                       SECTION_TITLES[section].replace("**", "").replace("`", ""))]
    print("\n".join(["", "Summary:"] + summary))
    print(f"\nwrote " + ", ".join(str(p) for p in [out_dir / "results.md",
                                                    out_dir / "results.json"] + charts))


if __name__ == "__main__":
    main()
