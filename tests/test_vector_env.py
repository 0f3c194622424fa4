"""The batch interface of envs/vector.py: same-step autoreset, life loss, statistics, agreement."""

import numpy as np
import pytest

from envs.atari import make_atari_env
from envs.fake import fake_screen_levels, pixel_choice_side
from envs.vector import make_vector_env

NOOP = 0


def levels(frame: np.ndarray) -> tuple[int, int]:
    return int(frame[0, 0]), int(frame[-1, 0])


def random_actions(rng: np.random.Generator, env) -> np.ndarray:
    return rng.integers(env.single_action_space.n, size=env.num_envs)


def test_fake_same_step_autoreset_never_mixes_episodes():
    env = make_vector_env("fake", 4, "nature", "train", seed=0)  # 1..30 no-ops: staggered ends
    assert (env.num_envs, env.frame_stack, env.stack_padding) == (4, 4, "zero")
    assert env.single_observation_space.shape == (4, 84, 84)
    obs, info = env.reset()
    rng = np.random.default_rng(0)
    reset_steps, life_losses = [], 0
    for step in range(150):
        prev = obs
        obs, reward, terminated, truncated, info = env.step(random_actions(rng, env))
        assert obs.shape == (4, 4, 84, 84) and obs.dtype == np.uint8
        assert reward.dtype == np.float32 and reward.shape == (4,)
        assert terminated.dtype == truncated.dtype == np.bool_
        resets = info["reset_mask"]
        np.testing.assert_array_equal(resets, terminated & ~info["life_loss"] | truncated)
        for i in range(4):
            final = info["final_obs"][i]
            assert np.array_equal(final[:-1], prev[i][1:])  # the stored transition is one episode
            if resets[i]:
                reset_steps.append((step, i))
                assert not obs[i][:-1].any()  # a new episode: zero padding
                frame = int(info["episode_frame_number"][i])
                assert levels(obs[i][-1]) == fake_screen_levels(frame)
                assert not np.array_equal(final, obs[i])
            else:
                assert np.array_equal(final, obs[i])
                assert levels(obs[i][-1])[0] == (levels(prev[i][-1])[0] + 4) % 256
            life_losses += bool(info["life_loss"][i])
    assert life_losses >= 8 and len(reset_steps) >= 8
    assert len({step for step, _ in reset_steps}) > 2  # the envs did not all end together


def test_fake_train_and_eval_twins_agree_on_raw_statistics():
    train = make_vector_env("fake", 3, "nature", "train", seed=5)
    evaluation = make_vector_env("fake", 3, "nature", "eval", seed=5)
    train.reset()
    evaluation.reset()
    rng = np.random.default_rng(5)
    raw_sums, finished, raw_values = np.zeros(3), 0, set()
    for _ in range(120):
        actions = random_actions(rng, train)
        _, reward, terminated, truncated, info = train.step(actions)
        _, e_reward, e_terminated, e_truncated, e_info = evaluation.step(actions)
        np.testing.assert_array_equal(reward, np.sign(e_reward))
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        raw_values |= set(e_reward.tolist())
        np.testing.assert_array_equal(e_info["life_loss"], info["life_loss"])
        np.testing.assert_array_equal(terminated, e_terminated | info["life_loss"])
        np.testing.assert_array_equal(e_terminated, e_info["reset_mask"] & ~e_truncated)
        raw_sums += e_reward
        done = info["episode_done"]
        np.testing.assert_array_equal(done, e_info["episode_done"])
        np.testing.assert_array_equal(info["episode_return"][done], raw_sums[done])
        np.testing.assert_array_equal(e_info["episode_return"][done], raw_sums[done])
        assert not (done & info["life_loss"]).any()
        raw_sums[done] = 0.0
        finished += done.sum()
    assert finished >= 6 and {3.0, 4.0} <= raw_values  # raw rewards were not clipped


def test_fake_pixels_oracle_gets_every_reward():
    env = make_vector_env("fake-pixels", 2, seed=1)
    obs, _ = env.reset()
    assert obs.shape == (2, 4, 84, 84) and (env.frame_stack, env.stack_padding) == (4, "zero")
    for step in range(1, 17):
        actions = np.array([pixel_choice_side(o) for o in obs])
        obs, reward, terminated, truncated, info = env.step(actions)
        assert reward.tolist() == [1.0, 1.0] and not truncated.any()
        assert terminated.tolist() == [step % 8 == 0] * 2
    assert info["episode_return"].tolist() == [8.0, 8.0]
    assert info["episode_length"].tolist() == [8, 8]


