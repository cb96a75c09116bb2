"""The benchmark's arithmetic: the ratios its summary reports (bench/bench.py, bench/variants.py).
No timing is asserted here; the times are made up."""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import cyconv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench  # noqa: E402

LAYER = next(l for l in bench.SUITE if l.name == bench.EFFICIENCY_LAYER)


def test_ratios_are_medians_of_the_ratios_within_each_round():
    # per round, torch / cyconv = 3, 1, 4: median 3 (the ratio of the medians,
    # 3 / 2, would let a slow spell that hit one library in one round count)
    times = {"cyconv": [1.0, 3.0, 2.0], "torch": [3.0, 3.0, 8.0],
             "blas": [2.0, 3.0, 4.0], "cyconv 1 thread": [1.5, 6.0, 3.8]}
    row = bench.make_row("forward", LAYER, np.float32, 2, 4e9, times)
    assert row["speedup_vs_torch"] == 3.0
    assert row["cyconv_ms"] == 2000.0 and row["torch_ms"] == 3000.0
    assert row["scaling"] == pytest.approx(1.9)  # 1.5, 2, 1.9
    assert row["scaling_fastest"] == pytest.approx(1.5)  # 1.5 / 1
    assert row["round_ms"]["torch"] == [3000.0, 3000.0, 8000.0]
    # GFLOP/s of cyconv over the BLAS product's, per thread, round by round:
    # (4e9 / t_cyconv) / (BLAS_FLOPS / t_blas) / 2 with t_blas / t_cyconv = 2, 1, 2
    assert row["peak_fraction"] == pytest.approx(4e9 / bench.BLAS_FLOPS * 2 / 2)
    assert "blas_ms" not in row and "speedup_vs_blas" not in row


def test_summary_reports_the_worst_scaling_above_the_size_floor():
    def row(name, gflop, scaling, fastest):
        return {"section": "forward", "layer": name, "dtype": "float32", "threads": 2,
                "gflop": gflop, "scaling": scaling, "scaling_fastest": fastest,
                "cyconv_ms": 1.0, "speedup_vs_torch": 1.0}
    rows = [row("small", 0.01, 1.2, 1.3), row("a", 0.5, 1.85, 1.7), row("b", 0.3, 1.6, 1.9)]
    lines = bench.summarise(rows, ["torch"], {"float32": 80.0, "float64": 40.0})
    medians, fastest = [line for line in lines if line.startswith("scaling")]
    assert "same rounds" in medians and "fastest round" in fastest
    assert f"geomean {math.exp(np.mean(np.log([1.2, 1.85, 1.6]))):.2f}x" in medians
    assert "worst 1.60x (b, float32)" in medians and "1 of 2 at 1.8x" in medians
    assert "worst 1.70x (a, float32)" in fastest and "1 of 2 at 1.8x" in fastest


def test_interleaved_timing_returns_one_time_per_round():
    calls = []
    times = bench.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                   rounds=3, budget_s=10.0, pause_s=0.0)
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3}
    assert all(t > 0 for ts in times.values() for t in ts)


def test_inference_cases_agree_with_torch_with_conv2d_beside():
    # make_case checks every implementation against torch before timing
    layer = next(l for l in bench.INFERENCE_SUITE if l.name == "cifar 64 1x1 8")
    fns, flops = bench.make_case(layer, np.float32, 2, ["torch", "numpy"], "inference",
                                 check=True)
    assert set(fns) == {"cyconv", "torch", "numpy", "conv2d", "blas", "cyconv 1 thread"}
    assert flops == 2 * 64 * 64 * 8 * 8


def test_variant_runs_swap_the_kernel_module_and_restore_it():
    import cyconv
    import variants
    default = cyconv.config()["kernel"]
    for name in cyconv.config()["kernels_runnable"]:
        assert variants.with_variant(name, lambda: cyconv.config()["kernel"])() == name
        assert cyconv.config()["kernel"] == default


def test_variants_table_has_every_runnable_variant(tmp_path):
    import cyconv
    import variants
    variants.main(["--layers", "mnist", "--passes", "1", "--rounds", "1", "--budget", "0",
                   "--pause", "0", "--out", str(tmp_path)])
    table = (tmp_path / "variants.md").read_text()
    runnable = cyconv.config()["kernels_runnable"]
    header = next(line for line in table.splitlines() if line.startswith("| layer"))
    assert all(f" {name} |" in header for name in runnable)
    row = next(line for line in table.splitlines() if line.startswith("| mnist"))
    relative = [float(cell.split()[0]) for cell in row.split("|")[4:-1]]
    assert len(relative) == len(runnable) and max(relative) == 1.0
    assert all(0 < r <= 1.0 for r in relative)


def test_scaling_rows_are_medians_of_the_ratios_within_each_round():
    import scaling
    times = {"cyconv 1": [4.0, 6.0, 5.0], "torch 1": [8.0, 6.0, 5.0],
             "cyconv 4": [1.0, 3.0, 1.0], "torch 4": [2.0, 3.0, 4.0]}
    one, four = scaling.rows_from_times(LAYER, np.float32, [1, 4], times)
    assert one["cyconv_scaling"] == 1.0 and one["vs_torch"] == 1.0  # 2, 1, 1
    assert four["cyconv_scaling"] == 4.0  # 4, 2, 5
    assert four["torch_scaling"] == 2.0  # 4, 2, 1.25
    assert four["vs_torch"] == 2.0  # 2, 1, 4
    assert four["cyconv_ms"] == 1000.0 and four["torch_ms"] == 3000.0
    assert "| 4 |" in scaling.markdown([one, four], dict(cyconv="0", kernel="k", torch="t",
                                                          numpy="n", machine="m"))


def test_scaling_refuses_results_that_differ_from_torch(monkeypatch):
    import scaling
    layer = bench.L("tiny", 1, 4, 6, 8, 3, p=1)
    monkeypatch.setattr(scaling, "make_cyconv",
                        lambda x, w, b, layer, threads: lambda: np.zeros((1, 8, 6, 6), x.dtype))
    with pytest.raises(SystemExit, match="differ from torch"):
        scaling.scaling_rows(layer, np.float32, [1, 2], rounds=1, budget=1.0, pause=0.0)


def test_winograd_section_reports_speed_and_error_of_each_run(tmp_path):
    import winograd
    winograd.main(["--layers", "cifar 64 3x3 8 b1", "--dtypes", "float32", "--threads", "1",
                   "--rounds", "1", "--budget", "0", "--out", str(tmp_path)])
    table = (tmp_path / "winograd.md").read_text()
    summary = next(line for line in table.splitlines() if line.startswith("- float32, 1 thread"))
    for part in ("winograd vs torch", "frozen vs torch", "auto vs torch", "grad winograd vs torch"):
        assert part in summary
    cells = [c.strip() for c in next(line for line in table.splitlines()
                                     if line.startswith("| cifar 64")).split("|")[1:-1]]
    header = [c.strip() for c in next(line for line in table.splitlines()
                                      if line.startswith("| layer")).split("|")[1:-1]]
    row = dict(zip(header, cells))
    # what "auto" chose for the layer (4 output tiles: Winograd with the AVX-512 kernel only)
    assert row["auto takes"] == cyconv.plan((1, 64, 8, 8), (64, 64, 3, 3), padding=1,
                                            algorithm="auto")["path"]
    assert float(row["error direct"]) < float(row["error winograd"]) <= 2e-5
