"""Evaluation: run a policy for whole episodes in evaluation mode and report the raw score.

Episodes run on the package's vector env in ``mode="eval"`` (no life-loss terminal, no reward
clipping; the ``nature`` protocol keeps its 30 no-op starts), so returns are raw game scores of
whole games. With several parallel envs each env plays a fixed share of the episodes, so short
episodes do not crowd out long ones. Video is recorded from the emulator's full-colour screen on
a separate single env, never from the 84x84 observations (``agents.evaluation.recording``). Also
here: the protocols' evaluation
epsilons, trajectory files (``agents.supervised.trajectories``) written atomically, and
``load_policy`` for Q-network and classifier checkpoints. Playing a checkpoint on another game is
``agents.evaluation.env_switch``.

The summary counts the actions played in the reported episodes (``action_counts``, by action
index, named in ``action_names`` where the env names them): a policy that presses one button
whatever the screen shows (Freeway's chicken standing still, a Pong paddle parked in a corner)
is seen at once, and ``action_shares`` says it in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.run.checkpoint import CheckpointError, atomic_write, load_network
from agents.run.interrupts import pause_point
from agents.supervised.trajectories import Trajectories, TrajectoryRecorder, write_trajectories
from envs.scores import HUMAN_SCORE_SET, has_scores, human_normalized
from envs.vector import action_meanings, make_vector_env

Policy = Callable[[np.ndarray, float], np.ndarray]  # (obs batch, epsilon) -> actions

PROTOCOL_EVAL_EPSILON = {"nature": 0.05, "machado": 0.001, "atari100k": 0.001}
"""Evaluation epsilon of each protocol: 0.05 in Mnih et al. 2015; 0.001 in Dopamine's DQN configs
(``epsilon_eval``), which play under Machado et al. 2018's sticky actions, and in its Atari-100k
configs (``labs/atari_100k/configs/DrQ_eps.gin`` and ``DER.gin``: ``epsilon_eval = 0.001``)."""

PROTOCOL_EVAL_EPISODES = {"nature": 10, "machado": 10, "atari100k": 100}
"""Default number of evaluation episodes of each protocol: 100 after training under atari100k
(Dopamine's ``MaxEpisodeEvalRunner.num_eval_episodes = 100``); this package's default of 10
elsewhere. Fewer may be asked for; the summary always records how many were played."""

PROTOCOL_MAX_EPISODE_STEPS = {"nature": 27_000, "machado": 27_000, "atari100k": 27_000}
"""Episode cap of each protocol in agent steps: 108,000 frames (Mnih et al. 2015; Machado et al.
2018) and Dopamine's ``Runner.max_steps_per_episode = 27000`` agent steps for atari100k."""


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
    max_episode_frames: int = 108_000,
    recorder: TrajectoryRecorder | None = None,
    max_episode_steps: int | None = None,
) -> dict[str, Any]:
    """Play ``episodes`` whole episodes with ``policy`` at ``epsilon``; per-episode raw returns.

    ``max_episode_frames`` is the protocol's episode cap (108,000 emulator frames = 30 minutes)
    for the envs that count emulator frames (Atari games, ``fake``); ``max_episode_steps`` caps
    an episode of a gymnasium env (CartPole...) in steps, below its own time limit (episodes cut
    there are truncations, as an Atari episode at its frame cap); ``max_steps_per_episode`` only
    bounds the loop. A ``recorder`` receives every step and keeps exactly the episodes that are
    reported, in the same order as ``returns``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = min(episodes, num_envs or 8)
    quota = np.full(n, episodes // n)
    quota[: episodes % n] += 1
    env = make_vector_env(
        env_id, n, protocol=protocol, mode="eval", seed=seed, max_episode_frames=max_episode_frames,
        **step_cap_kwargs(env_id, max_episode_steps),
    )  # fmt: skip
    returns: list[float] = []
    lengths: list[int] = []
    done_count = np.zeros(n, dtype=np.int64)
    num_actions = int(env.single_action_space.n) if hasattr(env.single_action_space, "n") else 0
    action_counts = np.zeros(num_actions, dtype=np.int64)
    try:
        obs, _ = env.reset(seed=seed)
        pause_point("evaluation")  # a test hook: waits for a signal when a test asks
        for _ in range(int(quota.max()) * max_steps_per_episode):
            actions = np.asarray(policy(obs, epsilon))
            if num_actions:  # the steps of the envs still playing reported episodes
                owed = done_count < quota
                action_counts += np.bincount(actions[owed], minlength=num_actions)
            next_obs, reward, _, _, info = env.step(actions)
            if recorder is not None:
                recorder.add(obs, actions, reward)
            for i in np.flatnonzero(info["episode_done"]):
                keep = bool(done_count[i] < quota[i])
                if keep:
                    returns.append(float(info["episode_return"][i]))
                    lengths.append(int(info["episode_length"][i]))
                    done_count[i] += 1
                if recorder is not None:
                    recorder.end_episode(int(i), keep)
            obs = next_obs
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
    summary.update(lengths=lengths, epsilon=epsilon, protocol=protocol, env=env_id,
                   max_episode_frames=max_episode_frames)  # fmt: skip
    if num_actions:
        names = action_meanings(env_id)
        summary.update(action_counts=action_counts.tolist(),
                       action_names=list(names) if names else None)  # fmt: skip
    return summary


def action_shares(counts: list[int], names: list[str] | None = None, most: int = 3) -> str:
    """The ``most`` most played actions and their shares of all steps, most played first:
    ``UP 97.1%, NOOP 2.0%, DOWN 0.9%`` (``action 2 97.1%, ...`` where the actions have no
    names); '' when no step was counted."""
    total = sum(counts)
    if total == 0:
        return ""
    order = sorted(range(len(counts)), key=lambda a: (-counts[a], a))[:most]
    label = (lambda a: names[a]) if names else (lambda a: f"action {a}")
    return ", ".join(f"{label(a)} {100 * counts[a] / total:.1f}%" for a in order)


def step_cap_kwargs(env_id: str, max_episode_steps: int | None) -> dict[str, int]:
    """``gym.make``'s ``max_episode_steps`` for a gymnasium env whose own time limit is longer
    than ``max_episode_steps`` (or that has none); nothing for the envs that count emulator
    frames (their cap is ``max_episode_frames``) or that end sooner on their own."""
    import gymnasium as gym

    from envs.atari import is_atari_game
    from envs.vector import FAKE_IDS

    if max_episode_steps is None or env_id in FAKE_IDS or is_atari_game(env_id):
        return {}
    if env_id not in gym.registry:
        return {}
    own = gym.spec(env_id).max_episode_steps
    if own is not None and own <= max_episode_steps:
        return {}
    return {"max_episode_steps": max_episode_steps}


def save_trajectories(path: str | Path, trajectories: Trajectories) -> Path:
    """Write a trajectory file (``agents.supervised.trajectories``) atomically: temp file, fsync,
    rename."""
    return atomic_write(path, lambda f: write_trajectories(f, trajectories))


class QPolicy:
    """A trained network acting epsilon-greedily on its outputs (Q-values, or a classifier's
    logits: the greedy action is the argmax either way)."""

    def __init__(self, network: torch.nn.Module, device: torch.device, seed: int = 0) -> None:
        self.network = network.eval()
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    @torch.no_grad()
    def act(self, obs, epsilon: float) -> torch.Tensor:
        from agents.dqn.agent import epsilon_greedy

        q = self.network(torch.as_tensor(np.asarray(obs), device=self.device))
        return epsilon_greedy(q, epsilon, self.generator)


def load_policy(state: dict[str, Any], device: torch.device, seed: int = 0) -> QPolicy:
    """The acting network of a loaded checkpoint (``checkpoint.load_checkpoint``): the
    online Q-network of a training run, or the classifier of a ``"kind": "classifier"`` one
    (behaviour cloning, ``scripts/train_supervised.py`` on a trajectory file)."""
    kind = state.get("kind", "q-network")
    if kind == "classifier":
        from agents.supervised.classifier import build_classifier

        spec = state["classifier"]
        network = build_classifier(
            spec["model"], state["obs_shape"], state["num_actions"], spec.get("hidden") or (),
            spec.get("activation") or "relu", spec.get("dropout") or 0.0,
        )  # fmt: skip
    elif kind == "q-network":
        from agents.dqn.agent import build_q_network
        from agents.dqn.config import config_from_dict

        config = config_from_dict(state["config"])
        network = build_q_network(state["obs_shape"], state["num_actions"], config.hidden, config)
    else:
        raise CheckpointError(
            f"checkpoint {state.get('path')} holds a {kind!r} model; accepted: q-network, "
            "classifier"
        )
    network = network.to(device)
    load_network(network, state["model"], state.get("path"))
    return QPolicy(network, device, seed)
