"""The ``all`` benchmark suite: where the time of a training step goes, on this machine's device.

Rows (Breakout, nature protocol, Nature CNN, batch 32; device: CUDA when available, else CPU):
- ``env N=k``: env-only throughput of ale_py's vector env with k envs, random actions (agent steps
  and emulator frames per second).
- ``update eager`` / ``update compiled``: update-only rate (updates/s, ms per update) of
  ``DQNAgent.update`` on one batch, without and with ``torch.compile`` (CUDA graphs on a GPU);
  ``compile_s`` is the first compiled call, compile included.
- ``replay sample``: batches of 32 (stacks and next stacks) per second from a full replay (1M
  transitions on a GPU, 100k on a CPU) on the training device; ``replay 1M`` is the memory the
  1M-transition replay takes on the device (GB).
- ``e2e N=k``: end-to-end agent steps/s of the trainer ``agents.dqn.build.build_trainer`` makes, at
  the ``cleanrl`` replay ratio (one update of 32 per 4 agent steps) with the fast path (compiled
  update, updates overlapping
  the emulators, replay on the device), measured once updates run. ``update_share`` = steps/s x
  update seconds per step (the compiled update time alone / 4): the fraction of the step time
  spent in the update itself; 1 would mean the env, acting, replay and logging cost nothing. On a
  CPU ``in_loop_share`` measures the same fraction in the run itself (the time inside the update
  calls over the run's wall time), which holds even when the machine's speed drifts between the
  update-only rows and the end-to-end ones.
- ``memory``: peak resident memory of this process and peak GPU memory (GB).
"""

from __future__ import annotations

import resource
import tempfile
import time

import torch

from agents.dqn.agent import DQNAgent
from agents.dqn.build import build_trainer
from agents.dqn.presets import cleanrl
from agents.dqn.replay.uniform import ReplayBuffer
from agents.run.files import resolve_device

