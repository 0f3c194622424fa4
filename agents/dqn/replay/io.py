"""Saving a replay memory to disk and restoring it, in chunks, without pickle.

A saved replay is a directory of ``.npy`` files (one per tensor: frames, actions, rewards, flags,
cursors, the sampling generator's state and, for prioritized replay, the sum-tree) plus
``meta.json`` (counters and shapes). Tensors are streamed in chunks of about 64 MB: the header is
written first, then slices copied to the host one at a time, so saving a 7 GB replay (on the CPU or
on a GPU) never holds a second copy of it in memory. Loading memory-maps each file and copies it
back slice by slice. ``np.load(allow_pickle=False)`` and JSON only: nothing on disk can run code.

The directory is written under a temporary name and renamed into place when complete, so a kill
or a full disk leaves either no replay or a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.dqn.replay.prioritized import PrioritizedReplay
from agents.dqn.replay.uniform import ReplayBuffer
from agents.run.interrupts import pause_point

CHUNK_BYTES = 64 << 20
REPLAY_FORMAT = 1
_BUFFER_TENSORS = ("_flat_frames", "action", "reward", "terminated", "truncated", "first",
                   "complete", "cursor")  # fmt: skip


def _tensors(replay: ReplayBuffer | PrioritizedReplay) -> dict[str, torch.Tensor]:
    buffer = replay.replay if isinstance(replay, PrioritizedReplay) else replay
    tensors = {name.lstrip("_"): getattr(buffer, name) for name in _BUFFER_TENSORS}
    tensors["generator_state"] = buffer.generator.get_state()
    if isinstance(replay, PrioritizedReplay):
        tensors["sum_tree"] = replay.sampler.tree.tree
        tensors["max_priority"] = replay.sampler.max_priority.reshape(1)
    return tensors


def _meta(replay: ReplayBuffer | PrioritizedReplay) -> dict[str, Any]:
    buffer = replay.replay if isinstance(replay, PrioritizedReplay) else replay
    meta = {
        "format": REPLAY_FORMAT,
        "prioritized": isinstance(replay, PrioritizedReplay),
        "num_streams": buffer.num_streams,
        "slots": buffer.slots,
        "frame_shape": list(buffer.frames.shape[2:]),
        "written": buffer.written,
        "transitions_added": buffer.transitions_added,
        "started": buffer.started,
    }
    if isinstance(replay, PrioritizedReplay):
        meta["indices_added"] = replay.sampler.indices_added
        meta["sum_tree_branching"] = replay.sampler.tree.branching  # the tree's layout
    return meta


def _numpy_dtype(tensor: torch.Tensor) -> np.dtype:
    return torch.empty(0, dtype=tensor.dtype).numpy().dtype


def _write_tensor(path: Path, tensor: torch.Tensor) -> None:
    tensor = tensor.detach()
    header = {
        "descr": np.lib.format.dtype_to_descr(_numpy_dtype(tensor)),
        "fortran_order": False,
        "shape": tuple(tensor.shape),
    }
    flat = tensor.reshape(-1) if tensor.is_contiguous() else tensor.contiguous().reshape(-1)
    step = max(1, CHUNK_BYTES // max(tensor.element_size(), 1))
    try:
        with open(path, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            for start in range(0, flat.numel(), step):
                f.write(memoryview(flat[start : start + step].cpu().numpy()))
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:  # a full disk: say which file (and so which disk)
        if error.filename is not None or error.errno is None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from None


def save_replay(replay: ReplayBuffer | PrioritizedReplay, directory: str | Path) -> Path:
    """Write the replay to ``directory`` (replaced if it exists), atomically as a whole."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for k, (name, tensor) in enumerate(_tensors(replay).items()):
            _write_tensor(tmp / f"{name}.npy", tensor)
            if k == 0:
                pause_point("replay")  # a test hook: waits for a signal when a test asks
        with open(tmp / "meta.json", "w") as f:
            f.write(json.dumps(_meta(replay), indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_replay(replay: ReplayBuffer | PrioritizedReplay, directory: str | Path) -> None:
    """Fill a freshly built replay of the same shape from ``directory``."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"saved replay {directory} cannot be read: {error}") from None
    ours = _meta(replay)
    keys = ("prioritized", "num_streams", "slots", "frame_shape")
    if ours["prioritized"]:
        keys += ("sum_tree_branching",)
    if any(meta.get(k) != ours[k] for k in keys):
        theirs = {k: meta.get(k) for k in keys}
        raise ValueError(
            f"saved replay {directory} has {theirs} but this run's replay has "
            f"{ {k: ours[k] for k in keys} }; resume with the same settings"
        )
    for name, tensor in _tensors(replay).items():
        path = directory / f"{name}.npy"
        try:
            saved = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"saved replay file {path} cannot be read: {error}") from None
        if tuple(saved.shape) != tuple(tensor.shape) or saved.dtype != _numpy_dtype(tensor):
            raise ValueError(
                f"saved replay file {path} holds {saved.dtype}{saved.shape}, expected "
                f"{_numpy_dtype(tensor)}{tuple(tensor.shape)}"
            )
        if name == "generator_state":
            buffer = replay.replay if isinstance(replay, PrioritizedReplay) else replay
            buffer.generator.set_state(torch.from_numpy(np.array(saved)))
            continue
        flat_saved = saved.reshape(-1)
        flat = tensor.view(-1)
        step = max(1, CHUNK_BYTES // max(tensor.element_size(), 1))
        for start in range(0, flat.numel(), step):
            chunk = np.array(flat_saved[start : start + step])  # a writable copy of one chunk
            flat[start : start + step].copy_(torch.from_numpy(chunk))
    buffer = replay.replay if isinstance(replay, PrioritizedReplay) else replay
    buffer.written = int(meta["written"])
    buffer.transitions_added = int(meta["transitions_added"])
    buffer.started = bool(meta["started"])
    if isinstance(replay, PrioritizedReplay):
        replay.sampler.indices_added = int(meta["indices_added"])


def replay_nbytes(directory: str | Path) -> int:
    """Bytes on disk of a saved replay."""
    return sum(p.stat().st_size for p in Path(directory).iterdir())
