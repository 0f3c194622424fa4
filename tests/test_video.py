"""Tests for envs.video: H.264/yuv420p mp4 writing, atomic writes, input checks, record_episode;
videos of every env that renders rgb frames (Atari, fake, CartPole, Acrobot, MountainCar) at the
game's real speed, from record_episode, scripts.train --record-video and the refusals."""

import json
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from helpers import capture_facts

from agents.evaluation.recording import make_recording_env, recording_problem
from envs import video
from envs.fake import FakeAtariEnv, make_fake_atari_env
from scripts import train as train_script

# Saturated colours, far apart, so a decoded frame's mean identifies its source frame.
PALETTE = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
        [128, 64, 0],
        [0, 128, 64],
    ],
    dtype=np.uint8,
)
COLOUR_TOLERANCE = 6.0  # yuv420p round trip of a flat colour, per channel


def solid_frames(count: int, height: int = 210, width: int = 160) -> list[np.ndarray]:
    return [np.full((height, width, 3), PALETTE[i % len(PALETTE)], np.uint8) for i in range(count)]


def probe(path: Path) -> dict:
    """Codec, pixel format and size reported by the bundled ffmpeg binary."""
    stderr = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    match = re.search(r"Video: (\w+).*?, (\w+)\(.*?, (\d+)x(\d+)", stderr)
    assert match, stderr
    codec, pix_fmt, width, height = match.groups()
    return {"codec": codec, "pix_fmt": pix_fmt, "width": int(width), "height": int(height)}


def decode(path: Path) -> np.ndarray:
    return iio.imread(path, plugin="FFMPEG")


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_upscale_nearest_exact_pixels():
    frame = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], np.uint8)
    big = video.upscale_nearest(frame, 3)
    assert big.shape == (6, 6, 3)
    assert (big[0:3, 0:3] == [1, 2, 3]).all()
    assert (big[0:3, 3:6] == [4, 5, 6]).all()
    assert (big[3:6, 0:3] == [7, 8, 9]).all()
    assert (big[3:6, 3:6] == [10, 11, 12]).all()
    assert video.upscale_nearest(frame, 1) is frame


def test_write_mp4_round_trip_h264_yuv420p(tmp_path):
    frames = solid_frames(12)
    path = video.write_mp4(tmp_path / "game.mp4", frames, fps=30)
    assert path == tmp_path / "game.mp4"
    assert leftovers(tmp_path) == ["game.mp4"]
    assert probe(path) == {"codec": "h264", "pix_fmt": "yuv420p", "width": 160, "height": 210}
    frame_count, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert frame_count == 12
    assert seconds == pytest.approx(12 / 30, abs=0.05)
    decoded = decode(path)
    assert decoded.shape == (12, 210, 160, 3)
    means = decoded.reshape(12, -1, 3).mean(axis=1)
    assert np.abs(means - PALETTE[np.arange(12) % 10]).max() < COLOUR_TOLERANCE


def test_reader_metadata_reports_h264_yuv420p_and_fps(tmp_path):
    import imageio.v2 as imageio

    path = video.write_mp4(tmp_path / "meta.mp4", solid_frames(3), fps=15)
    with imageio.get_reader(path, format="FFMPEG") as reader:
        meta = reader.get_meta_data()
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 15.0
    assert meta["size"] == (160, 210)


def test_scale_two_gives_420_by_320_with_sharp_edges(tmp_path):
    frame = np.zeros((210, 160, 3), np.uint8)
    frame[:, :80] = 255  # left half white, right half black
    frame[:105, :, 2] = 0  # top half without blue
    path = video.write_mp4(tmp_path / "big.mp4", [frame] * 4, scale=2)
    assert probe(path)["width"] == 320 and probe(path)["height"] == 420
    decoded = decode(path)
    assert decoded.shape == (4, 420, 320, 3)
    last = decoded[-1].astype(float)
    assert last[300, :150].mean() > 250  # white, lower left
    assert last[300, 170:].mean() < 5  # black, right
    assert last[100, :150, 2].mean() < 10  # no blue in the upper left
    assert last[100, :150, 0].mean() > 245


