"""Evaluating a checkpoint on another game than the one it was trained on (``scripts.evaluate
--env``, with ``--force`` where the action sets differ).

``EnvInterface`` is what a policy needs to fit an env: observation shape and (named) actions;
``checkpoint_interface`` and ``env_interface`` read it from a checkpoint and from an env.
``check_env_switch`` refuses a switch the network cannot take (another observation shape) and,
unless forced, one whose action set differs; forced, it maps the trained actions to the target's by
name (by index where names are unknown), and ``mapped_policy`` applies that table. Action names
are the minimal action sets of the ALE (Bellemare et al. 2013), read from the game's env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.evaluation.evaluate import Policy
from envs.vector import action_meanings, make_vector_env


@dataclass(frozen=True)
class EnvInterface:
    """What a policy needs to fit an env: observation shape and (named) actions."""

    env_id: str
    obs_shape: tuple[int, ...]
    num_actions: int
    action_meanings: tuple[str, ...] | None  # None where the env names no actions


def _display_id(env_id: str) -> str:
    from envs.atari import canonical_game_id, is_atari_game

    return canonical_game_id(env_id) if is_atari_game(env_id) else env_id


def env_interface(env_id: str) -> EnvInterface:
    """Build one eval env of ``env_id`` and read its interface."""
    env = make_vector_env(env_id, 1, mode="eval", seed=0)
    try:
        shape = tuple(int(s) for s in env.single_observation_space.shape)
        n = int(env.single_action_space.n)
    finally:
        env.close()
    return EnvInterface(_display_id(env_id), shape, n, action_meanings(env_id))


def checkpoint_interface(state: dict[str, Any]) -> EnvInterface:
    """The interface a checkpoint was made for (its env's action names looked up by id)."""
    env_id = state["env_id"]
    shape = tuple(int(s) for s in state["obs_shape"])
    return EnvInterface(
        _display_id(env_id), shape, int(state["num_actions"]), action_meanings(env_id)
    )


def _actions_text(a: EnvInterface) -> str:
    names = f" ({', '.join(a.action_meanings)})" if a.action_meanings else ""
    return f"{a.num_actions} actions{names}"


def check_env_switch(
    trained: EnvInterface, target: EnvInterface, force: bool = False
) -> tuple[np.ndarray | None, str | None]:
    """Whether a policy made for ``trained`` may play ``target``: ``(action table, warning)``.

    Both None when the interfaces agree. A different observation shape is refused always (the
    network cannot take it); a different action set (count, or names where both envs name their
    actions) is refused unless ``force``. Forced, the table maps each trained action to the
    target action of the same name (by index where names are unknown), else to action 0.
    """
    head = f"checkpoint made for {trained.env_id} cannot play {target.env_id}"
    if trained.obs_shape != target.obs_shape:
        raise ValueError(
            f"{head}: observation shape {trained.obs_shape} vs {target.obs_shape} "
            "(--force cannot help: the network takes only its own shape)"
        )
    names_differ = None not in (trained.action_meanings, target.action_meanings) and (
        trained.action_meanings != target.action_meanings
    )
    if trained.num_actions == target.num_actions and not names_differ:
        return None, None
    what = f"action sets differ: {_actions_text(trained)} vs {_actions_text(target)}"
    if not force:
        raise ValueError(f"{head}: {what}; pass --force to evaluate anyway")
    by_name = bool(trained.action_meanings and target.action_meanings)
    if by_name:
        theirs = target.action_meanings
        table = [theirs.index(m) if m in theirs else 0 for m in trained.action_meanings]
    else:
        table = [k if k < target.num_actions else 0 for k in range(trained.num_actions)]
    unmatched = sum(1 for k, t in enumerate(table) if t == 0 and k != 0)
    warning = (
        f"--force: checkpoint made for {trained.env_id} plays {target.env_id} although the "
        f"{what}; actions mapped by {'name' if by_name else 'index'}, {unmatched} unmatched to "
        "action 0"
    )
    return np.asarray(table, dtype=np.int64), warning


def mapped_policy(policy: Policy, table: np.ndarray | None) -> Policy:
    """``policy`` with its actions translated through ``table`` (unchanged when None)."""
    if table is None:
        return policy
    return lambda obs, epsilon: table[np.asarray(policy(obs, epsilon))]
