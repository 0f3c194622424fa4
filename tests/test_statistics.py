"""Tests for agents.evaluation.statistics (rliable-style aggregates, stratified bootstrap) and
scripts.aggregate (summaries -> score matrix -> table and JSON)."""

import json

import numpy as np
import pytest

from agents.evaluation import statistics as st
from scripts import aggregate

# 2 runs x 3 tasks.
# task means: (0+2)/2 = 1, (1+3)/2 = 2, (4+0)/2 = 2
# mean = 5/3; median of [1, 2, 2] = 2
# IQM: pooled sorted [0, 0, 1, 2, 3, 4], N = 6, k = floor(6/4) = 1 -> mean [0, 1, 2, 3] = 1.5
# optimality gap: max(0, 1 - s) = [1, 0, 0, 0, 0, 1] -> 2/6
MATRIX = np.array([[0.0, 1.0, 4.0], [2.0, 3.0, 0.0]])


@pytest.mark.parametrize(
    ("name", "expected"),
    [("mean", 5 / 3), ("median", 2.0), ("iqm", 1.5), ("optimality_gap", 1 / 3)],
)
def test_aggregates_of_a_small_matrix(name, expected):
    assert st.aggregate(MATRIX, name) == pytest.approx(expected, abs=1e-12)


def test_named_aggregate_functions_match():
    assert st.aggregate_mean(MATRIX) == pytest.approx(5 / 3)
    assert st.aggregate_median(MATRIX) == pytest.approx(2.0)
    assert st.aggregate_iqm(MATRIX) == pytest.approx(1.5)
    assert st.aggregate_optimality_gap(MATRIX) == pytest.approx(1 / 3)


def test_median_of_an_even_task_count_averages_the_middle_two():
    # task means [0.1, 0.2, 0.5, 0.9] -> (0.2 + 0.5) / 2
    assert st.aggregate_median([[0.9, 0.1, 0.5, 0.2]]) == pytest.approx(0.35)


def test_optimality_gap_clips_scores_above_one():
    # max(0, 1 - s) for [1.5, 0.5, -0.5] = [0, 0.5, 1.5] -> 2/3
    assert st.aggregate_optimality_gap([[1.5, 0.5, -0.5]]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0, 30.0], 11.0),  # N = 3: k = 0, nothing trimmed
        ([4.0, 1.0, 3.0, 2.0], 2.5),  # N = 4: k = 1 -> [2, 3]
        ([1.0, 2.0, 3.0, 4.0, 50.0], 3.0),  # N = 5: k = 1 -> [2, 3, 4]
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 100.0], 4.5),  # N = 8: k = 2 -> [3, 4, 5, 6]
        ([-5.0, 0.0, 0.0, 9.0, 1.0, 1.0, 1.0], 0.6),  # N = 7: k = 1 -> [0, 0, 1, 1, 1]
    ],
)
def test_trimmed_mean_drops_whole_scores(values, expected):
    assert float(st.trimmed_mean(np.array(values), 0.25)) == pytest.approx(expected)


def test_trimmed_mean_agrees_with_scipy_when_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in range(1, 40):
        x = rng.normal(size=n)
        assert float(st.trimmed_mean(x, 0.25)) == pytest.approx(scipy_stats.trim_mean(x, 0.25))


def test_mapping_with_unequal_runs():
    # task means a: 2, b: 2 -> mean 2, median 2
    # IQM: pooled sorted [0, 0, 1, 3, 6], N = 5, k = 1 -> mean [0, 1, 3] = 4/3
    # optimality gap: a [0, 0] -> 0, b [1, 1, 0] -> 2/3; tasks weighted equally -> 1/3
    scores = {"a": [1.0, 3.0], "b": [0.0, 0.0, 6.0]}
    assert st.aggregate_mean(scores) == pytest.approx(2.0)
    assert st.aggregate_median(scores) == pytest.approx(2.0)
    assert st.aggregate_iqm(scores) == pytest.approx(4 / 3)
    assert st.aggregate_optimality_gap(scores) == pytest.approx(1 / 3)


