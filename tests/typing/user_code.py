"""Typical user code, checked by mypy against the installed package (tests/test_typing.py)."""
import numpy as np

import cyconv

x = np.random.rand(8, 3, 32, 32).astype(np.float32)
w = np.random.rand(16, 3, 3, 3).astype(np.float32)

y: np.ndarray = cyconv.conv2d(x, w, None, stride=2, padding=1)
y = cyconv.conv2d(x.tolist(), w, padding=((1, 0), (0, 1)), dilation=(1, 2), num_threads=2)
y = cyconv.conv2d(x, w, padding="same", out=np.empty((8, 16, 32, 32), np.float32))
z = cyconv.conv_transpose2d(y, w, stride=1, padding=1, output_padding=0)
gx = cyconv.grad.conv2d_input(x.shape, w, y, padding=1)
gw = cyconv.grad.conv2d_weight(x, w.shape, y, padding=1)
gb = cyconv.grad.conv2d_bias(y, num_threads=1)

layer = cyconv.Conv2d(3, 16, 3, padding=1, padding_mode="reflect", rng=0)
out = layer(x)
grad_input = layer.backward(np.ones_like(out))
if layer.weight_grad is not None:
    layer.weight -= 0.01 * layer.weight_grad
frozen: cyconv.FrozenConv2d = layer.eval().freeze()
frozen(x, num_threads=1)
state = frozen.state_dict()
layer.load_state_dict(state)

plan = cyconv.plan(x.shape, w.shape, stride=2, dtype=np.float64, direction="input_grad")
path: str = plan["path"]
kernel_in_use = cyconv.config()["kernel"]
