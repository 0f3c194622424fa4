"""Single-neuron learners from the lecture, in numpy: Rosenblatt's rule, Hebb's rule, delta rule.

Follows the lecture's "Rosenblatt's rule and Hebb's rule" and "Delta-rule" slides, with the input
factor the slides leave out restored (Rosenblatt 1958; Widrow & Hoff 1960):

- Rosenblatt, labels {0, 1}: ``w <- w - eta (a(x) - y) x`` with the McCulloch-Pitts output
  ``a(x) = [<w, x> > 0]``.
- Hebb, labels {-1, 1}: ``w <- w + eta x y`` whenever ``<w, x> y <= 0``.
- Delta rule (Widrow-Hoff / LMS): ``w <- w - eta (<w, x> - y) x`` for real-valued targets.

The bias is handled by appending a constant 1 input: the learned vector is ``[w, b]`` and the
score of ``x`` is ``<w, x> + b``. The results report ``weights`` (w) and ``bias`` (b) separately;
in the lecture's McCulloch-Pitts notation ``sigma(sum_i w_i x_i - w_0)`` the threshold is
``w_0 = -bias``. All learners start from zero weights. The perceptron convergence theorem
(Novikoff 1962) bounds the number of updates on linearly separable data; on data that is not
separable (XOR) the perceptron learners stop after ``max_epochs`` with ``converged=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_ROSENBLATT_LABELS = (0, 1)
_HEBB_LABELS = (-1, 1)


@dataclass(frozen=True, eq=False)
class PerceptronResult:
    """A trained threshold neuron and how its training went."""

    weights: np.ndarray
    """Input weights w, shape (n_features,)."""
    bias: float
    """Weight of the constant 1 input (b = -w_0 in McCulloch-Pitts notation)."""
    converged: bool
    """True when a full pass over the data made no update (every sample classified right)."""
    updates: int
    """Number of weight updates made (one per misclassified sample visit)."""
    epochs: int
    """Passes over the data made, including the final pass without updates when converged."""
    labels: tuple[int, int]
    """(negative, positive) label values: (0, 1) for Rosenblatt, (-1, 1) for Hebb."""

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Weighted sums <w, x> + b for each row of X, shape (n_samples,)."""
        X = _check_features(X, n_features=self.weights.shape[0])
        return X @ self.weights + self.bias

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Label per row of X: the positive label where the score is > 0, else the negative one."""
        negative, positive = self.labels
        return np.where(self.scores(X) > 0, positive, negative)


@dataclass(frozen=True, eq=False)
class DeltaRuleResult:
    """A linear neuron trained by the delta rule."""

    weights: np.ndarray
    """Input weights w, shape (n_features,)."""
    bias: float
    """Weight of the constant 1 input."""
    epochs: int
    """Passes over the data made."""
    updates: int
    """Number of weight updates made (one per sample visit: epochs * n_samples)."""
    mse_history: tuple[float, ...]
    """Mean squared error (1/m) sum (<w, x> + b - y)^2 on the training data after each epoch."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Linear outputs <w, x> + b for each row of X, shape (n_samples,)."""
        X = _check_features(X, n_features=self.weights.shape[0])
        return X @ self.weights + self.bias


def train_rosenblatt(
    X: np.ndarray,
    y: np.ndarray,
    eta: float = 1.0,
    max_epochs: int = 1000,
    seed: int | None = None,
) -> PerceptronResult:
    """Rosenblatt's perceptron rule for labels in {0, 1}.

    Each visit of a sample applies ``w <- w - eta (a(x) - y) x`` with ``a(x) = [<w, x> > 0]``;
    a weight update is counted when ``a(x) != y``. With ``seed=None`` the samples are visited in
    the given order, otherwise in a fresh random order each epoch drawn from ``seed``.
    """

    def update(w: np.ndarray, x: np.ndarray, target: float) -> np.ndarray | None:
        output = 1.0 if x @ w > 0 else 0.0
        if output == target:
            return None
        return -eta * (output - target) * x

    A, targets = _prepare(X, y, _ROSENBLATT_LABELS, "Rosenblatt's rule")
    _check_training_args(eta, max_epochs, "max_epochs")
    return _train_fixed_increment(A, targets, update, max_epochs, seed, _ROSENBLATT_LABELS)


