"""cyconv's compiled kernel variants side by side: what each instruction set buys.

    python bench/variants.py [--quick] [--dtypes float32] [--threads 1] [--passes 3]
                             [--layers NAMES] [--out DIR]

Every variant this CPU runs (cyconv.config()['kernels_runnable']) computes the
forward suite of bench.py on the same inputs, in interleaved rounds within one
process (the same timing as bench.py: a pause, untimed warm-up calls, medians),
after its result is checked against the default variant's.  Speed relative to
the best variant = the best variant's time / this variant's (1.0 for the best,
0.5 = half its speed).  Writes DIR/variants.md and DIR/variants.json.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

import cyconv
from cyconv import _dispatch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (QUICK, SUITE, add_case_arguments, agree, chosen_layers,  # noqa: E402
                   geomean, layer_operands, machine_info, time_interleaved)
from peers import make_cyconv  # noqa: E402


def with_variant(variant, fn):
    """fn, run with every cyconv module on another kernel variant."""
    def run():
        with _dispatch.use_variant(variant):
            return fn()
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_case_arguments(ap, "float32", "1", budget=3.0, pause=0.05)
    args = ap.parse_args(argv)

    variants = list(_dispatch.RUNNABLE)
    layers = chosen_layers(SUITE, QUICK, args)
    cases = [(l, np.dtype(d).type, int(t)) for d in args.dtypes.split(",")
             for l in layers for t in args.threads.split(",")]
    print(f"cyconv {cyconv.__version__}, default kernel {cyconv.config()['kernel']}, "
          f"variants {list(variants)}", flush=True)

    times = [{v: [] for v in variants} for _ in cases]
    for p in range(args.passes):
        for i, (layer, dtype, threads) in enumerate(cases):
            x, w, b = layer_operands(layer, dtype, np.random.default_rng(0))
            call = make_cyconv(x, w, b, layer, threads)
            fns = {v: with_variant(v, call) for v in variants}
            if p == 0:
                bad = agree(dict({v: fn() for v, fn in fns.items()}, default=call()), dtype,
                            reference="default")
                if bad:
                    raise AssertionError(f"{layer.name}: variants off the default one: {bad}")
            for v, t in time_interleaved(fns, args.rounds, args.budget, args.pause).items():
                times[i][v].extend(t)
            best = min(variants, key=lambda v: statistics.median(times[i][v]))
            print(f"[pass {p + 1}/{args.passes}, {i + 1}/{len(cases)}] {layer.name:28s} "
                  f"{np.dtype(dtype).name} {threads}t: " + "  ".join(
                      f"{v} {statistics.median(times[i][best]) / statistics.median(t):.2f}"
                      for v, t in times[i].items()), flush=True)

    rows = []
    for (layer, dtype, threads), t in zip(cases, times):
        ms = {v: statistics.median(tv) * 1e3 for v, tv in t.items()}
        best = min(ms.values())
        rows.append({"layer": layer.name, "dtype": np.dtype(dtype).name, "threads": threads,
                     "gflop": layer.flops / 1e9, "ms": ms,
                     "relative": {v: best / m for v, m in ms.items()},
                     "round_ms": {v: [x * 1e3 for x in tv] for v, tv in t.items()}})
    names = list(variants)
    lines = [f"Kernel variants on {machine_info()}, cyconv {cyconv.__version__}: speed relative "
             "to the best variant of each row (median ms in brackets).", "",
             "| layer | dtype | threads | " + " | ".join(names) + " |",
             "|---|---|---:|" + "---:|" * len(names)]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['dtype']} | {r['threads']} | " + " | ".join(
            f"{r['relative'][v]:.2f} ({r['ms'][v]:.3g})" for v in names) + " |")
    lines.append("| **geomean** | | | " + " | ".join(
        f"**{geomean([r['relative'][v] for r in rows]):.2f}**" for v in names) + " |")
    summary = "geomean speed relative to the best variant: " + ", ".join(
        f"{v} {geomean([r['relative'][v] for r in rows]):.2f}" for v in names)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "variants.md").write_text("\n".join(lines) + "\n")
    (out / "variants.json").write_text(json.dumps(
        {"machine": machine_info(), "cyconv": cyconv.config(), "rows": rows}, indent=1))
    print(summary)
    print(f"wrote {out / 'variants.md'} and {out / 'variants.json'}")


if __name__ == "__main__":
    main()
