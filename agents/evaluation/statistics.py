"""Aggregate scores over a suite of games with stratified-bootstrap confidence intervals.

Follows Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS), and the definitions of its reference library ``rliable`` (metrics.py,
library.py), without depending on it: rliable pulls in arch, statsmodels, pandas and seaborn.

Input: human-normalized scores as a matrix ``scores[run, task]`` (runs = seeds, tasks = games),
or a mapping ``{task: 1-D array of run scores}`` when games have different run counts. A matrix
is the special case where every task has the same run count; both give identical numbers.

Aggregates (a task's "mean score" is the mean over its runs):
- ``mean``: mean over tasks of the per-task mean scores (rliable ``aggregate_mean``).
- ``median``: median over tasks of the per-task mean scores (rliable ``aggregate_median``, which
  takes ``np.median(np.mean(scores, axis=0))``; with an even task count, the mean of the two
  middle values).
- ``iqm``: interquartile mean of all run x task scores pooled: sort the ``N`` pooled scores,
  drop ``k = floor(N / 4)`` from each end and average the remaining ``N - 2k``. This is
  ``scipy.stats.trim_mean(x, 0.25)`` on the flattened scores, which rliable ``aggregate_iqm``
  calls: whole scores are trimmed, never fractions of one (N = 6 drops 1 at each end, N < 4
  drops nothing).
- ``optimality_gap``: mean of ``max(0, 1 - score)`` (rliable with ``gamma = 1``). For a matrix
  this is the mean over all runs and tasks; for unequal run counts each task is weighted equally
  (mean over tasks of the per-task mean), which is the same number for a matrix.

Confidence intervals: stratified bootstrap (rliable ``StratifiedBootstrap``, task_bootstrap
False): each of ``reps`` resamples draws, independently within each task, as many runs as the
task has, with replacement; the aggregate of each resample gives a bootstrap distribution, and
the interval is its percentile interval (2.5th and 97.5th percentiles for 95%, numpy's linear
interpolation, as arch's ``conf_int(method="percentile")``). Resamples are drawn all at once
per task from a seeded ``numpy.random.Generator`` (vectorised over reps, chunked to bound memory).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ScoreInput = np.ndarray | Sequence[Sequence[float]] | Mapping[str, Sequence[float] | np.ndarray]
"""A ``[run, task]`` matrix, or ``{task: run scores}`` for unequal run counts."""

# Batched aggregates: a list of per-task arrays of shape (batch, runs_of_task) -> (batch,).
BatchedAggregate = Callable[[list[np.ndarray]], np.ndarray]

_MAX_CHUNK_ELEMENTS = 4_000_000  # resampled scores held at once (32 MB of float64)


def task_scores(scores: ScoreInput) -> list[np.ndarray]:
    """Validate ``scores`` and return one 1-D float64 array of run scores per task.

    Raises ValueError for an empty input, a task without runs, NaN or infinite scores, or a
    matrix that is not 2-D.
    """
    if isinstance(scores, Mapping):
        if not scores:
            raise ValueError("scores: empty mapping; give {task: run scores} with >= 1 task")
        columns = []
        for task, values in scores.items():
            column = np.asarray(values, dtype=np.float64)
            if column.ndim != 1 or column.size == 0:
                raise ValueError(
                    f"scores[{task!r}]: expected a non-empty 1-D array of run scores, "
                    f"got shape {column.shape}"
                )
            columns.append(column)
        names = list(scores)
    else:
        matrix = np.asarray(scores, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(
                f"scores: expected a 2-D matrix [run, task] (or a {{task: runs}} mapping), got "
                f"{matrix.ndim}-D shape {matrix.shape}; reshape one game's runs with x[:, None]"
            )
        if matrix.size == 0:
            raise ValueError(f"scores: empty matrix of shape {matrix.shape}; need >= 1 run x task")
        columns = [matrix[:, t] for t in range(matrix.shape[1])]
        names = list(range(matrix.shape[1]))
    for name, column in zip(names, columns):
        if not np.all(np.isfinite(column)):
            raise ValueError(
                f"scores: task {name!r} has NaN or infinite scores {column.tolist()}; "
                "only finite numbers are accepted"
            )
    return columns


def trimmed_mean(values: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """Mean along the last axis after dropping ``floor(proportion * N)`` smallest and largest.

    Same definition as ``scipy.stats.trim_mean(values, proportion, axis=-1)``: ``N`` scores, ``k =
    int(proportion * N)`` whole scores trimmed at each end, mean of the middle ``N - 2k``.
    """
    if not 0.0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    k = int(proportion * n)
    middle = np.sort(values, axis=-1)[..., k : n - k]
    return middle.mean(axis=-1)


def _task_means(batch: list[np.ndarray]) -> np.ndarray:
    return np.stack([b.mean(axis=-1) for b in batch], axis=-1)


def _batched_mean(batch: list[np.ndarray]) -> np.ndarray:
    return _task_means(batch).mean(axis=-1)


def _batched_median(batch: list[np.ndarray]) -> np.ndarray:
    return np.median(_task_means(batch), axis=-1)


def _batched_iqm(batch: list[np.ndarray]) -> np.ndarray:
    return trimmed_mean(np.concatenate(batch, axis=-1), 0.25)


def _batched_optimality_gap(batch: list[np.ndarray]) -> np.ndarray:
    return _task_means([np.maximum(0.0, 1.0 - b) for b in batch]).mean(axis=-1)


AGGREGATES: dict[str, BatchedAggregate] = {
    "mean": _batched_mean,
    "median": _batched_median,
    "iqm": _batched_iqm,
    "optimality_gap": _batched_optimality_gap,
}
"""Aggregate name -> function of per-task arrays shaped (batch, runs) returning (batch,)."""


def _batched(name: str) -> BatchedAggregate:
    if name not in AGGREGATES:
        raise ValueError(f"unknown aggregate {name!r}; accepted: {', '.join(AGGREGATES)}")
    return AGGREGATES[name]


def aggregate(scores: ScoreInput, name: str) -> float:
    """The point estimate of aggregate ``name`` (one of ``AGGREGATES``) on ``scores``."""
    fn = _batched(name)
    return float(fn([column[None, :] for column in task_scores(scores)])[0])


def aggregate_mean(scores: ScoreInput) -> float:
    """Mean over tasks of the per-task mean scores."""
    return aggregate(scores, "mean")


def aggregate_median(scores: ScoreInput) -> float:
    """Median over tasks of the per-task mean scores."""
    return aggregate(scores, "median")


def aggregate_iqm(scores: ScoreInput) -> float:
    """Interquartile mean: 25% trimmed mean of all run x task scores pooled."""
    return aggregate(scores, "iqm")


def aggregate_optimality_gap(scores: ScoreInput) -> float:
    """Mean of max(0, 1 - score), each task weighted equally."""
    return aggregate(scores, "optimality_gap")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval ``[low, high]``."""

    point: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"point": self.point, "low": self.low, "high": self.high}


