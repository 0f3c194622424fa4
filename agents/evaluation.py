"""Evaluation: run a policy for whole episodes in evaluation mode and report the raw score.

Episodes run on the package's vector env in ``mode="eval"`` (no life-loss terminal, no reward
clipping; the ``nature`` protocol keeps its 30 no-op starts), so returns are raw game scores of
whole games. With several parallel envs each env plays a fixed share of the episodes, so short
episodes do not crowd out long ones. Video is recorded from the emulator's full-colour screen on
a separate single env, never from the 84x84 observations.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.scores import HUMAN_SCORE_SET, has_scores, human_normalized
from envs.vector import make_vector_env

Policy = Callable[[np.ndarray, float], np.ndarray]  # (obs batch, epsilon) -> actions


def agent_policy(agent) -> Policy:
    """A policy from anything with ``act(obs, epsilon) -> tensor of actions``."""

    def policy(obs: np.ndarray, epsilon: float) -> np.ndarray:
        return agent.act(obs, epsilon).cpu().numpy()

    return policy


def summarize_returns(returns: list[float], env_id: str) -> dict[str, Any]:
    """Mean, std, median, min, max and the human-normalized mean (where a table entry exists)."""
    r = np.asarray(returns, dtype=np.float64)
    summary: dict[str, Any] = {
        "episodes": len(returns),
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "median_return": float(np.median(r)),
        "min_return": float(r.min()),
        "max_return": float(r.max()),
        "returns": [float(x) for x in r],
    }
    if has_scores(env_id):
        summary["human_normalized"] = human_normalized(env_id, summary["mean_return"])
        summary["human_score_set"] = HUMAN_SCORE_SET
    return summary


def evaluate(
    policy: Policy,
    env_id: str,
    episodes: int,
    epsilon: float,
    protocol: str = "nature",
    seed: int = 0,
    num_envs: int | None = None,
    max_steps_per_episode: int = 27_000,
) -> dict[str, Any]:
    """Play ``episodes`` whole episodes with ``policy`` at ``epsilon``; per-episode raw returns."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = min(episodes, num_envs or 8)
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    env = make_vector_env(env_id, n, protocol=protocol, mode="eval", seed=seed)
    returns: list[float] = []
    lengths: list[int] = []
    done_count = np.zeros(n, dtype=np.int64)
    try:
        obs, _ = env.reset(seed=seed)
        for _ in range(int(quota.max()) * max_steps_per_episode):
            obs, _, _, _, info = env.step(policy(obs, epsilon))
            for i in np.flatnonzero(info["episode_done"]):
                if done_count[i] < quota[i]:
                    returns.append(float(info["episode_return"][i]))
                    lengths.append(int(info["episode_length"][i]))
                    done_count[i] += 1
            if (done_count >= quota).all():
                break
        else:
            raise RuntimeError(
                f"evaluation on {env_id} did not finish {episodes} episodes within "
                f"{max_steps_per_episode} steps per episode"
            )
    finally:
        env.close()
    summary = summarize_returns(returns, env_id)
    summary.update(lengths=lengths, epsilon=epsilon, protocol=protocol, env=env_id)
    return summary


def record_video(
    agent,
    env_id: str,
    path: str | Path,
    epsilon: float,
    protocol: str = "nature",
    seed: int = 0,
    max_steps: int = 27_000,
) -> dict[str, Any] | None:
    """Record one evaluation episode as an mp4; None where the env cannot render Atari frames."""
    from envs.atari import is_atari_game, make_atari_env
    from envs.video import record_episode

    if not is_atari_game(env_id):
        return None
    env = make_atari_env(env_id, protocol=protocol, mode="eval", seed=seed, render_mode="rgb_array")

    def policy(obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(agent.act(np.asarray(obs)[None], epsilon)[0])

    try:
        return record_episode(env, policy, path, max_steps=max_steps, seed=seed)
    finally:
        env.close()


class QPolicy:
    """A trained Q-network acting epsilon-greedily (what evaluation needs of an agent)."""

    def __init__(self, network: torch.nn.Module, device: torch.device, seed: int = 0) -> None:
        self.network = network.eval()
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    @torch.no_grad()
    def act(self, obs, epsilon: float) -> torch.Tensor:
        from agents.dqn import epsilon_greedy

        q = self.network(torch.as_tensor(np.asarray(obs), device=self.device))
        return epsilon_greedy(q, epsilon, self.generator)


def load_policy(state: dict[str, Any], device: torch.device, seed: int = 0) -> QPolicy:
    """The online network of a loaded checkpoint (see ``agents.checkpoint.load_checkpoint``)."""
    from agents.config import config_from_dict
    from agents.dqn import build_q_network

    config = config_from_dict(state["config"])
    network = build_q_network(state["obs_shape"], state["num_actions"], config.hidden, config)
    network = network.to(device)
    network.load_state_dict(state["model"])
    return QPolicy(network, device, seed)
