"""What a run needs of the machine, checked before any work starts: a device that is there
(``check_device``), an env the package can train (``env_spec``: discrete actions, vector or
(C, 84, 84) image observations) and the memory for its replay and networks (``check_memory``,
against ``available_memory``: ``/proc/meminfo`` or psutil and the cgroup limit, or
``torch.cuda.mem_get_info``). Each refusal is one ``ValueError`` line naming the flag, the value
and what is accepted, as in ``agents.run.checks``."""

from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.run.checks import MAX_OBS_ELEMENTS, format_bytes, shown

DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(flag: str, value: object) -> None:
    if not isinstance(value, str) or not DEVICE_NAME.match(value):
        raise ValueError(f"{flag}: {shown(value)} is not accepted; use auto, cpu, cuda or cuda:N")


def check_device(flag: str, value: str) -> None:
    """A device name the package knows that this machine has (CUDA present, the index there)."""
    check_device_name(flag, value)
    if not value.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            f"{flag}: {value!r} was asked for but CUDA is not available on this machine; use "
            "auto or cpu"
        )
    count = torch.cuda.device_count()
    index = int(value.partition(":")[2] or torch.cuda.current_device())
    if index >= count:
        raise ValueError(
            f"{flag}: {value!r} was asked for but this machine has {count} CUDA device(s) "
            f"(cuda:0 to cuda:{count - 1}); use one of them, cuda, auto or cpu"
        )


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1), None without a limit."""
    v1 = "/sys/fs/cgroup/memory/memory."
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (f"{v1}limit_in_bytes", f"{v1}usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(0, int(limit) - usage)
    return None


def available_memory(device: str = "cpu") -> int:
    """Bytes a new allocation may take: for the CPU, psutil's or /proc/meminfo's MemAvailable
    (and at most what the cgroup limit leaves); for a CUDA device, its free memory."""
    if device.startswith("cuda"):
        import torch

        index = int(device.partition(":")[2] or torch.cuda.current_device())
        return int(torch.cuda.mem_get_info(index)[0])
    free = None
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    cgroup = _cgroup_free()
    if free is None:
        return cgroup if cgroup is not None else 2**62  # unknown: assume it fits
    return free if cgroup is None else min(free, cgroup)


@dataclass(frozen=True)
class EnvSpec:
    """What sizes a run on an env: its observation and the replay's frames."""

    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    num_actions: int
    frame_stack: int


ATARI_ACTIONS = 18  # the full ALE action set: an upper bound of any game's minimal set
IMAGE_SIDE = 84


def _space_problem(env_id: str, env) -> tuple[EnvSpec | None, str | None]:
    from gymnasium import spaces

    action, obs = env.action_space, env.observation_space
    if not isinstance(action, spaces.Discrete) or int(action.start) != 0:
        kind = "continuous actions" if isinstance(action, spaces.Box) else "actions"
        return None, (
            f"--env: {env_id!r} has {kind} ({action}) that the package cannot train; accepted: "
            "envs with discrete actions Discrete(n), e.g. CartPole-v1 or an Atari game"
        )
    accepted = (
        "accepted: Box vectors (n,) or image stacks (C, 84, 84), e.g. CartPole-v1 or an Atari "
        "game (its frames are made 84x84 stacks)"
    )
    if not isinstance(obs, spaces.Box) or obs.dtype.kind not in "uif":
        return (
            None,
            f"--env: {env_id!r} has observations {obs} the package cannot train on; {accepted}",
        )
    shape = tuple(int(s) for s in obs.shape)
    if len(shape) == 1 or (len(shape) == 3 and shape[1:] == (IMAGE_SIDE, IMAGE_SIDE)):
        if 0 < math.prod(shape) <= MAX_OBS_ELEMENTS:
            dtype = np.dtype(np.uint8) if obs.dtype == np.uint8 else np.dtype(np.float32)
            return EnvSpec(shape, dtype, int(action.n), 1), None
    return None, (
        f"--env: {env_id!r} has observations of shape {shape} ({obs}) the package cannot train "
        f"on; {accepted}"
    )


