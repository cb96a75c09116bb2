"""examples/train_digits.py trains a NumPy CNN to the promised accuracy, and
serves it with frozen layers."""
import os
import re
import subprocess
import sys
import tempfile

import pytest

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "train_digits.py")


@pytest.mark.slow
def test_digits_example_reaches_97_percent_and_serves_frozen():
    result = subprocess.run([sys.executable, EXAMPLE, "--seed", "0"], capture_output=True,
                            text=True, cwd=tempfile.gettempdir(), timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("epoch") for line in lines) == 30
    # served one image at a time, frozen layers predict what the trained ones do
    assert re.fullmatch(r"one image at a time: \d+ us per image as trained, \d+ us frozen; "
                        r"the same predictions", lines[-2]), lines[-2]
    match = re.fullmatch(r"test accuracy: (0\.\d{4}|1\.0000)", lines[-1])
    assert match, lines[-1]
    assert float(match.group(1)) >= 0.97


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dask_example_streams_an_image_through_a_cluster_into_a_memmap():
    example = os.path.join(os.path.dirname(EXAMPLE), "dask_large_image.py")
    result = subprocess.run([sys.executable, example, "--size", "1500", "--rows", "200"],
                            capture_output=True, text=True, cwd=tempfile.gettempdir(),
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "image 1500 x 1500 float32" in out and "in chunks of 200 x 1500" in out
    assert len(re.findall(r"worker tcp://127\.0\.0\.1:\d+: peak memory \d+ MiB", out)) == 2
    assert "100% Completed" in out  # Dask's progress bar ran
    match = re.search(r"window against cyconv.conv2d in memory: max difference (\S+)", out)
    assert match and float(match.group(1)) == 0.0, out
