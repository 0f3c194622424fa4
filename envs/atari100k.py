"""The Atari 100k benchmark: its 26 games, their normalization scores and published per-game means.

The table (``envs/data/atari100k_scores.csv``, a copy of the project's
``reference/atari100k_scores.csv``) has one row per game:

- ``random``, ``human``: the Atari-100k normalization values (identical in rliable's
  ``deep_rl_precipice_colab.ipynb``, Dopamine's ``labs/atari_100k/normalization_utils.py`` and
  IRIS's ``results/data/{RANDOM,HUMAN}.json``). For these 26 games they equal the DQN Zoo set of
  ``envs.scores`` (a test checks it); reports still name the set (``SCORE_SET``).
- ``der``: Data-Efficient Rainbow as first published (van Hasselt et al. 2019, 20-step returns).
- ``drq_eps``: DrQ(epsilon), means of 100 runs per game (Agarwal et al. 2021, "Deep Reinforcement
  Learning at the Edge of the Statistical Precipice").
- ``spr``: SPR (Schwarzer et al. 2021), the 100-run re-evaluation of Agarwal et al. 2021.
- ``bbf``: BBF (Schwarzer et al. 2023), the paper's table (replay ratio 8).

Protocol of every column (Dopamine ``labs/atari_100k``, ``envs.atari`` protocol ``atari100k``):
100k agent steps of training, no sticky actions, up to 30 no-op starts, life loss terminal in
training only, whole-game raw scores of 100 evaluation episodes at epsilon 0.001, episodes capped
at 27,000 agent steps.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources

from envs.scores import compact_game_name

SCORE_SET = "atari100k"
"""Names the random/human set these normalizations use (the Atari-100k papers' values)."""

PUBLISHED = {
    "der": "DER (van Hasselt et al. 2019)",
    "drq_eps": "DrQ(eps) (Agarwal et al. 2021)",
    "spr": "SPR (Schwarzer et al. 2021; Agarwal et al. 2021)",
    "bbf": "BBF (Schwarzer et al. 2023)",
}
"""Column of the table -> the published agent and its source."""

EIGHT_GAMES = (
    "Boxing", "Breakout", "Freeway", "Kangaroo", "MsPacman", "Pong", "RoadRunner", "Seaquest",
)  # fmt: skip
"""The 8 games of the CPU reproduction reported in the README, in that order."""

_EXPECTED_GAMES = 26


@functools.lru_cache(maxsize=1)
def table() -> dict[str, dict[str, float]]:
    """Game (the table's spelling, e.g. 'MsPacman') -> {'random', 'human', 'der', 'drq_eps',
    'spr', 'bbf'}, in the table's order."""
    text = (resources.files("envs") / "data" / "atari100k_scores.csv").read_text(encoding="utf-8")
    rows = {
        row["game"]: {key: float(value) for key, value in row.items() if key != "game"}
        for row in csv.DictReader(io.StringIO(text))
    }
    if len(rows) != _EXPECTED_GAMES:
        raise RuntimeError(f"Atari-100k table has {len(rows)} games, expected {_EXPECTED_GAMES}")
    return rows


GAMES: tuple[str, ...] = tuple(table())
"""The 26 games of Atari 100k (Kaiser et al. 2019), alphabetical as the papers list them."""


def game_name(name: str) -> str:
    """The table's spelling of an Atari-100k game for any common spelling ('ms_pacman',
    'ALE/MsPacman-v5' -> 'MsPacman'); ValueError naming the 26 games otherwise."""
    index = {compact_game_name(game): game for game in GAMES}
    key = compact_game_name(name)
    if key not in index:
        raise ValueError(
            f"{name!r} is not one of the 26 Atari-100k games; accepted: {', '.join(GAMES)}"
        )
    return index[key]


def normalized(game: str, score: float) -> float:
    """Human-normalized score with the Atari-100k random and human scores:
    (score - random) / (human - random)."""
    row = table()[game_name(game)]
    return (float(score) - row["random"]) / (row["human"] - row["random"])


def published(game: str, column: str) -> float:
    """The published per-game mean of ``column`` (one of ``PUBLISHED``) for ``game``."""
    if column not in PUBLISHED:
        raise ValueError(f"unknown column {column!r}; accepted: {', '.join(PUBLISHED)}")
    return table()[game_name(game)][column]