GAME = "Breakout"
NUM_ENVS = (1, 4, 8, 16)
DEFAULT_STEPS = 4_000


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def full_replay(capacity: int, device: torch.device, seed: int = 0) -> ReplayBuffer:
    """A replay whose every slot holds a random frame of a long episode (ready to sample)."""
    replay = ReplayBuffer(capacity, 1, (84, 84), frame_stack=4, device=device, seed=seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    for chunk in torch.arange(replay.slots, device=device).split(65_536):
        replay.frames[0, chunk] = torch.randint(
            0, 255, (len(chunk), 84, 84), dtype=torch.uint8, device=device, generator=generator
        )
    replay.action.random_(0, 4, generator=generator)
    replay.complete.fill_(True)
    replay.first[0, 0] = True
    replay.cursor.fill_(replay.slots - 1)
    replay.complete[0, -1] = False
    replay.written = replay.slots
    replay.transitions_added = replay.slots
    # as after a long run: batches are drawn as in training, not by the start-up path's checks
    replay.adds_since_start = replay.slots
    replay.started = True
    return replay


def env_rows(steps: int) -> dict[str, dict[str, float]]:
    from scripts.bench_envs import vector_env_steps_per_s

    rows = {}
    for n in NUM_ENVS:
        rate = vector_env_steps_per_s(GAME, n, max(steps // n, 50))
        rows[f"env N={n}"] = {"steps_per_s": round(rate, 1), "frames_per_s": round(4 * rate, 1)}
    return rows


def update_rows(device: torch.device, repeats: int) -> tuple[dict[str, dict[str, float]], float]:
    """Eager and compiled update rates on one batch; returns the rows and compiled s/update."""
    batch = full_replay(10_000, device).sample(32)
    rows, seconds = {}, {}
    for name, compile_mode in (("eager", "off"), ("compiled", "on")):
        agent = DQNAgent.build(cleanrl().replace(compile=compile_mode), (4, 84, 84), 4, device, 0)
        start = time.perf_counter()
        agent.update(batch)
        synchronize(device)
        first = time.perf_counter() - start
        for _ in range(3):
            agent.update(batch)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            agent.update(batch)
        synchronize(device)
        seconds[name] = (time.perf_counter() - start) / repeats
        rows[f"update {name}"] = {
            "updates_per_s": round(1 / seconds[name], 1), "ms": round(seconds[name] * 1e3, 2),
        }  # fmt: skip
        if name == "compiled":
            rows[f"update {name}"]["compile_s"] = round(first, 1)
    rows["update compiled"]["vs_eager"] = round(seconds["eager"] / seconds["compiled"], 2)
    return rows, seconds["compiled"]


def replay_rows(device: torch.device, repeats: int = 200) -> dict[str, dict[str, float]]:
    capacity = 1_000_000 if device.type == "cuda" else 100_000
    replay = full_replay(capacity, device)
    for _ in range(5):
        replay.sample(32)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        replay.sample(32)
    synchronize(device)
    rate = repeats / (time.perf_counter() - start)
    del replay
    rows = {"replay sample": {"batches_per_s": round(rate, 1), "capacity": capacity}}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        big = ReplayBuffer(1_000_000, 1, (84, 84), frame_stack=4, device=device)
        rows["replay 1M"] = {"gb": round((torch.cuda.memory_allocated(device) - before) / 1e9, 3)}
        del big
    else:  # the same layout, measured on a small buffer and scaled (no 7 GB allocation)
        per_slot = ReplayBuffer(10_000, 1, (84, 84)).nbytes / 10_000
        rows["replay 1M"] = {"gb": round(per_slot * 1_000_000 / 1e9, 3)}
    return rows


def e2e_run(num_envs: int, steps: int, device: torch.device, fill: int = 2_000) -> dict[str, float]:
    """The training loop's fast path once updates run (cleanrl ratio): agent steps/s and, on a
    CPU, the fraction of that wall time spent inside ``DQNAgent.update`` calls (``in_loop_share``:
    the update timed where it runs, beside the emulators, rather than alone). On a GPU an update
    call returns before its kernels finish, so only the steps/s are reported there."""
    with tempfile.TemporaryDirectory() as tmp:
        config = cleanrl().replace(
            env=GAME, num_envs=num_envs, total_steps=fill + steps, learning_starts=fill,
            buffer_size=max(20_000, 2 * (fill + steps)), epsilon_decay_steps=fill,
            eval_every_steps=0, final_eval_episodes=0, record_video=False, progress=False,
            output_dir=tmp, checkpoint_every_steps=10**9, log_every_steps=1_000,
            device=str(device), compile="on",
        )  # fmt: skip
        trainer = build_trainer(config)
        update, inside = trainer.agent.update, [0.0]

        def timed_update(batch):
            start = time.perf_counter()
            metrics = update(batch)
            inside[0] += time.perf_counter() - start
            return metrics

        trainer.agent.update = timed_update
        summary = trainer.run()
    sps = float(summary["learning_sps"])
    row = {"steps_per_s": round(sps, 1)}
    if device.type == "cpu":
        wall = (trainer.global_step - trainer.learner.learning_clock[0]) / sps
        row["in_loop_share"] = round(inside[0] / wall, 3)
    return row


def all_suite(steps: int | None = None) -> dict[str, dict[str, float]]:
    steps = DEFAULT_STEPS if steps is None else steps
    device = resolve_device("auto")
    rows: dict[str, dict[str, float]] = {"device": {"cuda": float(device.type == "cuda")}}
    rows.update(env_rows(steps))
    update, compiled_s = update_rows(device, repeats=max(20, min(200, steps // 20)))
    rows.update(update)
    rows.update(replay_rows(device))
    for n in NUM_ENVS:
        row = e2e_run(n, steps, device)
        # cleanrl: one update per 4 agent steps
        row["update_share"] = round(row["steps_per_s"] * compiled_s / 4, 2)
        rows[f"e2e N={n}"] = row
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB -> GB
    rows["memory"] = {"peak_rss_gb": round(peak_rss, 2)}
    if device.type == "cuda":
        rows["memory"]["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
    return rows
