"""The replay a run needs: sized to what the run can fill, announced (size and device) before it
is allocated, loaded from a saved replay, grown when a resumed run is extended."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.dqn.config import TrainConfig
from agents.dqn.replay.io import load_replay
from agents.dqn.replay.prioritized import (
    BRANCHING,
    PrioritizedReplay,
    PrioritizedSampler,
    flat_index,
)
from agents.dqn.replay.uniform import ReplayBuffer
from agents.run.checks import format_bytes


def replay_device(config: TrainConfig, device: torch.device) -> torch.device:
    """Where the replay lives: ``--replay-device``, or with auto the networks' ``device``."""
    return device if config.replay_device == "auto" else torch.device(config.replay_device)


def replay_slots(config: TrainConfig, num_envs: int, frame_stack: int) -> int:
    """Slots per env stream of the run's replay: ``buffer_size`` split over the streams, capped at
    what the run can fill, its ``total_steps / num_envs`` transitions per stream plus a reserve of
    ``frame_stack + n_step + 2`` slots (the least a stream may have: a frame stack, the n-step
    window, two reset slots). With that reserve a stream keeps all its transitions, and all of them
    sampleable, until it has ended more than ``n_step + 2`` episodes (each episode end takes one
    more slot); past that each further episode end overwrites one of its oldest transitions."""
    full = -(-config.buffer_size // num_envs)
    run = -(-config.total_steps // num_envs) + frame_stack + config.n_step + 2
    return min(full, run)


def replay_bytes(
    num_streams: int, slots: int, frame_shape: tuple[int, ...], frame_dtype: torch.dtype,
    prioritized: bool,
) -> int:  # fmt: skip
    """Bytes a replay of this shape allocates (``ReplayBuffer.nbytes``, plus the float64 sum-tree
    of prioritized replay), computed before allocating it."""
    size = num_streams * slots
    frame = math.prod(frame_shape) * frame_dtype.itemsize
    total = (size + 1) * frame + size * (4 + 4 + 4)  # frames (+ padding), action, reward, 4 flags
    if prioritized:  # SumTree's levels: each rounded up to whole groups of BRANCHING nodes
        nodes, n = 1, size
        while n > 1:
            level = -(-n // BRANCHING) * BRANCHING
            nodes, n = nodes + level, level // BRANCHING
        total += 8 * nodes
    return total


def make_replay(
    config: TrainConfig,
    envs,
    device: torch.device,
    keep_slots: int | None = None,
    fill_cap: bool = True,
) -> ReplayBuffer | PrioritizedReplay:
    """The replay the config asks for, shaped for ``envs``, on the replay device, announced in one
    line before it is allocated. Its capacity is ``buffer_size`` capped at what ``total_steps``
    can fill (``replay_slots``); ``keep_slots``: the slots per stream of a saved replay this one
    will be loaded into, kept when larger than the cap (never beyond ``buffer_size``); without
    ``fill_cap`` the whole ``buffer_size`` (Ape-X: actors fill their streams at their own pace, so
    no stream's share of ``total_steps`` is known)."""
    full = -(-config.buffer_size // envs.num_envs)
    slots = replay_slots(config, envs.num_envs, envs.frame_stack) if fill_cap else full
    why = f"--buffer-size {config.buffer_size:,} capped at what --total-steps "
    why += f"{config.total_steps:,} can fill"
    if keep_slots is not None and slots < keep_slots <= full:
        slots = keep_slots
        why = f"the size of the saved replay it resumes (--buffer-size {config.buffer_size:,})"
    return _build_replay(config, envs, device, slots, announce=why if slots < full else "")


def _build_replay(
    config: TrainConfig, envs, device: torch.device, slots: int, announce: str | None = None
) -> ReplayBuffer | PrioritizedReplay:
    """The replay of ``slots`` per stream; ``announce``: print its line first, ending with this
    reason for its size when not empty (None: no line)."""
    space = envs.single_observation_space
    frame_shape = tuple(space.shape[1:] if envs.frame_stack > 1 else space.shape)
    frame_dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
    where = replay_device(config, device)
    capacity = envs.num_envs * slots
    if announce is not None:
        size = replay_bytes(envs.num_envs, slots, frame_shape, frame_dtype, config.prioritized)
        line = f"{'prioritized ' if config.prioritized else ''}replay: {capacity:,} transitions "
        line += f"({format_bytes(size)}) on {where}"
        print(f"{line}: {announce}" if announce else line, flush=True)
    replay = ReplayBuffer(
        capacity=capacity, num_streams=envs.num_envs, frame_shape=frame_shape,
        frame_dtype=frame_dtype, frame_stack=envs.frame_stack,
        stack_padding=envs.stack_padding or "zero", n_step=config.n_step, gamma=config.gamma,
        device=where, seed=config.seed,
    )  # fmt: skip
    if not config.prioritized:
        return replay
    sampler = PrioritizedSampler(
        replay.num_streams * replay.slots, alpha=config.priority_alpha,
        beta_start=config.priority_beta_start, beta_end=config.priority_beta_end,
        beta_steps=config.total_steps, device=replay.device,
    )  # fmt: skip
    return PrioritizedReplay(replay, sampler)


def _buffer(replay: ReplayBuffer | PrioritizedReplay) -> ReplayBuffer:
    return replay.replay if isinstance(replay, PrioritizedReplay) else replay


def saved_replay_dir(state: dict[str, Any]) -> Path | None:
    """The directory of the replay saved with checkpoint ``state``, if it is there."""
    name = state.get("replay")
    path = Path(state["path"]).parent / name if name else None
    return path if path is not None and path.is_dir() else None


def saved_replay_slots(directory: Path) -> int | None:
    """Slots per stream of the replay saved in ``directory`` (None if unreadable: loading it then
    reports why)."""
    try:
        return int(json.loads((directory / "meta.json").read_text())["slots"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_saved_replay(
    replay: ReplayBuffer | PrioritizedReplay, directory: Path, config: TrainConfig, envs,
    device: torch.device,
) -> None:  # fmt: skip
    """Load the replay saved in ``directory`` into ``replay``. A saved replay with fewer slots
    than the run's (a short run's capped replay, resumed with a larger ``--total-steps``) is
    loaded at its own size and copied into the larger one (``grow_replay``)."""
    slots = saved_replay_slots(directory)
    if slots is None or slots >= _buffer(replay).slots:
        load_replay(replay, directory)  # same size, or refused in one line by load_replay
        return
    small = _build_replay(config, envs, device, slots)
    load_replay(small, directory)
    grow_replay(small, replay)
    buffer = _buffer(replay)
    print(
        f"replay: the saved replay of {slots * buffer.num_streams:,} transitions (a shorter "
        f"run's) goes on in this one's {buffer.slots * buffer.num_streams:,}",
        flush=True,
    )


def grow_replay(
    src: ReplayBuffer | PrioritizedReplay, dst: ReplayBuffer | PrioritizedReplay
) -> None:
    """Copy the replay ``src`` into the empty ``dst`` of the same settings but more slots per
    stream, so that it goes on as if it had always been that large: each stream's slots keep
    their time order. A ring that never wrapped keeps its slots where they are; a wrapped one is
    rotated so its oldest slot comes first and its pending slot last (the oldest ``frame_stack -
    1`` slots, whose stack history was overwritten, stay unsampleable). Priorities move with
    their slots; slots sampleable only in the larger ring enter at the largest priority."""
    a, b = _buffer(src), _buffer(dst)
    n, s = a.num_streams, a.slots
    rows = a._streams[:, None].expand(n, s)
    k = torch.arange(s, device=a.device).expand(n, s)
    wrapped = a.written >= s
    old = (a.cursor[:, None] + 1 + k) % s if wrapped else k  # (stream, new slot) -> old slot
    for name in ("frames", "action", "reward", "terminated", "truncated", "first", "complete"):
        getattr(b, name)[:, :s] = getattr(a, name)[rows, old]
    if wrapped:
        b.complete[:, : a.frame_stack - 1] = False
        b.cursor.fill_(s - 1)
    else:
        b.cursor.copy_(a.cursor)
    b.written, b.transitions_added, b.started = a.written, len(a), a.started
    b.generator.set_state(a.generator.get_state())
    if isinstance(src, PrioritizedReplay) and isinstance(dst, PrioritizedReplay):
        old_index = flat_index(rows.reshape(-1), old.reshape(-1), s)
        new_index = flat_index(rows.reshape(-1), k.reshape(-1), b.slots)
        dst.sampler.tree.update(new_index, src.sampler.tree.get(old_index))
        dst.sampler.max_priority = src.sampler.max_priority.clone()
        streams = b._streams.repeat_interleave(b.slots)
        slots = torch.arange(b.slots, device=b.device).repeat(n)
        dst.sampler.sync(flat_index(streams, slots, b.slots), b.sampleable(streams, slots))
        dst.sampler.indices_added = src.sampler.indices_added
