"""Rosenblatt's rule, Hebb's rule and the delta rule (agents/perceptron.py)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.supervised.perceptron import train_delta_rule, train_hebb, train_rosenblatt

X_BOOL = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
TRUTH_TABLES = {"and": [0, 0, 0, 1], "or": [0, 1, 1, 1], "xor": [0, 1, 1, 0]}


def _labels(table: str, negative: int) -> np.ndarray:
    return np.where(np.array(TRUTH_TABLES[table]) == 1, 1, negative)


def _separable_set(seed: int, n_samples: int = 200, n_features: int = 4):
    """Random points labelled by a random hyperplane, with a margin band of 0.2 left empty."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(size=n_features)
    b_true = rng.normal()
    X = rng.uniform(-2.0, 2.0, size=(4 * n_samples, n_features))
    scores = (X @ w_true + b_true) / np.linalg.norm(np.append(w_true, b_true))
    keep = np.abs(scores) > 0.1
    X, signs = X[keep][:n_samples], np.sign(scores[keep][:n_samples])
    # Novikoff (1962): at most (R / gamma)^2 updates, R = max ||[x, 1]||, gamma the margin of the
    # unit-norm separator [w_true, b_true] on the augmented inputs.
    augmented = np.hstack([X, np.ones((X.shape[0], 1))])
    radius = np.max(np.linalg.norm(augmented, axis=1))
    gamma = np.min(np.abs(scores[keep][:n_samples]))
    return X, signs, (radius / gamma) ** 2


@pytest.mark.parametrize("table", ["and", "or"])
@pytest.mark.parametrize("seed", [None, 3])
def test_rosenblatt_learns_and_or(table: str, seed: int | None) -> None:
    y = _labels(table, negative=0)
    result = train_rosenblatt(X_BOOL, y, seed=seed)
    assert result.converged
    assert 0 < result.updates < 100
    np.testing.assert_array_equal(result.predict(X_BOOL), y)


def test_rosenblatt_or_matches_hand_trace() -> None:
    # From w = 0 visiting rows in order: epoch 1 updates on (0,1) -> [0,1,1]; epoch 2 on (0,0)
    # -> [0,1,0] and (1,0) -> [1,1,1]; epoch 3 on (0,0) -> [1,1,0]; epoch 4 makes no update.
    result = train_rosenblatt(X_BOOL, _labels("or", negative=0), eta=1.0)
    assert (result.converged, result.updates, result.epochs) == (True, 4, 4)
    np.testing.assert_array_equal(result.weights, [1.0, 1.0])
    assert result.bias == 0.0


def test_rosenblatt_eta_scales_weights_but_not_mistakes() -> None:
    base = train_rosenblatt(X_BOOL, _labels("and", negative=0), eta=1.0)
    scaled = train_rosenblatt(X_BOOL, _labels("and", negative=0), eta=0.25)
    assert scaled.updates == base.updates == 10
    np.testing.assert_allclose(scaled.weights, 0.25 * base.weights)
    assert scaled.bias == pytest.approx(0.25 * base.bias)


@pytest.mark.parametrize("table", ["and", "or"])
@pytest.mark.parametrize("seed", [None, 3])
def test_hebb_learns_and_or(table: str, seed: int | None) -> None:
    y = _labels(table, negative=-1)
    result = train_hebb(X_BOOL, y, seed=seed)
    assert result.converged
    assert 0 < result.updates < 100
    np.testing.assert_array_equal(result.predict(X_BOOL), y)
    assert np.all((X_BOOL @ result.weights + result.bias) * y > 0)


