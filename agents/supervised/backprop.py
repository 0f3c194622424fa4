"""Backpropagation for a multilayer perceptron in numpy, as the lecture writes it.

Follows the lecture's "Back propagation" slide (LeCun, Werbos, Galushkin): for layer k with
weighted sums ``S = W y_prev + b`` and outputs ``y = f(S)``,

- output layer K: ``delta^(K)_i = (d_i - y_i) f'(S_i)``,
- hidden layer k: ``delta^(k)_i = f'(S_i) sum_l delta^(k+1)_l w^(k+1)_li``,
- update: ``Delta w_ij = eta delta_i y_j`` (inputs y_j of the layer; the bias sees y_j = 1),

which is gradient descent on the squared error ``eps = 1/2 sum_i (d_i - y_i)^2`` (Widrow & Hoff
1960). Over a batch this module uses the mean of eps over the samples, so ``gradients`` returns
``d(mean eps)/dW = -mean(delta y^T)`` and ``train_step`` applies the averaged Delta w.
Activations: the lecture's sigmoid (S), tanh (T) and identity (Z).

Also the slide "MLP. The modeling of XOR": three hand-set threshold neurons that compute XOR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Array = np.ndarray


def _sigmoid(S: Array) -> Array:
    # sigma(z) = (1 + tanh(z / 2)) / 2 exactly; this form never overflows in exp.
    return 0.5 * (1.0 + np.tanh(0.5 * S))


def _sigmoid_derivative(S: Array) -> Array:
    y = _sigmoid(S)
    return y * (1.0 - y)


def _tanh_derivative(S: Array) -> Array:
    return 1.0 - np.tanh(S) ** 2


ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "sigmoid": (_sigmoid, _sigmoid_derivative),
    "tanh": (np.tanh, _tanh_derivative),
    "identity": (lambda S: S, np.ones_like),
}
"""Activation name -> (f, f'), both functions of the weighted sum S."""


class NumpyMLP:
    """Fully connected network; layer k maps y_prev to f_k(W_k y_prev + b_k).

    ``weights[k]`` has shape (n_out, n_in) so that ``weights[k][i, j]`` is the lecture's w_ij
    (from input j to neuron i). Weights start Glorot-uniform (Glorot & Bengio 2010), biases at 0.
    ``activation`` is used by every hidden layer and, unless ``output_activation`` is given, by the
    output layer too.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str = "sigmoid",
        output_activation: str | None = None,
        seed: int | None = 0,
    ) -> None:
        sizes = list(layer_sizes)
        if len(sizes) < 2 or any(
            isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes
        ):
            raise ValueError(
                f"layer_sizes must be at least two integers >= 1 (inputs, ..., outputs); "
                f"got {layer_sizes!r}"
            )
        output_activation = activation if output_activation is None else output_activation
        for name in (activation, output_activation):
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; accepted: {sorted(ACTIVATIONS)}")
        self.layer_sizes = tuple(int(n) for n in sizes)
        self.activations = [activation] * (len(sizes) - 2) + [output_activation]
        rng = np.random.default_rng(seed)
        self.weights: list[Array] = []
        self.biases: list[Array] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6.0 / (n_in + n_out))
            self.weights.append(rng.uniform(-limit, limit, size=(n_out, n_in)))
            self.biases.append(np.zeros(n_out))

    def forward_layers(self, X: Array) -> tuple[list[Array], list[Array]]:
        """Weighted sums S per layer and outputs y per layer (``outputs[0]`` is X itself)."""
        y = self._check_inputs(X)
        sums, outputs = [], [y]
        for W, b, name in zip(self.weights, self.biases, self.activations):
            S = y @ W.T + b
            y = ACTIVATIONS[name][0](S)
            sums.append(S)
            outputs.append(y)
        return sums, outputs

    def forward(self, X: Array) -> Array:
        """Network outputs for a batch X of shape (n_samples, n_inputs)."""
        return self.forward_layers(X)[1][-1]

    def loss(self, X: Array, D: Array) -> float:
        """Mean over samples of eps = 1/2 sum_i (d_i - y_i)^2."""
        D = self._check_targets(D, X)
        return _mean_squared_error(self.forward(X), D)

    def gradients(self, X: Array, D: Array) -> list[tuple[Array, Array]]:
        """Gradients (dW, db) per layer of the mean over samples of eps, by the lecture's deltas."""
        D = self._check_targets(D, X)
        return self._backward(*self.forward_layers(X), D)

    def train_step(self, X: Array, D: Array, eta: float) -> float:
        """One update ``w_ij += eta mean(delta_i y_j)`` on the batch; returns the loss before it."""
        _check_eta(eta)
        D = self._check_targets(D, X)
        sums, outputs = self.forward_layers(X)
        for k, (dW, db) in enumerate(self._backward(sums, outputs, D)):
            self.weights[k] -= eta * dW
            self.biases[k] -= eta * db
        return _mean_squared_error(outputs[-1], D)

    def fit(self, X: Array, D: Array, eta: float, epochs: int) -> list[float]:
        """Full-batch training for ``epochs`` steps; the loss before each step, one per epoch."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1; got {epochs!r}")
        return [self.train_step(X, D, eta) for _ in range(epochs)]

    def _backward(
        self, sums: list[Array], outputs: list[Array], D: Array
    ) -> list[tuple[Array, Array]]:
        n_samples = D.shape[0]
        derivative = ACTIVATIONS[self.activations[-1]][1]
        delta = (D - outputs[-1]) * derivative(sums[-1])  # delta^(K) = (d - y) f'(S)
        grads: list[tuple[Array, Array]] = []
        for k in range(len(self.weights) - 1, -1, -1):
            # Delta w_ij = eta delta_i y_j is a step down the gradient, so dE/dw_ij = -delta_i y_j.
            grads.append((-(delta.T @ outputs[k]) / n_samples, -delta.sum(axis=0) / n_samples))
            if k > 0:
                derivative = ACTIVATIONS[self.activations[k - 1]][1]
                # delta^(k)_i = f'(S_i) sum_l delta^(k+1)_l w^(k+1)_li
                delta = derivative(sums[k - 1]) * (delta @ self.weights[k])
        return grads[::-1]

    def _check_inputs(self, X: Array) -> Array:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0] or X.shape[0] == 0:
            raise ValueError(
                f"X must have shape (n_samples >= 1, {self.layer_sizes[0]}); got {X.shape}"
            )
        return X

    def _check_targets(self, D: Array, X: Array) -> Array:
        D = np.asarray(D, dtype=np.float64)
        expected = (np.shape(X)[0], self.layer_sizes[-1])
        if D.shape != expected:
            raise ValueError(
                f"D must have shape {expected} to match X and the outputs; got {D.shape}"
            )
        return D


def _mean_squared_error(Y: Array, D: Array) -> float:
    return float(0.5 * np.mean(np.sum((D - Y) ** 2, axis=1)))


def _check_eta(eta: float) -> None:
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a finite number > 0; got {eta}")


# The slide's hand-set XOR network: (weights, biases) per layer, theta = 0.5 for every neuron.
XOR_THRESHOLD_LAYERS: tuple[tuple[Array, Array], ...] = (
    (np.array([[0.5, -0.5], [-0.5, 0.5]]), np.zeros(2)),  # N1: S1 = 0.5 x1 - 0.5 x2; N2 mirrored
    (np.array([[1.0, 1.0]]), np.zeros(1)),  # N3: S3 = y1 + y2
)
XOR_THETA = 0.5


def threshold_network(
    X: Array, layers: Sequence[tuple[Array, Array]], theta: float = XOR_THETA
) -> Array:
    """Forward pass of threshold neurons: y = 1 where S >= theta, else 0 (the slide's ">=")."""
    y = np.asarray(X, dtype=np.float64)
    for W, b in layers:
        y = (y @ np.asarray(W).T + b >= theta).astype(np.float64)
    return y


def xor_threshold_network(x1: float, x2: float) -> int:
    """The slide's three-neuron threshold network; returns x1 XOR x2 for x1, x2 in {0, 1}."""
    return int(threshold_network(np.array([[x1, x2]]), XOR_THRESHOLD_LAYERS)[0, 0])
