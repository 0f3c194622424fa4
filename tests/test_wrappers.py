"""The wrappers gymnasium lacks (fire on reset, life-loss terminal, sign reward), on the fake."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import (
    AtariPreprocessing,
    FrameStackObservation,
    RecordEpisodeStatistics,
    TransformReward,
)

from envs.atari import wrap_atari
from envs.fake import FakeAtariEnv
from envs.wrappers import FireOnReset, LifeLossTerminal, SameStepVectorEnv, sign_reward

NOOP = 0


class NoFireFakeEnv(FakeAtariEnv):
    """The fake game with a minimal action set that lacks FIRE (it then never starts)."""

    def get_action_meanings(self) -> list[str]:
        return ["NOOP", "UP", "RIGHT", "LEFT"]


def chain_types(env: gym.Env) -> list[type]:
    """Wrapper classes from the outermost inwards."""
    types = []
    while isinstance(env, gym.Wrapper):
        types.append(type(env))
        env = env.env
    return [*types, type(env)]


@pytest.mark.parametrize(
    ("reward", "expected"), [(7.0, 1.0), (0.25, 1.0), (0.0, 0.0), (-3, -1.0), (np.int32(-1), -1.0)]
)
def test_sign_reward(reward, expected):
    assert sign_reward(reward) == expected
    assert type(sign_reward(reward)) is float


def test_fire_on_reset_presses_fire_for_one_frame():
    env = FireOnReset(FakeAtariEnv())
    obs, info = env.reset(seed=0)
    assert info["episode_frame_number"] == 1 and env.unwrapped.ale.started
    assert obs[0, 0, 0] == 1  # the screen of frame 1
    assert env.fire_action == 1


def test_fire_on_reset_refuses_a_game_without_fire():
    with pytest.raises(ValueError, match="FIRE"):
        FireOnReset(NoFireFakeEnv())


def test_fire_on_reset_resets_again_when_fire_ends_the_game():
    env = FireOnReset(FakeAtariEnv(max_episode_frames=1))
    _, info = env.reset(seed=0)
    assert info["episode_frame_number"] == 0 and not env.unwrapped.ale.started


def test_chain_order_per_protocol_and_mode():
    nature_train = chain_types(wrap_atari(FakeAtariEnv(), "nature", "train"))
    assert nature_train == [
        TransformReward,
        LifeLossTerminal,
        FrameStackObservation,
        RecordEpisodeStatistics,
        AtariPreprocessing,
        FireOnReset,
        FakeAtariEnv,
    ]
    nature_eval = chain_types(wrap_atari(FakeAtariEnv(), "nature", "eval"))
    assert nature_eval == nature_train[2:]
    machado_train = chain_types(wrap_atari(FakeAtariEnv(), "machado", "train"))
    assert machado_train == [TransformReward, *nature_train[2:5], FakeAtariEnv]
    no_fire = chain_types(wrap_atari(NoFireFakeEnv(), "nature", "eval"))
    assert no_fire == [*nature_train[2:5], NoFireFakeEnv]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "dqn"}, "unknown protocol 'dqn'; accepted: nature, machado, atari100k"),
        ({"mode": "test"}, "unknown mode 'test'; accepted: train, eval"),
        ({"noop_max": -1}, "noop_max must be >= 0, got -1"),
        ({"frame_stack": 0}, "frame_stack must be >= 1, got 0"),
    ],
)
def test_chain_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError) as error:
        wrap_atari(FakeAtariEnv(), **kwargs)
    assert str(error.value) == message


def test_life_loss_terminal_soft_reset_and_real_reset():
    env = LifeLossTerminal(FakeAtariEnv(lives=2, frames_per_life=3))
    env.reset(seed=0)
    env.step(1)  # FIRE
    results = [env.step(NOOP) for _ in range(3)]
    assert [r[2] for r in results] == [False, False, True]
    assert results[2][4]["life_loss"] and results[2][4]["lives"] == 1
    obs, info = env.reset()
    assert obs is results[2][0] and info["episode_frame_number"] == 4 and not info["life_loss"]
    results = [env.step(NOOP) for _ in range(3)]
    # the last life: game over, reported by the game itself, not as a life loss
    assert [r[2] for r in results] == [False, False, True]
    assert not results[2][4]["life_loss"] and results[2][4]["lives"] == 0
    _, info = env.reset()
    assert info["episode_frame_number"] == 0 and info["lives"] == 2


def test_life_loss_terminal_with_a_seed_resets_the_game():
    env = LifeLossTerminal(FakeAtariEnv(lives=2, frames_per_life=2))
    env.reset(seed=0)
    env.step(1)
    env.step(NOOP)
    assert env.step(NOOP)[2]
    _, info = env.reset(seed=1)
    assert info["episode_frame_number"] == 0 and info["lives"] == 2


def test_life_loss_on_the_truncated_step_is_not_flagged():
    env = LifeLossTerminal(FakeAtariEnv(lives=3, frames_per_life=2, max_episode_frames=3))
    env.reset(seed=0)
    env.step(1)
    env.step(NOOP)
    _, _, terminated, truncated, info = env.step(NOOP)
    assert truncated and not terminated and not info["life_loss"] and info["lives"] == 2


def test_same_step_adapter_refuses_next_step_autoreset():
    vec = gym.vector.SyncVectorEnv([FakeAtariEnv])  # NEXT_STEP by default
    with pytest.raises(ValueError, match="SAME_STEP"):
        SameStepVectorEnv(
            vec, seed=0, clip_rewards=False, life_loss_terminal=False,
            stack_padding=None, frame_stack=1,
        )  # fmt: skip
