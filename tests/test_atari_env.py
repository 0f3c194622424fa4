"""Game names, the single-env Atari chain on the real Pong and Breakout ROMs, and the no-op starts
of both chains."""

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from envs.atari import (
    UnknownGameError,
    canonical_game_id,
    is_atari_game,
    list_games,
    make_atari_env,
    make_atari_vector_env,
    print_games_if_requested,
    rom_name,
)
from envs.wrappers import FireOnReset

NOOP, FIRE = 0, 1


@pytest.mark.parametrize(
    ("name", "game_id", "rom"),
    [
        ("Pong", "ALE/Pong-v5", "pong"),
        ("pong", "ALE/Pong-v5", "pong"),
        ("ALE/Pong-v5", "ALE/Pong-v5", "pong"),
        ("PongNoFrameskip-v4", "ALE/Pong-v5", "pong"),
        ("Pong-v0", "ALE/Pong-v5", "pong"),
        ("space_invaders", "ALE/SpaceInvaders-v5", "space_invaders"),
        ("SpaceInvaders", "ALE/SpaceInvaders-v5", "space_invaders"),
        ("BreakoutDeterministic-v4", "ALE/Breakout-v5", "breakout"),
        ("MsPacman", "ALE/MsPacman-v5", "ms_pacman"),
        ("montezuma-revenge", "ALE/MontezumaRevenge-v5", "montezuma_revenge"),
    ],
)
def test_spellings_map_to_one_canonical_id(name, game_id, rom):
    assert canonical_game_id(name) == game_id
    assert rom_name(name) == rom
    assert is_atari_game(name)


def test_list_games_is_sorted_and_complete():
    games = list_games()
    assert games == sorted(games)
    assert len(games) == 104  # every ALE/*-v5 id ale-py 0.12 registers
    assert {"ALE/Pong-v5", "ALE/Breakout-v5", "ALE/SpaceInvaders-v5"} <= set(games)
    assert all(canonical_game_id(game) == game for game in games)


