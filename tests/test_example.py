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
