"""The implementations cyconv is compared with, each behind one call signature:

    make(x, w, b, layer, threads) -> a function of no arguments returning NCHW output

and, for the backward pass, make(x, w, b, grad_out, layer, threads) -> a
function returning the (input, weight, bias) gradients for grad_out.

torch (oneDNN in float32, im2col + BLAS in float64), the best plain NumPy
(sliding_window_view + tensordot/einsum on BLAS) and ONNX Runtime's CPU Conv
(float32 only; skipped when onnxruntime is not installed).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

import cyconv


def make_cyconv(x, w, b, layer, threads):
    return lambda: cyconv.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation,
                                 layer.groups, num_threads=threads)


def make_cyconv_frozen(x, w, b, layer, threads):
    """A FrozenConv2d with w and b: weights packed once, inputs checked once per shape."""
    conv = cyconv.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, layer.stride,
                         layer.padding, layer.dilation, layer.groups, dtype=x.dtype,
                         num_threads=threads)
    frozen = conv.load_state_dict({"weight": w, "bias": b}).freeze()
    return lambda: frozen(x)


def make_torch(x, w, b, layer, threads):
    import torch
    import torch.nn.functional as F

    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))

    def run():
        torch.set_num_threads(threads)
        with torch.no_grad():
            return F.conv2d(tx, tw, tb, layer.stride, layer.padding, layer.dilation,
                            layer.groups).numpy()
    return run


def numpy_conv2d(x, w, b, stride, padding, dilation, groups):
    """The fastest plain-NumPy conv2d we know: strided windows, then one BLAS call."""
    (sh, sw), (dh, dw) = stride, dilation
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    c_out, c_in_g, kh, kw = w.shape
    windows = sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C_in, H_out, W_out, kh, kw)
    if groups == 1:
        out = np.tensordot(windows, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, H_out, W_out, C_out)
        out = out.transpose(0, 3, 1, 2)
    else:
        n, _, h_out, w_out = windows.shape[:4]
        windows = windows.reshape(n, groups, c_in_g, h_out, w_out, kh, kw)
        wg = w.reshape(groups, c_out // groups, c_in_g, kh, kw)
        out = np.einsum("ngchwij,gocij->ngohw", windows, wg, optimize=True)
        out = out.reshape(n, c_out, h_out, w_out)
    return out + b[None, :, None, None]


# made once: threadpool_limits() finds the loaded BLAS libraries anew on each
# call, about 1 ms here, which would be charged to NumPy's time
BLAS_THREADS = ThreadpoolController()


def make_numpy(x, w, b, layer, threads):
    def run():
        with BLAS_THREADS.limit(limits=threads, user_api="blas"):
            return numpy_conv2d(x, w, b, layer.stride, layer.padding, layer.dilation,
                                layer.groups)
    return run


def onnxruntime_available():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def make_onnxruntime(x, w, b, layer, threads):
    if x.dtype != np.float32:
        return None  # ONNX Runtime has no float64 Conv on the CPU
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    (ph, pw) = layer.padding
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=list(w.shape[2:]),
        strides=list(layer.stride), dilations=list(layer.dilation),
        pads=[ph, pw, ph, pw], group=layer.groups)
    graph = helper.make_graph(
        [node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"x": x})[0]


PEERS = {"torch": make_torch, "numpy": make_numpy, "onnxruntime": make_onnxruntime}
# the forward peers, and cyconv.conv2d beside the frozen layers of the inference section
INFERENCE_PEERS = dict(PEERS, conv2d=make_cyconv)


def make_cyconv_backward(x, w, b, grad_out, layer, threads):
    conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                groups=layer.groups, num_threads=threads)
    return lambda: (cyconv.grad.conv2d_input(x.shape, w, grad_out, **conv),
                    cyconv.grad.conv2d_weight(x, w.shape, grad_out, **conv),
                    cyconv.grad.conv2d_bias(grad_out, num_threads=threads))


def make_torch_backward(x, w, b, grad_out, layer, threads):
    """torch's autograd backward of one conv2d (the graph is kept, the forward not timed)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    out = F.conv2d(tx, tw, tb, layer.stride, layer.padding, layer.dilation, layer.groups)
    go = torch.from_numpy(grad_out)

    def run():
        torch.set_num_threads(threads)
        grads = torch.autograd.grad(out, (tx, tw, tb), go, retain_graph=True)
        return tuple(grad.numpy() for grad in grads)
    return run


BACKWARD_PEERS = {"torch": make_torch_backward}
