"""The typed API: mypy checks the package, and user code against the installed package."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mypy(*args, cwd):
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                           "--config-file", str(ROOT / "pyproject.toml"), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_the_package_type_checks():
    r = _mypy("cyconv", cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_user_code_type_checks_against_the_installed_package():
    # from outside the checkout: mypy then reads the installed cyconv, which
    # it uses only because the package carries its py.typed marker
    r = _mypy(str(ROOT / "tests" / "typing" / "user_code.py"), cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("line, complaint", [
    ("cyconv.conv2d(x, w, stride='2')", "stride"),
    ("cyconv.Conv2d(3, 16, 3).freeze().num_threads + 'a'", "operand"),
    ("cyconv.grad.conv2d_bias(y, num_threads=1.5)", "num_threads"),
    ("s: str = cyconv.conv2d(x, w)", "assignment"),
])
def test_misuse_is_a_type_error(line, complaint):
    code = (ROOT / "tests" / "typing" / "user_code.py").read_text() + "\n" + line + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "misuse.py")
        with open(path, "w") as f:
            f.write(code)
        r = _mypy(path, cwd=tmp)
    assert r.returncode == 1 and complaint in r.stdout, r.stdout + r.stderr