def test_mapping_of_equal_runs_equals_the_matrix_including_the_bootstrap():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(4, 5))
    mapping = {f"game{t}": matrix[:, t] for t in range(5)}
    assert st.bootstrap_intervals(matrix, reps=300, seed=7) == st.bootstrap_intervals(
        mapping, reps=300, seed=7
    )


def test_constant_runs_give_a_zero_width_interval_at_the_point():
    matrix = np.tile([0.2, 0.7, 1.3], (3, 1))  # every run of a task has the same score
    for name, iv in st.bootstrap_intervals(matrix, reps=500, seed=1).items():
        assert iv.low == iv.point == iv.high, name
    assert st.bootstrap_ci(matrix, "mean").point == pytest.approx(2.2 / 3)
    assert st.bootstrap_ci(matrix, "median").point == pytest.approx(0.7)


def test_one_run_per_task():
    # mean 0.5, median 0.5, IQM N = 3 -> k = 0 -> 0.5, gap [0.5, 0, 2] -> 2.5/3
    matrix = np.array([[0.5, 2.0, -1.0]])
    intervals = st.bootstrap_intervals(matrix, reps=100, seed=0)
    expected = {"mean": 0.5, "median": 0.5, "iqm": 0.5, "optimality_gap": 2.5 / 3}
    for name, value in expected.items():
        iv = intervals[name]
        assert (iv.low, iv.point, iv.high) == pytest.approx((value, value, value)), name


def test_interval_contains_the_point_and_is_reproducible():
    scores = np.random.default_rng(11).gamma(1.0, 1.0, size=(5, 8))
    first = st.bootstrap_intervals(scores, reps=1000, seed=5)
    for name, iv in first.items():
        assert iv.low <= iv.point <= iv.high, name
        assert iv.high - iv.low > 0.05, name
    assert st.bootstrap_intervals(scores, reps=1000, seed=5) == first
    assert st.bootstrap_intervals(scores, reps=1000, seed=6) != first


def test_resampling_draws_runs_with_replacement_within_each_task():
    # One task with runs [0, 1]: a resample's mean is 0, 0.5 or 1 with chance 1/4, 1/2, 1/4.
    dist = st.bootstrap_distribution([[0.0], [1.0]], ["mean"], reps=20_000, seed=0)["mean"]
    assert set(np.unique(dist)) == {0.0, 0.5, 1.0}
    assert np.mean(dist == 0.5) == pytest.approx(0.5, abs=0.02)
    iv = st.bootstrap_ci([[0.0], [1.0]], "mean", reps=20_000, seed=0)
    assert (iv.low, iv.point, iv.high) == (0.0, 0.5, 1.0)
    # Two tasks, the first constant at 4: stratified resampling never moves a run across tasks,
    # so the mean over tasks is (4 + {0, 0.5, 1}) / 2 only.
    dist = st.bootstrap_distribution([[4.0, 0.0], [4.0, 1.0]], ["mean"], reps=2000, seed=0)["mean"]
    assert set(np.unique(dist)) == {2.0, 2.25, 2.5}


def test_large_suite_bootstrap_runs_in_chunks(monkeypatch):
    monkeypatch.setattr(st, "_MAX_CHUNK_ELEMENTS", 1000)  # forces 17-rep chunks for 57 x 1
    scores = np.random.default_rng(2).normal(size=(1, 57))
    chunked = st.bootstrap_distribution(scores, ["iqm"], reps=100, seed=0)["iqm"]
    # a single run per task: every resample is the data itself
    assert np.all(chunked == st.aggregate_iqm(scores))


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        (np.zeros((0, 3)), "empty matrix"),
        ([], "2-D"),
        ([1.0, 2.0], "2-D"),
        (np.zeros((2, 2, 2)), "3-D"),
        ({}, "empty mapping"),
        ({"pong": []}, "scores\\['pong'\\]"),
        ([[0.1, np.nan]], "NaN or infinite"),
        ({"pong": [0.1, np.inf]}, "task 'pong' has NaN"),
    ],
)
def test_bad_scores_raise_one_clear_message(scores, message):
    with pytest.raises(ValueError, match=message):
        st.bootstrap_ci(scores, "mean", reps=10)
    with pytest.raises(ValueError, match=message):
        st.aggregate_iqm(scores)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "max"}, "unknown aggregate 'max'; accepted: mean, median, iqm"),
        ({"reps": 0}, "reps must be a positive integer"),
        ({"confidence": 1.5}, "confidence must be in"),
    ],
)
def test_bad_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.bootstrap_ci(MATRIX, **kwargs)