def env_spec(env_id: str) -> EnvSpec:
    """The observation and action sizes of ``env_id``, refused in one line when the package cannot
    train it (continuous actions; Dict, Tuple, Discrete or image observations that are not
    (C, 84, 84) stacks) or it cannot be built here. Atari games and the fake envs are known
    without building anything; a gymnasium id is built once, on its own, and closed."""
    from envs.atari import is_atari_game

    stack = (4, IMAGE_SIDE, IMAGE_SIDE)
    if is_atari_game(env_id):
        return EnvSpec(stack, np.dtype(np.uint8), ATARI_ACTIONS, 4)
    if env_id in ("fake", "fake-pixels"):
        from envs.fake import FAKE_ACTION_MEANINGS

        actions = len(FAKE_ACTION_MEANINGS) if env_id == "fake" else 2
        return EnvSpec(stack, np.dtype(np.uint8), actions, 4)
    import gymnasium as gym

    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as null:
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(null):
                env = gym.make(env_id)
    except Exception as error:  # noqa: BLE001 - any failure to build is one line
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise ValueError(
            f"--env: {env_id!r} cannot be built on this machine ({type(error).__name__}: "
            f"{reason}); give an env whose dependencies are installed, e.g. CartPole-v1"
        ) from None
    try:
        spec, problem = _space_problem(env_id, env)
    finally:
        with contextlib.suppress(Exception):
            env.close()
    if problem is not None:
        raise ValueError(problem)
    return spec


def network_bytes(config, obs_shape, num_actions: int) -> tuple[int, int]:
    """(parameters, bytes) of a run's networks: the online and target networks with their buffers,
    the gradients and two optimizer moments per parameter (Adam; centred RMSProp), float32. The
    network is built on the meta device: no memory is touched."""
    import torch

    from agents.dqn.agent import build_q_network

    with torch.device("meta"):
        net = build_q_network(obs_shape, num_actions, config.hidden, config)
    params = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for b in net.buffers())
    return params, 4 * (5 * params + 2 * buffers)


def _pool(name: str) -> str:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{torch.cuda.current_device()}"
    return name


def check_memory(config, spec: EnvSpec, available=None) -> None:
    """Refuse a run whose replay and networks do not fit in the memory available where they live
    (one line with both numbers and the largest ``--buffer-size`` that fits)."""
    import torch

    from agents.dqn.replay.sizing import replay_bytes, replay_slots

    slots = replay_slots(config, config.num_envs, spec.frame_stack)
    frame_shape = spec.obs_shape[1:] if spec.frame_stack > 1 else spec.obs_shape
    dtype = torch.uint8 if spec.obs_dtype == np.uint8 else torch.float32
    replay = replay_bytes(config.num_envs, slots, frame_shape, dtype, config.prioritized)
    capacity = config.num_envs * slots
    params, network = network_bytes(config, spec.obs_shape, spec.num_actions)
    device = _pool(config.device)
    replay_device = device if config.replay_device == "auto" else _pool(config.replay_device)
    available = available or available_memory
    free = {pool: available(pool) for pool in {device, replay_device}}
    net_text = f"the network ({params:,} parameters, {format_bytes(network)} with its target, "
    net_text += "gradients and optimizer state)"
    if network > free[device]:
        raise ValueError(
            f"--hidden/--num-atoms: {net_text} needs more than the {format_bytes(free[device])} "
            f"of memory available on {device}; use smaller --hidden widths or fewer --num-atoms"
        )
    room = free[replay_device] - (network if replay_device == device else 0)
    if replay > room:
        per = replay / max(capacity, 1)
        fit = max(0, int(room / per) - 1)
        also = f" and {net_text}" if replay_device == device else ""
        raise ValueError(
            f"--buffer-size: {config.buffer_size:,} is not accepted here: the replay of "
            f"{capacity:,} transitions needs {format_bytes(replay)}{also}, more than the "
            f"{format_bytes(free[replay_device])} of memory available on {replay_device}; use a "
            f"--buffer-size (or --total-steps) of at most {fit:,}"
        )
