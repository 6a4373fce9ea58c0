"""A multilayer perceptron in numpy: the forward pass, backpropagation, and the optimizers.

As in the seeds: each layer computes z = a_prev W + b and a = g(z); the output layer is
linear (regression, loss 1/2 mean squared error) or softmax (classification, cross-entropy).
Backpropagation starts from the output "errors" delta = dLoss/dz, which for both pairs is
(output - target) / rows, and sends them back with the chain rule:
delta_prev = (delta W') * g'(z_prev); the weight gradients are a_prev' delta and the column
sums of delta.  Every product is a BLAS GEMM on preallocated buffers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "momentum", "adam")


def activate(name: str, z: np.ndarray) -> np.ndarray:
    """g(z) in place; returns z."""
    if name == "relu":
        np.maximum(z, 0.0, out=z)
    elif name == "tanh":
        np.tanh(z, out=z)
    else:  # sigmoid, written so that no exp overflows: 1/2 (1 + tanh(z/2))
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
    return z


def derivative_times(name: str, a: np.ndarray, delta: np.ndarray) -> None:
    """delta *= g'(z), from the activation's output a = g(z) (in place)."""
    if name == "relu":
        delta *= a > 0
    elif name == "tanh":
        delta *= 1.0 - a * a
    else:
        delta *= a * (1.0 - a)


def softmax_rows(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax in place (shifted by the row maximum: no overflow)."""
    Z -= Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