# --- scripts.aggregate -------------------------------------------------------------------------
# Table (DQN Zoo): pong random -20.7, human 14.6; breakout random 1.7, human 30.5.


def write_summary(directory, **fields):
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(json.dumps(fields))
    return directory


@pytest.fixture
def runs(tmp_path):
    return [
        write_summary(tmp_path / "pong0", env="ALE/Pong-v5", seed=0, eval_human_normalized=0.25),
        # raw mean only: (-3.05 + 20.7) / (14.6 + 20.7) = 0.5
        write_summary(tmp_path / "pong1", env="PongNoFrameskip-v4", seed=1, eval_mean_return=-3.05),
        # an evaluation directory: (30.5 - 1.7) / (30.5 - 1.7) = 1
        write_summary(tmp_path / "eval", env="Breakout", mean_return=30.5, human_normalized=1.0),
    ]


def test_aggregate_groups_games_and_writes_json(runs, tmp_path, capsys):
    out = tmp_path / "out" / "aggregate.json"
    assert aggregate.main([*map(str, runs), "--json", str(out), "--bootstrap-reps", "500"]) == 0
    result = json.loads(out.read_text())
    assert result["games"]["pong"]["scores"] == pytest.approx([0.25, 0.5])
    assert result["games"]["breakout"] == {"runs": 1, "mean": 1.0, "scores": [1.0]}
    # task means pong 0.375, breakout 1 -> mean = median = 0.6875
    # IQM: N = 3, k = 0 -> (0.25 + 0.5 + 1) / 3; gap: pong (0.75 + 0.5) / 2, breakout 0 -> 0.3125
    expected = {"mean": 0.6875, "median": 0.6875, "iqm": 1.75 / 3, "optimality_gap": 0.3125}
    for name, value in expected.items():
        iv = result["aggregates"][name]
        assert iv["point"] == pytest.approx(value), name
        assert iv["low"] <= iv["point"] <= iv["high"], name
    # breakout is constant (one run); pong resample means are 0.25, 0.375 or 0.5, so the mean
    # over games is in [0.625, 0.75], each end with chance 1/4
    assert result["aggregates"]["mean"]["low"] == pytest.approx(0.625)
    assert result["aggregates"]["mean"]["high"] == pytest.approx(0.75)
    assert (result["reps"], result["seed"], result["human_score_set"]) == (500, 0, "dqn_zoo")
    printed = capsys.readouterr().out
    assert "aggregate" in printed and "CI low" in printed and "CI high" in printed
    assert "2 game(s), 1-2 run(s) each" in printed
    assert any(line.startswith("iqm") and "0.583" in line for line in printed.splitlines())
    assert not list(out.parent.glob(".*.tmp"))


def test_score_input_is_a_matrix_when_run_counts_are_equal():
    matrix = aggregate.score_input({"breakout": [1.0, 2.0], "pong": [3.0, 4.0]})
    np.testing.assert_array_equal(matrix, [[1.0, 3.0], [2.0, 4.0]])
    assert isinstance(aggregate.score_input({"a": [1.0], "b": [1.0, 2.0]}), dict)


def test_aggregate_is_reproducible_with_a_seed(runs):
    first = aggregate.aggregate_runs(runs, reps=300, seed=4)
    assert aggregate.aggregate_runs(runs, reps=300, seed=4) == first


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"env": "CartPole-v1", "eval_mean_return": 500.0}, "'CartPole-v1' has no human"),
        ({"env": "ALE/Pong-v5", "seed": 0}, "no evaluation score"),
        ({"seed": 0}, "no 'env' field"),
        (None, "no summary.json"),
    ],
)
def test_aggregate_bad_input_exits_2_with_one_line(tmp_path, capsys, fields, message):
    run = tmp_path / "run"
    if fields is None:
        run.mkdir()
    else:
        write_summary(run, **fields)
    assert aggregate.main([str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("aggregate: error:") and message in err