def test_list_games_flag_prints_one_game_per_line(capsys):
    assert not print_games_if_requested(["--game", "Pong"])
    assert capsys.readouterr().out == ""
    assert print_games_if_requested(["train", "--list-games"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == list_games() and lines[0] == "ALE/Adventure-v5"


def test_unknown_game_names_the_closest_installed_games():
    with pytest.raises(UnknownGameError) as error:
        make_atari_env("Pongg")
    message = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in message
    assert message.startswith("unknown Atari game 'Pongg'; closest installed games: ALE/Pong-v5")
    assert "list_games() lists all 104" in message
    assert not is_atari_game("CartPole-v1")
    with pytest.raises(UnknownGameError, match="closest installed games: none"):
        rom_name("zzzzzz")


def raw_ale_env(game_id: str, sticky: float = 0.0) -> gym.Env:
    return gym.make(game_id, frameskip=1, repeat_action_probability=sticky, full_action_space=False)


def reference_chain(game_id: str, noop_max: int, fire: bool, sticky: float = 0.0) -> gym.Env:
    """Gymnasium's own preprocessing, configured by hand."""
    env = raw_ale_env(game_id, sticky)
    env = FireOnReset(env) if fire else env
    env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=84)
    return FrameStackObservation(env, 4, padding_type="zero")


@pytest.mark.atari
@pytest.mark.parametrize(
    ("protocol", "game", "noop_max", "fire", "sticky"),
    [("nature", "ALE/Pong-v5", 30, True, 0.0), ("machado", "ALE/Breakout-v5", 0, False, 0.25)],
)
def test_chain_matches_gymnasium_preprocessing_pixel_for_pixel(
    protocol, game, noop_max, fire, sticky
):
    ours = make_atari_env(game, protocol, "eval")
    reference = reference_chain(game, noop_max, fire, sticky)
    obs, info = ours.reset(seed=7)
    ref_obs, ref_info = reference.reset(seed=7)
    assert np.array_equal(obs, ref_obs)
    assert info["episode_frame_number"] == ref_info["episode_frame_number"]
    rng = np.random.default_rng(7)
    for _ in range(150):
        action = int(rng.integers(ours.action_space.n))
        obs, reward, terminated, truncated, _ = ours.step(action)
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(action)
        assert np.array_equal(obs, ref_obs)
        assert (reward, terminated, truncated) == (ref_reward, ref_terminated, ref_truncated)
        if terminated or truncated:
            break
    assert obs[-1].mean() > 0


@pytest.mark.atari
def test_four_frames_per_step_and_max_over_the_last_two_raw_frames():
    env = make_atari_env("Pong", "nature", "eval", noop_max=0)
    raw = raw_ale_env("ALE/Pong-v5")
    _, info = env.reset(seed=3)
    raw.reset(seed=3)
    raw.step(FIRE)  # the FIRE frame on reset
    assert info["episode_frame_number"] == 1
    rng = np.random.default_rng(3)
    screens = []
    for step in range(1, 61):
        action = int(rng.integers(env.action_space.n))
        obs, _, _, _, info = env.step(action)
        for _ in range(4):
            raw.step(action)
            screens.append(raw.unwrapped.ale.getScreenGrayscale())
        assert info["episode_frame_number"] == 1 + 4 * step
        pooled = np.maximum(screens[-2], screens[-1])
        expected = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
        assert np.array_equal(obs[-1], expected)
    assert not np.array_equal(screens[-2], screens[-1])  # the max did pool two frames


STARTS = 256  # per chain; a value of 1..30 is missed with probability (29/30)^256 < 2e-4


def assert_one_to_thirty(noops: list[int]) -> None:
    assert len(noops) == STARTS
    assert (min(noops), max(noops)) == (1, 30)
    assert set(noops) == set(range(1, 31))


@pytest.mark.atari
def test_single_chain_draws_one_to_thirty_noop_frames():
    env = make_atari_env("Pong", "nature", "eval", seed=0)  # later resets go on with its RNG
    noops = [env.reset()[1]["episode_frame_number"] - 1 for _ in range(STARTS)]  # minus FIRE
    assert_one_to_thirty(noops)


# Pong has FIRE: under `nature` the vector env presses it after the no-ops, under `machado` (here
# with no-op starts added) it does not, the two ways ale_py's vector env counts its no-ops.
@pytest.mark.atari
@pytest.mark.parametrize(("protocol", "fire_frames"), [("nature", 1), ("machado", 0)])
def test_vector_chain_draws_one_to_thirty_noop_frames(protocol, fire_frames):
    # a cap of one agent step truncates every step: each step autoresets every env
    env = make_atari_vector_env(
        "Pong", 4, protocol, "eval", seed=1, noop_max=30, max_episode_frames=1, num_threads=1
    )
    noops = []
    for _ in range(STARTS // 8):
        _, info = env.reset()
        noops += (info["episode_frame_number"] - fire_frames).tolist()
        _, _, _, truncated, info = env.step(np.zeros(4, dtype=np.int64))  # same-step autoresets
        assert truncated.all()
        noops += (info["episode_frame_number"] - fire_frames).tolist()
    assert_one_to_thirty(noops)


@pytest.mark.atari
def test_vector_chain_without_noop_starts_plays_none():
    for protocol, fire_frames in [("nature", 1), ("machado", 0)]:
        env = make_atari_vector_env("Pong", 4, protocol, "eval", seed=0, noop_max=0)
        for _ in range(8):
            _, info = env.reset()
            assert (info["episode_frame_number"] == fire_frames).all()


@pytest.mark.atari
def test_fire_is_pressed_on_reset_in_breakout():
    env = make_atari_env("Breakout", "nature", "eval", seed=0, noop_max=0)
    _, info = env.reset()
    assert info["episode_frame_number"] == 1 and info["lives"] == 5
    lives = [env.step(NOOP)[4]["lives"] for _ in range(60)]
    assert lives[-1] == 4  # the ball was launched, and missed by the idle paddle
    no_fire = make_atari_env("Breakout", "machado", "eval", seed=0)
    _, info = no_fire.reset()
    assert info["episode_frame_number"] == 0
    assert all(no_fire.step(NOOP)[4]["lives"] == 5 for _ in range(60))


@pytest.mark.atari
def test_train_mode_life_loss_and_clipping_against_eval_mode():
    """Twin Breakouts, same seed and actions: train reports lives lost and signs of rewards."""
    train = make_atari_env("Breakout", "nature", "train", noop_max=0)
    evaluation = make_atari_env("Breakout", "nature", "eval", noop_max=0)
    train.reset(seed=11)
    evaluation.reset(seed=11)
    rng = np.random.default_rng(11)
    raw_rewards, life_losses, next_frame = [], 0, None
    for _ in range(2000):
        action = int(rng.integers(4))
        obs, reward, terminated, truncated, info = train.step(action)
        e_obs, e_reward, e_terminated, e_truncated, e_info = evaluation.step(action)
        raw_rewards.append(e_reward)
        assert reward == np.sign(e_reward) and np.array_equal(obs, e_obs)
        assert not (truncated or e_truncated)
        if next_frame is not None:  # the step after a life loss: same game, 4 frames on
            assert info["episode_frame_number"] == next_frame
            next_frame = None
        if e_terminated:
            break
        assert terminated == info["life_loss"]
        if terminated:
            life_losses += 1
            again, _ = train.reset()  # continues the game
            assert np.array_equal(again, obs) and "episode" not in info
            next_frame = info["episode_frame_number"] + 4
    assert terminated and e_terminated and life_losses == 4
    assert info["episode"]["r"] == e_info["episode"]["r"] == sum(raw_rewards)
    assert info["episode"]["l"] == e_info["episode"]["l"] == len(raw_rewards)


@pytest.mark.atari
def test_frame_cap_truncates_and_reports_the_episode():
    env = make_atari_env("Pong", "nature", "eval", noop_max=0, max_episode_frames=401)
    env.reset(seed=0)
    rewards = []
    for step in range(1, 200):
        _, reward, terminated, truncated, info = env.step(int(step % 6))
        rewards.append(reward)
        if terminated or truncated:
            break
    # 1 FIRE frame + 100 steps of 4 frames = 401 frames
    assert step == 100 and truncated and not terminated
    assert info["episode_frame_number"] == 401
    assert info["episode"]["l"] == 100 and info["episode"]["r"] == sum(rewards)


@pytest.mark.atari
def test_bad_settings_raise_value_errors():
    with pytest.raises(ValueError, match="max_episode_frames must be >= 1, got 0"):
        make_atari_env("Pong", max_episode_frames=0)
    with pytest.raises(ValueError, match="unknown protocol 'deepmind'"):
        make_atari_env("Pong", protocol="deepmind")
