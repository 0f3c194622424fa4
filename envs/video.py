"""H.264 mp4 videos of Atari play that browsers and Weights & Biases can show.

Frames are full-colour RGB screens (the ALE's 210x160x3), optionally upscaled by an integer
factor with nearest-neighbour so the pixels stay sharp. They are encoded with libx264 in the
yuv420p pixel format (the one browsers decode; it needs even width and height, so an odd edge is
padded by repeating the last row or column) with ``-movflags +faststart`` (index at the start of
the file, so playback begins before the download ends), following the ffmpeg H.264 guide's advice
for "dumb players" (trac.ffmpeg.org/wiki/Encode/H.264). imageio with its imageio-ffmpeg backend
drives the ffmpeg binary that imageio-ffmpeg ships; it is imported inside the functions so the
package imports on machines without it.

Writes are atomic: frames go to a temporary file in the target's directory, which replaces the
target only once the encoder has finished; on any error the temporary file is removed.

``record_episode`` takes its frames from ``env.render()``, never from the observations the policy
sees (84x84 grayscale after preprocessing), for any env made with ``render_mode="rgb_array"``:
Atari games, the fake Atari env, gymnasium's classic control (CartPole, Acrobot, MountainCar...).
A video holds one frame per agent step plus the reset frame, and plays at the game's real speed
(``playback_fps``): an Atari emulator runs at 60 frames/s and one agent step spans ``frame_skip``
of them (``render()`` shows the last; the observation max-pools the last two), so 60 / 4 = 15
fps; any other env plays at the ``render_fps`` of its metadata, the rate at which it renders
itself one frame per step (CartPole 50, Acrobot 15, MountainCar 30), or 30 fps when it declares
none. Small screens are upscaled by an integer factor (``auto_scale``: the ALE's 210x160 becomes
420x320), large ones are kept as they are.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

CRF = 18
"""libx264 constant rate factor (0 best, 51 worst); 18 is visually lossless for Atari sprites."""

DEFAULT_MAX_STEPS = 27_000
"""108,000 emulator frames (the usual episode cap) at frame skip 4."""

EMULATOR_FPS = 60
"""Frames per second of the Atari 2600 (NTSC), which the ALE emulates frame by frame."""

DEFAULT_FPS = 30.0
"""Playback rate of an env that declares no ``render_fps`` (gymnasium's ``RecordVideo`` default)."""

UPSCALED_SIDE = 480
"""``auto_scale`` upscales a screen by the largest integer factor keeping its longer side within
this many pixels (at least 1: larger screens are kept as they are)."""


def upscale_nearest(frame: np.ndarray, scale: int) -> np.ndarray:
    """Repeat every pixel ``scale`` times along height and width (HxWxC -> sH x sW x C)."""
    if scale == 1:
        return frame
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def _pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Repeat the last row/column when height/width is odd (yuv420p needs even sizes)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h == 0 and pad_w == 0:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_fps(fps: object) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < float("inf"):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return float(fps)


class Mp4Writer:
    """Streams RGB frames into an mp4 at ``path``; the file appears only when ``close()`` succeeds.

    Use as a context manager: leaving the block normally commits the video, leaving it with an
    exception discards it (no file at ``path``, no temporary file left).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float = 30, scale: int = 1) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"video path must end in '.mp4', got {str(path)!r}")
        self.fps = _check_fps(fps)
        self.scale = _check_positive_int("scale", scale)
        self.frames_written = 0
        self._frame_shape: tuple[int, ...] | None = None
        self._tmp_path: Path | None = None
        self._writer: Any = None
        self._closed = False

    def append(self, frame: np.ndarray) -> None:
        """Validate one HxWx3 uint8 frame (same size as the first), upscale it and encode it."""
        index = self.frames_written
        if self._closed:
            raise RuntimeError(f"the video {str(self.path)!r} is already closed")
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"frame {index} must be a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
            raise ValueError(
                f"frame {index} must be a non-empty HxWx3 uint8 RGB array, "
                f"got shape {frame.shape} dtype {frame.dtype}"
            )
        if self._frame_shape is None:
            self._frame_shape = frame.shape
        elif frame.shape != self._frame_shape:
            raise ValueError(
                f"frame {index} has shape {frame.shape} but frame 0 had {self._frame_shape}; "
                "all frames of a video must have the same size"
            )
        if self._writer is None:
            self._open()
        self._writer.append_data(
            np.ascontiguousarray(_pad_to_even(upscale_nearest(frame, self.scale)))
        )
        self.frames_written += 1

    def _open(self) -> None:
        import imageio.v2 as imageio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A unique name beside the target (same filesystem, so os.replace is atomic); ffmpeg
        # creates it, so it gets the usual permissions rather than mkstemp's 0600.
        unique = f"{os.getpid()}.{secrets.token_hex(4)}"
        self._tmp_path = self.path.with_name(f".{self.path.stem}.{unique}.tmp.mp4")
        self._writer = imageio.get_writer(
            self._tmp_path,
            format="FFMPEG",
            mode="I",
            fps=self.fps,
            codec="libx264",
            pixelformat="yuv420p",
            quality=None,  # rate control set by -crf below
            macro_block_size=1,  # sizes are made even here; imageio would rescale instead
            output_params=["-crf", str(CRF), "-movflags", "+faststart"],
        )

    def close(self) -> Path:
        """Finish encoding and move the video to ``path``; returns ``path``. Idempotent."""
        if self._closed:
            return self.path
        self._closed = True
        if self.frames_written == 0:
            self.abort()
            raise ValueError(f"no frames were given for {str(self.path)!r}; a video needs >= 1")
        try:
            self._writer.close()
            os.replace(self._tmp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._writer = None
        self._tmp_path = None
        return self.path

    def abort(self) -> None:
        """Stop the encoder and delete the temporary file; ``path`` is left untouched."""
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if self._tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp_path.unlink()
            self._tmp_path = None

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_mp4(
    path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float = 30, scale: int = 1
) -> Path:
    """Write HxWx3 uint8 RGB frames as an H.264/yuv420p mp4, atomically; returns the path.

    ``frames`` may be a list, an NxHxWx3 array or any iterable (streamed, never held whole);
    ``scale`` upscales each frame by an integer factor with nearest-neighbour.
    """
    if isinstance(frames, np.ndarray) and (frames.ndim != 4 or len(frames) == 0):
        raise ValueError(f"frames array must be NxHxWx3 with N >= 1, got shape {frames.shape}")
    if isinstance(frames, (list, tuple)) and len(frames) == 0:
        raise ValueError("frames is empty; a video needs at least one HxWx3 uint8 frame")
    with Mp4Writer(path, fps=fps, scale=scale) as writer:
        for frame in frames:
            writer.append(frame)
    return writer.path


def frames_per_step(env: Any) -> float | None:
    """Emulator frames one step of ``env`` spans when it runs an Atari emulator (its unwrapped
    env has an ``ale``): the product of the frame skips of its wrappers (``AtariPreprocessing``'s
    ``frame_skip``, ``MaxAndSkipObservation``'s) and of the emulator env's own ``frameskip`` (the
    mean of a stochastic ``(low, high)`` one, drawn from low..high-1); None for any other env."""
    if not hasattr(getattr(env, "unwrapped", None), "ale"):
        return None
    frames, layer = 1.0, env
    while layer is not None and layer is not layer.unwrapped:
        for name in ("frame_skip", "_skip"):
            skip = getattr(layer, name, None) if name in vars(layer) else None
            if isinstance(skip, (int, np.integer)) and skip >= 1:
                frames *= int(skip)
        layer = getattr(layer, "env", None)
    own = getattr(env.unwrapped, "_frameskip", 1)
    if isinstance(own, tuple) and len(own) == 2:
        frames *= (own[0] + own[1] - 1) / 2
    elif isinstance(own, (int, np.integer)) and own >= 1:
        frames *= int(own)
    return frames


def playback_fps(env: Any) -> float:
    """Frames per second at which a video of one frame per step of ``env`` plays in real time:
    ``EMULATOR_FPS / frames_per_step`` for an Atari emulator (15 under frame skip 4), else the
    ``render_fps`` of the env's metadata (CartPole-v1 50, Acrobot-v1 15, MountainCar-v0 30),
    ``DEFAULT_FPS`` when it declares none."""
    frames = frames_per_step(env)
    if frames is not None:
        return EMULATOR_FPS / frames
    fps = (getattr(env, "metadata", None) or {}).get("render_fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)):
        return DEFAULT_FPS
    fps = float(fps)
    return fps if 0 < fps < float("inf") else DEFAULT_FPS


def auto_scale(frame: np.ndarray) -> int:
    """The integer upscaling of ``frame`` in a video: the largest keeping its longer side within
    ``UPSCALED_SIDE`` pixels, at least 1 (the ALE's 210x160: 2; CartPole's 400x600: 1)."""
    return max(1, UPSCALED_SIDE // max(frame.shape[0], frame.shape[1], 1))


def _episode_return(info: dict[str, Any], reward_sum: float) -> float:
    """The env's own episode record (RecordEpisodeStatistics) if present, else the reward sum."""
    episode = info.get("episode")
    if isinstance(episode, dict) and "r" in episode:
        return float(np.asarray(episode["r"], dtype=np.float64).item())
    return float(reward_sum)


def record_episode(
    env: Any,
    policy: Callable[[Any], Any],
    path: str | os.PathLike[str],
    max_steps: int = DEFAULT_MAX_STEPS,
    fps: float | None = None,
    scale: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Play one episode of ``policy`` in ``env`` and save what ``env.render()`` shows as an mp4.

    ``env`` is a single gymnasium env made with ``render_mode="rgb_array"``; ``policy(obs)``
    returns an action for the (preprocessed) observation. The episode ends at termination,
    truncation or after ``max_steps`` agent steps. Use an evaluation env (raw rewards, no
    life-loss terminal) so the return is the game score. ``fps``: by default the env's real speed
    (``playback_fps``); ``scale``: by default ``auto_scale`` of the first frame. Returns
    ``{"path", "frames", "return", "length", "fps", "size"}``: frames written (steps + 1, the
    reset frame included), the return (``info["episode"]["r"]`` at the end when the env records
    it, else the summed rewards), the number of agent steps, the video's frame rate and its
    (width, height) in pixels.
    """
    render_mode = getattr(env, "render_mode", None)
    if render_mode != "rgb_array":
        raise ValueError(
            f"record_episode needs an env made with render_mode='rgb_array', got {render_mode!r}"
        )
    max_steps = _check_positive_int("max_steps", max_steps)
    fps = playback_fps(env) if fps is None else _check_fps(fps)
    if scale is not None:
        scale = _check_positive_int("scale", scale)
    reward_sum, length, info = 0.0, 0, {}
    obs, _ = env.reset(seed=seed)
    first = env.render()
    if scale is None:
        scale = auto_scale(first) if isinstance(first, np.ndarray) and first.ndim == 3 else 1
    with Mp4Writer(path, fps=fps, scale=scale) as writer:
        writer.append(first)
        while length < max_steps:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            reward_sum += float(reward)
            length += 1
            writer.append(env.render())
            if terminated or truncated:
                break
    height, width = _pad_to_even(upscale_nearest(first, scale)).shape[:2]
    return {
        "path": str(writer.path),
        "frames": writer.frames_written,
        "return": _episode_return(info, reward_sum),
        "length": length,
        "fps": fps,
        "size": (width, height),
    }
