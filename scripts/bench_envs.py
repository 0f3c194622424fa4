"""The ``envs`` benchmark suite (``python -m scripts.benchmark envs``): agent steps per second of
the single-env chain and of ale_py's vector env on Pong and Breakout, random actions, ``nature``
protocol, train mode; ``vs_single`` is the vector env's throughput over the single env's."""

from __future__ import annotations

import time

import numpy as np

from envs.atari import FRAME_SKIP, make_atari_env, make_atari_vector_env

Results = dict[str, dict[str, float]]

BENCH_GAMES = ("Pong", "Breakout")
VECTOR_SIZES = (1, 2, 4, 8)
DEFAULT_ENV_STEPS = 2_000


def single_env_steps_per_s(game: str, steps: int, seed: int = 0) -> float:
    """Agent steps per second of the single-env chain, resetting as a training loop would."""
    env = make_atari_env(game, "nature", "train", seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(env.action_space.n, size=steps)
    env.reset()
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def vector_env_steps_per_s(game: str, num_envs: int, steps: int, seed: int = 0) -> float:
    """Agent steps per second (summed over envs) of ale_py's vector env, `steps` batch steps."""
    env = make_atari_vector_env(game, num_envs, "nature", "train", seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(env.single_action_space.n, size=(steps, num_envs))
    env.reset()
    start = time.perf_counter()
    for batch in actions:
        env.step(batch)
    elapsed = time.perf_counter() - start
    env.close()
    return steps * num_envs / elapsed


def envs_suite(steps: int | None = None) -> Results:
    """Single env and vector env throughput on each benchmark game (see the module docstring)."""
    steps = DEFAULT_ENV_STEPS if steps is None else steps
    results: Results = {}
    for game in BENCH_GAMES:
        single = single_env_steps_per_s(game, steps)
        results[f"{game}/single"] = _row(single, 1.0)
        for num_envs in VECTOR_SIZES:
            rate = vector_env_steps_per_s(game, num_envs, steps)
            results[f"{game}/vector-N{num_envs}"] = _row(rate, rate / single)
    return results


def _row(steps_per_s: float, vs_single: float) -> dict[str, float]:
    return {
        "steps_per_s": round(steps_per_s, 1),
        "frames_per_s": round(steps_per_s * FRAME_SKIP, 1),
        "vs_single": round(vs_single, 2),
    }