def test_hebb_updates_from_zero_weights() -> None:
    # Row 1 [2, 1] scores 0 against w = 0; with `<= 0` that counts as a mistake: w = [2, 1].
    # Row 2 [-1, 1] then scores -1, right for y = -1; epoch 2 makes no update.
    result = train_hebb(np.array([[2.0], [-1.0]]), np.array([1, -1]))
    assert (result.converged, result.updates, result.epochs) == (True, 1, 2)
    np.testing.assert_array_equal(result.weights, [2.0])
    assert result.bias == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perceptrons_converge_on_random_separable_set(seed: int) -> None:
    X, signs, novikoff_bound = _separable_set(seed)
    assert X.shape == (200, 4)
    rosenblatt = train_rosenblatt(X, (signs > 0).astype(int), seed=seed)
    hebb = train_hebb(X, signs.astype(int), seed=seed)
    for result, labels in ((rosenblatt, (signs > 0).astype(int)), (hebb, signs.astype(int))):
        assert result.converged
        assert 0 < result.updates <= novikoff_bound
        assert np.mean(result.predict(X) == labels) == 1.0


@pytest.mark.parametrize("train, negative", [(train_rosenblatt, 0), (train_hebb, -1)])
def test_perceptrons_report_failure_on_xor(train, negative: int) -> None:
    y = _labels("xor", negative=negative)
    result = train(X_BOOL, y, max_epochs=50)
    assert not result.converged
    assert result.epochs == 50
    assert result.updates >= 50  # every epoch makes at least one update
    assert np.mean(result.predict(X_BOOL) == y) <= 0.75  # no line gets all four right


def test_rosenblatt_rejects_plus_minus_one_labels() -> None:
    with pytest.raises(ValueError, match=r"\{0, 1\}.*\[-1\]"):
        train_rosenblatt(X_BOOL, np.array([-1, 1, 1, 1]))


def test_hebb_rejects_zero_one_labels() -> None:
    with pytest.raises(ValueError, match=r"\{-1, 1\}.*\[0\]"):
        train_hebb(X_BOOL, np.array([0, 1, 1, 1]))


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.zeros(4), np.zeros(4), "2-D"),
        (np.zeros((4, 2)), np.zeros(3), r"shape \(4,\)"),
        (np.zeros((4, 2)), np.zeros((4, 1)), r"shape \(4,\)"),
        (np.full((4, 2), np.nan), np.zeros(4), "finite"),
    ],
)
def test_shape_and_value_errors(X: np.ndarray, y: np.ndarray, match: str) -> None:
    for train in (train_rosenblatt, train_delta_rule):
        with pytest.raises(ValueError, match=match):
            train(X, y)


def test_bad_training_arguments() -> None:
    y = _labels("and", negative=0)
    with pytest.raises(ValueError, match="eta"):
        train_rosenblatt(X_BOOL, y, eta=0.0)
    with pytest.raises(ValueError, match="max_epochs"):
        train_hebb(X_BOOL, 2 * y - 1, max_epochs=0)
    with pytest.raises(ValueError, match="epochs"):
        train_delta_rule(X_BOOL, y.astype(float), epochs=2.5)


def test_predict_checks_feature_count() -> None:
    result = train_rosenblatt(X_BOOL, _labels("and", negative=0))
    with pytest.raises(ValueError, match="2 feature columns"):
        result.predict(np.zeros((3, 3)))


@pytest.mark.parametrize("seed", [None, 7])
def test_delta_rule_matches_least_squares(seed: int | None) -> None:
    rng = np.random.default_rng(42)
    X = rng.normal(size=(200, 5))
    y = X @ rng.normal(size=5) + 0.7 + 0.3 * rng.normal(size=200)  # noisy: no exact fit
    augmented = np.hstack([X, np.ones((200, 1))])
    expected = np.linalg.lstsq(augmented, y, rcond=None)[0]
    result = train_delta_rule(X, y, eta=0.01, epochs=300, seed=seed)
    np.testing.assert_allclose(result.weights, expected[:5], atol=1e-3, rtol=0)
    assert result.bias == pytest.approx(expected[5], abs=1e-3)
    assert result.updates == 300 * 200
    least_mse = np.mean((augmented @ expected - y) ** 2)
    assert result.mse_history[-1] == pytest.approx(least_mse, rel=1e-4)
    np.testing.assert_allclose(result.predict(X), X @ result.weights + result.bias)


def test_delta_rule_reports_divergence() -> None:
    X = np.full((4, 2), 10.0)
    with pytest.raises(ValueError, match="eta=5"):
        train_delta_rule(X, np.ones(4), eta=5.0, epochs=50)
