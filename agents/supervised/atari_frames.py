"""Atari frames as a supervised dataset: which game is this screen from?

Observations of K Atari games under a uniform random policy, labelled by game: the (4, 84, 84)
uint8 stacks of the ``nature`` protocol (Mnih et al. 2015) that the DQN sees, played through
``envs.atari``. Test frames come from other episodes (other env seeds) than training frames.
Registered as ``atari-frames`` in ``agents.supervised.datasets``, which holds ``Dataset``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from agents.supervised.data import Dataset
from envs.atari import canonical_game_id, make_atari_env, rom_name

ATARI_FRAME_GAMES = ("Pong", "Breakout", "SpaceInvaders", "Seaquest", "MsPacman")
ATARI_FRAME_SPLITS = ("train", "test")


def atari_frame_seed(seed: int, game: str, split: str) -> int:
    """The env seed of one game's ``split`` ("train" or "test") in ``load_atari_frames``.

    Derived from (seed, ROM name, split) by numpy's SeedSequence: train and test play different
    episodes, and a game's frames do not depend on which other games are loaded with it.
    """
    if seed < 0 or split not in ATARI_FRAME_SPLITS:
        raise ValueError(f"need seed >= 0 and split in {ATARI_FRAME_SPLITS}, got {seed}, {split!r}")
    key = [seed, zlib.crc32(rom_name(game).encode()), ATARI_FRAME_SPLITS.index(split)]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def collect_atari_frames(game: str, count: int, seed: int, keep_every_steps: int = 4) -> np.ndarray:
    """``count`` random-policy observations of ``game`` as (count, 4, 84, 84) uint8 stacks.

    The env is ``make_atari_env(game, protocol="nature", mode="eval", seed=seed)``, the stacks
    the DQN sees; episodes follow one another, and every ``keep_every_steps``-th observation is
    kept (consecutive stacks share three frames, so keeping all would add near-copies).
    """
    if count < 0 or keep_every_steps < 1:
        raise ValueError(
            f"need count >= 0 and keep_every_steps >= 1, got {count}, {keep_every_steps}"
        )
    env = make_atari_env(game, protocol="nature", mode="eval", seed=seed)
    rng = np.random.default_rng(seed)  # the policy's own generator: reproducible per seed
    frames = np.empty((count, *env.observation_space.shape), np.uint8)
    kept = steps = 0
    try:
        env.reset()
        while kept < count:
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            steps += 1
            if steps % keep_every_steps == 0:
                frames[kept] = obs
                kept += 1
            if terminated or truncated:
                env.reset()
    finally:
        env.close()
    return frames


def load_atari_frames(
    games: Sequence[str] = ATARI_FRAME_GAMES,
    frames_per_game: int = 400,
    test_frames_per_game: int = 200,
    keep_every_steps: int = 4,
    seed: int = 0,
) -> Dataset:
    """Which game is this? Random-policy observations of ``games``, label = index in ``games``.

    ``frames_per_game`` training and ``test_frames_per_game`` test observations per game (one
    observation = one (4, 84, 84) stack, kept every ``keep_every_steps`` agent steps), stored as
    uint8; the trainer divides by 255 once per batch. Test frames come from a separately seeded
    env (``atari_frame_seed``), so from other episodes than the training frames: frames of one
    episode a few steps apart are near-copies and would make the test score meaningless. No
    flips are declared. Class names are the games' gymnasium names without "ALE/" and "-v5".
    """
    # rom_name raises on an unknown game, naming the closest ones; a bare string is one game.
    roms = [] if isinstance(games, str) else [rom_name(g) for g in games]
    if len(roms) < 2 or len(set(roms)) != len(roms):
        raise ValueError(
            f"atari-frames needs a sequence of two or more different games, got {games!r}"
        )
    sizes = {"frames_per_game": frames_per_game, "test_frames_per_game": test_frames_per_game}
    for name, value in {**sizes, "keep_every_steps": keep_every_steps}.items():
        if value < 1:
            raise ValueError(f"atari-frames: bad {name} {value!r}; accepted: >= 1")
    if seed < 0:
        raise ValueError(f"atari-frames: bad seed {seed!r}; accepted: >= 0")
    rng = np.random.default_rng(seed)
    splits = []
    for split, count in zip(ATARI_FRAME_SPLITS, sizes.values()):
        x = np.concatenate(
            [collect_atari_frames(g, count, atari_frame_seed(seed, g, split), keep_every_steps)
             for g in games]
        )  # fmt: skip
        y = np.repeat(np.arange(len(games), dtype=np.int64), count)
        order = rng.permutation(len(x))
        splits += [x[order], y[order]]
    names = tuple(re.sub(r"^ALE/|-v\d+$", "", canonical_game_id(g)) for g in games)
    return Dataset("atari-frames", *splits, class_names=names)