@dataclass
class Network:
    """Weights W[l] (in, out) and biases b[l] (out,), hidden activation, output kind."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str
    classify: bool  # softmax + cross-entropy; else linear + squared error

    @classmethod
    def initialise(cls, sizes, activation, classify, rng, dtype) -> Network:
        """He initialisation for relu, Xavier (Glorot) for tanh and sigmoid."""
        weights, biases = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            if activation == "relu":
                scale = math.sqrt(2.0 / fan_in)
            else:
                scale = math.sqrt(2.0 / (fan_in + fan_out))
                if activation == "sigmoid":
                    scale *= 4.0
            weights.append((rng.standard_normal((fan_in, fan_out)) * scale).astype(dtype))
            biases.append(np.zeros(fan_out, dtype=dtype))
        return cls(weights, biases, activation, classify)

    @property
    def n_parameters(self) -> int:
        return sum(W.size + b.size for W, b in zip(self.weights, self.biases))

    def forward(self, X: np.ndarray) -> list[np.ndarray]:
        """Activations of every layer, input first; the last is the output (probabilities
        for classification)."""
        outs = [X]
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            z = outs[-1] @ W
            z += b
            if i < last:
                activate(self.activation, z)
            elif self.classify:
                softmax_rows(z)
            outs.append(z)
        return outs

    def predict(self, X: np.ndarray, block: int = 8192) -> np.ndarray:
        """Outputs of the network for X, in row blocks (bounded memory)."""
        parts = [self.forward(X[i : i + block])[-1] for i in range(0, len(X), block)]
        return np.vstack(parts) if parts else np.empty((0, self.weights[-1].shape[1]))

    def loss(self, out: np.ndarray, T: np.ndarray) -> float:
        """Mean loss of outputs against targets (T: one-hot for classification)."""
        if self.classify:
            p = np.sum(out * T, axis=1, dtype=np.float64)
            return float(-np.mean(np.log(np.maximum(p, np.finfo(out.dtype).tiny))))
        r = (out - T).astype(np.float64, copy=False)
        return 0.5 * float(np.mean(np.sum(r * r, axis=1)))

    def gradients(self, X: np.ndarray, T: np.ndarray, l2: float, n_total: int):
        """(loss, dW list, db list) of the mean loss on these rows plus the penalty
        l2 / (2 n_total) * sum W^2, by backpropagation."""
        outs = self.forward(X)
        n = X.shape[0]
        loss = self.loss(outs[-1], T)
        delta = outs[-1] - T  # dLoss/dz at the output for both output/loss pairs
        delta /= n
        dW, db = [None] * len(self.weights), [None] * len(self.weights)
        for i in range(len(self.weights) - 1, -1, -1):
            dW[i] = outs[i].T @ delta
            db[i] = delta.sum(axis=0)
            if l2:
                dW[i] += (l2 / n_total) * self.weights[i]
            if i:
                delta = delta @ self.weights[i].T
                derivative_times(self.activation, outs[i], delta)
        if l2:
            loss += 0.5 * l2 / n_total * sum(float(np.sum(W * W)) for W in self.weights)
        return loss, dW, db

    def flat(self) -> np.ndarray:
        return np.concatenate([p.ravel() for pair in zip(self.weights, self.biases) for p in pair])

    def copy(self) -> Network:
        return Network(
            [W.copy() for W in self.weights],
            [b.copy() for b in self.biases],
            self.activation,
            self.classify,
        )

    def astype(self, dtype) -> Network:
        return Network(
            [W.astype(dtype) for W in self.weights],
            [b.astype(dtype) for b in self.biases],
            self.activation,
            self.classify,
        )


class Optimizer:
    """sgd: w -= lr g; momentum: v = 0.9 v - lr g, w += v; adam (Kingma and Ba)."""

    def __init__(self, kind: str, lr: float, net: Network):
        self.kind, self.lr, self.t = kind, lr, 0
        params = [*net.weights, *net.biases]
        self.m = [np.zeros_like(p) for p in params] if kind != "sgd" else []
        self.v = [np.zeros_like(p) for p in params] if kind == "adam" else []

    def step(self, net: Network, dW: list, db: list) -> None:
        params = [*net.weights, *net.biases]
        grads = [*dW, *db]
        self.t += 1
        if self.kind == "sgd":
            for p, g in zip(params, grads):
                p -= self.lr * g
            return
        if self.kind == "momentum":
            for p, g, m in zip(params, grads, self.m):
                m *= 0.9
                m -= self.lr * g
                p += m
            return
        b1, b2, eps = 0.9, 0.999, 1e-8
        step = self.lr * math.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= step * m / (np.sqrt(v) + eps)


def check_gradient(net: Network, X: np.ndarray, T: np.ndarray, l2: float, rows: int = 5) -> float:
    """Largest relative error between backpropagation and central differences (float64) on
    the first `rows` rows, over at most 50 parameters of each weight and bias array.

    Relative to max(|numeric|, |backprop|, 1e-3 * the largest gradient entry): an entry far
    below the gradient's scale is compared on that scale, where rounding would otherwise
    dominate its own."""
    net = net.astype(np.float64)
    # Zero biases put relu pre-activations exactly on the kink (a row whose units are all
    # off gives z = 0 in the next layer), where no difference quotient is the derivative:
    # check at a jittered point instead (the gradient is right everywhere or nowhere).
    jitter = np.random.default_rng(0)
    for b in net.biases:
        b += 0.1 * jitter.standard_normal(b.shape)
    X, T = X[:rows].astype(np.float64), T[:rows].astype(np.float64)
    n_total = len(X)
    _, dW, db = net.gradients(X, T, l2, n_total)
    largest = max(float(np.max(np.abs(g))) for g in [*dW, *db])
    floor = max(1e-3 * largest, 1e-12)
    worst = 0.0
    for params, grads in ((net.weights, dW), (net.biases, db)):
        for p, g in zip(params, grads):
            flat, gflat = p.reshape(-1), g.reshape(-1)
            for j in np.unique(np.linspace(0, flat.size - 1, min(flat.size, 50)).astype(int)):
                keep = flat[j]
                h = 6e-6 * max(1.0, abs(keep))  # about eps^(1/3): truncation ~ rounding
                flat[j] = keep + h
                up = net.gradients(X, T, l2, n_total)[0]
                flat[j] = keep - h
                down = net.gradients(X, T, l2, n_total)[0]
                flat[j] = keep
                numeric = (up - down) / (2 * h)
                scale = max(abs(numeric), abs(gflat[j]), floor)
                worst = max(worst, abs(numeric - gflat[j]) / scale)
    return worst
