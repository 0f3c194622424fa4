"""Video of an evaluation episode: the emulator's full-colour screen (or a gymnasium env's
``rgb_array`` render) of one separate evaluation env, never the 84x84 observations, written as an
mp4 at the game's real speed (``envs.video.record_episode``).

``make_recording_env`` builds that env with the caps of an evaluation; ``recording_problem`` says
in words why an env cannot be recorded, so ``--record`` and ``--record-video`` are refused (or
warned of) before any work starts; ``record_video`` records one episode of an agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.evaluation.evaluate import step_cap_kwargs
from agents.run.interrupts import pause_point

RECORDABLE = (
    "Atari games, fake, and gymnasium envs that render rgb_array frames (CartPole-v1, "
    "Acrobot-v1, MountainCar-v0...)"
)
"""What ``--record`` and ``--record-video`` accept, as their messages name it."""


def make_recording_env(
    env_id: str,
    protocol: str = "nature",
    seed: int | None = None,
    max_episode_frames: int = 108_000,
    max_episode_steps: int | None = None,
) -> Any:
    """One evaluation env of ``env_id`` that renders rgb frames (``render_mode="rgb_array"``), with
    the caps of ``evaluate``: ``max_episode_frames`` for Atari games and ``fake`` (in the
    protocol's evaluation chain), ``max_episode_steps`` for a gymnasium env whose own step limit
    is longer. Rendering never opens a window: SDL's dummy video driver is used unless another
    one is set."""
    import os

    import gymnasium as gym

    from envs.atari import is_atari_game, make_atari_env
    from envs.fake import make_fake_atari_env, make_pixel_choice_env
    from envs.vector import check_env_id

    check_env_id(env_id)
    if is_atari_game(env_id):
        return make_atari_env(env_id, protocol, "eval", seed=seed, render_mode="rgb_array",
                              max_episode_frames=max_episode_frames)  # fmt: skip
    if env_id == "fake":
        return make_fake_atari_env(protocol, "eval", max_episode_frames=max_episode_frames)
    if env_id == "fake-pixels":
        return make_pixel_choice_env()
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame: rgb frames without a display
    return gym.make(env_id, render_mode="rgb_array", **step_cap_kwargs(env_id, max_episode_steps))


def recording_problem(env_id: str) -> str | None:
    """Why a video of ``env_id`` cannot be recorded, in words (None: it can). Atari games and
    ``fake`` always render; any other env is made with ``render_mode="rgb_array"``, reset and
    rendered once: its metadata must list that mode and its frame be an HxWx3 uint8 array (a
    classic-control env without pygame fails here, as it would in the video)."""
    import warnings

    from envs.atari import is_atari_game

    if env_id == "fake" or is_atari_game(env_id):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium warns of an unsupported render mode
        try:
            env = make_recording_env(env_id)
        except Exception as error:  # noqa: BLE001 - reported in words
            return f"it cannot be made to render ({_one_line(error)})"
        try:
            modes = list((env.metadata or {}).get("render_modes") or ())
            if "rgb_array" not in modes:
                listed = ", ".join(map(str, modes)) or "none"
                return f"it renders no rgb_array frames (its render modes: {listed})"
            try:
                env.reset(seed=0)
                frame = env.render()
            except Exception as error:  # noqa: BLE001 - e.g. pygame not installed
                return f"rendering it failed ({_one_line(error)})"
        finally:
            env.close()
    if not isinstance(frame, np.ndarray):
        return f"its render() gives no HxWx3 uint8 rgb frame (got {type(frame).__name__})"
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
        got = f"shape {frame.shape} dtype {frame.dtype}"
        return f"its render() gives no HxWx3 uint8 rgb frame (got {got})"
    return None


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def check_recordable(flag: str, env_id: str) -> None:
    """Raise one clear ValueError naming ``flag`` and ``env_id`` unless it can be recorded."""
    problem = recording_problem(env_id)
    if problem is not None:
        raise ValueError(
            f"{flag}: {env_id!r} cannot be recorded: {problem}; recordable: {RECORDABLE}"
        )


def record_video(
    agent,
    env_id: str,
    path: str | Path,
    epsilon: float,
    protocol: str = "nature",
    seed: int = 0,
    max_steps: int = 27_000,
) -> dict[str, Any]:
    """Record one evaluation episode of ``agent`` as an mp4 at the game's real speed
    (``envs.video.record_episode``), capped at ``max_steps`` agent steps (``max_steps`` x 4
    emulator frames for Atari games)."""
    from envs.atari import FRAME_SKIP
    from envs.video import record_episode

    env = make_recording_env(env_id, protocol, seed=seed, max_episode_frames=max_steps * FRAME_SKIP,
                             max_episode_steps=max_steps)  # fmt: skip

    def policy(obs: np.ndarray) -> int:
        pause_point("video")  # a test hook: waits for a signal when a test asks
        with torch.no_grad():
            return int(agent.act(np.asarray(obs)[None], epsilon)[0])

    try:
        return record_episode(env, policy, path, max_steps=max_steps, seed=seed)
    finally:
        env.close()
