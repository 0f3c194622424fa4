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

Every fault ends in a known state. SIGINT/SIGTERM (``agents.interrupts``): a training step and a
checkpoint write finish first; start-up, an evaluation and the video stop at once; the run then
checkpoints the last whole step and stops (exit code 130/143). Any other exception in the loop
(``Trainer.fail``): an emergency checkpoint of the last good state when there is one (the step
whole, the network finite and not caught inside an optimizer step), then ``TrainingError`` naming
the step, the phase and the error (exit code 1). A new run stopped during its start-up leaves its
directory as it found it.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
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
from agents.evaluation import agent_policy, evaluate, recording_problem
from agents.interrupts import Interrupted, SignalGuard, pause_point
from agents.replay import Batch
from agents.run_dir import (
    RunLock,
    check_resume,
    claim_output_dir,
    prepare_new_run,
    remove_if_unused,
)
from agents.runs import (
    NonFiniteLossError,
    TrainingError,
    check_output_dir,
    final_summary,
    make_replay,
    new_run_id,
    replay_device,
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

__all__ = [
    "Interrupted", "NonFiniteLossError", "Trainer", "TrainingError", "make_replay",
    "resolve_device", "train",
]  # fmt: skip
UPDATE_METRICS = ("losses/td_loss", "losses/q_values")
LONG_EVALUATION = 30
"""Episodes from which a periodic evaluation is announced before it starts (``evaluating N
episodes ...``), as the final evaluation always is: long enough to leave the bar still a while."""


def say(line: str) -> None:
    """One line on stdout, written above the progress bar when one is shown (``tqdm.write``
    clears the bar, writes the line and draws the bar again), so the bar stays one line."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def evaluation_line(result: dict[str, Any], step: int, env: str, final: bool = False) -> str:
    """``eval @ step 20,000: return 21.30 +- 4.10 over 10 episodes (epsilon 0.05, nature
    protocol)`` (``final eval @ ...`` for the final one); the protocol is named for the envs it
    applies to (Atari games and ``fake``)."""
    what = "final eval" if final else "eval"
    line = f"{what} @ step {step:,}: return {result['mean_return']:.2f} +- "
    line += f"{result['std_return']:.2f} over {plural(result['episodes'], 'episode')} "
    line += f"(epsilon {result['epsilon']:g}"
    if env == "fake" or is_atari_game(env):
        line += f", {result['protocol']} protocol"
    return line + ")"


class Trainer:
    """State of one run: env, agent, replay, counters; ``run()`` trains to ``total_steps``."""

    def __init__(
        self,
        config: TrainConfig,
        tracker: Tracker | None = None,
        resume: bool = False,
        overwrite: bool = False,
        signals: SignalGuard | None = None,
    ) -> None:
        """``resume``: continue the run in ``config.output_dir`` from its newest checkpoint;
        ``overwrite``: delete the run that directory holds first (refused without it);
        ``signals``: the script's guard, already installed during the start-up (``run()``
        installs it if not)."""
        self.signals = signals or SignalGuard()
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
        self.made_here = made_here = created or not self.output_dir.exists()
        check_output_dir(self.output_dir)
        self.lock: RunLock | None = RunLock.acquire(self.output_dir)  # until run() ends
        if created:  # a name the user did not give: say it before anything else
            print(f"run directory: {self.output_dir}", flush=True)
        self.resumed = resume
        try:
            self._setup(config, tracker, resume, overwrite)
        except BaseException:
            if getattr(self, "new_run_begun", False):  # a new run that never started
                discard_new_run(self.output_dir, getattr(self, "tracker", None))
            self.release()
            if made_here:
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
            self.new_run_begun = True  # what is written from here on is this run's
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
        self._watch_optimizer()
        pause_point("startup")  # a test hook: waits for a signal when a test asks
        print(f"device: {self.device} (networks), {replay_device(config, self.device)} (replay)",
              flush=True)  # fmt: skip
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
        self.phase = "start-up"  # what the run is doing (named when a fault stops it)
        self.envs_whole = True  # False inside an env step: the envs' state is not the obs'
        self.replay_whole = True  # False while the replay is written to
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
        self.bar: Any = None  # the progress bar while the steps run
        self.last_sps: float | None = None
        self.solved_at: int | None = None
        self.learning_clock: tuple[int, float] | None = None  # (step, time) of the first update
        self.learning_sps: float | None = None  # agent steps/s once updates began
        # Resolved against total_steps now; a resumed run keeps the length it started with.
        self.epsilon_decay_steps = epsilon_decay_length(config)
        if resumed is not None:
            restore_trainer(self, resumed)
        for line in schedule_warnings(config, self.epsilon_decay_steps):
            warn(line)
        # Said now, not after the run: a video that cannot be made is skipped at the end.
        self.video_problem = recording_problem(config.env) if config.record_video else None
        if self.video_problem is not None:
            warn(f"--record-video: {config.env!r} cannot be recorded: {self.video_problem}; the "
                 "run goes on without a video")  # fmt: skip

    @property
    def stop_signal(self) -> int | None:
        """The SIGINT/SIGTERM that stops the run (None: none received)."""
        return self.signals.received

    @stop_signal.setter
    def stop_signal(self, signum: int | None) -> None:
        self.signals.received = signum

    def _watch_optimizer(self) -> None:
        """Count optimizer steps begun and finished: an exception between the two may have left
        the network half-updated, and no emergency checkpoint is written of it."""
        self.optimizer_steps = [0, 0]  # begun, finished

        def begin(*_: Any) -> None:
            self.optimizer_steps[0] += 1

        def end(*_: Any) -> None:
            self.optimizer_steps[1] += 1

        self.agent.optimizer.register_step_pre_hook(begin)
        self.agent.optimizer.register_step_post_hook(end)

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
        """Write the run's state (a first signal waits for the write to finish)."""
        phase, self.phase = self.phase, "checkpoint"
        with self.signals.deferred():
            path = write_checkpoint(self)
        self.phase = phase
        return path

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
                self.phase, self.replay_whole = "priorities", False
                self.replay.update_priorities(batch, metrics["td_error"])
                self.phase, self.replay_whole = "update", True
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

    def run_evaluation(self, episodes: int, final: bool = False) -> dict[str, Any]:
        """Evaluate the network (a signal stops the evaluation at once) and say the result in one
        line (``evaluation_line``), announced first when it is the ``final`` one or at least
        ``LONG_EVALUATION`` episodes long; the progress bar shows its mean."""
        c = self.config
        if final or episodes >= LONG_EVALUATION:
            say(f"evaluating {plural(episodes, 'episode')} ...")
        self.agent.online.eval()  # noisy layers act on their mean weights when evaluated
        try:
            with self.signals.interruptible_phase():
                result = evaluate(
                    agent_policy(self.agent), c.env, episodes, c.eval_epsilon, c.protocol,
                    seed=c.seed + 10_000, max_steps_per_episode=c.eval_max_steps + 1,
                    max_episode_frames=c.eval_max_steps * FRAME_SKIP,  # Atari's cap, in frames
                    max_episode_steps=c.eval_max_steps,  # and a gymnasium env's, in steps
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
        say(evaluation_line(result, self.global_step, c.env, final))
        if self.bar is not None:
            self.bar.set_postfix(self.postfix())
        return result

    def postfix(self) -> dict[str, str]:
        """What the progress bar shows after its counts: steps per second, the mean of the last
        20 episodes' returns, epsilon, and the last evaluation's mean return."""
        recent = np.mean(self.recent_returns) if self.recent_returns else float("nan")
        shown = {"sps": "-" if self.last_sps is None else f"{self.last_sps:.0f}",
                 "ret": f"{recent:.1f}", "eps": f"{self.epsilon():.3f}"}  # fmt: skip
        if self.last_eval is not None:
            shown["eval"] = f"{self.last_eval['mean_return']:.1f}"
        return shown

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
        """Train to ``total_steps`` (or a signal, or ``stop_at_return``) and return the summary;
        the run directory's lock is released when it returns or raises. A signal returns the
        stop's summary once the last whole step is checkpointed, or raises ``Interrupted`` when
        there was no step to keep (a new run's directory is then left as it was found); any other
        exception raises ``TrainingError`` (``NonFiniteLossError`` for a non-finite network)
        after the emergency checkpoint (``fail``)."""
        try:
            with self.signals:
                return self._run()
        except (Interrupted, TrainingError):
            if not self.resumed and self.last_checkpoint is None and self.global_step == 0:
                discard_new_run(self.output_dir, self.tracker)  # stopped before its first step
                self.release()
                if self.made_here:
                    remove_if_unused(self.output_dir)
            raise
        finally:
            self.release()

    def _run(self) -> dict[str, Any]:
        start_step = self.global_step
        try:
            try:
                sps = self._train(start_step)
            except Interrupted as stop:
                # A first signal in an interruptible phase (the first observations, an
                # evaluation): the last step is whole. A second signal may have cut one short.
                if stop.second or self.global_step == 0:
                    raise
                sps = self._sps(start_step)
            while self.next_checkpoint <= self.global_step:  # due at this step: written now
                self.next_checkpoint += self.config.checkpoint_every_steps
            self.phase = "final checkpoint"
            self.checkpoint()
            self.envs.close()
            if self.stop_signal is not None:
                return self.stop(sps)
            return self.finish(sps)  # a signal in the final evaluation or video: stop below
        except Interrupted as stop:
            self._close_quietly()
            checkpointed = self.last_checkpoint is not None
            if not stop.second and checkpointed and self.last_checkpoint[0] == self.global_step:
                try:
                    return self.stop(self._sps(start_step))
                except Exception as error:  # noqa: BLE001 - e.g. a full disk: one line too
                    raise self.fail(error) from error
            self._close_quietly(exit_code=stop.exit_code)
            if self.global_step == 0 and not self.resumed:
                raise  # nothing to keep: run() leaves the directory as it was
            raise StoppedBeforeCheckpoint(stop.signum, self) from None
        except NonFiniteLossError:
            self._close_quietly(exit_code=1)
            raise
        except Exception as error:  # noqa: BLE001 - any fault: a known state, then one line
            raise self.fail(error) from error

    def _sps(self, start_step: int) -> float:
        return (self.global_step - start_step) / max(time.perf_counter() - self._t0, 1e-9)

    def _train(self, start_step: int) -> float:
        """The steps to ``total_steps``, or to a signal; returns the steps per second."""
        from tqdm import tqdm

        c, n = self.config, self.envs.num_envs
        self._t0 = t0 = time.perf_counter()
        with self.signals.interruptible_phase():
            obs = self.obs = self._first_obs()
        bar = self.bar = tqdm(total=c.total_steps, initial=self.global_step,
                              disable=not c.progress, unit="step", dynamic_ncols=True)  # fmt: skip
        try:
            if start_step > 0 and self.global_step >= self.next_eval:  # cut short by a signal
                self.next_eval += c.eval_every_steps
                if self._evaluate_step():
                    return 0.0  # solved: nothing more to train
            with self.signals.deferred():  # a signal ends the run after the current step
                while self.global_step < c.total_steps and self.stop_signal is None:
                    obs = self._step(obs, n)
                    if self.global_step >= self.next_log:
                        self.phase = "logging"
                        self.last_sps = self._log(t0, start_step)
                        self.next_log += c.log_every_steps
                        bar.update(self.global_step - bar.n)
                        bar.set_postfix(self.postfix())
                    # Evaluate, then checkpoint: the checkpoint holds the step's whole state,
                    # its schedule positions already advanced, so a resumed run neither
                    # evaluates nor checkpoints this step again.
                    if self.global_step >= self.next_eval:
                        self.next_eval += c.eval_every_steps
                        if self._evaluate_step():
                            break  # solved: the final checkpoint saves this step
                    if self.global_step >= self.next_checkpoint:
                        self.next_checkpoint += c.checkpoint_every_steps
                        self.checkpoint()
        finally:
            bar.close()
            self.bar = None
        end = time.perf_counter()
        if self.learning_clock is not None:
            step0, time0 = self.learning_clock
            self.learning_sps = (self.global_step - step0) / max(end - time0, 1e-9)
        return (self.global_step - start_step) / max(end - t0, 1e-9)

    def _step(self, obs: np.ndarray, n: int) -> np.ndarray:
        """One vector step: act, step the envs, store, update, sync the target. ``envs_whole``
        and ``replay_whole`` say whether the envs' state and the replay are whole at each point,
        for an emergency checkpoint (``fail``)."""
        c = self.config
        self.phase = "acting"
        actions = self.agent.act(obs, self.epsilon()).cpu().numpy()
        self.phase, self.envs_whole = "env step", False
        if self.overlap:  # update while the emulators step
            self.envs.step_async(actions)
            self.global_step += n
            self.phase = "update"
            self.train_due()
            self.phase = "env step"
            next_obs, reward, terminated, truncated, info = self.envs.step_wait()
        else:
            next_obs, reward, terminated, truncated, info = self.envs.step(actions)
            self.global_step += n
        self.phase, self.replay_whole = "replay", False
        self.replay.add(actions, reward, terminated, truncated, next_obs,
                        info["reset_mask"], info["final_obs"])  # fmt: skip
        self.replay_whole = True
        obs = self.obs = next_obs
        self.envs_whole = True
        self.phase = "logging"
        self._record_episodes(info)
        if not self.overlap:
            self.phase = "update"
            self.train_due()
        self.phase = "target sync"
        while self.global_step >= self.next_target_sync:
            self.agent.sync_target()
            self.next_target_sync += c.target_update_steps
        return obs

    def _evaluate_step(self) -> bool:
        """The periodic evaluation of this step; True when it reaches ``stop_at_return``. A
        signal stops it at once: the checkpoint of the step then keeps it due, and a resumed run
        makes it first."""
        c = self.config
        self.phase = "evaluation"
        try:
            result = self.run_evaluation(c.eval_episodes)
        except Interrupted:
            self.next_eval -= c.eval_every_steps
            raise
        if c.stop_at_return is not None and result["mean_return"] >= c.stop_at_return:
            self.solved_at = self.global_step
            say(f"solved at step {self.global_step:,}: mean return {result['mean_return']:.2f} "
                f">= threshold {c.stop_at_return:.2f}")  # fmt: skip
            return True
        return False

    def fail(self, error: BaseException) -> TrainingError:
        """The known state after ``error``: an emergency checkpoint of the last good state when
        there is one, the envs closed, the metrics flushed; returns the ``TrainingError`` that
        names the step, the phase, the error and the checkpoint to resume from.

        The state is good when the step is whole: an error while acting, logging, evaluating or
        updating between optimizer steps (a network of whole updates, checked finite). An error
        inside an env step or the replay's write keeps the network and counters but not the envs
        (a resumed run starts new episodes) or, when the replay may be torn, not the replay (it is
        refilled). No emergency checkpoint after an error inside an optimizer step or the target
        sync (the networks may be half-updated), or while a checkpoint was being written (the
        same write would fail again)."""
        step, phase = self.global_step, self.phase
        reason = self._no_emergency_reason()
        saved: Path | None = None
        if reason is None:
            for_due = self.next_checkpoint
            while self.next_checkpoint <= self.global_step:  # as the loop would have
                self.next_checkpoint += self.config.checkpoint_every_steps
            try:
                with self.signals.deferred():
                    saved = write_checkpoint(
                        self, keep_envs=self.envs_whole, keep_replay=self.replay_whole
                    )
            except NonFiniteLossError:
                reason = "the network is not finite"
            except Exception as again:  # noqa: BLE001 - reported in the same line
                reason = f"its write failed too ({type(again).__name__}: {brief(again)})"
            if saved is None:
                self.next_checkpoint = for_due
        self._close_quietly(exit_code=1)
        message = f"at global step {step} ({phase}): {type(error).__name__}: {brief(error)}; "
        if saved is not None:
            dropped = []
            if not self.envs_whole:
                dropped.append("the envs' episodes, begun again on resume")
            if not self.replay_whole and self.config.save_replay:
                dropped.append("the replay, refilled on resume")
            message += f"checkpoint {saved} holds the last good state (global step "
            message += f"{self.last_checkpoint[0]}"
            message += f"; without {' and '.join(dropped)}" if dropped else ""
            message += f"); continue with --resume {self.output_dir}"
        else:
            message += f"no emergency checkpoint ({reason}); "
            message += newest_checkpoint_text(self.output_dir)
        return TrainingError(message, step=step, phase=phase, checkpoint=saved)

    def _no_emergency_reason(self) -> str | None:
        """Why no emergency checkpoint can be written now (None: one can)."""
        begun, finished = getattr(self, "optimizer_steps", (0, 0))
        if begun != finished:
            return "the error came inside an optimizer step: the network may be half-updated"
        if self.phase == "target sync":
            return "the error came while the target network was synced: it may be half-copied"
        if self.phase == "checkpoint":
            return "the error came while a checkpoint was written"
        if self.global_step == 0:
            return "no step was taken"
        return None

    def _close_quietly(self, exit_code: int | None = None) -> None:
        """Close the envs, and with ``exit_code`` flush and close the metrics and finish wandb,
        after a fault or a stop; their own errors are not raised over the one being reported."""
        with contextlib.suppress(Exception):
            self.envs.close()
        if exit_code is not None:
            with contextlib.suppress(Exception):
                self.tracker.finish(exit_code=exit_code)

    def stop(self, sps: float) -> dict[str, Any]:
        return stop_summary(self, sps)

    def finish(self, sps: float) -> dict[str, Any]:
        return final_summary(self, sps)


class StoppedBeforeCheckpoint(Interrupted):  # noqa: N818
    """A second signal cut the stop's checkpoint short (or a resumed run was stopped before its
    first step): the newest checkpoint on disk is the run's state."""

    def __init__(self, signum: int, trainer: Trainer) -> None:
        super().__init__(signum, second=True)
        self.global_step = trainer.global_step
        self.checkpoint = trainer.last_checkpoint


def brief(error: BaseException) -> str:
    """An error's message on one line, at most 300 characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def newest_checkpoint_text(output_dir: Path) -> str:
    """'the newest checkpoint written before it is intact: PATH (global step N)', or that there
    is none."""
    newest = latest_checkpoint(output_dir / "checkpoints")
    if newest is None:
        return "no checkpoint was written before it"
    step = int(newest.name[5:17])
    return f"the newest checkpoint written before it is intact: {newest} (global step {step})"


def discard_new_run(directory: Path, tracker: Tracker | None) -> None:
    """Delete what a new run wrote before its first checkpoint (config.json, metrics.csv, an
    empty checkpoints folder, its wandb folder), so its directory holds no run and the same
    command can be given again."""
    if tracker is not None:
        with contextlib.suppress(Exception):
            tracker.finish(exit_code=1)
    checkpoints = directory / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        return  # a checkpoint (or a replay) was written: a run to keep
    for name in ("config.json", "metrics.csv", "summary.json"):
        with contextlib.suppress(OSError):
            (directory / name).unlink()
    for name in ("checkpoints", "wandb"):
        shutil.rmtree(directory / name, ignore_errors=True)
    for stale in directory.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def train(
    config: TrainConfig,
    tracker: Tracker | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train a DQN agent as ``config`` says (continuing the run in ``config.output_dir`` when
    ``resume``, replacing the run it holds when ``overwrite``); returns the summary also written
    to summary.json."""
    signals = SignalGuard()
    with signals:
        return Trainer(config, tracker, resume, overwrite, signals).run()
