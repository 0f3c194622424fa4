"""The training loop: vector env -> act -> replay -> update -> target sync -> log/eval/checkpoint.

``global_step`` counts agent steps summed over the parallel envs: one vector step with N envs adds
N. Every schedule is in those units (epsilon decay, learning starts, target sync, evaluation,
checkpoints), so they do not depend on N or on the train frequency. The replay ratio is kept for
any N: each vector step earns ``N * gradient_steps / train_frequency`` updates, paid out as whole
updates (with N=1 and train_frequency=4, one update every 4th step; with N=4, one every step).

This module knows nothing of wandb: it logs through the ``Tracker`` it is given.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.checkpoint import (
    CheckpointError,
    atomic_write,
    check_compatible,
    config_to_dict,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from agents.config import TrainConfig, validate
from agents.dqn import DQNAgent, linear_schedule
from agents.evaluation import agent_policy, evaluate, record_video
from agents.prioritized import PrioritizedReplay, PrioritizedSampler
from agents.replay import ReplayBuffer
from agents.replay_io import load_replay, save_replay
from agents.tracking import Tracker, truncate_metrics, warn
from envs.state import env_state, restore_env_state
from envs.vector import make_vector_env

SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or parameter."""


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {name!r} was asked for but CUDA is not available; use cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """JSON written atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def make_replay(
    config: TrainConfig, envs, device: torch.device
) -> ReplayBuffer | PrioritizedReplay:
    space = envs.single_observation_space
    frame_shape = space.shape[1:] if envs.frame_stack > 1 else space.shape
    replay_device = device if config.replay_device == "auto" else torch.device(config.replay_device)
    replay = ReplayBuffer(
        capacity=config.buffer_size,
        num_streams=envs.num_envs,
        frame_shape=tuple(frame_shape),
        frame_dtype=torch.uint8 if space.dtype == np.uint8 else torch.float32,
        frame_stack=envs.frame_stack,
        stack_padding=envs.stack_padding or "zero",
        n_step=config.n_step,
        gamma=config.gamma,
        device=replay_device,
        seed=config.seed,
    )
    if not config.prioritized:
        return replay
    sampler = PrioritizedSampler(
        replay.num_streams * replay.slots, alpha=config.priority_alpha,
        beta_start=config.priority_beta_start, beta_end=1.0, beta_steps=config.total_steps,
        device=replay.device,
    )  # fmt: skip
    return PrioritizedReplay(replay, sampler)


class Trainer:
    """State of one run: env, agent, replay, counters; ``run()`` trains to ``total_steps``."""

    def __init__(
        self, config: TrainConfig, tracker: Tracker | None = None, resume: bool = False
    ) -> None:
        validate(config)
        self.config = config
        self.device = resolve_device(config.device)
        self.output_dir = Path(config.output_dir)
        check_output_dir(self.output_dir)
        resumed = None
        if resume:
            if latest_checkpoint(self.output_dir / "checkpoints") is None:
                raise CheckpointError(
                    f"--resume: no checkpoint (step_*.pt) in {self.output_dir / 'checkpoints'}; "
                    "start the run again without --resume"
                )
            resumed = load_checkpoint(self.output_dir / "checkpoints", map_location=self.device)
        seed_everything(config.seed)
        self.envs = make_vector_env(
            config.env, config.num_envs, config.protocol, "train", config.seed
        )
        self.obs_shape = tuple(self.envs.single_observation_space.shape)
        if config.torch_threads > 0 or len(self.obs_shape) != 3:
            torch.set_num_threads(config.torch_threads or 1)
        self.num_actions = int(self.envs.single_action_space.n)
        self.agent = DQNAgent.build(
            config, self.obs_shape, self.num_actions, self.device, config.seed
        )
        self.replay = make_replay(config, self.envs, self.device)
        if resumed is not None:
            check_compatible(resumed, config.env, self.obs_shape, self.num_actions)
        (self.output_dir / "checkpoints").mkdir(exist_ok=True)
        write_json(self.output_dir / "config.json", config_to_dict(config))
        wall, logged_until = 0.0, -1
        if resumed is not None:
            wall, logged_until = truncate_metrics(
                self.output_dir / "metrics.csv", resumed["global_step"]
            )
        self.run_id = resumed.get("run_id") if resumed is not None else new_run_id()
        self.tracker = tracker or Tracker(
            self.output_dir, config_to_dict(config), track=config.track, mode=config.wandb_mode,
            project=config.wandb_project, entity=config.wandb_entity, group=config.wandb_group,
            tags=config.wandb_tags, name=self.output_dir.name, run_id=self.run_id,
            init_timeout_seconds=config.wandb_init_timeout, wall_offset_seconds=wall,
            wandb_has_steps_until=logged_until,
        )  # fmt: skip
        self.obs: np.ndarray | None = None  # the envs' current observations
        self.refill_until = -1  # a run resumed without its replay refills it before updating
        self.stop_signal: int | None = None
        self.last_checkpoint: tuple[int, Path] | None = None
        self.global_step = 0
        self.updates_due = 0.0
        self.next_target_sync = config.target_update_steps
        self.next_log = config.log_every_steps
        self.next_eval = config.eval_every_steps or math.inf
        self.next_checkpoint = config.checkpoint_every_steps
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_step = -1
        self.solved_at: int | None = None
        self.learning_clock: tuple[int, float] | None = None  # (step, time) of the first update
        self.learning_sps: float | None = None  # agent steps/s once updates began
        if resumed is not None:
            self.restore(resumed)

    # -- pieces of a step -----------------------------------------------------------------------
    def epsilon(self) -> float:
        c = self.config
        if c.noisy:
            return 0.0  # noisy nets explore through their weights (Fortunato et al. 2018)
        return linear_schedule(
            c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps, self.global_step
        )

    def state(self) -> dict[str, Any]:
        return {
            "config": config_to_dict(self.config),
            "env_id": self.config.env,
            "obs_shape": list(self.obs_shape),
            "num_actions": self.num_actions,
            "model": self.agent.online.state_dict(),
            "target": self.agent.target.state_dict(),
            "optimizer": self.agent.optimizer.state_dict(),
            "global_step": self.global_step,
            "updates": self.agent.updates,
            "epsilon": self.epsilon(),
            "torch_rng": torch.get_rng_state(),
            "agent_rng": self.agent.generator.get_state(),
            "noise_rng": (
                None if self.agent.noise_generator is None
                else self.agent.noise_generator.get_state()
            ),
            "python_rng": random.getstate(),
            "run_id": self.run_id,
            "updates_due": self.updates_due,
            "next_target_sync": self.next_target_sync,
            "next_log": self.next_log,
            "next_eval": None if math.isinf(self.next_eval) else self.next_eval,
            "next_checkpoint": self.next_checkpoint,
            "refill_until": self.refill_until,
            "recent_returns": list(self.recent_returns),
            "solved_at": self.solved_at,
            "obs": None if self.obs is None else torch.from_numpy(np.array(self.obs)),
            "env_state": None if self.obs is None else env_state(self.envs),
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint of this run (see ``scripts/train.py --resume``)."""
        self.agent.online.load_state_dict(state["model"])
        self.agent.target.load_state_dict(state["target"])
        self.agent.optimizer.load_state_dict(state["optimizer"])
        self.agent.updates = state["updates"]
        self.global_step = state["global_step"]
        self.updates_due = state["updates_due"]
        self.next_target_sync = state["next_target_sync"]
        self.next_log = state["next_log"]
        self.next_eval = math.inf if state["next_eval"] is None else state["next_eval"]
        self.next_checkpoint = state["next_checkpoint"]
        self.refill_until = state["refill_until"]
        self.recent_returns.extend(state["recent_returns"])
        self.solved_at = state["solved_at"]
        torch.set_rng_state(state["torch_rng"])
        self.agent.generator.set_state(state["agent_rng"])
        if state["noise_rng"] is not None and self.agent.noise_generator is not None:
            self.agent.noise_generator.set_state(state["noise_rng"])
        random.setstate(state["python_rng"])
        self.last_checkpoint = (self.global_step, Path(state["path"]))
        replay_dir = state.get("replay")
        if replay_dir and (Path(state["path"]).parent / replay_dir).is_dir():
            load_replay(self.replay, Path(state["path"]).parent / replay_dir)
        else:
            if replay_dir:
                warn(f"the saved replay {replay_dir} is missing; refilling the replay")
            self.refill_until = self.global_step + self.config.learning_starts
        if state["env_state"] is not None and self.replay.started:
            restore_env_state(self.envs, state["env_state"])
            self.obs = state["obs"].numpy()

    def check_finite(self) -> None:
        """Stop with a message naming the step if any network parameter is NaN or infinite."""
        params = [p.detach().abs().amax() for p in self.agent.online.parameters()]
        if not bool(torch.isfinite(torch.stack(params)).all()):
            raise NonFiniteLossError(
                f"network parameters became NaN or infinite by global step {self.global_step}; "
                f"stopping (the newest checkpoint in {self.output_dir / 'checkpoints'} is from "
                "before it)"
            )

    def checkpoint(self) -> Path:
        """Save the run (and its replay with ``save_replay``); never a non-finite network."""
        if self.last_checkpoint is not None and self.last_checkpoint[0] == self.global_step:
            return self.last_checkpoint[1]
        self.check_finite()
        directory = self.output_dir / "checkpoints"
        state = self.state()
        if self.config.save_replay:
            for stale in directory.glob(".replay_*.tmp"):  # left by a run that was killed
                shutil.rmtree(stale, ignore_errors=True)
            state["replay"] = f"replay_{self.global_step:012d}"
            save_replay(self.replay, directory / state["replay"])
        path = save_checkpoint(directory, state, self.global_step, self.config.keep_checkpoints)
        if self.config.save_replay:  # only the newest checkpoint keeps its replay
            for old in directory.glob("replay_*"):
                if old.name != state["replay"]:
                    shutil.rmtree(old, ignore_errors=True)
        self.last_checkpoint = (self.global_step, path)
        return path

    def run_evaluation(self, episodes: int) -> dict[str, Any]:
        c = self.config
        self.agent.online.eval()  # noisy layers act on their mean weights when evaluated
        try:
            result = evaluate(
                agent_policy(self.agent), c.env, episodes, c.eval_epsilon, c.protocol,
                seed=c.seed + 10_000, max_steps_per_episode=c.eval_max_steps,
            )  # fmt: skip
        finally:
            self.agent.online.train()
        metrics = {
            "eval/mean_return": result["mean_return"],
            "eval/std_return": result["std_return"],
        }
        if "human_normalized" in result:
            metrics["eval/human_normalized"] = result["human_normalized"]
        self.tracker.log(metrics, self.global_step)
        self.last_eval = result
        self.last_eval_step = self.global_step
        return result

    def _log(self, update_metrics: dict[str, torch.Tensor], t0: float, start_step: int) -> float:
        sps = (self.global_step - start_step) / max(time.perf_counter() - t0, 1e-9)
        metrics = {"charts/SPS": sps, "charts/epsilon": self.epsilon()}
        for key, value in update_metrics.items():
            value = float(value)
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"{key} became {value} at global step {self.global_step}; stopping (the last "
                    f"checkpoint in {self.output_dir / 'checkpoints'} is from before it)"
                )
            metrics[key] = value
        self.tracker.log(metrics, self.global_step)
        return sps

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        c, n = self.config, self.envs.num_envs
        if self.obs is not None:  # resumed with the envs' own state: the same episodes go on
            obs = self.obs
        elif not self.replay.started:
            obs, _ = self.envs.reset(seed=c.seed + self.global_step)
            self.replay.start(obs)
        else:  # resumed with the replay but envs that cannot be saved: new episodes begin
            obs, _ = self.envs.reset(seed=c.seed + self.global_step)
            self.replay.restart(obs)
        self.obs = obs
        t0, start_step, sps = time.perf_counter(), self.global_step, 0.0
        update_metrics: dict[str, torch.Tensor] = {}
        bar = tqdm(total=c.total_steps, initial=self.global_step, disable=not c.progress,
                   unit="step", dynamic_ncols=True)  # fmt: skip
        previous_handlers = self._catch_signals()
        try:
            while self.global_step < c.total_steps and self.stop_signal is None:
                actions = self.agent.act(obs, self.epsilon()).cpu().numpy()
                next_obs, reward, terminated, truncated, info = self.envs.step(actions)
                self.replay.add(actions, reward, terminated, truncated, next_obs,
                                info["reset_mask"], info["final_obs"])  # fmt: skip
                obs = self.obs = next_obs
                self.global_step += n
                for i in np.flatnonzero(info["episode_done"]):
                    self.recent_returns.append(float(info["episode_return"][i]))
                    self.tracker.log({"charts/episodic_return": info["episode_return"][i],
                                      "charts/episodic_length": info["episode_length"][i]},
                                     self.global_step)  # fmt: skip
                if self.global_step > max(c.learning_starts, self.refill_until):
                    if self.learning_clock is None:
                        self.learning_clock = (self.global_step, time.perf_counter())
                    self.updates_due += n * c.gradient_steps / c.train_frequency
                    while self.updates_due >= 1.0:
                        batch = self.replay.sample(c.batch_size, self.global_step)
                        update_metrics = self.agent.update(batch)
                        td_error = update_metrics.pop("td_error")
                        if c.prioritized:
                            self.replay.update_priorities(batch, td_error)
                        self.updates_due -= 1.0
                while self.global_step >= self.next_target_sync:
                    self.agent.sync_target()
                    self.next_target_sync += c.target_update_steps
                if self.global_step >= self.next_log:
                    sps = self._log(update_metrics, t0, start_step)
                    self.next_log += c.log_every_steps
                    bar.update(self.global_step - bar.n)
                    recent = np.mean(self.recent_returns) if self.recent_returns else float("nan")
                    bar.set_postfix(
                        sps=f"{sps:.0f}", ret=f"{recent:.1f}", eps=f"{self.epsilon():.3f}"
                    )
                if self.global_step >= self.next_checkpoint:
                    self.checkpoint()
                    self.next_checkpoint += c.checkpoint_every_steps
                if self.global_step >= self.next_eval:
                    self.next_eval += c.eval_every_steps
                    result = self.run_evaluation(c.eval_episodes)
                    if c.stop_at_return is not None and result["mean_return"] >= c.stop_at_return:
                        self.solved_at = self.global_step
                        break
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            bar.close()
        end = time.perf_counter()
        sps = (self.global_step - start_step) / max(end - t0, 1e-9)
        if self.learning_clock is not None:
            step0, time0 = self.learning_clock
            self.learning_sps = (self.global_step - step0) / max(end - time0, 1e-9)
        self.checkpoint()
        self.envs.close()
        if self.stop_signal is not None:
            return self.stop(sps)
        return self.finish(sps)

    def _catch_signals(self) -> dict[int, Any]:
        """SIGINT/SIGTERM end the loop after the current step (a second one acts at once)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: Any) -> None:
            self.stop_signal = signum
            signal.signal(signum, previous[signum])

        previous = {sig: signal.getsignal(sig) for sig in SIGNAL_EXIT_CODES}
        for sig in SIGNAL_EXIT_CODES:
            signal.signal(sig, on_signal)
        return previous

    def stop(self, sps: float) -> dict[str, Any]:
        """End of a run stopped by a signal: checkpoint written; summary and metrics flushed."""
        name = signal.Signals(self.stop_signal).name
        summary = {
            "env": self.config.env, "preset": self.config.preset, "seed": self.config.seed,
            "global_step": self.global_step, "updates": self.agent.updates, "sps": sps,
            "stopped_by": name, "exit_code": SIGNAL_EXIT_CODES[self.stop_signal],
            "checkpoint": str(self.last_checkpoint[1]) if self.last_checkpoint else None,
        }  # fmt: skip
        write_json(self.output_dir / "summary.json", summary)
        self.tracker.finish(summary)
        return summary

    def finish(self, sps: float) -> dict[str, Any]:
        c = self.config
        summary: dict[str, Any] = {
            "env": c.env, "preset": c.preset, "protocol": c.protocol, "seed": c.seed,
            "global_step": self.global_step, "updates": self.agent.updates, "sps": sps,
            "learning_sps": self.learning_sps,
            "solved_at_step": self.solved_at,
        }  # fmt: skip
        fresh = self.last_eval is not None and self.last_eval_step == self.global_step
        if fresh and (
            self.solved_at is not None or self.last_eval["episodes"] >= c.final_eval_episodes
        ):
            final = self.last_eval  # an evaluation of these same weights was just made
        elif c.final_eval_episodes > 0:
            final = self.run_evaluation(c.final_eval_episodes)
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
        if c.record_video:
            self.agent.online.eval()  # as in evaluation: noisy layers use their mean weights
            video = record_video(self.agent, c.env, self.output_dir / "videos" / "final.mp4",
                                 c.eval_epsilon, c.protocol, seed=c.seed + 20_000)  # fmt: skip
            self.agent.online.train()
            if video is not None:
                summary["video"] = video["path"]
                self.tracker.log_video(video["path"], self.global_step)
        write_json(self.output_dir / "summary.json", summary)
        self.tracker.finish(summary)
        return summary


def train(
    config: TrainConfig, tracker: Tracker | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train a DQN agent as ``config`` says (continuing the run in ``config.output_dir`` when
    ``resume``); returns the summary also written to summary.json."""
    return Trainer(config, tracker, resume).run()
