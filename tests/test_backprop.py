"""The lecture's backpropagation and hand-set XOR network (agents/backprop.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.supervised.backprop import (
    XOR_THRESHOLD_LAYERS,
    NumpyMLP,
    threshold_network,
    xor_threshold_network,
)

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
D_XOR = np.array([[0], [1], [1], [0]], dtype=float)
TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": lambda s: s}


def _torch_gradients(net: NumpyMLP, X: np.ndarray, D: np.ndarray):
    weights = [torch.tensor(W, requires_grad=True) for W in net.weights]
    biases = [torch.tensor(b, requires_grad=True) for b in net.biases]
    y = torch.tensor(X)
    for W, b, name in zip(weights, biases, net.activations):
        y = TORCH_ACTIVATIONS[name](y @ W.T + b)
    loss = 0.5 * ((torch.tensor(D) - y) ** 2).sum(dim=1).mean()
    loss.backward()
    return loss.item(), [(W.grad.numpy(), b.grad.numpy()) for W, b in zip(weights, biases)]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("layer_sizes", [(2, 3, 2), (3, 5, 4, 4, 2)])
def test_gradients_match_torch_autograd(activation: str, layer_sizes: tuple[int, ...]) -> None:
    net = NumpyMLP(layer_sizes, activation=activation, seed=1)
    rng = np.random.default_rng(2)
    for k in range(len(net.biases)):  # nonzero biases so their gradients are exercised too
        net.biases[k] = rng.normal(size=net.biases[k].shape)
    X = rng.normal(size=(7, layer_sizes[0]))
    D = rng.normal(size=(7, layer_sizes[-1]))
    expected_loss, expected = _torch_gradients(net, X, D)
    grads = net.gradients(X, D)
    assert len(grads) == len(layer_sizes) - 1
    assert net.loss(X, D) == pytest.approx(expected_loss, abs=1e-12)
    for (dW, db), (tW, tb) in zip(grads, expected):
        assert dW.shape == tW.shape and db.shape == tb.shape
        np.testing.assert_allclose(dW, tW, atol=1e-6, rtol=0)
        np.testing.assert_allclose(db, tb, atol=1e-6, rtol=0)


def test_mixed_output_activation_matches_torch() -> None:
    net = NumpyMLP((3, 4, 2), activation="tanh", output_activation="identity", seed=5)
    assert net.activations == ["tanh", "identity"]
    rng = np.random.default_rng(0)
    X, D = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    _, expected = _torch_gradients(net, X, D)
    for (dW, db), (tW, tb) in zip(net.gradients(X, D), expected):
        np.testing.assert_allclose(dW, tW, atol=1e-6, rtol=0)
        np.testing.assert_allclose(db, tb, atol=1e-6, rtol=0)


def test_single_linear_neuron_by_hand() -> None:
    # y = 2 * 3 + 0.5 = 6.5, d = 1: delta = (d - y) * 1 = -5.5, dE/dw = -delta * x = 16.5.
    net = NumpyMLP((1, 1), activation="identity")
    net.weights[0][:] = 2.0
    net.biases[0][:] = 0.5
    X, D = np.array([[3.0]]), np.array([[1.0]])
    [(dW, db)] = net.gradients(X, D)
    assert dW[0, 0] == pytest.approx(16.5)
    assert db[0] == pytest.approx(5.5)
    assert net.train_step(X, D, eta=0.1) == pytest.approx(0.5 * 5.5**2)
    assert net.weights[0][0, 0] == pytest.approx(2.0 - 0.1 * 16.5)
    assert net.biases[0][0] == pytest.approx(0.5 - 0.1 * 5.5)


def test_train_step_applies_minus_eta_gradient() -> None:
    net = NumpyMLP((2, 3, 2), activation="sigmoid", seed=3)
    rng = np.random.default_rng(4)
    X, D = rng.normal(size=(5, 2)), rng.uniform(size=(5, 2))
    before = [(W.copy(), b.copy()) for W, b in zip(net.weights, net.biases)]
    grads = net.gradients(X, D)
    net.train_step(X, D, eta=0.3)
    for (W0, b0), (dW, db), W, b in zip(before, grads, net.weights, net.biases):
        np.testing.assert_allclose(W, W0 - 0.3 * dW, atol=1e-15)
        np.testing.assert_allclose(b, b0 - 0.3 * db, atol=1e-15)


def test_slide_threshold_network_computes_xor() -> None:
    outputs = [xor_threshold_network(x1, x2) for x1, x2 in [(0, 0), (0, 1), (1, 0), (1, 1)]]
    assert outputs == [0, 1, 1, 0]
    hidden = threshold_network(X_XOR, XOR_THRESHOLD_LAYERS[:1])
    # (1, 0): S1 = 0.5 >= 0.5 fires N1; (0, 1): S2 = 0.5 fires N2; (1, 1): both sums are 0.
    np.testing.assert_array_equal(hidden, [[0, 0], [0, 1], [1, 0], [0, 0]])


def test_backprop_learns_xor_for_most_seeds() -> None:
    # 2-3-1 sigmoid network, full-batch lecture backprop; 100 of seeds 0..99 solve it this way.
    solved = 0
    for seed in range(10):
        net = NumpyMLP((2, 3, 1), activation="sigmoid", seed=seed)
        history = net.fit(X_XOR, D_XOR, eta=5.0, epochs=1000)
        assert len(history) == 1000
        solved += np.array_equal(net.forward(X_XOR) > 0.5, D_XOR > 0.5)
    assert solved >= 9


def test_fit_lowers_the_loss() -> None:
    net = NumpyMLP((2, 3, 1), activation="sigmoid", seed=0)
    history = net.fit(X_XOR, D_XOR, eta=5.0, epochs=1000)
    assert history[0] > 0.1
    assert net.loss(X_XOR, D_XOR) < 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layer_sizes": (2,)}, "layer_sizes"),
        ({"layer_sizes": (2, 0, 1)}, "layer_sizes"),
        ({"layer_sizes": (2, 1), "activation": "relu"}, "'relu'.*sigmoid"),
        ({"layer_sizes": (2, 1), "output_activation": "softmax"}, "'softmax'"),
    ],
)
def test_constructor_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NumpyMLP(**kwargs)


def test_shape_and_argument_errors() -> None:
    net = NumpyMLP((2, 3, 1))
    with pytest.raises(ValueError, match=r"\(n_samples >= 1, 2\)"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(4, 1\)"):
        net.gradients(X_XOR, np.zeros(4))
    with pytest.raises(ValueError, match="eta"):
        net.train_step(X_XOR, D_XOR, eta=-1.0)
    with pytest.raises(ValueError, match="epochs"):
        net.fit(X_XOR, D_XOR, eta=1.0, epochs=0)
