"""A process forked after threaded calls computes the same results and does
not hang: multiprocessing's fork context, ProcessPoolExecutor on it, and a
bare os.fork().  Each runs in a subprocess with a timeout, so that a hang
fails the test instead of blocking the suite."""
import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

SETUP = r"""
import os, sys
import numpy as np
import cyconv

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 32, 20, 20)).astype(np.float32)
w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
go = rng.standard_normal((4, 32, 20, 20)).astype(np.float32)

def compute(i=0):
    # forward, both gradients and a frozen layer, on 2 threads
    layer = cyconv.Conv2d(32, 32, 3, padding=1, rng=i).freeze()
    return [cyconv.conv2d(x, w, padding=1, num_threads=2),
            cyconv.grad.conv2d_input(x.shape, w, go, padding=1, num_threads=2),
            cyconv.grad.conv2d_weight(x, w.shape, go, padding=1, num_threads=2),
            layer(x)]

def digest(arrays):
    return [a.tobytes().hex()[:64] + str(hash(a.tobytes())) for a in arrays]

def child(i):
    return digest(compute(0))

expected = digest(compute())        # the parent's OpenMP threads exist now
"""

CASES = {
    "pool": SETUP + r"""
import multiprocessing as mp
with mp.get_context("fork").Pool(2) as pool:
    got = pool.map_async(child, range(4)).get(timeout=60)
assert all(g == expected for g in got), "a child computed something else"
print("ok")
""",
    "executor": SETUP + r"""
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
    got = list(ex.map(child, range(4), timeout=60))
assert all(g == expected for g in got), "a child computed something else"
assert digest(compute()) == expected          # and the parent goes on as before
print("ok")
""",
    "bare": SETUP + r"""
import time
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, repr(child(0)).encode())
    os._exit(0)
os.close(write)
deadline = time.monotonic() + 60
while os.waitpid(pid, os.WNOHANG) == (0, 0):
    assert time.monotonic() < deadline, "the forked child hangs"
    time.sleep(0.05)
got = eval(os.read(read, 1 << 20).decode())
assert got == expected, "the child computed something else"
assert digest(compute()) == expected
print("ok")
""",
}


@pytest.mark.parametrize("how", sorted(CASES))
def test_a_forked_child_computes_the_same_and_does_not_hang(how):
    r = subprocess.run([sys.executable, "-c", CASES[how]], capture_output=True,
                       text=True, timeout=180, cwd=tempfile.gettempdir())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
