"""Random and human reference scores for the 57 Atari games, and the human-normalized score.

The table (``envs/data/atari57_scores.csv``) holds the values of the DQN Zoo
(google-deepmind/dqn_zoo, ``dqn_zoo/atari_data.py``): scores measured with up to 30 no-op starts
and episodes capped at 108,000 emulator frames. Its human column is the later, widely used set
(Pong 14.6, Breakout 30.5), not the column of Mnih et al. 2015 (Pong 9.3, Breakout 31.8); reports
name the set with ``HUMAN_SCORE_SET``.

The human-normalized score is ``(score - random) / (human - random)``: 0 plays like the uniform
random policy, 1 like the human tester.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import re
from importlib import resources

HUMAN_SCORE_SET = "dqn_zoo"
"""Names the random/human score set used for normalization (the DQN Zoo table)."""

_TABLE_RESOURCE = ("data", "atari57_scores.csv")
_EXPECTED_GAMES = 57

# Gymnasium/ALE id decorations around the game name: "ALE/" namespace, "-v5" version,
# "NoFrameskip"/"Deterministic" (v0/v4 ids) and "-ram" observation variants.
_ID_PREFIX = re.compile(r"^ALE/", re.IGNORECASE)
_ID_SUFFIXES = (
    re.compile(r"-v\d+$", re.IGNORECASE),
    re.compile(r"(NoFrameskip|Deterministic)$", re.IGNORECASE),
    re.compile(r"-ram$", re.IGNORECASE),
)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, tuple[float, float]]:
    """Game key -> (random score, human score), read once from the package data."""
    resource = resources.files("envs")
    for part in _TABLE_RESOURCE:
        resource = resource / part
    rows = csv.DictReader(io.StringIO(resource.read_text(encoding="utf-8")))
    table = {row["game"]: (float(row["random"]), float(row["human"])) for row in rows}
    if len(table) != _EXPECTED_GAMES:
        raise RuntimeError(f"score table has {len(table)} games, expected {_EXPECTED_GAMES}")
    return table


def _compact(name: str) -> str:
    """Lower case, letters and digits only, no possessive: "Montezuma's" -> 'montezuma'."""
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("'s", ""))


@functools.lru_cache(maxsize=1)
def _compact_index() -> dict[str, str]:
    """Compact spelling -> table key (e.g. 'montezumarevenge' -> 'montezuma_revenge')."""
    return {_compact(game): game for game in _table()}


def _strip_env_id(name: str) -> str:
    """Remove the namespace, version and variant decorations of a gymnasium Atari id."""
    base = _ID_PREFIX.sub("", name.strip())
    for pattern in _ID_SUFFIXES:
        base = pattern.sub("", base)
    return base


def _unknown_game_error(name: object, compact: str) -> ValueError:
    index = _compact_index()
    close = [index[match] for match in difflib.get_close_matches(compact, index, n=3, cutoff=0.6)]
    if close:
        hint = "closest table names: " + ", ".join(repr(game) for game in close)
    else:
        hint = f"accepted are the {len(index)} games in envs.scores.GAMES, e.g. 'pong', 'breakout'"
    return ValueError(
        f"no random/human scores for game {name!r} (the {HUMAN_SCORE_SET} 57-game table); {hint}; "
        "spellings such as 'pong', 'Pong', 'ALE/Pong-v5' and 'PongNoFrameskip-v4' are accepted"
    )


def compact_game_name(name: str) -> str:
    """Any spelling or gymnasium id of a game reduced to lower-case letters and digits:
    'ALE/SpaceInvaders-v5', 'space_invaders', 'SpaceInvadersNoFrameskip-v4' -> 'spaceinvaders'."""
    return _compact(_strip_env_id(name))


def normalize_game_name(name: str) -> str:
    """Return the table key (snake_case, e.g. 'space_invaders') for any common spelling.

    Accepts plain names ('Pong', 'pong', 'SpaceInvaders', 'space_invaders', 'Space Invaders') and
    gymnasium ids ('ALE/Pong-v5', 'PongNoFrameskip-v4', 'ALE/Pong-ram-v5'). Raises ValueError
    naming the closest table names when the game is not among the 57.
    """
    if not isinstance(name, str):
        raise ValueError(f"game name must be a string such as 'pong', got {name!r}")
    compact = compact_game_name(name)
    game = _compact_index().get(compact)
    if game is None:
        raise _unknown_game_error(name, compact)
    return game


def has_scores(game: str) -> bool:
    """True when the game (any spelling) is in the random/human table."""
    try:
        normalize_game_name(game)
    except ValueError:
        return False
    return True


def random_score(game: str) -> float:
    """Mean score of the uniform random policy for the game (any spelling)."""
    return _table()[normalize_game_name(game)][0]


def human_score(game: str) -> float:
    """Human tester's score for the game (any spelling), from the DQN Zoo set."""
    return _table()[normalize_game_name(game)][1]


def human_normalized(game: str, score: float) -> float:
    """(score - random) / (human - random) for the game: 0 at random play, 1 at human level."""
    random, human = _table()[normalize_game_name(game)]
    return (float(score) - random) / (human - random)


GAMES: tuple[str, ...] = tuple(sorted(_table()))
"""The 57 table keys, sorted."""
