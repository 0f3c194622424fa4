"""The fake envs, and the exact pixel and reward arithmetic of the Atari chain run on the fake."""

import numpy as np
import pytest

from envs.fake import (
    FakeAtariEnv,
    PixelChoiceEnv,
    fake_screen_levels,
    make_fake_atari_env,
    make_pixel_choice_env,
    pixel_choice_side,
)

NOOP, FIRE = 0, 1


def levels(frame: np.ndarray) -> tuple[int, int]:
    """(top, bottom) gray level of an 84x84 frame, asserting both halves are uniform."""
    top, bottom = frame[:42], frame[42:]
    assert top.min() == top.max() and bottom.min() == bottom.max()
    return int(top[0, 0]), int(bottom[0, 0])


def test_raw_screen_encodes_the_episode_frame():
    env = FakeAtariEnv()
    obs, info = env.reset(seed=0)
    assert obs.shape == (210, 160, 3) and obs.dtype == np.uint8
    assert info == {"lives": 3, "episode_frame_number": 0, "frame_number": 0}
    for _ in range(300):
        obs, *_ = env.step(NOOP)
    assert fake_screen_levels(300) == (44, 211)
    assert obs[0, 0].tolist() == [44, 44, 44] and obs[104, 159].tolist() == [44, 44, 44]
    assert obs[105, 0].tolist() == [211, 211, 211] and obs[209, 0].tolist() == [211, 211, 211]


def test_raw_game_waits_for_fire_then_follows_its_script():
    env = FakeAtariEnv(lives=2, frames_per_life=6, reward_every_frames=2, reward_cycle=(5.0, -1.0))
    env.reset(seed=0)
    for _ in range(50):  # nothing happens before FIRE
        _, reward, terminated, _, info = env.step(NOOP)
        assert reward == 0.0 and not terminated and info["lives"] == 2
    env.step(FIRE)
    rewards, lives, over = [], [], []
    for _ in range(12):
        _, reward, terminated, _, info = env.step(NOOP)
        rewards.append(reward)
        lives.append(info["lives"])
        over.append(terminated)
    assert rewards == [0, 5, 0, -1, 0, 5, 0, -1, 0, 5, 0, -1]
    assert lives == [2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0]
    assert over == [False] * 11 + [True]


def test_raw_game_truncates_at_its_frame_cap():
    env = FakeAtariEnv(max_episode_frames=5)
    env.reset()
    flags = [env.step(NOOP)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_chain_max_pools_the_last_two_of_four_frames_and_zero_pads_the_stack():
    env = make_fake_atari_env("nature", "eval", noop_max=0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert info["episode_frame_number"] == 1  # the FIRE frame
    assert not obs[:3].any()
    assert levels(obs[3]) == (1, 254)
    obs, _, _, _, info = env.step(NOOP)
    assert info["episode_frame_number"] == 5
    # frames 4 and 5: top max(4, 5) = 5, bottom max(251, 250) = 251 (frame 3 would give 252)
    assert levels(obs[3]) == (5, 251)
    assert levels(obs[2]) == (1, 254) and not obs[:2].any()
    obs, *_ = env.step(NOOP)
    assert levels(obs[3]) == (9, 247) and levels(obs[2]) == (5, 251)


@pytest.mark.parametrize(
    ("mode", "expected"), [("eval", [3.0, -2.0, 4.0, -2.0]), ("train", [1.0, -1.0, 1.0, -1.0])]
)
def test_chain_sums_rewards_over_the_skip_and_clips_only_in_training(mode, expected):
    env = make_fake_atari_env("nature", mode, noop_max=0)
    env.reset(seed=0)
    # play frames k = 1..16; rewards at k = 3, 6, 9, 12, 15 cycle 3, -2, 1, 3, -2
    rewards = [env.step(NOOP)[1] for _ in range(4)]
    assert rewards == expected


def test_train_mode_life_loss_is_terminal_but_the_game_goes_on():
    env = make_fake_atari_env("nature", "train", noop_max=0)
    env.reset(seed=0)
    for step in range(1, 10):
        _, _, terminated, _, info = env.step(NOOP)
        assert not terminated, step
    obs, _, terminated, truncated, info = env.step(NOOP)  # play frame 40: first life lost
    assert terminated and not truncated and info["life_loss"] and info["lives"] == 2
    assert "episode" not in info
    assert info["episode_frame_number"] == 41
    again, reset_info = env.reset()
    assert np.array_equal(again, obs) and reset_info["episode_frame_number"] == 41
    obs, _, terminated, _, info = env.step(NOOP)
    assert info["episode_frame_number"] == 45 and not terminated
    assert levels(obs[3]) == (45, 211) and levels(obs[2]) == (41, 215)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_episode_statistics_are_the_raw_score_of_the_whole_game(mode):
    env = make_fake_atari_env("nature", mode, noop_max=0)
    env.reset(seed=0)
    ends = []
    for step in range(1, 31):
        _, _, terminated, truncated, info = env.step(NOOP)
        if terminated:
            ends.append(step)
            if "episode" not in info:
                env.reset()  # a lost life in train mode: the game continues
    # lives lost at play frames 40, 80, 120 = agent steps 10, 20, 30 (game over)
    assert ends == ([10, 20, 30] if mode == "train" else [30])
    # 40 rewards on frames 3..120 cycling 3, -2, 1: 13 full cycles (26) plus a 3
    assert info["episode"]["r"] == 29.0 and info["episode"]["l"] == 30
    assert not truncated


def test_frame_cap_truncates_without_terminating():
    env = make_fake_atari_env("nature", "train", noop_max=0, max_episode_frames=50)
    env.reset(seed=0)
    for step in range(1, 14):
        _, _, terminated, truncated, info = env.step(NOOP)
        if step == 10:
            assert terminated and info["life_loss"]
            env.reset()
        elif step < 13:
            assert not (terminated or truncated)
    assert truncated and not terminated and info["episode_frame_number"] == 50
    assert info["episode"]["l"] == 13


def test_noop_starts_fall_in_one_to_noop_max():
    env = make_fake_atari_env("machado", "eval", noop_max=30)  # machado: no FIRE frame
    counts = {env.reset(seed=seed)[1]["episode_frame_number"] for seed in range(60)}
    assert min(counts) >= 1 and max(counts) <= 30 and len(counts) > 15


def test_pixel_choice_env_rewards_the_side_shown():
    env = make_pixel_choice_env(episode_steps=8)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and not obs[:3].any()
    assert obs[3].sum() == 24 * 24 * 255
    total, sides = 0.0, []
    for step in range(8):
        side = pixel_choice_side(obs)
        sides.append(side)
        obs, reward, terminated, truncated, _ = env.step(side)
        total += reward
        assert terminated == (step == 7) and not truncated
    assert total == 8.0 and set(sides) == {0, 1}
    obs, _ = env.reset(seed=3)
    assert env.step(1 - pixel_choice_side(obs))[1] == 0.0


def test_pixel_choice_random_policy_gets_about_half():
    env = PixelChoiceEnv(episode_steps=8)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    total = 0.0
    for _ in range(100):
        env.reset()
        total += sum(env.step(int(rng.integers(2)))[1] for _ in range(8))
    assert 340 <= total <= 460  # mean 400, sd 14
    with pytest.raises(ValueError, match="episode_steps"):
        PixelChoiceEnv(episode_steps=0)
