"""Tests for envs.scores: the DQN Zoo random/human table, name spellings, normalization."""

import csv
from pathlib import Path

import pytest

from envs import scores

REFERENCE_CSV = Path(__file__).resolve().parents[1] / "envs" / "data" / "atari57_scores.csv"


def test_table_has_57_games_with_human_above_random():
    assert len(scores.GAMES) == 57
    assert len(set(scores.GAMES)) == 57
    assert scores.GAMES == tuple(sorted(scores.GAMES))
    for game in scores.GAMES:
        assert scores.human_score(game) > scores.random_score(game), game


def test_table_matches_the_shipped_csv_row_by_row():
    with REFERENCE_CSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 57
    for row in rows:
        assert scores.random_score(row["game"]) == float(row["random"])
        assert scores.human_score(row["game"]) == float(row["human"])


@pytest.mark.parametrize(
    ("game", "random", "human"),
    [
        ("pong", -20.7, 14.6),
        ("breakout", 1.7, 30.5),
        ("space_invaders", 148.0, 1668.7),
        ("montezuma_revenge", 0.0, 4753.3),
        ("skiing", -17098.1, -4336.9),
        ("video_pinball", 16256.9, 17667.9),
    ],
)
def test_exact_values(game, random, human):
    assert scores.random_score(game) == random
    assert scores.human_score(game) == human


def test_human_column_is_the_later_set_not_nature_2015():
    # Nature 2015 lists Pong 9.3 and Breakout 31.8; the DQN Zoo set has 14.6 and 30.5.
    assert scores.human_score("Pong") != 9.3
    assert scores.human_score("Breakout") != 31.8
    assert scores.HUMAN_SCORE_SET == "dqn_zoo"


@pytest.mark.parametrize("game", ["pong", "breakout", "skiing", "double_dunk", "enduro"])
def test_normalized_is_zero_at_random_and_one_at_human(game):
    assert scores.human_normalized(game, scores.random_score(game)) == pytest.approx(0.0, abs=1e-12)
    assert scores.human_normalized(game, scores.human_score(game)) == pytest.approx(1.0, abs=1e-12)


def test_normalized_hand_computed_values():
    # Pong: (21 - (-20.7)) / (14.6 - (-20.7)) = 41.7 / 35.3
    assert scores.human_normalized("Pong", 21) == pytest.approx(41.7 / 35.3, rel=1e-12)
    assert scores.human_normalized("Pong", 21) == pytest.approx(1.181303, abs=1e-6)
    # Breakout: (401.2 - 1.7) / (30.5 - 1.7) = 399.5 / 28.8
    assert scores.human_normalized("Breakout", 401.2) == pytest.approx(13.871528, abs=1e-6)
    # Below random is negative: Pong -21 -> -0.3 / 35.3
    assert scores.human_normalized("ALE/Pong-v5", -21.0) == pytest.approx(-0.008499, abs=1e-6)


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("Pong", "pong"),
        ("pong", "pong"),
        ("ALE/Pong-v5", "pong"),
        ("PongNoFrameskip-v4", "pong"),
        ("PongDeterministic-v4", "pong"),
        ("Pong-v0", "pong"),
        ("ALE/Pong-ram-v5", "pong"),
        ("Pong-ramNoFrameskip-v4", "pong"),
        ("  pong  ", "pong"),
        ("SpaceInvaders", "space_invaders"),
        ("space_invaders", "space_invaders"),
        ("ALE/SpaceInvaders-v5", "space_invaders"),
        ("Space Invaders", "space_invaders"),
        ("SPACE-INVADERS", "space_invaders"),
        ("MontezumaRevenge", "montezuma_revenge"),
        ("montezuma_revenge", "montezuma_revenge"),
        ("Montezuma's Revenge", "montezuma_revenge"),
        ("MontezumaRevengeNoFrameskip-v4", "montezuma_revenge"),
        ("UpNDown", "up_n_down"),
        ("KungFuMaster", "kung_fu_master"),
        ("MsPacman", "ms_pacman"),
        ("Jamesbond", "jamesbond"),
        ("ALE/PrivateEye-v5", "private_eye"),
        ("Qbert", "qbert"),
    ],
)
def test_spelling_variants(spelling, key):
    assert scores.normalize_game_name(spelling) == key
    assert scores.has_scores(spelling)


@pytest.mark.atari
def test_every_table_game_has_a_registered_ale_v5_id_that_maps_back():
    gymnasium = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    gymnasium.register_envs(ale_py)
    ids = [
        env_id
        for env_id in gymnasium.registry
        if env_id.startswith("ALE/") and env_id.endswith("-v5") and "-ram" not in env_id
    ]
    mapped = {scores.normalize_game_name(env_id) for env_id in ids if scores.has_scores(env_id)}
    assert mapped == set(scores.GAMES)


def test_unknown_game_error_names_it_and_the_closest_table_names():
    with pytest.raises(ValueError) as caught:
        scores.human_normalized("Pongg", 3.0)
    message = str(caught.value)
    assert "'Pongg'" in message
    assert "closest table names: 'pong'" in message

    with pytest.raises(ValueError, match=r"'SpaceInvader'.*'space_invaders'"):
        scores.random_score("SpaceInvader")
    with pytest.raises(ValueError, match=r"'ALE/Breakot-v5'.*'breakout'"):
        scores.human_score("ALE/Breakot-v5")


def test_unknown_game_without_close_match_points_to_the_game_list():
    with pytest.raises(ValueError, match=r"'Zzzzzzzz'.*57 games in envs\.scores\.GAMES"):
        scores.normalize_game_name("Zzzzzzzz")


@pytest.mark.parametrize("name", ["Pooyan", "", "ALE/", 7, None])
def test_has_scores_is_false_outside_the_table(name):
    assert not scores.has_scores(name)
    with pytest.raises(ValueError):
        scores.normalize_game_name(name)
