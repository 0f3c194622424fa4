"""`make_vector_env`: one batch interface over Atari, other gymnasium envs and the fake envs.

Which env is built (`env_id`):
- an Atari game in any spelling ('Pong', 'ALE/Pong-v5', 'space_invaders'): ale_py's threaded C++
  `AtariVectorEnv` under the protocol (`envs.atari.make_atari_vector_env`);
- 'fake' (`envs.fake.FakeAtariEnv` in the Atari wrapper chain) and 'fake-pixels'
  (`envs.fake.PixelChoiceEnv`, stacked): gymnasium `SyncVectorEnv`s;
- any other registered gymnasium id ('CartPole-v1'): a gymnasium `SyncVectorEnv`.

The interface the training loop relies on (`envs.wrappers.SameStepVectorEnv` implements it):

- `num_envs`, `single_observation_space`, `single_action_space`;
  `frame_stack` (frames per observation; 1 for non-image envs) and `stack_padding` ('zero': the
  frames before an episode's first are zeros; 'repeat': copies of it; None for non-image envs).
- `reset(seed=None) -> (obs, info)`: obs is a numpy array (N, *obs_shape), uint8 (N, 4, 84, 84)
  for images. Env i is seeded with seed + i; without a seed the first reset uses the seed given
  when the env was made, later ones continue the RNG streams.
- `step(actions) -> (obs, reward, terminated, truncated, info)`, actions an int array (N,);
  reward float32 (N,), clipped to its sign in train mode for Atari and 'fake', raw otherwise;
  terminated and truncated bool (N,). Autoreset happens in the SAME step: where
  `info["reset_mask"][i]` is True the episode of env i really ended (game over or truncation),
  `obs[i]` is already the first observation of the next episode and `info["final_obs"][i]` the
  last observation of the ended one. `info["final_obs"]` equals `obs` in every other row, so the
  transition to store is always (obs_before[i], action[i], reward[i], info["final_obs"][i]) and no
  stored transition crosses a reset.
- A lost life in train mode under the 'nature' protocol sets `terminated[i]` (no bootstrap) but
  does not reset the game or the frame stack: `reset_mask[i]` stays False and `obs[i]` goes on.
  `info["life_loss"]` (N,) bool marks lost lives in every mode.
- Episode statistics: `info["episode_return"]` (float64, the raw game score) and
  `info["episode_length"]` (int64, agent steps), valid where `info["episode_done"]` (= reset_mask)
  is True, i.e. at game over or truncation, never at a lost life.
- `info` also passes on `lives`, `episode_frame_number` and `frame_number` (N,) when the env
  reports them; after a reset they describe the new episode.
- `step_async(actions)` then `step_wait()`: the same step split in two; with ale_py the emulators
  run in their threads in between, so the caller can do other work.
- `close()`.

`action_meanings(env_id)` names the actions of an Atari game's minimal set or the fake game's
(None for envs that name none).
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym

from envs.atari import (
    canonical_game_id,
    check_mode,
    get_protocol,
    is_atari_game,
    list_games,
    make_atari_vector_env,
)
from envs.fake import FAKE_ACTION_MEANINGS, make_fake_atari_env, make_pixel_choice_env
from envs.wrappers import SameStepVectorEnv

FAKE_IDS = ("fake", "fake-pixels")


def _sync(make_one, num_envs: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [make_one for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


def make_vector_env(
    env_id: str,
    num_envs: int,
    protocol: str = "nature",
    mode: str = "train",
    seed: int | None = 0,
    noop_max: int | None = None,
    max_episode_frames: int = 108_000,
    frame_stack: int = 4,
    **env_kwargs: Any,
) -> SameStepVectorEnv:
    """`num_envs` copies of `env_id` behind the batch interface of this module's docstring.

    `protocol`, `noop_max`, `max_episode_frames` and `frame_stack` apply to Atari and 'fake'
    (frame_stack also to 'fake-pixels'); `env_kwargs` go to the single env's constructor for
    'fake' (`FakeALE` arguments), 'fake-pixels' and gymnasium ids.
    """
    spec = get_protocol(protocol)
    check_mode(mode)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if env_id == "fake":
        env_kwargs.setdefault("max_episode_frames", max_episode_frames)

        def make_one():
            return make_fake_atari_env(protocol, "eval", noop_max, frame_stack, **env_kwargs)

        return SameStepVectorEnv(
            _sync(make_one, num_envs),
            seed=seed,
            clip_rewards=mode == "train",
            life_loss_terminal=mode == "train" and spec.life_loss_terminal,
            stack_padding="zero",
            frame_stack=frame_stack,
        )
    if env_id == "fake-pixels":
        vec = _sync(lambda: make_pixel_choice_env(frame_stack=frame_stack, **env_kwargs), num_envs)
        return SameStepVectorEnv(
            vec, seed=seed, clip_rewards=False, life_loss_terminal=False,
            stack_padding="zero", frame_stack=frame_stack,
        )  # fmt: skip
    if is_atari_game(env_id):
        return make_atari_vector_env(
            env_id, num_envs, protocol, mode, seed,
            noop_max=noop_max, max_episode_frames=max_episode_frames, frame_stack=frame_stack,
        )  # fmt: skip
    if env_id in gym.registry:
        vec = _sync(lambda: gym.make(env_id, **env_kwargs), num_envs)
        return SameStepVectorEnv(
            vec, seed=seed, clip_rewards=False, life_loss_terminal=False,
            stack_padding=None, frame_stack=1,
        )  # fmt: skip
    check_env_id(env_id)
    raise AssertionError("unreachable")


def check_env_id(env_id: str) -> None:
    """Raise one clear ValueError unless `make_vector_env` knows `env_id`."""
    if env_id in FAKE_IDS or is_atari_game(env_id) or env_id in gym.registry:
        return
    known = [*list_games(), *FAKE_IDS, *gym.registry]
    close = ", ".join(difflib.get_close_matches(env_id, known, n=3)) or "none"
    raise ValueError(
        f"--env: unknown env id {env_id!r} (closest: {close}); accepted: an Atari game "
        f"(--list-games), {', '.join(FAKE_IDS)}, or a registered gymnasium id such as CartPole-v1"
    )


def action_meanings(env_id: str) -> tuple[str, ...] | None:
    """The minimal action set's names of an Atari game or the fake Atari env; None otherwise."""
    if env_id == "fake":
        return FAKE_ACTION_MEANINGS
    if not is_atari_game(env_id):
        return None
    env = gym.make(canonical_game_id(env_id), full_action_space=False)
    try:
        return tuple(env.unwrapped.get_action_meanings())
    finally:
        env.close()
