"""Train a small CNN on scikit-learn's handwritten digits with NumPy and cyconv only.

    python examples/train_digits.py [--epochs 30] [--seed 0]

The model: conv 1->32 3x3 (padding 1), ReLU, conv 32->64 3x3 stride 2
(padding 1), ReLU, linear 64*4*4 -> 10, softmax cross-entropy; trained with
Adam on mini-batches of images shifted by up to one pixel, with a cosine
learning-rate decay.  The convolutions (forward and backward) are cyconv's;
everything else is a few lines of NumPy.  Same seed, same result.  Then it
predicts the test images one at a time, as a service would, with the layers
as trained and frozen (Conv2d.freeze()), and prints the time per image.
"""
import argparse
import copy
import time

import numpy as np
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits  # installed with scikit-learn

import cyconv


def shifted(images, rng):
    """Each image moved by up to one pixel in each direction (augmentation)."""
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    dy, dx = rng.integers(0, 3, 2)
    return padded[:, :, dy:dy + 8, dx:dx + 8]


def split(images, labels, rng, test_fraction=0.2):
    order = rng.permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


class Linear:
    def __init__(self, n_in, n_out, rng):
        bound = 1.0 / np.sqrt(n_in)  # torch.nn.Linear's initialisation
        self.weight = rng.uniform(-bound, bound, (n_out, n_in)).astype(np.float32)
        self.bias = rng.uniform(-bound, bound, n_out).astype(np.float32)

    def __call__(self, x):
        self.input = x
        return x @ self.weight.T + self.bias

    def backward(self, grad_out):
        self.weight_grad = grad_out.T @ self.input
        self.bias_grad = grad_out.sum(axis=0)
        return grad_out @ self.weight


class Model:
    def __init__(self, rng):
        self.conv1 = cyconv.Conv2d(1, 32, 3, padding=1, rng=rng)
        self.conv2 = cyconv.Conv2d(32, 64, 3, stride=2, padding=1, rng=rng)
        self.fc = Linear(64 * 4 * 4, 10, rng)
        self.layers = [self.conv1, self.conv2, self.fc]

    def __call__(self, x):
        self.h1 = np.maximum(self.conv1(x), 0)
        self.h2 = np.maximum(self.conv2(self.h1), 0)
        return self.fc(self.h2.reshape(len(x), -1))

    def backward(self, grad_logits):
        grad = self.fc.backward(grad_logits).reshape(self.h2.shape) * (self.h2 > 0)
        grad = self.conv2.backward(grad) * (self.h1 > 0)
        self.conv1.backward(grad)

    def train(self, mode=True):
        self.conv1.train(mode)
        self.conv2.train(mode)

    def freeze(self):
        """The model for inference only: its convolutions frozen (weights packed once)."""
        frozen = copy.copy(self)
        frozen.conv1, frozen.conv2 = self.conv1.freeze(), self.conv2.freeze()
        return frozen

    def parameters(self):
        """(layer, name) of every parameter; its gradient is layer.<name>_grad."""
        return [(layer, name) for layer in self.layers for name in ("weight", "bias")]


class Adam:
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [np.zeros_like(getattr(layer, name)) for layer, name in params]
        self.v = [np.zeros_like(getattr(layer, name)) for layer, name in params]

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for (layer, name), m, v in zip(self.params, self.m, self.v):
            grad = getattr(layer, name + "_grad")
            m *= b1
            m += (1 - b1) * grad
            v *= b2
            v += (1 - b2) * grad * grad
            m_hat = m / (1 - b1 ** self.t)
            v_hat = v / (1 - b2 ** self.t)
            param = getattr(layer, name)
            param -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(param.dtype)


def cross_entropy(logits, labels):
    """Mean loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(len(labels)), labels]).mean()
    probs[np.arange(len(labels)), labels] -= 1
    return loss, probs / len(labels)


def accuracy(model, images, labels, batch=512):
    model.train(False)
    correct = sum(int((model(images[i:i + batch]).argmax(axis=1) == labels[i:i + batch]).sum())
                  for i in range(0, len(labels), batch))
    model.train(True)
    return correct / len(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8) in [0, 1]
    x_train, y_train, x_test, y_test = split(images, digits.target, rng)
    print(f"digits: {len(y_train)} training and {len(y_test)} test images of 8x8; "
          f"cyconv {cyconv.__version__}, kernel {cyconv.config()['kernel']}")

    model = Model(rng)
    optimizer = Adam(model.parameters())
    # NumPy's BLAS on one thread: its products here are small, and a BLAS
    # pool spin-waiting after each one takes the cores from cyconv's OpenMP
    # threads (on 2 cores the run took 1.5x as long)
    with threadpool_limits(1, user_api="blas"):
        train(model, optimizer, x_train, y_train, x_test, y_test, args, rng)


def train(model, optimizer, x_train, y_train, x_test, y_test, args, rng):
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        # cosine learning-rate decay: large steps first, fine ones at the end
        optimizer.lr = 0.5 * args.lr * (1 + np.cos(np.pi * (epoch - 1) / args.epochs))
        order = rng.permutation(len(y_train))
        losses = []
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            inputs = shifted(x_train[batch], rng)
            loss, grad_logits = cross_entropy(model(inputs), y_train[batch])
            model.backward(grad_logits)
            optimizer.step()
            losses.append(loss)
        print(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  "
              f"train accuracy {accuracy(model, x_train, y_train):.4f}  "
              f"test accuracy {accuracy(model, x_test, y_test):.4f}  "
              f"({time.perf_counter() - start:.1f} s)")
    serve(model, x_test)
    print(f"test accuracy: {accuracy(model, x_test, y_test):.4f}")


def serve(model, images):
    """Predict the images one at a time, as a service answers requests, with
    the model as trained and frozen (Conv2d.freeze(): weights packed once,
    inputs of a known shape checked once)."""
    model.train(False)
    seconds, predictions = {}, {}
    for name, run in (("as trained", model), ("frozen", model.freeze())):
        start = time.perf_counter()
        predictions[name] = [int(run(image[None]).argmax()) for image in images]
        seconds[name] = (time.perf_counter() - start) / len(images)
    model.train(True)
    same = predictions["as trained"] == predictions["frozen"]
    print(f"one image at a time: {1e6 * seconds['as trained']:.0f} us per image as trained, "
          f"{1e6 * seconds['frozen']:.0f} us frozen; "
          f"{'the same' if same else 'DIFFERENT'} predictions")


if __name__ == "__main__":
    main()
