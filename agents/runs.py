"""The pieces of a training run around its loop: devices, the replay it needs, the output
directory, and the run's whole state as a checkpoint (saved and restored for ``--resume``).

A checkpoint holds everything that decides what the run does next: weights, target, optimizer,
every random generator (torch's, the agent's exploration and noise generators, Python's), the
counters and schedule positions of the loop, the envs' current observations and, when the envs are
Python objects, their state (``envs.state``), so a resumed run continues bit for bit. The replay is
saved next to the checkpoint with ``save_replay`` (``agents.replay_io``); only the newest
checkpoint keeps one, since each is as large as the replay.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.checkpoint import atomic_write, config_to_dict, load_network, save_checkpoint
from agents.config import TrainConfig
from agents.evaluation import record_video
from agents.interrupts import SIGNAL_EXIT_CODES, signal_name
from agents.prioritized import BRANCHING, PrioritizedReplay, PrioritizedSampler, flat_index
from agents.replay import ReplayBuffer
from agents.replay_io import load_replay, save_replay
from agents.tracking import warn
from envs.state import env_state, restore_env_state

if TYPE_CHECKING:
    from agents.loop import Trainer


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or parameter."""


class TrainingError(RuntimeError):
    """An exception stopped the training loop; the message names the step, the phase, the error
    and the checkpoint a resumed run continues from (``Trainer.fail``)."""

    def __init__(self, message: str, step: int, phase: str, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.step, self.phase, self.checkpoint = step, phase, checkpoint


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {name!r} was asked for but CUDA is not available; use cpu")
    return torch.device(name)


def replay_device(config: TrainConfig, device: torch.device) -> torch.device:
    """Where the replay lives: ``--replay-device``, or with auto the networks' ``device``."""
    return device if config.replay_device == "auto" else torch.device(config.replay_device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def check_output_dir(path: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"--output-dir: {str(path)!r} cannot be written ({error.strerror or error}); "
            "give a writable directory"
        ) from None


def new_run_id() -> str:
    """A random wandb-style run id (from the OS, so it does not touch the seeded generators)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in os.urandom(8))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """JSON written atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


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


def format_bytes(n: int) -> str:
    """``8.5 kB``, ``28.3 MB``, ``7.06 GB``: kB and MB with one decimal, GB (from 1 GB on) with
    two; a size that would round to 1000.0 of a unit is written in the next one."""
    if n >= 999_950_000:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 999_950 else f"{n / 1e3:.1f} kB"


def make_replay(
    config: TrainConfig, envs, device: torch.device, keep_slots: int | None = None
) -> ReplayBuffer | PrioritizedReplay:
    """The replay the config asks for, shaped for ``envs``, on the replay device, announced in one
    line before it is allocated. Its capacity is ``buffer_size`` capped at what ``total_steps``
    can fill (``replay_slots``); ``keep_slots``: the slots per stream of a saved replay this one
    will be loaded into, kept when larger than the cap (never beyond ``buffer_size``)."""
    slots = replay_slots(config, envs.num_envs, envs.frame_stack)
    full = -(-config.buffer_size // envs.num_envs)
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
        beta_start=config.priority_beta_start, beta_end=1.0, beta_steps=config.total_steps,
        device=replay.device,
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


def load_saved_replay(t: Trainer, directory: Path) -> None:
    """Load the saved replay into the run's. A saved replay with fewer slots than the run's (a
    short run's capped replay, resumed with a larger ``--total-steps``) is loaded at its own size
    and copied into the larger one (``grow_replay``)."""
    slots = saved_replay_slots(directory)
    if slots is None or slots >= _buffer(t.replay).slots:
        load_replay(t.replay, directory)  # same size, or refused in one line by load_replay
        return
    small = _build_replay(t.config, t.envs, t.device, slots)
    load_replay(small, directory)
    grow_replay(small, t.replay)
    buffer = _buffer(t.replay)
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


# Loop counters saved as they are (``next_eval`` may be infinite: saved as None).
COUNTERS = ("global_step", "updates_due", "next_target_sync", "next_log", "next_checkpoint",
            "refill_until", "solved_at")  # fmt: skip


def trainer_state(t: Trainer, keep_envs: bool = True) -> dict[str, Any]:
    """Everything a resumed run needs, as tensors and plain types (``weights_only`` loadable);
    without ``keep_envs`` (envs caught inside a step) a resumed run starts new episodes."""
    agent = t.agent
    noise = agent.noise_generator
    return {
        "config": config_to_dict(t.config), "env_id": t.config.env,
        "obs_shape": list(t.obs_shape), "num_actions": t.num_actions,
        "model": agent.online.state_dict(), "target": agent.target.state_dict(),
        "optimizer": agent.optimizer.state_dict(), "updates": agent.updates,
        "epsilon": t.epsilon(), "run_id": t.run_id,
        "epsilon_decay_steps": t.epsilon_decay_steps,  # resolved when the run started
        "priority_beta_steps": t.replay.sampler.beta_steps if t.config.prioritized else None,
        "torch_rng": torch.get_rng_state(), "agent_rng": agent.generator.get_state(),
        "noise_rng": None if noise is None else noise.get_state(),
        "python_rng": random.getstate(),
        **{name: getattr(t, name) for name in COUNTERS},
        "next_eval": None if math.isinf(t.next_eval) else t.next_eval,
        "positions_advanced": True,  # next_eval/next_checkpoint saved past this step's
        "metrics_rows": getattr(getattr(t.tracker, "metrics", None), "rows", None),
        "recent_returns": list(t.recent_returns),
        "obs": None if t.obs is None or not keep_envs else torch.from_numpy(np.array(t.obs)),
        "env_state": None if t.obs is None or not keep_envs else env_state(t.envs),
    }  # fmt: skip


def restore_trainer(t: Trainer, state: dict[str, Any]) -> None:
    """Put a freshly built trainer where the checkpoint ``state`` of the same run left off."""
    agent = t.agent
    load_network(agent.online, state["model"], state["path"])
    load_network(agent.target, state["target"], state["path"])
    agent.optimizer.load_state_dict(state["optimizer"])
    agent.updates = state["updates"]
    for name in COUNTERS:
        setattr(t, name, state[name])
    t.next_eval = math.inf if state["next_eval"] is None else state["next_eval"]
    if not state.get("positions_advanced"):  # written before the step's evaluation and the
        # advance of its checkpoint position: advance them as that run did right after saving
        if t.next_eval <= t.global_step:
            t.next_eval += t.config.eval_every_steps
        if t.next_checkpoint <= t.global_step:
            t.next_checkpoint += t.config.checkpoint_every_steps
    t.recent_returns.extend(state["recent_returns"])
    # Schedules resolved against total_steps when the run started: an extended run keeps them
    # (checkpoints written before they were saved resolve them against the config, as then).
    t.epsilon_decay_steps = state.get("epsilon_decay_steps", t.epsilon_decay_steps)
    if t.config.prioritized and state.get("priority_beta_steps") is not None:
        t.replay.sampler.beta_steps = state["priority_beta_steps"]
    torch.set_rng_state(state["torch_rng"])
    agent.generator.set_state(state["agent_rng"])
    if state["noise_rng"] is not None and agent.noise_generator is not None:
        agent.noise_generator.set_state(state["noise_rng"])
    random.setstate(state["python_rng"])
    t.last_checkpoint = (t.global_step, Path(state["path"]))
    directory = Path(state["path"]).parent
    replay_dir = state.get("replay")
    if replay_dir and (directory / replay_dir).is_dir():
        load_saved_replay(t, directory / replay_dir)
    else:
        if replay_dir:
            warn(f"the saved replay {directory / replay_dir} is missing; refilling the replay")
        t.refill_until = t.global_step + t.config.learning_starts
    if state["env_state"] is not None and t.replay.started:
        restore_env_state(t.envs, state["env_state"])
        t.obs = state["obs"].numpy()


def check_finite(t: Trainer) -> None:
    """Stop with a message naming the step if any network parameter is NaN or infinite."""
    largest = [p.detach().abs().amax() for p in t.agent.online.parameters()]
    if not bool(torch.isfinite(torch.stack(largest)).all()):
        raise NonFiniteLossError(
            f"network parameters became NaN or infinite by global step {t.global_step}; stopping "
            f"(the newest checkpoint in {t.output_dir / 'checkpoints'} is from before it)"
        )


def write_checkpoint(t: Trainer, keep_envs: bool = True, keep_replay: bool = True) -> Path:
    """Save the run (and its replay with ``save_replay`` and ``keep_replay``); never a
    non-finite network. A write that fails (a full disk, a signal) leaves the checkpoints as they
    were: no temporary file, no replay without its checkpoint."""
    if t.last_checkpoint is not None and t.last_checkpoint[0] == t.global_step:
        return t.last_checkpoint[1]
    check_finite(t)
    directory = t.output_dir / "checkpoints"
    state = trainer_state(t, keep_envs)
    replay = None
    if t.config.save_replay and keep_replay:
        for stale in directory.glob(".replay_*.tmp"):  # left by a run that was killed
            shutil.rmtree(stale, ignore_errors=True)
        state["replay"] = f"replay_{t.global_step:012d}"
        replay = directory / state["replay"]
    try:
        if replay is not None:
            save_replay(t.replay, replay)
        path = save_checkpoint(directory, state, t.global_step, t.config.keep_checkpoints)
    except BaseException:
        if replay is not None:  # a replay whose checkpoint was not written
            shutil.rmtree(replay, ignore_errors=True)
        raise
    if replay is not None:  # only the newest checkpoint keeps its replay
        for old in directory.glob("replay_*"):
            if old.name != replay.name:
                shutil.rmtree(old, ignore_errors=True)
    t.last_checkpoint = (t.global_step, path)
    return path


def stop_summary(t: Trainer, sps: float) -> dict[str, Any]:
    """End of a run stopped by a signal: checkpoint written; summary and metrics flushed."""
    name = signal_name(t.stop_signal)
    summary = {
        "env": t.config.env, "preset": t.config.preset, "seed": t.config.seed,
        "global_step": t.global_step, "updates": t.agent.updates, "sps": sps,
        "stopped_by": name, "exit_code": SIGNAL_EXIT_CODES[t.stop_signal],
        "checkpoint": str(t.last_checkpoint[1]) if t.last_checkpoint else None,
    }  # fmt: skip
    with t.signals.deferred():  # a second signal still cuts it (atomic: no torn file)
        write_json(t.output_dir / "summary.json", summary)
        t.tracker.finish(summary)
    return summary


def final_summary(t: Trainer, sps: float) -> dict[str, Any]:
    """End of a run: the final evaluation (unless one of these weights was just made), the video,
    summary.json and the tracker's summary."""
    c = t.config
    summary: dict[str, Any] = {
        "env": c.env, "preset": c.preset, "protocol": c.protocol, "seed": c.seed,
        "global_step": t.global_step, "updates": t.agent.updates, "sps": sps,
        "learning_sps": t.learning_sps,
        "solved_at_step": t.solved_at,
    }  # fmt: skip
    fresh = t.last_eval is not None and t.last_eval_step == t.global_step
    if fresh and (t.solved_at is not None or t.last_eval["episodes"] >= c.final_eval_episodes):
        final = t.last_eval  # an evaluation of these same weights was just made
    elif c.final_eval_episodes > 0:
        t.phase = "final evaluation"
        final = t.run_evaluation(c.final_eval_episodes, final=True)  # a signal stops it at once
    else:
        final = None
    if final is not None:
        summary.update(
            eval_mean_return=final["mean_return"], eval_std_return=final["std_return"],
            eval_median_return=final["median_return"], eval_episodes=final["episodes"],
            eval_returns=final["returns"], eval_epsilon=c.eval_epsilon,
        )  # fmt: skip
        if "human_normalized" in final:
            summary["eval_human_normalized"] = final["human_normalized"]
            summary["human_score_set"] = final["human_score_set"]
    if c.record_video and getattr(t, "video_problem", None) is None:  # else warned at start-up
        t.phase = "video"
        t.agent.online.eval()  # as in evaluation: noisy layers use their mean weights
        try:
            with t.signals.interruptible_phase():  # the mp4 appears whole or not at all
                video = record_video(t.agent, c.env, t.output_dir / "videos" / "final.mp4",
                                     c.eval_epsilon, c.protocol, seed=c.seed + 20_000,
                                     max_steps=c.eval_max_steps)  # fmt: skip
        finally:
            t.agent.online.train()
        summary.update(video=video["path"], video_frames=video["frames"], video_fps=video["fps"])
        t.tracker.log_video(video["path"], t.global_step)
    t.phase = "summary"
    with t.signals.deferred():  # the last writes finish; the run is then complete
        write_json(t.output_dir / "summary.json", summary)
        t.tracker.finish(summary)
    return summary
