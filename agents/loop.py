"""The training loop: vector env -> act -> replay -> update -> target sync -> log/eval/checkpoint.

``global_step`` counts agent steps summed over the parallel envs: one vector step with N envs adds
N. Every schedule is in those units (epsilon decay, learning starts, target sync, evaluation,
checkpoints), so they do not depend on N or on the train frequency. The replay ratio is kept for
any N: each vector step earns ``N * gradient_steps / train_frequency`` updates, paid out as whole
updates (with N=1 and train_frequency=4, one update every 4th step; with N=4, one every step).

The fast path (``async_envs``): the actions are sent to ale_py's threaded emulators, the updates
due run while they step, then the step is received and stored; so env time hides behind update
time. The update's metrics stay on the device, summed, and are read once per log interval: no
host synchronisation per step beyond the actions the envs need.

This module knows nothing of wandb: it logs through the ``Tracker`` it is given. The run's state
(checkpoints, resume) lives in ``agents.runs``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.checkpoint import (
    CheckpointError,
    check_compatible,
    config_to_dict,
    latest_checkpoint,
    load_checkpoint,
)
from agents.checks import check_checkpoint
from agents.config import TrainConfig, epsilon_decay_length, schedule_warnings, validate
from agents.dqn import DQNAgent, linear_schedule
from agents.evaluation import agent_policy, evaluate
from agents.replay import Batch
from agents.run_dir import (
    RunLock,
    check_resume,
    claim_output_dir,
    prepare_new_run,
    remove_if_unused,
)
from agents.runs import (
    SIGNAL_EXIT_CODES,
    NonFiniteLossError,
    check_output_dir,
    final_summary,
    make_replay,
    new_run_id,
    resolve_device,
    restore_trainer,
    saved_replay_dir,
    saved_replay_slots,
    seed_everything,
    stop_summary,
    write_checkpoint,
    write_json,
)
from agents.tracking import Tracker, truncate_metrics, warn
from envs.atari import FRAME_SKIP, is_atari_game
from envs.vector import make_vector_env

__all__ = ["NonFiniteLossError", "Trainer", "make_replay", "resolve_device", "train"]
UPDATE_METRICS = ("losses/td_loss", "losses/q_values")


class Trainer:
    """State of one run: env, agent, replay, counters; ``run()`` trains to ``total_steps``."""

    def __init__(
        self,
        config: TrainConfig,
        tracker: Tracker | None = None,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        """``resume``: continue the run in ``config.output_dir`` from its newest checkpoint;
        ``overwrite``: delete the run that directory holds first (refused without it)."""
        validate(config)
        if resume and overwrite:
            raise ValueError(
                "--overwrite: cannot be combined with --resume (one continues the run in the "
                "directory, the other deletes it); give one of them"
            )
        self.device = resolve_device(config.device)
        config, created = (config, False) if resume else claim_output_dir(config)
        self.config = config
        self.output_dir = Path(config.output_dir)
        check_output_dir(self.output_dir)
        self.lock: RunLock | None = RunLock.acquire(self.output_dir)  # until run() ends
        if created:  # a name the user did not give: say it before anything else
            print(f"run directory: {self.output_dir}", flush=True)
        try:
            self._setup(config, tracker, resume, overwrite)
        except BaseException:
            self.release()
            if created:
                remove_if_unused(self.output_dir)
            raise

    def release(self) -> None:
        """Release the run directory's lock (a second run may use it from then on)."""
        if getattr(self, "lock", None) is not None:
            self.lock.release()
            self.lock = None

    def _setup(
        self, config: TrainConfig, tracker: Tracker | None, resume: bool, overwrite: bool
    ) -> None:
        if resume:
            resumed = self._load_resume_state()
        else:
            resumed = None
            prepare_new_run(self.output_dir, overwrite)
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
        saved = saved_replay_dir(resumed) if resumed is not None else None
        keep = saved_replay_slots(saved) if saved is not None else None
        self.replay = make_replay(config, self.envs, self.device, keep_slots=keep)
        self.overlap = config.async_envs == "on" or (
            config.async_envs == "auto" and is_atari_game(config.env)
        )
        if resumed is not None:
            check_compatible(resumed, config.env, self.obs_shape, self.num_actions)
        (self.output_dir / "checkpoints").mkdir(exist_ok=True)
        write_json(self.output_dir / "config.json", config_to_dict(config))
        wall, logged_until = 0.0, -1
        if resumed is not None:
            wall, logged_until = truncate_metrics(
                self.output_dir / "metrics.csv", resumed["global_step"],
                resumed.get("metrics_rows"),
            )  # fmt: skip
        self.run_id = resumed.get("run_id") if resumed is not None else new_run_id()
        self.tracker = tracker or Tracker(
            self.output_dir, config_to_dict(config), track=config.track, mode=config.wandb_mode,
            project=config.wandb_project, entity=config.wandb_entity, group=config.wandb_group,
            tags=config.wandb_tags, name=config.exp_name or self.output_dir.name,
            run_id=self.run_id,
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
        self.metric_sums: torch.Tensor | None = None  # update metrics summed on the device
        self.metric_count = 0
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_step = -1
        self.solved_at: int | None = None
        self.learning_clock: tuple[int, float] | None = None  # (step, time) of the first update
        self.learning_sps: float | None = None  # agent steps/s once updates began
        # Resolved against total_steps now; a resumed run keeps the length it started with.
        self.epsilon_decay_steps = epsilon_decay_length(config)
        if resumed is not None:
            restore_trainer(self, resumed)
        for line in schedule_warnings(config, self.epsilon_decay_steps):
            warn(line)

    def _load_resume_state(self) -> dict[str, Any]:
        if latest_checkpoint(self.output_dir / "checkpoints") is None:
            raise CheckpointError(
                f"--resume: no checkpoint (step_*.pt) in {self.output_dir / 'checkpoints'}; "
                "nothing to continue: start the run again with --overwrite"
            )
        state = load_checkpoint(self.output_dir / "checkpoints", map_location=self.device)
        try:
            check_checkpoint(state, state["path"])  # field by field: types, sizes, finite weights
        except ValueError as error:
            raise CheckpointError(str(error)) from None
        check_resume(self.config, state, self.output_dir)  # the same run, with steps left
        return state

    # -- pieces of a step -----------------------------------------------------------------------
    def epsilon(self) -> float:
        c = self.config
        if c.noisy:
            return 0.0  # noisy nets explore through their weights (Fortunato et al. 2018)
        step = self.global_step - c.epsilon_decay_start  # Dopamine: constant until the warm-up ends
        return linear_schedule(c.epsilon_start, c.epsilon_end, self.epsilon_decay_steps, step)

    def checkpoint(self) -> Path:
        return write_checkpoint(self)

    def train_due(self) -> None:
        """The gradient updates earned by the steps so far (the replay ratio)."""
        c = self.config
        if self.global_step <= max(c.learning_starts, self.refill_until):
            return
        if self.learning_clock is None:
            self.learning_clock = (self.global_step, time.perf_counter())
        self.updates_due += self.envs.num_envs * c.gradient_steps / c.train_frequency
        due = int(self.updates_due)
        self.updates_due -= due
        for batch in self._batches(due):
            metrics = self.agent.update(batch)
            if c.prioritized:
                self.replay.update_priorities(batch, metrics["td_error"])
            values = torch.stack([metrics[key] for key in UPDATE_METRICS])
            self.metric_sums = values if self.metric_sums is None else self.metric_sums + values
            self.metric_count += 1

    def _batches(self, count: int) -> Iterator[Batch]:
        """``count`` batches for the updates of one vector step. Uniform replay draws them in one
        call (nothing is added between these updates, so one draw of ``count`` x batch is the same
        distribution as ``count`` draws, at a fraction of the per-call cost); prioritized replay
        draws each after the previous update has written its priorities."""
        size, step = self.config.batch_size, self.global_step
        if self.config.prioritized or count <= 1:
            for _ in range(count):
                yield self.replay.sample(size, step)
            return
        whole = self.replay.sample(count * size, step)
        columns = [[None] * count if t is None else t.split(size) for t in whole]
        yield from (Batch(*fields) for fields in zip(*columns))

    def run_evaluation(self, episodes: int) -> dict[str, Any]:
        c = self.config
        self.agent.online.eval()  # noisy layers act on their mean weights when evaluated
        try:
            result = evaluate(
                agent_policy(self.agent), c.env, episodes, c.eval_epsilon, c.protocol,
                seed=c.seed + 10_000, max_steps_per_episode=c.eval_max_steps + 1,
                max_episode_frames=c.eval_max_steps * FRAME_SKIP,  # the cap truncates an episode
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

    def _log(self, t0: float, start_step: int) -> float:
        """Log the interval's means; the one host synchronisation of the interval."""
        sps = (self.global_step - start_step) / max(time.perf_counter() - t0, 1e-9)
        metrics = {"charts/SPS": sps, "charts/epsilon": self.epsilon()}
        if self.metric_sums is not None:
            means = (self.metric_sums / self.metric_count).tolist()
            for key, value in zip(UPDATE_METRICS, means):
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"{key} became {value} by global step {self.global_step}; stopping (the "
                        f"newest checkpoint in {self.output_dir / 'checkpoints'} is from before it)"
                    )
                metrics[key] = value
            self.metric_sums, self.metric_count = None, 0
        self.tracker.log(metrics, self.global_step)
        return sps

    def _record_episodes(self, info: dict[str, Any]) -> None:
        for i in np.flatnonzero(info["episode_done"]):
            self.recent_returns.append(float(info["episode_return"][i]))
            self.tracker.log({"charts/episodic_return": info["episode_return"][i],
                              "charts/episodic_length": info["episode_length"][i]},
                             self.global_step)  # fmt: skip

    def _first_obs(self) -> np.ndarray:
        if self.obs is not None:  # resumed with the envs' own state: the same episodes go on
            return self.obs
        obs, _ = self.envs.reset(seed=self.config.seed + self.global_step)
        if not self.replay.started:
            self.replay.start(obs)
        else:  # resumed with the replay but envs that cannot be saved: new episodes begin
            self.replay.restart(obs)
        return obs

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to ``total_steps`` (or a signal, or ``stop_at_return``); the run directory's
        lock is released when it returns or raises."""
        try:
            return self._run()
        finally:
            self.release()

    def _run(self) -> dict[str, Any]:
        from tqdm import tqdm

        c, n = self.config, self.envs.num_envs
        obs = self.obs = self._first_obs()
        t0, start_step, sps = time.perf_counter(), self.global_step, 0.0
        bar = tqdm(total=c.total_steps, initial=self.global_step, disable=not c.progress,
                   unit="step", dynamic_ncols=True)  # fmt: skip
        previous_handlers = self._catch_signals()
        try:
            while self.global_step < c.total_steps and self.stop_signal is None:
                actions = self.agent.act(obs, self.epsilon()).cpu().numpy()
                if self.overlap:  # update while the emulators step
                    self.envs.step_async(actions)
                    self.global_step += n
                    self.train_due()
                    next_obs, reward, terminated, truncated, info = self.envs.step_wait()
                else:
                    next_obs, reward, terminated, truncated, info = self.envs.step(actions)
                    self.global_step += n
                self.replay.add(actions, reward, terminated, truncated, next_obs,
                                info["reset_mask"], info["final_obs"])  # fmt: skip
                obs = self.obs = next_obs
                self._record_episodes(info)
                if not self.overlap:
                    self.train_due()
                while self.global_step >= self.next_target_sync:
                    self.agent.sync_target()
                    self.next_target_sync += c.target_update_steps
                if self.global_step >= self.next_log:
                    sps = self._log(t0, start_step)
                    self.next_log += c.log_every_steps
                    bar.update(self.global_step - bar.n)
                    recent = np.mean(self.recent_returns) if self.recent_returns else float("nan")
                    bar.set_postfix(
                        sps=f"{sps:.0f}", ret=f"{recent:.1f}", eps=f"{self.epsilon():.3f}"
                    )
                # Evaluate, then checkpoint: the checkpoint holds the step's whole state, its
                # schedule positions already advanced, so a resumed run neither evaluates nor
                # checkpoints this step again.
                if self.global_step >= self.next_eval:
                    self.next_eval += c.eval_every_steps
                    result = self.run_evaluation(c.eval_episodes)
                    if c.stop_at_return is not None and result["mean_return"] >= c.stop_at_return:
                        self.solved_at = self.global_step
                        break  # the final checkpoint below saves this step
                if self.global_step >= self.next_checkpoint:
                    self.next_checkpoint += c.checkpoint_every_steps
                    self.checkpoint()
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
        return stop_summary(self, sps)

    def finish(self, sps: float) -> dict[str, Any]:
        return final_summary(self, sps)


def train(
    config: TrainConfig,
    tracker: Tracker | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train a DQN agent as ``config`` says (continuing the run in ``config.output_dir`` when
    ``resume``, replacing the run it holds when ``overwrite``); returns the summary also written
    to summary.json."""
    return Trainer(config, tracker, resume, overwrite).run()