def bootstrap_distribution(
    scores: ScoreInput, names: Sequence[str], reps: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each aggregate in ``names`` on ``reps`` stratified resamples: {name: array (reps,)}.

    All aggregates see the same resamples. Runs are redrawn with replacement within each task.
    """
    if isinstance(reps, bool) or not isinstance(reps, int | np.integer) or reps < 1:
        raise ValueError(f"reps must be a positive integer, got {reps!r}")
    columns = task_scores(scores)
    fns = {name: _batched(name) for name in names}
    rng = np.random.default_rng(seed)
    total_runs = sum(c.size for c in columns)
    chunk = max(1, _MAX_CHUNK_ELEMENTS // total_runs)
    out = {name: np.empty(reps) for name in names}
    for start in range(0, reps, chunk):
        size = min(chunk, reps - start)
        batch = [c[rng.integers(0, c.size, size=(size, c.size))] for c in columns]
        for name, fn in fns.items():
            out[name][start : start + size] = fn(batch)
    return out


def bootstrap_intervals(
    scores: ScoreInput,
    names: Sequence[str] = tuple(AGGREGATES),
    reps: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Point estimate and stratified-bootstrap percentile interval for each aggregate in
    ``names``: {name: Interval}. Same ``seed`` -> same intervals."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")
    tail_percent = 100.0 * (1.0 - confidence) / 2.0
    distributions = bootstrap_distribution(scores, names, reps, seed)
    intervals = {}
    for name, values in distributions.items():
        low, high = np.percentile(values, [tail_percent, 100.0 - tail_percent])
        intervals[name] = Interval(aggregate(scores, name), float(low), float(high))
    return intervals


def bootstrap_ci(
    scores: ScoreInput, name: str = "iqm", reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Point estimate and stratified-bootstrap percentile interval of one aggregate."""
    return bootstrap_intervals(scores, (name,), reps, seed, confidence)[name]