def train_hebb(
    X: np.ndarray,
    y: np.ndarray,
    eta: float = 1.0,
    max_epochs: int = 1000,
    seed: int | None = None,
) -> PerceptronResult:
    """Hebb's rule for labels in {-1, 1}: ``w <- w + eta x y`` when ``<w, x> y <= 0``.

    Visit order as in :func:`train_rosenblatt`. Predictions are the sign of the score (> 0 gives 1).
    """

    def update(w: np.ndarray, x: np.ndarray, target: float) -> np.ndarray | None:
        # The slide updates on `< 0`; `<= 0` also counts a score of exactly 0 as a mistake, so the
        # zero start (where every score is 0) learns and a converged neuron has margins > 0.
        if (x @ w) * target > 0:
            return None
        return eta * target * x

    A, targets = _prepare(X, y, _HEBB_LABELS, "Hebb's rule")
    _check_training_args(eta, max_epochs, "max_epochs")
    return _train_fixed_increment(A, targets, update, max_epochs, seed, _HEBB_LABELS)


def train_delta_rule(
    X: np.ndarray,
    y: np.ndarray,
    eta: float = 0.01,
    epochs: int = 200,
    seed: int | None = None,
) -> DeltaRuleResult:
    """Online delta rule (Widrow-Hoff LMS) with a decaying step, converging to least squares.

    Each sample visit applies ``w <- w - eta_e (<w, x> - y) x``. The step decays per epoch as
    ``eta_e = eta / (1 + e)`` for epoch e = 0, 1, ...: the Robbins-Monro conditions (sum of steps
    infinite, sum of squared steps finite; Robbins & Monro 1951) let the online iterate settle on
    the least-squares solution instead of jittering around it when the targets are noisy. Visit
    order as in :func:`train_rosenblatt`. Raises ValueError when the weights blow up (eta too big).
    """
    A = _check_features(X)
    targets = _check_targets(y, A.shape[0])
    _check_training_args(eta, epochs, "epochs")
    A = _append_ones(A)
    rng = None if seed is None else np.random.default_rng(seed)
    w = np.zeros(A.shape[1])
    mse_history = []
    for epoch in range(epochs):
        step = eta / (1.0 + epoch)
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            for k in _visit_order(A.shape[0], rng):
                x = A[k]
                w -= step * (x @ w - targets[k]) * x
            mse = float(np.mean((A @ w - targets) ** 2))
        if not np.isfinite(mse):
            raise ValueError(
                f"eta={eta} makes the delta rule diverge on this data; use a smaller eta "
                f"(below 2 / max ||[x, 1]||^2 = {2.0 / np.max(np.sum(A * A, axis=1)):.3g})"
            )
        mse_history.append(mse)
    return DeltaRuleResult(
        weights=w[:-1].copy(),
        bias=float(w[-1]),
        epochs=epochs,
        updates=epochs * A.shape[0],
        mse_history=tuple(mse_history),
    )


def _train_fixed_increment(
    A: np.ndarray,
    targets: np.ndarray,
    update: Callable[[np.ndarray, np.ndarray, float], np.ndarray | None],
    max_epochs: int,
    seed: int | None,
    labels: tuple[int, int],
) -> PerceptronResult:
    """Mistake-driven loop shared by both perceptron rules; stops after a pass with no update."""
    rng = None if seed is None else np.random.default_rng(seed)
    w = np.zeros(A.shape[1])
    updates = 0
    converged = False
    epochs = 0
    while epochs < max_epochs and not converged:
        epochs += 1
        converged = True
        for k in _visit_order(A.shape[0], rng):
            change = update(w, A[k], targets[k])
            if change is not None:
                w += change
                updates += 1
                converged = False
    return PerceptronResult(
        weights=w[:-1].copy(),
        bias=float(w[-1]),
        converged=converged,
        updates=updates,
        epochs=epochs,
        labels=labels,
    )


def _visit_order(n_samples: int, rng: np.random.Generator | None) -> np.ndarray:
    return np.arange(n_samples) if rng is None else rng.permutation(n_samples)


def _append_ones(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _prepare(
    X: np.ndarray, y: np.ndarray, accepted: tuple[int, int], rule: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validated inputs with the constant 1 column appended, and float labels."""
    A = _check_features(X)
    targets = _check_targets(y, A.shape[0])
    raw = np.asarray(y)
    bad = np.unique(raw[~np.isin(raw, accepted)])
    if bad.size:
        raise ValueError(
            f"{rule} needs labels in {{{accepted[0]}, {accepted[1]}}}; got label values "
            f"{bad.tolist()}"
        )
    return _append_ones(A), targets


def _check_features(X: np.ndarray, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features); got {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X must have {n_features} feature columns; got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise ValueError(f"X must hold numbers; got dtype {X.dtype}")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite; it holds NaN or infinite values")
    return X


def _check_targets(y: np.ndarray, n_samples: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},) to match X; got {y.shape}")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise ValueError(f"y must hold numbers; got dtype {y.dtype}")
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError("y must be finite; it holds NaN or infinite values")
    return y


def _check_training_args(eta: float, epochs: int, epochs_name: str) -> None:
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a finite number > 0; got {eta}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"{epochs_name} must be an integer >= 1; got {epochs!r}")