def test_faststart_puts_the_index_before_the_media_data(tmp_path):
    path = video.write_mp4(tmp_path / "fast.mp4", solid_frames(5))
    data = path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")


def test_accepts_a_4d_array_and_a_generator(tmp_path):
    stacked = np.stack(solid_frames(3))
    assert imageio_ffmpeg.count_frames_and_secs(
        str(video.write_mp4(tmp_path / "a.mp4", stacked))
    ) == (3, pytest.approx(0.1, abs=0.05))
    generated = (frame for frame in solid_frames(4))
    decoded = decode(video.write_mp4(tmp_path / "g.mp4", generated))
    assert decoded.shape == (4, 210, 160, 3)


def test_odd_sizes_are_padded_to_even_by_repeating_the_edge(tmp_path):
    frame = np.zeros((33, 41, 3), np.uint8)
    frame[:, -1] = 255  # white last column, repeated into the padding column
    path = video.write_mp4(tmp_path / "odd.mp4", [frame, frame])
    assert probe(path) == {"codec": "h264", "pix_fmt": "yuv420p", "width": 42, "height": 34}
    decoded = decode(path)[0].astype(float)
    assert decoded[:, -2:].mean() > 240
    assert decoded[:, :-4].mean() < 10


def test_existing_file_is_replaced(tmp_path):
    target = tmp_path / "clip.mp4"
    video.write_mp4(target, solid_frames(2))
    video.write_mp4(target, solid_frames(7))
    assert imageio_ffmpeg.count_frames_and_secs(str(target))[0] == 7
    assert leftovers(tmp_path) == ["clip.mp4"]


def test_writer_close_is_idempotent_and_append_after_close_fails(tmp_path):
    writer = video.Mp4Writer(tmp_path / "w.mp4", fps=10, scale=1)
    for frame in solid_frames(3):
        writer.append(frame)
    assert writer.close() == tmp_path / "w.mp4"
    assert writer.close() == tmp_path / "w.mp4"
    with pytest.raises(RuntimeError, match="already closed"):
        writer.append(solid_frames(1)[0])
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "w.mp4"))[0] == 3
    assert leftovers(tmp_path) == ["w.mp4"]


def test_parent_directories_are_created(tmp_path):
    path = video.write_mp4(tmp_path / "runs" / "pong" / "v.mp4", solid_frames(1))
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == 1


def test_failure_mid_write_leaves_no_file_and_no_temp(tmp_path):
    def frames_then_crash():
        yield from solid_frames(5)
        raise RuntimeError("emulator crashed")

    with pytest.raises(RuntimeError, match="emulator crashed"):
        video.write_mp4(tmp_path / "crash.mp4", frames_then_crash())
    assert leftovers(tmp_path) == []


def test_failure_mid_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "keep.mp4"
    video.write_mp4(target, solid_frames(3))
    before = target.read_bytes()
    frames = [*solid_frames(4), np.zeros((100, 100, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"frame 4 has shape \(100, 100, 3\).*\(210, 160, 3\)"):
        video.write_mp4(target, frames)
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == ["keep.mp4"]


def test_failure_while_moving_into_place_removes_the_temp(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        assert Path(src).exists() and Path(src).parent == tmp_path  # encoded beside the target
        raise OSError("disk full")

    monkeypatch.setattr(video.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        video.write_mp4(tmp_path / "full.mp4", solid_frames(3))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "frames is empty"),
        (
            np.zeros((0, 210, 160, 3), np.uint8),
            r"NxHxWx3 with N >= 1, got shape \(0, 210, 160, 3\)",
        ),
        (np.zeros((210, 160, 3), np.uint8), r"NxHxWx3 .* got shape \(210, 160, 3\)"),
        ([np.zeros((210, 160, 3), np.float32)], "frame 0 must be .* uint8 .* dtype float32"),
        ([np.zeros((210, 160), np.uint8)], r"HxWx3 .* got shape \(210, 160\)"),
        ([np.zeros((210, 160, 4), np.uint8)], r"HxWx3 .* got shape \(210, 160, 4\)"),
        ([np.zeros((0, 160, 3), np.uint8)], r"non-empty HxWx3 .* \(0, 160, 3\)"),
        ([[[0, 0, 0]]], "frame 0 must be a numpy array, got list"),
        (iter([]), "no frames were given"),
    ],
)
def test_bad_frames_raise_value_error_and_write_nothing(tmp_path, frames, message):
    with pytest.raises(ValueError, match=message):
        video.write_mp4(tmp_path / "bad.mp4", frames)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0}, "scale must be a positive integer, got 0"),
        ({"scale": 1.5}, "scale must be a positive integer, got 1.5"),
        ({"scale": True}, "scale must be a positive integer, got True"),
        ({"fps": 0}, "fps must be a positive finite number, got 0"),
        ({"fps": float("nan")}, "fps must be a positive finite number, got nan"),
        ({"path_name": "clip.avi"}, "must end in '.mp4', got '.*clip.avi'"),
    ],
)
def test_bad_settings_raise_value_error(tmp_path, kwargs, message):
    path = tmp_path / kwargs.pop("path_name", "ok.mp4")
    with pytest.raises(ValueError, match=message):
        video.write_mp4(path, solid_frames(1), **kwargs)
    assert leftovers(tmp_path) == []


