"""How a run that cannot go on ends: its errors, and the messages and clean-up of a stop.

``TrainingError`` names the step, the phase and the error of a fault in the loop and the
checkpoint to resume from (``agents.dqn.loop.Trainer.fail`` writes it); ``NonFiniteLossError`` a NaN
or infinite loss or parameter; ``StoppedBeforeCheckpoint`` a second signal that cut the stop's
checkpoint short. ``discard_new_run`` deletes what a new run wrote before its first checkpoint.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from agents.run.checkpoint import latest_checkpoint
from agents.run.interrupts import Interrupted


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss or parameter."""


class TrainingError(RuntimeError):
    """An exception stopped the training loop; the message names the step, the phase, the error
    and the checkpoint a resumed run continues from (``Trainer.fail``)."""

    def __init__(self, message: str, step: int, phase: str, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.step, self.phase, self.checkpoint = step, phase, checkpoint


class StoppedBeforeCheckpoint(Interrupted):  # noqa: N818
    """A second signal cut the stop's checkpoint short (or a resumed run was stopped before its
    first step): the newest checkpoint on disk is the run's state."""

    def __init__(self, signum: int, global_step: int, checkpoint: tuple[int, Path] | None) -> None:
        super().__init__(signum, second=True)
        self.global_step = global_step
        self.checkpoint = checkpoint


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


def discard_new_run(directory: Path, tracker: Any) -> None:
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
