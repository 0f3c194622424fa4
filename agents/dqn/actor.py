"""The actor: a vector env, a policy and an exploration schedule, turned into transitions.

One vector step is ``act`` (the policy's actions under the schedule's epsilon), then either
``step_now`` or ``send`` followed by ``receive`` (the emulators step while the caller does something
else: the single-machine loop runs its updates there), then ``observe`` (the actor moves on to the
next observations and reports the episodes that ended). The transitions go wherever the caller
puts them: into the replay in one process, or to a learner elsewhere.

The actor's state (``state_dict``) is its envs' current observations and, when the envs are
Python objects, their own state (``envs.state``), the returns of the last episodes and the
exploration schedule's length, so a resumed run continues the same episodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from agents.dqn.config import TrainConfig
from envs.state import env_state, restore_env_state

Policy = Callable[[np.ndarray, float], torch.Tensor]  # (observations, epsilon) -> actions


def linear_schedule(start: float, end: float, duration_steps: int, step: int) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration_steps``, then ``end``."""
    if duration_steps <= 0:
        return end
    fraction = min(max(step, 0) / duration_steps, 1.0)
    return start + fraction * (end - start)


@dataclass
class EpsilonSchedule:
    """Epsilon at a global step: ``start`` until ``decay_start`` (Dopamine's warm-up), then linear
    to ``end`` over ``decay_steps``; 0 with noisy networks, which explore through their weights
    (Fortunato et al. 2018). ``decay_steps`` is resolved when a run starts and kept on resume."""

    start: float
    end: float
    decay_steps: int
    decay_start: int = 0
    noisy: bool = False

    @classmethod
    def from_config(cls, config: TrainConfig, decay_steps: int) -> EpsilonSchedule:
        return cls(config.epsilon_start, config.epsilon_end, decay_steps,
                   config.epsilon_decay_start, config.noisy)  # fmt: skip

    def __call__(self, global_step: int) -> float:
        if self.noisy:
            return 0.0
        step = global_step - self.decay_start
        return linear_schedule(self.start, self.end, self.decay_steps, step)


class Transitions(NamedTuple):
    """One vector step of every env: what the replay's ``add`` takes, and the episode info."""

    actions: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    next_obs: np.ndarray
    reset_mask: np.ndarray
    final_obs: np.ndarray
    info: dict[str, Any]

    def replay_fields(self) -> tuple[Any, ...]:
        """The arguments of ``ReplayBuffer.add``, in its order."""
        return (self.actions, self.reward, self.terminated, self.truncated, self.next_obs,
                self.reset_mask, self.final_obs)  # fmt: skip


class Actor:
    """Acts in ``envs`` with ``policy`` under ``schedule``; ``seed`` seeds the envs' resets."""

    def __init__(self, envs, policy: Policy, schedule: EpsilonSchedule, seed: int) -> None:
        self.envs = envs
        self.policy = policy
        self.schedule = schedule
        self.seed = seed
        self.obs: np.ndarray | None = None  # the envs' current observations
        self.whole = True  # False inside an env step: the envs' state is not that of ``obs``
        self.recent_returns: deque[float] = deque(maxlen=20)

    @property
    def num_envs(self) -> int:
        return self.envs.num_envs

    def epsilon(self, global_step: int) -> float:
        return self.schedule(global_step)

    def reset(self, global_step: int) -> tuple[np.ndarray, bool]:
        """The observations to act on, and whether they begin new episodes: a resumed actor
        keeps its envs' own episodes; otherwise the envs are reset (seeded by the step)."""
        if self.obs is not None:
            return self.obs, False
        self.obs, _ = self.envs.reset(seed=self.seed + global_step)
        return self.obs, True

    def act(self, global_step: int) -> np.ndarray:
        """The policy's actions for the current observations."""
        return self.policy(self.obs, self.epsilon(global_step)).cpu().numpy()

    def send(self, actions: np.ndarray) -> None:
        """Start the envs' step (they run in the background until ``receive``)."""
        self.whole = False
        self.envs.step_async(actions)

    def receive(self, actions: np.ndarray) -> Transitions:
        return self._transitions(actions, self.envs.step_wait())

    def step_now(self, actions: np.ndarray) -> Transitions:
        """Step the envs in the foreground."""
        self.whole = False
        return self._transitions(actions, self.envs.step(actions))

    @staticmethod
    def _transitions(actions: np.ndarray, result: tuple) -> Transitions:
        next_obs, reward, terminated, truncated, info = result
        return Transitions(actions, reward, terminated, truncated, next_obs,
                           info["reset_mask"], info["final_obs"], info)  # fmt: skip

    def observe(self, step: Transitions) -> list[tuple[float, int]]:
        """Move on to the step's observations; the (return, length) of each episode it ended."""
        self.obs = step.next_obs
        self.whole = True
        info = step.info
        ended = []
        for i in np.flatnonzero(info["episode_done"]):
            self.recent_returns.append(float(info["episode_return"][i]))
            ended.append((info["episode_return"][i], info["episode_length"][i]))
        return ended

    def mean_recent_return(self) -> float:
        return float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")

    def state_dict(self, keep_envs: bool = True) -> dict[str, Any]:
        """Without ``keep_envs`` (envs caught inside a step) a resumed actor starts new
        episodes."""
        keep = self.obs is not None and keep_envs
        return {
            "obs": torch.from_numpy(np.array(self.obs)) if keep else None,
            "env_state": env_state(self.envs) if keep else None,
            "recent_returns": list(self.recent_returns),
            "epsilon_decay_steps": self.schedule.decay_steps,  # resolved when the run started
        }

    def load_state_dict(self, state: dict[str, Any], restore_envs: bool = True) -> None:
        """``restore_envs``: put the envs back in their saved episodes (when saved, and when
        the replay they feed holds those episodes' start)."""
        self.recent_returns.extend(state["recent_returns"])
        # checkpoints written before the length was saved resolve it from the config, as then
        self.schedule.decay_steps = state.get("epsilon_decay_steps", self.schedule.decay_steps)
        if restore_envs and state["env_state"] is not None:
            restore_env_state(self.envs, state["env_state"])
            self.obs = state["obs"].numpy()
