"""Evaluation counts the actions of the episodes it reports, and says the most played ones."""

from __future__ import annotations

import numpy as np

from agents.dqn.loop import evaluation_line
from agents.evaluation.evaluate import action_shares, evaluate


def test_the_counts_cover_every_step_of_the_reported_episodes_and_no_other():
    # Two envs share 5 episodes (3 and 2): env 0 always pushes left, env 1 always right, so
    # CartPole falls within a few dozen steps; env 1 steps on after its 2 episodes while env 0
    # plays its third, and those steps belong to no reported episode.
    def by_row(obs, epsilon):
        return np.arange(len(obs)) % 2

    result = evaluate(by_row, "CartPole-v1", 5, 0.0, num_envs=2, max_steps_per_episode=500)
    counts = result["action_counts"]
    assert len(counts) == 2 and result["action_names"] is None  # CartPole names no actions
    assert sum(counts) == sum(result["lengths"])
    assert min(counts) > 0  # both streams played


def test_a_one_button_policy_on_the_fake_game_is_counted_by_name():
    def fire(obs, epsilon):
        return np.ones(len(obs), dtype=np.int64)

    result = evaluate(fire, "fake", 3, 0.0, seed=0)
    steps = sum(result["lengths"])
    assert result["action_counts"] == [0, steps, 0, 0]
    assert result["action_names"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert action_shares(result["action_counts"], result["action_names"]) == (
        "FIRE 100.0%, NOOP 0.0%, RIGHT 0.0%"
    )


def test_action_shares_lists_the_most_played_first_ties_by_index():
    assert action_shares([2, 97, 1], ["NOOP", "UP", "DOWN"]) == "UP 97.0%, NOOP 2.0%, DOWN 1.0%"
    assert action_shares([1, 3, 3, 1], most=2) == "action 1 37.5%, action 2 37.5%"
    assert action_shares([0, 0, 0], ["A", "B", "C"]) == ""
    assert action_shares([], None) == ""


def test_the_final_evaluation_line_says_the_most_played_actions():
    result = {"mean_return": 0.0, "std_return": 0.0, "episodes": 100, "epsilon": 0.001,
              "protocol": "atari100k", "action_counts": [1_950, 110, 40_940],
              "action_names": ["NOOP", "UP", "DOWN"]}  # fmt: skip
    head = "return 0.00 +- 0.00 over 100 episodes (epsilon 0.001, atari100k protocol)"
    assert evaluation_line(result, 100_000, "Freeway", final=True) == (
        f"final eval @ step 100,000: {head}; most played: DOWN 95.2%, NOOP 4.5%, UP 0.3%"
    )
    assert evaluation_line(result, 50_000, "Freeway") == f"eval @ step 50,000: {head}"
