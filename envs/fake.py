"""Small deterministic image envs for fast tests without ROMs.

`FakeAtariEnv` imitates the raw ALE env (frameskip 1) closely enough for gymnasium's
`AtariPreprocessing` and our wrappers: 210x160x3 uint8 screens, an `ale` object with `lives()`,
`getScreenGrayscale`, `getScreenRGB` and frame counters, a FIRE action that starts the game,
scripted rewards and lives, a frame cap. Its screens encode the episode frame number f: the top
105 rows are gray level f % 256, the bottom 105 rows 255 - f % 256 (`fake_screen_levels`), so the
max over two frames and the frame skip can be checked exactly after resizing (105 rows shrink to
exactly 42 of 84). In the spirit of Dopamine's mock-emulator tests of its Atari preprocessing.

`PixelChoiceEnv` is a tiny task that needs vision: a bright block on the left or the right of an
84x84 frame; action 0 (left) or 1 (right) must name the side, reward 1 if right else 0, fixed
episode length. Optimal return = episode length, a random policy gets half of it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box, Discrete
from gymnasium.wrappers import FrameStackObservation

from envs.atari import wrap_atari

FAKE_ACTION_MEANINGS = ("NOOP", "FIRE", "RIGHT", "LEFT")
SCREEN_SHAPE = (210, 160, 3)
TOP_ROWS = 105


def fake_screen_levels(episode_frame: int) -> tuple[int, int]:
    """Gray levels (top, bottom) of the fake screen at an episode frame number."""
    top = episode_frame % 256
    return top, 255 - top


class FakeALE:
    """The emulator behind `FakeAtariEnv`: the subset of `ale_py.ALEInterface` the wrappers use.

    Before FIRE is pressed nothing happens but the frame counters. After it, on play frame k
    (k = 1, 2, ...): every `reward_every_frames`-th frame pays the next value of `reward_cycle`;
    every `frames_per_life`-th frame costs a life; the game is over when no life is left.
    """

    def __init__(
        self,
        lives: int = 3,
        frames_per_life: int = 40,
        reward_every_frames: int = 3,
        reward_cycle: tuple[float, ...] = (3.0, -2.0, 1.0),
        max_episode_frames: int = 108_000,
    ):
        self.start_lives = lives
        self.frames_per_life = frames_per_life
        self.reward_every_frames = reward_every_frames
        self.reward_cycle = reward_cycle
        self.max_episode_frames = max_episode_frames
        self.frame_number = 0
        self.reset_game()

    def reset_game(self) -> None:
        """Start a new game: frame 0, all lives, waiting for FIRE."""
        self.episode_frame = 0
        self.play_frames = 0
        self.remaining_lives = self.start_lives
        self.started = False

    def act(self, action: int) -> float:
        """Emulate one frame and return its reward."""
        self.frame_number += 1
        self.episode_frame += 1
        if not self.started:
            self.started = FAKE_ACTION_MEANINGS[action] == "FIRE"
            return 0.0
        self.play_frames += 1
        k = self.play_frames
        reward = 0.0
        if k % self.reward_every_frames == 0:
            reward = self.reward_cycle[(k // self.reward_every_frames - 1) % len(self.reward_cycle)]
        if k % self.frames_per_life == 0:
            self.remaining_lives -= 1
        return reward

    def lives(self) -> int:
        return self.remaining_lives

    def game_over(self) -> bool:
        return self.remaining_lives <= 0

    def game_truncated(self) -> bool:
        return self.episode_frame >= self.max_episode_frames

    def getEpisodeFrameNumber(self) -> int:  # noqa: N802 (ALE's name)
        return self.episode_frame

    def getFrameNumber(self) -> int:  # noqa: N802 (ALE's name)
        return self.frame_number

    def getScreenGrayscale(self, out: np.ndarray | None = None) -> np.ndarray:  # noqa: N802
        out = np.empty(SCREEN_SHAPE[:2], dtype=np.uint8) if out is None else out
        top, bottom = fake_screen_levels(self.episode_frame)
        out[:TOP_ROWS] = top
        out[TOP_ROWS:] = bottom
        return out

    def getScreenRGB(self, out: np.ndarray | None = None) -> np.ndarray:  # noqa: N802
        out = np.empty(SCREEN_SHAPE, dtype=np.uint8) if out is None else out
        out[...] = self.getScreenGrayscale()[:, :, None]
        return out


class FakeAtariEnv(gym.Env):
    """A raw ALE-like env with frameskip 1 around `FakeALE` (same constructor arguments)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, **ale_kwargs: Any):
        self.ale = FakeALE(**ale_kwargs)
        self._frameskip = 1  # AtariPreprocessing checks this attribute
        self.observation_space = Box(0, 255, SCREEN_SHAPE, dtype=np.uint8)
        self.action_space = Discrete(len(FAKE_ACTION_MEANINGS))
        self.render_mode = "rgb_array"

    def get_action_meanings(self) -> list[str]:
        return list(FAKE_ACTION_MEANINGS)

    def _info(self) -> dict[str, int]:
        return {
            "lives": self.ale.lives(),
            "episode_frame_number": self.ale.getEpisodeFrameNumber(),
            "frame_number": self.ale.getFrameNumber(),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.ale.reset_game()
        return self.ale.getScreenRGB(), self._info()

    def step(self, action: int):
        reward = self.ale.act(int(action))
        obs = self.ale.getScreenRGB()
        return obs, reward, self.ale.game_over(), self.ale.game_truncated(), self._info()

    def render(self) -> np.ndarray:
        return self.ale.getScreenRGB()


def make_fake_atari_env(
    protocol: str = "nature",
    mode: str = "train",
    noop_max: int | None = None,
    frame_stack: int = 4,
    **ale_kwargs: Any,
) -> gym.Env:
    """`FakeAtariEnv` inside the very wrapper chain a real game gets (`envs.atari.wrap_atari`)."""
    return wrap_atari(FakeAtariEnv(**ale_kwargs), protocol, mode, noop_max, frame_stack)


class PixelChoiceEnv(gym.Env):
    """Name the side of a bright block: 84x84 uint8 frames, actions 0 = left, 1 = right.

    The side of each frame is drawn from the env's seeded RNG; reward 1.0 for the right side,
    0.0 otherwise; the episode terminates after `episode_steps` steps.
    """

    metadata = {"render_modes": []}
    BLOCK_ROWS = slice(30, 54)
    BLOCK_COLS = (slice(6, 30), slice(54, 78))  # left, right

    def __init__(self, episode_steps: int = 8):
        if episode_steps < 1:
            raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")
        self.episode_steps = episode_steps
        self.observation_space = Box(0, 255, (84, 84), dtype=np.uint8)
        self.action_space = Discrete(2)
        self.side = 0
        self.steps = 0

    def _frame(self) -> np.ndarray:
        frame = np.zeros((84, 84), dtype=np.uint8)
        frame[self.BLOCK_ROWS, self.BLOCK_COLS[self.side]] = 255
        return frame

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.steps = 0
        self.side = int(self.np_random.integers(2))
        return self._frame(), {"side": self.side}

    def step(self, action: int):
        reward = 1.0 if int(action) == self.side else 0.0
        self.steps += 1
        self.side = int(self.np_random.integers(2))
        terminated = self.steps >= self.episode_steps
        return self._frame(), reward, terminated, False, {"side": self.side}


def make_pixel_choice_env(episode_steps: int = 8, frame_stack: int = 4) -> gym.Env:
    """`PixelChoiceEnv` with a zero-padded frame stack: (frame_stack, 84, 84) uint8 observations."""
    return FrameStackObservation(PixelChoiceEnv(episode_steps), frame_stack, padding_type="zero")


def pixel_choice_side(obs: np.ndarray) -> int:
    """The side (0 left, 1 right) shown in the newest frame of a stacked observation."""
    newest = obs[-1] if obs.ndim == 3 else obs
    left = int(newest[PixelChoiceEnv.BLOCK_ROWS, PixelChoiceEnv.BLOCK_COLS[0]].sum())
    right = int(newest[PixelChoiceEnv.BLOCK_ROWS, PixelChoiceEnv.BLOCK_COLS[1]].sum())
    return int(right > left)
