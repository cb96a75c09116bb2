"""The repaired wheel: built by scripts/build-wheel.sh, installed into fresh
virtualenvs (no torch, no source tree), with NumPy 1.26 and NumPy 2.x."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs inside the fresh venv: checks import, OpenMP, the kernel choice and a
# convolution against explicit loops (NumPy only).
CHECK = r"""
import json, sys
import numpy as np
import cyconv
assert "torch" not in sys.modules
assert "site-packages" in cyconv.__file__, cyconv.__file__
cfg = cyconv.config()
rng = np.random.default_rng(0)
x, w, b = rng.random((2, 3, 9, 8)), rng.random((4, 3, 3, 3)), rng.random(4)
out = cyconv.conv2d(x, w, b, stride=2, padding=1)
xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
ref = np.zeros(out.shape)
for n in range(2):
    for o in range(4):
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                ref[n, o, i, j] = b[o] + (xp[n, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3] * w[o]).sum()
print(json.dumps({"numpy": np.__version__, "openmp": cfg["openmp"], "kernel": cfg["kernel"],
                  "runnable": cfg["kernels_runnable"], "built": cfg["kernels_built"],
                  "max_error": float(np.abs(out - ref).max())}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(["bash", str(REPO / "scripts" / "build-wheel.sh"), str(out)], cwd=REPO,
                   check=True, capture_output=True, timeout=900)
    wheels = list(out.glob("cyconv-*manylinux*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


def test_wheel_is_manylinux_and_bundles_libgomp(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("cyconv.libs/libgomp") for n in names), names
    assert sum(n.startswith("cyconv/_kernel_") and n.endswith(".so") for n in names) >= 1
    assert any(n.endswith(".tar.gz") for n in os.listdir(wheel.parent))  # the sdist


@pytest.mark.slow
@pytest.mark.parametrize("numpy_spec", ["numpy==1.26.4", "numpy>=2"])
def test_wheel_runs_in_a_fresh_venv(wheel, numpy_spec, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel), numpy_spec],
                   check=True, capture_output=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CYCONV_RUN_KERNEL")}
    best = None
    for forced in [None, "baseline", "x86-64-v3", "x86-64-v4"]:
        run_env = dict(env, **({"CYCONV_RUN_KERNEL": forced} if forced else {}))
        r = subprocess.run([python, "-c", CHECK], capture_output=True, text=True,
                           env=run_env, cwd=tmp_path, timeout=120)
        if forced and best is not None and forced not in best["runnable"]:
            # a variant this CPU cannot run is refused cleanly, not a crash
            assert r.returncode == 1 and "ImportError" in r.stderr, r.stderr
            continue
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["numpy"].split(".")[0] == ("1" if "1.26" in numpy_spec else "2")
        assert report["openmp"] is True
        assert report["max_error"] < 1e-12
        if forced is None:
            best = report
            assert report["kernel"] == report["runnable"][0]  # the best one
            assert set(report["built"]) >= {"baseline"}
        else:
            assert report["kernel"] == forced
