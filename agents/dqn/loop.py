"""The training loop: actor -> replay -> learner, with evaluation, logging and checkpoints.

``Trainer`` runs the parts ``agents.dqn.build.build_trainer`` makes (or a test gives it): an actor
(``agents.dqn.actor``: vector env, policy, exploration schedule), the replay, and a learner
(``agents.dqn.learner``: updates at the replay ratio, target sync), composed in one process. It owns
the run's clock (``global_step``), the schedules of logging, evaluation and checkpoints, and the
run's state as data: ``state_dict`` gathers the parts' own state dicts into one checkpoint and
``load_state_dict`` gives each part its own back.

``global_step`` counts agent steps summed over the parallel envs: one vector step with N envs adds
N. Every schedule is in those units (epsilon decay, learning starts, target sync, evaluation,
checkpoints), so they do not depend on N or on the train frequency.

The fast path (``overlap``): the actions are sent to ale_py's threaded emulators, the updates
due run while they step, then the step is received and stored; so env time hides behind update
time. The update's metrics stay on the device, summed, and are read once per log interval: no
host synchronisation per step beyond the actions the envs need.

This module knows nothing of wandb: it logs through the ``Tracker`` it is given.

Every fault ends in a known state (the endings themselves, ``finish``, ``stop`` and ``fail``, are
``agents.dqn.endings.RunEndings``, which ``Trainer`` inherits). SIGINT/SIGTERM/SIGHUP
(``agents.run.interrupts``): a training step and a checkpoint write finish first; start-up, an
evaluation and the video stop at once; the run then checkpoints the last whole step and stops
(exit code 130/143/129). Any other exception in the loop (``Trainer.fail``): an emergency checkpoint
of the last good state when there is one (the step whole, the network finite and not caught
inside an optimizer step), then ``TrainingError`` naming the step, the phase and the error (exit
code 1). A new run stopped during its start-up leaves its directory as it found it.
"""

from __future__ import annotations

import math
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.dqn.actor import Actor, Transitions
from agents.dqn.config import TrainConfig
from agents.dqn.endings import RunEndings
from agents.dqn.learner import Learner
from agents.dqn.replay.io import save_replay
from agents.dqn.replay.sizing import load_saved_replay
from agents.evaluation.evaluate import action_shares, agent_policy, evaluate
from agents.run.checkpoint import config_to_dict, save_checkpoint
from agents.run.directory import RunLock, remove_if_unused
from agents.run.faults import (
    NonFiniteLossError,
    StoppedBeforeCheckpoint,
    TrainingError,
    discard_new_run,
    newest_checkpoint_text,
)
from agents.run.interrupts import Interrupted, SignalGuard
from agents.run.tracking import Tracker, warn
from envs.atari import FRAME_SKIP, is_atari_game

