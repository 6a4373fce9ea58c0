"""The categorical family (softmax) of multinomial logistic regression: one linear predictor
per class after the first (the reference class), beta of shape (p, K-1) flattened column by
column in objective()."""

from __future__ import annotations

import numpy as np

from mlfit.numerics import logsumexp
from mlfit.solvers.scalar_family import penalise


class Categorical:
    """Softmax over K classes; class 0 is the reference with linear predictor 0.

    y: (n,) integer class codes 0..K-1; beta: (p, K-1).
    """

    name, link = "categorical", "softmax"
    estimates_dispersion = False

    def __init__(self, n_classes: int):
        self.K = n_classes

    def eta(self, X, beta, offset):
        B = beta.reshape(X.shape[1], self.K - 1, order="F")
        eta = np.column_stack([np.zeros(X.shape[0]), X @ B])
        return eta + offset[:, None] if np.ndim(offset) else eta

    def probabilities(self, eta):
        return np.exp(eta - logsumexp(eta, axis=1)[:, None])

    def loglik(self, y, eta):
        return eta[np.arange(len(y)), y] - logsumexp(eta, axis=1)

    def unit_deviance(self, y, eta):
        return -2.0 * self.loglik(y, eta)

    def objective(self, X, y, beta, offset, weights, l2, info: bool = True):
        n = X.shape[0]
        eta = self.eta(X, beta, offset)
        P = self.probabilities(eta)
        ll = float(np.dot(weights, self.loglik(y, eta)))
        Y = np.zeros_like(P)
        Y[np.arange(n), y] = 1.0
        R = (Y - P)[:, 1:] * weights[:, None]
        grad = (X.T @ R).ravel(order="F")
        if not info:
            return penalise(ll, grad, None, beta, l2)
        return penalise(ll, grad, _softmax_information(X, P[:, 1:], weights), beta, l2)


def _softmax_information(X, P, weights, block: int = 4096):
    """sum_i w_i kron(diag(p_i) - p_i p_i', x_i x_i') with p_i the non-reference probabilities:
    per row block, the diag(p_a) terms as sqrt-scaled symmetric products and all p_a p_b terms
    as one symmetric product of M = [sqrt(w_i) p_ia x_i]_a."""
    n, p = X.shape
    k1 = P.shape[1]
    info = np.zeros((p * k1, p * k1))
    for i in range(0, n, block):
        Xc, Pc, wc = X[i : i + block], P[i : i + block], weights[i : i + block]
        M = (Xc[:, None, :] * (Pc * np.sqrt(wc)[:, None])[:, :, None]).reshape(len(Xc), k1 * p)
        info -= M.T @ M
        for a in range(k1):
            B = Xc * np.sqrt(wc * Pc[:, a])[:, None]
            info[a * p : (a + 1) * p, a * p : (a + 1) * p] += B.T @ B
    return info
