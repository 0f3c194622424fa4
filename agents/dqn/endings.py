"""How a training run ends: ``RunEndings``, the part of ``agents.dqn.loop.Trainer`` that writes
the end of a run, whichever way it comes.

- ``finish``: the steps are done: the final evaluation (unless one of these weights was just
  made), the video, ``summary.json`` and the tracker's summary.
- ``stop``: a signal stopped the run after its checkpoint: the stop's summary.
- ``fail``: any other exception: an emergency checkpoint of the last good state when there is
  one, then the ``TrainingError`` naming the step, the phase, the error and the checkpoint to
  resume from (``_no_emergency_reason`` says when no checkpoint can be trusted).
- ``summary_extra``: what every summary adds (wall clock, peak memory); a kind of run (Ape-X)
  adds its own.

The methods read the Trainer's parts (``config``, ``agent``, ``tracker``, ``signals``, the
checkpoint writer); this module only keeps the loop module to the loop.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from agents.evaluation.recording import record_video
from agents.run.faults import NonFiniteLossError, TrainingError, brief, newest_checkpoint_text
from agents.run.files import write_json
from agents.run.interrupts import SIGNAL_EXIT_CODES, signal_name


class RunEndings:
    """The endings of a run, mixed into ``Trainer``."""

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
                    saved = self.write_checkpoint(
                        keep_envs=self.envs_whole, keep_replay=self.replay_whole
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

    def summary_extra(self) -> dict[str, Any]:
        """What every summary adds to the run's own figures: its wall clock on the run's clock
        (all its segments, when resumed) and this process's peak resident memory; a kind of run
        adds its own (the Ape-X actors' figures)."""
        import resource

        extra: dict[str, Any] = {}
        metrics = getattr(self.tracker, "metrics", None)
        if metrics is not None and hasattr(metrics, "start_time"):
            extra["wall_seconds"] = round(time.time() - metrics.start_time, 1)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        extra["peak_rss_gb"] = round(peak_kb / 1e6, 3)
        return extra

    def stop(self, sps: float) -> dict[str, Any]:
        """End of a run stopped by a signal: checkpoint written; summary and metrics flushed."""
        summary = {
            "env": self.config.env, "preset": self.config.preset, "seed": self.config.seed,
            "global_step": self.global_step, "updates": self.agent.updates, "sps": sps,
            "stopped_by": signal_name(self.stop_signal),
            "exit_code": SIGNAL_EXIT_CODES[self.stop_signal],
            "checkpoint": str(self.last_checkpoint[1]) if self.last_checkpoint else None,
            **self.summary_extra(),
        }  # fmt: skip
        with self.signals.deferred():  # a second signal still cuts it (atomic: no torn file)
            write_json(self.output_dir / "summary.json", summary)
            self.tracker.finish(summary)
        return summary

    def finish(self, sps: float) -> dict[str, Any]:
        """End of a run: the final evaluation (unless one of these weights was just made), the
        video, summary.json and the tracker's summary."""
        c = self.config
        summary: dict[str, Any] = {
            "env": c.env, "preset": c.preset, "protocol": c.protocol, "seed": c.seed,
            "global_step": self.global_step, "updates": self.agent.updates, "sps": sps,
            "learning_sps": self.learning_sps, "solved_at_step": self.solved_at,
            **self.summary_extra(),
        }  # fmt: skip
        last = self.last_eval
        fresh = last is not None and self.last_eval_step == self.global_step
        if fresh and (self.solved_at is not None or last["episodes"] >= c.final_eval_episodes):
            final = last  # an evaluation of these same weights was just made
        elif c.final_eval_episodes > 0:
            self.phase = "final evaluation"
            final = self.run_evaluation(c.final_eval_episodes, final=True)  # a signal stops it
        else:
            final = None
        if final is not None:
            summary.update(
                eval_mean_return=final["mean_return"], eval_std_return=final["std_return"],
                eval_median_return=final["median_return"], eval_episodes=final["episodes"],
                eval_returns=final["returns"], eval_epsilon=c.eval_epsilon,
                eval_action_counts=final.get("action_counts"),
                eval_action_names=final.get("action_names"),
            )  # fmt: skip
            if "human_normalized" in final:
                summary["eval_human_normalized"] = final["human_normalized"]
                summary["human_score_set"] = final["human_score_set"]
        if c.record_video and self.video_problem is None:  # else warned at start-up
            self.phase = "video"
            self.agent.online.eval()  # as in evaluation: noisy layers use their mean weights
            try:
                with self.signals.interruptible_phase():  # the mp4 appears whole or not at all
                    video = record_video(self.agent, c.env,
                                         self.output_dir / "videos" / "final.mp4",
                                         c.eval_epsilon, c.protocol, seed=c.seed + 20_000,
                                         max_steps=c.eval_max_steps)  # fmt: skip
            finally:
                self.agent.online.train()
            summary.update(video=video["path"], video_frames=video["frames"],
                           video_fps=video["fps"])  # fmt: skip
            self.tracker.log_video(video["path"], self.global_step)
        self.phase = "summary"
        with self.signals.deferred():  # the last writes finish; the run is then complete
            write_json(self.output_dir / "summary.json", summary)
            self.tracker.finish(summary)
        return summary