def test_cartpole_final_observation_is_the_failed_state():
    env = make_vector_env("CartPole-v1", 3, mode="train", seed=0)
    assert (env.frame_stack, env.stack_padding) == (1, None)
    obs, _ = env.reset()
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    lengths, ends = np.zeros(3, dtype=int), 0
    for _ in range(200):
        _, reward, terminated, truncated, info = env.step(random_actions(rng, env))
        assert reward.tolist() == [1.0] * 3
        lengths += 1
        for i in np.flatnonzero(info["reset_mask"]):
            x, _, angle, _ = info["final_obs"][i]
            assert abs(x) > 2.4 or abs(angle) > 0.2095  # CartPole-v1's failure limits
            assert np.abs(obs[i]).max() <= 0.05  # the new episode's start state
            assert info["episode_length"][i] == info["episode_return"][i] == lengths[i]
            lengths[i] = 0
            ends += 1
    assert ends >= 10


def test_unknown_env_id_and_bad_settings():
    with pytest.raises(ValueError) as error:
        make_vector_env("CartPol-v1", 2)
    assert str(error.value).startswith("--env: unknown env id 'CartPol-v1' (closest: CartPole-v1")
    with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
        make_vector_env("fake", 0)
    with pytest.raises(ValueError, match="unknown mode 'play'"):
        make_vector_env("fake", 1, mode="play")
    env = make_vector_env("fake", 2)
    env.reset()
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\), got \(3,\)"):
        env.step(np.zeros(3, dtype=np.int64))


@pytest.mark.atari
@pytest.mark.parametrize("game", ["Pong", "Breakout"])
def test_atari_vector_matches_the_single_env_chain_without_noops(game):
    vector = make_vector_env(game, 1, "nature", "train", seed=4, noop_max=0)
    single = make_atari_env(game, "nature", "train", noop_max=0)
    obs, info = vector.reset()
    s_obs, s_info = single.reset(seed=4)
    assert np.array_equal(obs[0], s_obs)
    assert info["episode_frame_number"][0] == s_info["episode_frame_number"] == 1
    rng = np.random.default_rng(4)
    for _ in range(400):
        action = int(rng.integers(single.action_space.n))
        obs, reward, terminated, truncated, info = vector.step(np.array([action]))
        s_obs, s_reward, s_terminated, s_truncated, s_info = single.step(action)
        assert np.array_equal(info["final_obs"][0], s_obs)
        assert (reward[0], terminated[0], truncated[0]) == (s_reward, s_terminated, s_truncated)
        if info["reset_mask"][0]:
            assert info["episode_return"][0] == s_info["episode"]["r"]
            assert info["episode_length"][0] == s_info["episode"]["l"]
            break
        if s_terminated:  # a lost life: the single env continues its game on reset()
            assert np.array_equal(single.reset()[0], obs[0])
    assert game == "Pong" or info["reset_mask"][0]  # Breakout reached game over


@pytest.mark.atari
def test_atari_vector_truncates_at_the_frame_cap():
    env = make_vector_env("Pong", 2, "nature", "eval", seed=0, max_episode_frames=400)
    env.reset()
    for step in range(1, 101):
        obs, _, terminated, truncated, info = env.step(np.full(2, NOOP))
        assert not terminated.any()
        assert truncated.tolist() == [step == 100] * 2
    # the cap counts the frames of agent steps only: 100 steps x 4 frames
    assert info["episode_done"].all() and info["episode_length"].tolist() == [100, 100]
    assert not obs[:, :3].any() and info["final_obs"][:, :3].all(axis=(1, 2, 3)).all()


@pytest.mark.atari
def test_atari_vector_async_steps_equal_sync_steps():
    sync = make_vector_env("Breakout", 2, "nature", "train", seed=9)
    split = make_vector_env("Breakout", 2, "nature", "train", seed=9)
    assert np.array_equal(sync.reset()[0], split.reset()[0])
    rng = np.random.default_rng(9)
    for _ in range(50):
        actions = random_actions(rng, sync)
        expected = sync.step(actions)
        split.step_async(actions)
        got = split.step_wait()
        for a, b in zip(expected[:4], got[:4]):
            assert np.array_equal(a, b)
        assert np.array_equal(expected[4]["final_obs"], got[4]["final_obs"])
    sync.close()
    split.close()