__all__ = [
    "Interrupted", "NonFiniteLossError", "RunFiles", "StoppedBeforeCheckpoint", "Trainer",
    "TrainingError", "discard_new_run", "newest_checkpoint_text",
]  # fmt: skip

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
    protocol)``; the protocol is named for the envs it applies to (Atari games and ``fake``). The
    final one (``final eval @ ...``) adds the three most played actions (``; most played: UP
    97.1%, NOOP 2.0%, DOWN 0.9%``)."""
    what = "final eval" if final else "eval"
    line = f"{what} @ step {step:,}: return {result['mean_return']:.2f} +- "
    line += f"{result['std_return']:.2f} over {plural(result['episodes'], 'episode')} "
    line += f"(epsilon {result['epsilon']:g}"
    if env == "fake" or is_atari_game(env):
        line += f", {result['protocol']} protocol"
    line += ")"
    if not final:
        return line
    shares = action_shares(result.get("action_counts") or [], result.get("action_names"))
    return line + (f"; most played: {shares}" if shares else "")


@dataclass
class RunFiles:
    """Where a run writes: its directory, its wandb run id, whether it continues a run there
    (``resumed``), whether the directory was made for it (``made_here``: removed again when the
    run never starts), and the directory's lock (held until the run ends)."""

    output_dir: Path
    run_id: str = ""
    resumed: bool = False
    made_here: bool = False
    lock: RunLock | None = None

    def release(self) -> None:
        """Release the run directory's lock (a second run may use it from then on)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


class Trainer(RunEndings):
    """One run: an actor and a learner (which holds the agent and the replay) composed in one
    process, logging to ``tracker`` in ``files.output_dir``; ``run()`` trains to
    ``total_steps``."""

    def __init__(
        self,
        config: TrainConfig,
        actor: Actor,
        learner: Learner,
        tracker: Tracker,
        files: RunFiles,
        signals: SignalGuard | None = None,
        device: torch.device | None = None,
        overlap: bool = False,
    ) -> None:
        """``overlap``: run the updates while the envs step (``actor.send``/``receive``), for
        envs that step in the background (ale_py's threads)."""
        self.config = config
        self.actor = actor
        self.learner = learner
        self.tracker = tracker
        self.files = files
        self.output_dir = files.output_dir
        self.signals = signals or SignalGuard()
        self.device = device or learner.agent.device
        self.overlap = overlap
        self.phase_name = "start-up"  # what the run is doing (named when a fault stops it)
        self.replay_written = True  # False while the replay is written to
        self.last_checkpoint: tuple[int, Path] | None = None
        self.global_step = 0
        self.next_log = config.log_every_steps
        self.next_eval = config.eval_every_steps or math.inf
        self.next_checkpoint = config.checkpoint_every_steps
        self.last_eval: dict[str, Any] | None = None
        self.last_eval_step = -1
        self.bar: Any = None  # the progress bar while the steps run
        self.last_sps: float | None = None
        self.solved_at: int | None = None
        self.learning_sps: float | None = None  # agent steps/s once updates began
        self.video_problem: str | None = None  # why the final video cannot be made (if not)
        self._watch_optimizer()

    # -- the parts, by the names the rest of the package reads ----------------------------------
    @property
    def agent(self):
        return self.learner.agent

    @property
    def replay(self):
        return self.learner.replay

    @property
    def envs(self):
        return self.actor.envs

    @property
    def obs(self) -> np.ndarray | None:
        return self.actor.obs

    @property
    def run_id(self) -> str:
        return self.files.run_id

    @property
    def phase(self) -> str:
        """What the run is doing: named by the one-line error when a fault stops it."""
        return "priorities" if self.learner.writing_priorities else self.phase_name

    @phase.setter
    def phase(self, name: str) -> None:
        self.phase_name = name

    @property
    def envs_whole(self) -> bool:
        """Whether the envs' state is that of the current observations (not inside a step)."""
        return self.actor.whole

    @property
    def replay_whole(self) -> bool:
        """Whether the replay is whole (not inside a write of transitions or priorities)."""
        return self.replay_written and not self.learner.writing_priorities

    def release(self) -> None:
        """Release the run directory's lock (a second run may use it from then on)."""
        self.files.release()

    @property
    def stop_signal(self) -> int | None:
        """The SIGINT/SIGTERM/SIGHUP that stops the run (None: none received)."""
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

    def epsilon(self) -> float:
        return self.actor.epsilon(self.global_step)

    # -- the run's state as data ----------------------------------------------------------------
    def state_dict(self, keep_envs: bool = True) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and plain types (``weights_only``
        loadable): the run's identity and clock, the learner's and the actor's own state dicts,
        and the process's generators. Without ``keep_envs`` (envs caught inside a step) a
        resumed run starts new episodes. The keys are those of every checkpoint written so far,
        so older checkpoints load."""
        c = self.config
        return {
            "config": config_to_dict(c), "env_id": c.env,
            "obs_shape": list(self.envs.single_observation_space.shape),
            "num_actions": int(self.envs.single_action_space.n),
            "epsilon": self.epsilon(), "run_id": self.run_id,
            **self.learner.state_dict(),
            "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
            "global_step": self.global_step, "next_log": self.next_log,
            "next_checkpoint": self.next_checkpoint, "solved_at": self.solved_at,
            "next_eval": None if math.isinf(self.next_eval) else self.next_eval,
            "positions_advanced": True,  # next_eval/next_checkpoint saved past this step's
            "metrics_rows": getattr(getattr(self.tracker, "metrics", None), "rows", None),
            **self.actor.state_dict(keep_envs),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put this freshly built run where the checkpoint ``state`` of the same run left off:
        each part gets its own state back, the saved replay (if any) is loaded, and the envs
        continue their episodes when they and the replay were saved."""
        c, path = self.config, Path(state["path"])
        self.learner.load_state_dict(state, path)
        self.global_step = state["global_step"]
        self.next_log = state["next_log"]
        self.next_checkpoint = state["next_checkpoint"]
        self.solved_at = state["solved_at"]
        self.next_eval = math.inf if state["next_eval"] is None else state["next_eval"]
        if not state.get("positions_advanced"):  # written before the step's evaluation and the
            # advance of its checkpoint position: advance them as that run did right after saving
            if self.next_eval <= self.global_step:
                self.next_eval += c.eval_every_steps
            if self.next_checkpoint <= self.global_step:
                self.next_checkpoint += c.checkpoint_every_steps
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        self.last_checkpoint = (self.global_step, path)
        replay_dir = state.get("replay")
        if replay_dir and (path.parent / replay_dir).is_dir():
            load_saved_replay(self.replay, path.parent / replay_dir, c, self.envs, self.device)
        else:
            if replay_dir:
                warn(f"the saved replay {path.parent / replay_dir} is missing; refilling the "
                     "replay")  # fmt: skip
            self.learner.refill_until = self.global_step + c.learning_starts
        self.actor.load_state_dict(state, restore_envs=self.replay.started)

    def check_finite(self) -> None:
        """Stop with a message naming the step if any network parameter is NaN or infinite."""
        largest = [p.detach().abs().amax() for p in self.agent.online.parameters()]
        if not bool(torch.isfinite(torch.stack(largest)).all()):
            raise NonFiniteLossError(
                f"network parameters became NaN or infinite by global step {self.global_step}; "
                f"stopping (the newest checkpoint in {self.output_dir / 'checkpoints'} is from "
                "before it)"
            )

    def write_checkpoint(self, keep_envs: bool = True, keep_replay: bool = True) -> Path:
        """Save the run (and its replay with ``save_replay`` and ``keep_replay``); never a
        non-finite network. A write that fails (a full disk, a signal) leaves the checkpoints as
        they were: no temporary file, no replay without its checkpoint."""
        if self.last_checkpoint is not None and self.last_checkpoint[0] == self.global_step:
            return self.last_checkpoint[1]
        self.check_finite()
        directory = self.output_dir / "checkpoints"
        state = self.state_dict(keep_envs)
        replay = None
        if self.config.save_replay and keep_replay:
            for stale in directory.glob(".replay_*.tmp"):  # left by a run that was killed
                shutil.rmtree(stale, ignore_errors=True)
            state["replay"] = f"replay_{self.global_step:012d}"
            replay = directory / state["replay"]
        try:
            if replay is not None:
                save_replay(self.replay, replay)
            path = save_checkpoint(directory, state, self.global_step, self.config.keep_checkpoints)
        except BaseException:
            if replay is not None:  # a replay whose checkpoint was not written
                shutil.rmtree(replay, ignore_errors=True)
            raise
        if replay is not None:  # only the newest checkpoint keeps its replay
            for old in directory.glob("replay_*"):
                if old.name != replay.name:
                    shutil.rmtree(old, ignore_errors=True)
        self.last_checkpoint = (self.global_step, path)
        return path

    def checkpoint(self) -> Path:
        """Write the run's state (a first signal waits for the write to finish)."""
        phase, self.phase = self.phase, "checkpoint"
        with self.signals.deferred():
            path = self.write_checkpoint()
        self.phase = phase
        return path

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
        recent = self.actor.mean_recent_return()
        shown = {"sps": "-" if self.last_sps is None else f"{self.last_sps:.0f}",
                 "ret": f"{recent:.1f}", "eps": f"{self.epsilon():.3f}"}  # fmt: skip
        if self.last_eval is not None:
            shown["eval"] = f"{self.last_eval['mean_return']:.1f}"
        return shown

    def _log(self, t0: float, start_step: int) -> float:
        """Log the interval's means; the one host synchronisation of the interval."""
        sps = (self.global_step - start_step) / max(time.perf_counter() - t0, 1e-9)
        metrics = {"charts/SPS": sps, "charts/epsilon": self.epsilon()}
        for key, value in self.learner.take_metrics().items():
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"{key} became {value} by global step {self.global_step}; stopping (the "
                    f"newest checkpoint in {self.output_dir / 'checkpoints'} is from before it)"
                )
            metrics[key] = value
        self.tracker.log(metrics, self.global_step)
        return sps

    def _first_obs(self) -> np.ndarray:
        obs, new_episodes = self.actor.reset(self.global_step)
        if not new_episodes:  # resumed with the envs' own state: the same episodes go on
            return obs
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
            if not self.files.resumed and self.last_checkpoint is None and self.global_step == 0:
                discard_new_run(self.output_dir, self.tracker)  # stopped before its first step
                self.release()
                if self.files.made_here:
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
            if self.global_step == 0 and not self.files.resumed:
                raise  # nothing to keep: run() leaves the directory as it was
            raise StoppedBeforeCheckpoint(
                stop.signum, self.global_step, self.last_checkpoint
            ) from None
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

        c = self.config
        self._t0 = t0 = time.perf_counter()
        with self.signals.interruptible_phase():
            self._first_obs()
        bar = self.bar = tqdm(total=c.total_steps, initial=self.global_step,
                              disable=not c.progress, unit="step", dynamic_ncols=True)  # fmt: skip
        try:
            if start_step > 0 and self.global_step >= self.next_eval:  # cut short by a signal
                self.next_eval += c.eval_every_steps
                if self._evaluate_step():
                    return 0.0  # solved: nothing more to train
            with self.signals.deferred():  # a signal ends the run after the current step
                while self.global_step < c.total_steps and self.stop_signal is None:
                    self._step()
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
        self.learning_sps = self.learner.steps_per_second_learning(self.global_step)
        return (self.global_step - start_step) / max(end - t0, 1e-9)

    def _step(self) -> None:
        """One vector step: act, step the envs, store, update, sync the target. ``envs_whole``
        and ``replay_whole`` say whether the envs' state and the replay are whole at each point,
        for an emergency checkpoint (``fail``)."""
        n = self.actor.num_envs
        self.phase = "acting"
        actions = self.actor.act(self.global_step)
        self.phase = "env step"
        if self.overlap:  # update while the emulators step
            self.actor.send(actions)
            self.global_step += n
            self.phase = "update"
            self.learner.train_due(self.global_step)
            self.phase = "env step"
            step = self.actor.receive(actions)
        else:
            step = self.actor.step_now(actions)
            self.global_step += n
        self.phase, self.replay_written = "replay", False
        self.replay.add(*step.replay_fields())
        self.replay_written = True
        self.phase = "logging"
        self._record_episodes(step)
        if not self.overlap:
            self.phase = "update"
            self.learner.train_due(self.global_step)
        self.phase = "target sync"
        self.learner.sync_due(self.global_step)
        if self.learner.reset_due(self.global_step):
            self.tracker.log({"charts/resets": self.learner.resets}, self.global_step)

    def _record_episodes(self, step: Transitions) -> None:
        for episode_return, length in self.actor.observe(step):
            self.tracker.log({"charts/episodic_return": episode_return,
                              "charts/episodic_length": length}, self.global_step)  # fmt: skip

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