class StubEnv(gym.Env):
    """Grey 84x84 observations (10 * step) and coloured 210x160 screens (PALETTE[step])."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, episode_steps=5, render_mode="rgb_array", episode_info=None):
        self.observation_space = gym.spaces.Box(0, 255, (84, 84), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.render_mode = render_mode
        self.episode_steps = episode_steps
        self.episode_info = episode_info
        self.t = 0
        self.actions = []

    def _obs(self):
        return np.full((84, 84), 10 * self.t, np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        terminated = self.episode_steps is not None and self.t >= self.episode_steps
        info = dict(self.episode_info) if terminated and self.episode_info else {}
        return self._obs(), float(self.t), terminated, False, info

    def render(self):
        return np.full((210, 160, 3), PALETTE[self.t % len(PALETTE)], np.uint8)


def test_record_episode_takes_frames_from_render_not_observations(tmp_path):
    env = StubEnv(episode_steps=5)
    seen = []

    def policy(obs):
        seen.append(obs.copy())
        return len(seen) % 3

    result = video.record_episode(env, policy, tmp_path / "ep.mp4", scale=2, seed=3)
    assert result == {"path": str(tmp_path / "ep.mp4"), "frames": 6, "return": 15.0, "length": 5,
                      "fps": 30.0, "size": (320, 420)}  # fmt: skip
    assert [int(obs[0, 0]) for obs in seen] == [0, 10, 20, 30, 40]  # the policy saw observations
    assert env.actions == [1, 2, 0, 1, 2]
    decoded = decode(tmp_path / "ep.mp4")
    assert decoded.shape == (6, 420, 320, 3)  # steps + 1 frames, the reset frame first
    means = decoded.reshape(6, -1, 3).mean(axis=1)
    assert np.abs(means - PALETTE[:6]).max() < COLOUR_TOLERANCE
    greys = np.repeat(np.array([0, 10, 20, 30, 40, 50], float)[:, None], 3, axis=1)
    assert np.abs(means - greys).max(axis=1).min() > 100  # no frame looks like an observation
    assert leftovers(tmp_path) == ["ep.mp4"]


def test_record_episode_prefers_the_envs_episode_return(tmp_path):
    env = StubEnv(episode_steps=3, episode_info={"episode": {"r": np.array([42.0]), "l": 3}})
    result = video.record_episode(env, lambda obs: 0, tmp_path / "r.mp4")
    assert result["return"] == 42.0  # the env's record, not the summed 1 + 2 + 3
    wrapped = gym.wrappers.RecordEpisodeStatistics(StubEnv(episode_steps=4))
    result = video.record_episode(wrapped, lambda obs: 0, tmp_path / "w.mp4")
    assert result["return"] == 10.0 and result["length"] == 4 and result["frames"] == 5


def test_record_episode_stops_at_max_steps(tmp_path):
    env = StubEnv(episode_steps=None)
    result = video.record_episode(env, lambda obs: 0, tmp_path / "cap.mp4", max_steps=4, scale=1)
    assert (result["length"], result["frames"], result["return"]) == (4, 5, 10.0)
    assert decode(tmp_path / "cap.mp4").shape == (5, 210, 160, 3)


def test_record_episode_rejects_envs_without_rgb_array_rendering(tmp_path):
    with pytest.raises(ValueError, match="render_mode='rgb_array', got None"):
        video.record_episode(StubEnv(render_mode=None), lambda obs: 0, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="max_steps must be a positive integer, got 0"):
        video.record_episode(StubEnv(), lambda obs: 0, tmp_path / "x.mp4", max_steps=0)
    assert leftovers(tmp_path) == []


def test_record_episode_policy_error_leaves_no_file(tmp_path):
    def policy(obs):
        if obs[0, 0] == 20:
            raise RuntimeError("policy failed")
        return 0

    with pytest.raises(RuntimeError, match="policy failed"):
        video.record_episode(StubEnv(episode_steps=10), policy, tmp_path / "p.mp4")
    assert leftovers(tmp_path) == []


@pytest.mark.atari
def test_record_episode_on_pong_records_the_last_emulator_screen_of_each_step(tmp_path):
    ale_py = pytest.importorskip("ale_py")
    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", render_mode="rgb_array", frameskip=1, repeat_action_probability=0)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=0, frame_skip=4, screen_size=84)
    screens, shapes = [], []

    def policy(obs):
        shapes.append(obs.shape)
        screens.append(env.unwrapped.ale.getScreenRGB().copy())  # straight from the emulator
        return 2  # paddle up, so the screens change

    result = video.record_episode(env, policy, tmp_path / "pong.mp4", max_steps=24, seed=0)
    screens.append(env.unwrapped.ale.getScreenRGB().copy())
    env.close()
    assert (result["frames"], result["length"], result["return"]) == (25, 24, 0.0)
    assert (result["fps"], result["size"]) == (15.0, (320, 420))  # 60 Hz / frame skip 4, 2x
    assert capture_facts(tmp_path / "pong.mp4") == (25, 320, 420, 15.0)
    assert shapes == [(84, 84)] * 24  # the policy saw 84x84 observations
    decoded = decode(tmp_path / "pong.mp4").astype(int)
    assert decoded.shape == (25, 420, 320, 3)

    def pixels_off(frame, screen):
        expected = video.upscale_nearest(screen, 2).astype(int)
        return int((np.abs(frame - expected).max(axis=2) > 64).sum())

    assert [pixels_off(decoded[i], screens[i]) for i in range(25)] == [0] * 25
    assert pixels_off(decoded[0], screens[-1]) > 1000  # the screens do differ over the episode
    assert pixels_off(decoded[1], screens[2]) > 100  # and a one-step shift would be caught


# --- the frame rate and size of a game's video ---------------------------------------------------


def with_render_fps(fps):
    env = StubEnv()
    env.metadata = {"render_modes": ["rgb_array"], "render_fps": fps}
    return env


def test_playback_fps_is_the_emulator_rate_over_the_frame_skip_else_render_fps():
    raw = FakeAtariEnv()
    assert video.frames_per_step(raw) == 1.0 and video.playback_fps(raw) == 60.0
    chain = make_fake_atari_env("nature", "eval")  # AtariPreprocessing(frame_skip=4)
    assert video.frames_per_step(chain) == 4.0 and video.playback_fps(chain) == 15.0
    skipped = gym.wrappers.MaxAndSkipObservation(FakeAtariEnv(), skip=2)
    assert video.playback_fps(skipped) == 30.0
    raw._frameskip = (2, 5)  # ale_py draws 2, 3 or 4 frames a step: 3 on average
    assert video.frames_per_step(raw) == 3.0 and video.playback_fps(raw) == 20.0
    assert video.frames_per_step(StubEnv()) is None
    assert video.playback_fps(StubEnv()) == 30.0  # no render_fps declared: DEFAULT_FPS
    assert video.playback_fps(with_render_fps(50)) == 50.0
    for bad in (0, -5, float("nan"), float("inf"), "50", True, None):
        assert video.playback_fps(with_render_fps(bad)) == 30.0


@pytest.mark.parametrize(
    ("env_id", "fps"), [("CartPole-v1", 50.0), ("Acrobot-v1", 15.0), ("MountainCar-v0", 30.0)]
)
def test_classic_control_envs_play_at_their_render_fps(env_id, fps):
    env = make_recording_env(env_id, seed=0)
    try:
        assert env.render_mode == "rgb_array" and video.playback_fps(env) == fps
    finally:
        env.close()


def test_auto_scale_keeps_the_longer_side_within_480_pixels():
    assert video.auto_scale(np.zeros((210, 160, 3), np.uint8)) == 2  # the ALE's screen
    assert video.auto_scale(np.zeros((400, 600, 3), np.uint8)) == 1  # CartPole, MountainCar
    assert video.auto_scale(np.zeros((500, 500, 3), np.uint8)) == 1  # Acrobot
    assert video.auto_scale(np.zeros((100, 60, 3), np.uint8)) == 4
    assert video.auto_scale(np.zeros((481, 10, 3), np.uint8)) == 1


def test_a_cartpole_episode_is_one_frame_per_step_at_50_fps(tmp_path):
    env = make_recording_env("CartPole-v1", seed=0)
    result = video.record_episode(env, lambda obs: 0, tmp_path / "cartpole.mp4", seed=0)
    env.close()
    # always pushing left: the pole falls after 11 steps (seed 0)
    assert result == {"path": str(tmp_path / "cartpole.mp4"), "frames": 12, "return": 11.0,
                      "length": 11, "fps": 50.0, "size": (600, 400)}  # fmt: skip
    assert capture_facts(tmp_path / "cartpole.mp4") == (12, 600, 400, 50.0)
    # the frames are the env's own renders: the reset screen first, the fallen pole last
    again = make_recording_env("CartPole-v1", seed=0)
    again.reset(seed=0)
    screens = [again.render()]
    for _ in range(11):
        again.step(0)
        screens.append(again.render())
    again.close()
    decoded = decode(tmp_path / "cartpole.mp4").astype(float)
    errors = [np.abs(decoded[i] - screens[i]).mean() for i in range(12)]
    assert max(errors) < 2.0, errors
    assert np.abs(decoded[0] - screens[-1]).mean() > 2 * max(errors)  # and the screens differ


@pytest.mark.parametrize(
    ("env_id", "fps", "size"),
    [("Acrobot-v1", 15.0, (500, 500)), ("MountainCar-v0", 30.0, (600, 400)),
     ("fake", 15.0, (320, 420))],
)  # fmt: skip
def test_acrobot_mountaincar_and_the_fake_atari_env_record(tmp_path, env_id, fps, size):
    env = make_recording_env(env_id, seed=0)
    result = video.record_episode(env, lambda obs: 0, tmp_path / "v.mp4", max_steps=12, seed=0)
    env.close()
    assert (result["frames"], result["length"], result["fps"], result["size"]) == (
        13,
        12,
        fps,
        size,
    )
    assert capture_facts(tmp_path / "v.mp4") == (13, *size, fps)


def test_recording_problem_names_what_cannot_be_recorded(monkeypatch):
    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "fake", "Pong"):
        assert recording_problem(env_id) is None
    assert recording_problem("fake-pixels") == (
        "it renders no rgb_array frames (its render modes: none)"
    )
    monkeypatch.setitem(sys.modules, "pygame", None)  # as on a machine without pygame
    problem = recording_problem("CartPole-v1")
    assert problem.startswith(
        "rendering it failed (DependencyNotInstalled: pygame is not installed"
    ), problem


def test_train_records_a_cartpole_video_at_50_fps(tmp_path, capsys):
    out = tmp_path / "run"
    code = train_script.main([
        "--env", "CartPole-v1", "--preset", "smoke", "--total-steps", "200", "--learning-starts",
        "199", "--final-eval-episodes", "1", "--eval-max-steps", "40", "--torch-threads", "1",
        "--no-progress", "--record-video", "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["video"] == str(out / "videos" / "final.mp4")
    assert summary["video_fps"] == 50.0
    frames = summary["video_frames"]
    assert 2 <= frames <= 41  # steps + 1, the episode capped at --eval-max-steps 40
    assert capture_facts(out / "videos" / "final.mp4") == (frames, 600, 400, 50.0)
    assert f"video: {out / 'videos' / 'final.mp4'}" in capsys.readouterr().out.splitlines()
