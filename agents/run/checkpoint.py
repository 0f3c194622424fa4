"""Checkpoints: atomic writes, safe loads, and a clear error for the wrong file.

Writes go to a temporary file in the same directory, are flushed and fsynced, then moved into
place with ``os.replace``, so a crash, a kill or a full disk never leaves a half-written
checkpoint; only the newest ``keep`` files are kept. Loading uses ``torch.load(weights_only=True)``:
tensors and plain Python types only, never arbitrary pickled code.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from agents.run.interrupts import pause_point

FORMAT_VERSION = 1
NAME = re.compile(r"^step_(\d{12})\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupted, or made for something else."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through a temporary file in its folder: ``write(f)``, flush, fsync, then
    ``os.replace``. A crash or a full disk leaves the old file or the new one, never half of one,
    and no temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    f = None
    try:
        with os.fdopen(fd, "wb") as raw:
            f = _RecordingWriter(raw)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, path)
    except Exception as error:
        Path(tmp).unlink(missing_ok=True)
        reason = f.error if f is not None and f.error is not None else error
        if isinstance(reason, OSError) and reason.errno is not None and reason.filename is None:
            raise OSError(reason.errno, reason.strerror, str(path)) from None  # names the file
        if reason is not error:
            raise reason from None  # the disk's own reason (torch.save hides it)
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


class _RecordingWriter:
    """A binary file that keeps the ``OSError`` a write raised (a full disk, a file size limit):
    ``torch.save`` reports a failed write as a ``RuntimeError`` about stream positions that does
    not say why; ``atomic_write`` raises the disk's error instead."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def save_checkpoint(directory: str | Path, state: dict[str, Any], step: int, keep: int = 3) -> Path:
    """Write ``directory/step_<step>.pt`` atomically and delete all but the newest ``keep`` (only
    once the new one is in place: a failed write deletes nothing)."""
    directory = Path(directory)
    for stale in directory.glob(".step_*.tmp"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)

    def write(f: IO[bytes]) -> None:
        torch.save({"format_version": FORMAT_VERSION, **state}, f)
        pause_point("checkpoint")  # a test hook: waits for a signal when a test asks

    path = atomic_write(directory / f"step_{step:012d}.pt", write)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in step order (oldest first)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if NAME.match(p.name))


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the newest one inside a run or checkpoints directory."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints", path):
            newest = latest_checkpoint(candidate)
            if newest is not None:
                return newest
        raise CheckpointError(f"no checkpoint (step_*.pt) found in {path}")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load safely (weights only); any unreadable file gives one error naming it."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - turned into one clear message
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded (truncated, corrupted or not a checkpoint of "
            f"this package): {reason[:200]}"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"checkpoint {path} is not a checkpoint of this package")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format_version']}; this version reads up to "
            f"{FORMAT_VERSION}"
        )
    state["path"] = str(path)
    return state


def check_compatible(state: dict[str, Any], env_id: str, obs_shape, num_actions: int) -> None:
    """Refuse a checkpoint made for another game, observation shape or action count."""
    theirs = (state.get("env_id"), tuple(state.get("obs_shape", ())), state.get("num_actions"))
    ours = (env_id, tuple(obs_shape), num_actions)
    if theirs[1:] != ours[1:]:
        raise CheckpointError(
            f"checkpoint {state.get('path')} was made for {theirs[0]} (observation {theirs[1]}, "
            f"{theirs[2]} actions) but this env is {env_id} (observation {ours[1]}, "
            f"{ours[2]} actions)"
        )


def load_network(network: torch.nn.Module, weights: dict[str, Any], path: object) -> None:
    """``network.load_state_dict(weights)``, or one error naming both sides when the checkpoint
    holds another network (other layers or widths: dueling, distributional, hidden sizes...)."""
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in weights.items()}
    if ours != theirs:
        missing = sorted(set(ours) - set(theirs))[:3]
        extra = sorted(set(theirs) - set(ours))[:3]
        shapes = [
            f"{k} {theirs[k]} vs {ours[k]}" for k in ours if k in theirs and ours[k] != theirs[k]
        ]
        raise CheckpointError(
            f"checkpoint {path} holds another network than this config builds: "
            f"{len(theirs)} tensors vs {len(ours)}; only in this network: {missing or 'none'}; "
            f"only in the checkpoint: {extra or 'none'}; other shapes: {shapes[:3] or 'none'}"
        )
    network.load_state_dict(weights)


def config_to_dict(config) -> dict[str, Any]:
    """A dataclass config as plain types (tuples become lists) for JSON and checkpoints."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }
