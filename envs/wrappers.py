"""The Atari wrappers gymnasium lacks, and the batch adapter every vector env is presented through.

Gymnasium already ships frame skip, max-pooling, resizing, no-op starts (`AtariPreprocessing`),
frame stacking (`FrameStackObservation`), episode statistics (`RecordEpisodeStatistics`) and reward
transforms (`TransformReward`); `envs.atari.wrap_atari` composes those with the pieces here:

- `FireOnReset`: press FIRE for one emulator frame after each game reset, so games such as Breakout
  start without waiting for the agent (OpenAI baselines' `FireResetEnv` popularised this for DQN;
  the single frame matches `use_fire_reset` of ale_py's C++ vector env, so both agree pixel for
  pixel).
- `LifeLossTerminal`: a lost life ends the bootstrap (`terminated=True`) but not the game (Mnih et
  al. 2015, "Methods": "for games where there is a life counter ... used to mark the end of an
  episode during training"). The following `reset()` without a seed continues the same game.
- `sign_reward`: reward clipping to {-1, 0, +1} (Mnih et al. 2015), for `TransformReward`.
- `SameStepVectorEnv`: turns a gymnasium vector env in same-step autoreset mode into the batch
  interface written down in `envs/vector.py` (final observations, reset mask, life loss as a
  terminal without a reset, clipped rewards, raw episode statistics).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


def sign_reward(reward: SupportsFloat) -> float:
    """Clip a reward to its sign: -1.0, 0.0 or +1.0 (Mnih et al. 2015)."""
    return float(np.sign(float(reward)))


class FireOnReset(gym.Wrapper):
    """Press FIRE for one frame after every game reset (for games whose actions include FIRE).

    Wrap the raw emulator env (frameskip 1), inside `AtariPreprocessing`, so the press lasts one
    emulator frame as in ale_py's vector env. Raises ValueError for a game without FIRE.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if "FIRE" not in meanings:
            raise ValueError(f"FireOnReset needs a FIRE action; this game has {meanings}")
        self.fire_action = meanings.index("FIRE")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the game, then press FIRE once (resetting again if that ended the game)."""
        obs, info = self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, step_info = self.env.step(self.fire_action)
        info.update(step_info)
        if terminated or truncated:
            obs, info = self.env.reset(options=options)
        return obs, info


class LifeLossTerminal(gym.Wrapper):
    """Report a lost life as `terminated=True` without resetting the game (training only).

    `info["lives"]` must come from the emulator. A life lost on the step that also ends the game
    (game over or time limit) is not flagged: that step already carries the episode's end. After a
    life-loss terminal, `reset()` without a seed returns the current observation and leaves the
    game and the frame stack alone; with a seed, or after a real end, it resets the game.
    Episode statistics recorded inside this wrapper therefore span whole games.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._lives = 0
        self._continue_game = False
        self._last_obs: Any = None
        self._last_info: dict[str, Any] = {}

    def step(self, action):
        """Step, turning a lost life into `terminated=True` with `info["life_loss"] = True`."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(info["lives"])
        life_lost = lives < self._lives and not (terminated or truncated)
        self._lives = lives
        self._continue_game = life_lost
        self._last_obs, self._last_info = obs, info
        info["life_loss"] = life_lost
        return obs, reward, terminated or life_lost, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Continue the game after a life-loss terminal; otherwise reset it."""
        if self._continue_game and seed is None:
            self._continue_game = False
            return self._last_obs, {**self._last_info, "life_loss": False}
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = int(info["lives"])
        self._continue_game = False
        return obs, info


def _final_observations(obs: np.ndarray, info: dict[str, Any], reset_mask: np.ndarray):
    """`obs` with the rows of reset envs replaced by the last observation of their episode."""
    final_obs = obs.copy()
    if reset_mask.any():
        native = info["final_obs"]  # ale_py: (N, ...) array; gymnasium: object array of rows
        for i in np.flatnonzero(reset_mask):
            final_obs[i] = native[i]
    return final_obs


class SameStepVectorEnv:
    """The batch interface of `envs/vector.py` on top of a same-step-autoreset vector env.

    `env` must autoreset in gymnasium's SAME_STEP mode (ale_py's `AtariVectorEnv` does it
    natively, `SyncVectorEnv` when asked), return raw rewards, and report `info["lives"]` when
    `life_loss_terminal` is set. Life losses are found here as a drop in lives on a step that did
    not reset the env; they set `terminated` only, the game and the frame stack go on.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        *,
        seed: int | None,
        clip_rewards: bool,
        life_loss_terminal: bool,
        stack_padding: str | None,
        frame_stack: int,
    ):
        if env.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
            raise ValueError(f"need a SAME_STEP autoreset vector env, got {env.metadata!r}")
        self.env = env
        self.num_envs: int = env.num_envs
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.stack_padding = stack_padding
        self.frame_stack = frame_stack
        self.clip_rewards = clip_rewards
        self.life_loss_terminal = life_loss_terminal
        self._first_seed = seed
        self._lives = np.zeros(self.num_envs, dtype=np.int64)
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._pending_actions: np.ndarray | None = None

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; env i gets seed `seed + i` (the constructor's seed on first reset)."""
        if seed is None:
            seed, self._first_seed = self._first_seed, None
        obs, native = self.env.reset(seed=seed)
        self._lives[:] = native.get("lives", 0)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs, _copy_counters(native)

    def step(self, actions: np.ndarray):
        """Step every env: `(obs, reward, terminated, truncated, info)`, see envs/vector.py."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Send the actions; ale_py's vector env starts emulating in its threads right away."""
        actions = np.asarray(actions).astype(np.int64, copy=False)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        if hasattr(self.env, "send"):
            self.env.send(actions)
        else:
            self._pending_actions = actions

    def step_wait(self):
        """Receive the step started by `step_async`."""
        if hasattr(self.env, "recv"):
            obs, raw_reward, terminated, truncated, native = self.env.recv()
        else:
            obs, raw_reward, terminated, truncated, native = self.env.step(self._pending_actions)
        raw_reward = np.asarray(raw_reward, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        reset_mask = terminated | truncated
        info = _copy_counters(native)
        info["reset_mask"] = reset_mask
        info["final_obs"] = _final_observations(obs, native, reset_mask)

        self._returns += raw_reward
        self._lengths += 1
        info["episode_done"] = reset_mask.copy()
        info["episode_return"] = self._returns.copy()
        info["episode_length"] = self._lengths.copy()
        self._returns[reset_mask] = 0.0
        self._lengths[reset_mask] = 0

        lives = np.asarray(native.get("lives", self._lives), dtype=np.int64)
        life_loss = (lives < self._lives) & ~reset_mask
        self._lives[:] = lives
        info["life_loss"] = life_loss
        if self.life_loss_terminal:
            terminated = terminated | life_loss
        reward = np.sign(raw_reward) if self.clip_rewards else raw_reward
        return obs, reward.astype(np.float32), terminated, truncated, info

    def close(self) -> None:
        """Release the underlying envs."""
        self.env.close()


def _copy_counters(native: dict[str, Any]) -> dict[str, Any]:
    """The emulator counters worth passing on from a native info dict."""
    keys = ("lives", "episode_frame_number", "frame_number")
    return {key: np.asarray(native[key]) for key in keys if key in native}
