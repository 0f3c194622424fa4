"""Train a DQN agent: ``python -m scripts.train --env Breakout --preset cleanrl --seed 1``.

Flags come from ``agents.config.TrainConfig`` (``--help`` lists them with their docstrings); the
defaults are those of ``--preset``. Writes DIR/config.json, DIR/metrics.csv, DIR/checkpoints/,
DIR/videos/ and DIR/summary.json under ``--output-dir`` (by default a new directory per run,
``runs/{game}__{preset}__s{seed}__{time}``, printed at the start). ``--list-games`` prints the
Atari games.

One run per directory: a directory that holds a run is refused unless ``--resume DIR`` continues
it or ``--overwrite`` deletes it first (only the files a run writes; a directory holding anything
else is refused), and a directory in use by a running train is refused naming its pid.

``--resume DIR`` continues the run in DIR from its newest checkpoint: same settings (only the
flags in ``RESUME_CHANGEABLE`` may be given, e.g. ``--total-steps`` to extend it; config.json must
match the config saved in the checkpoint), global step, epsilon position, optimizer and random
states, replay (when saved with ``--save-replay``), the same wandb run id, and metrics.csv
continued without duplicate rows. Resuming a finished run runs nothing, writes nothing and exits
0; ``--total-steps`` at or below the steps done exits 2.

SIGINT (Ctrl-C) or SIGTERM, in any phase: one line and exit code 130 or 143, no traceback, no
half-written file. A training step and a checkpoint write finish first; start-up, an evaluation
and the video stop at once; the last whole step is checkpointed, metrics and wandb are flushed. A
second signal stops at once (the newest checkpoint on disk is then the run's state). A new run
stopped during its start-up leaves its directory as it found it.

Any other fault in the loop (an exception, a full disk, a NaN or infinite loss or parameter):
one line naming the step, the phase and the error, exit code 1, and an emergency checkpoint of the
last good state when there is one (see ``agents.loop.Trainer.fail``), else the newest checkpoint
written before it, intact.
"""

# ruff: noqa: E402 - the signal handler of the start-up comes before the slow imports
from __future__ import annotations

import sys

if __name__ == "__main__":  # a signal while the modules load: one line, no traceback
    from scripts._cli import exit_on_signals_while_loading

    exit_on_signals_while_loading()

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from agents.config import TrainConfig
from agents.interrupts import Interrupted, SignalGuard
from agents.loop import (
    NonFiniteLossError,
    StoppedBeforeCheckpoint,
    Trainer,
    TrainingError,
    newest_checkpoint_text,
)
from agents.presets import preset
from agents.run_dir import RESUME_CHANGEABLE, RunFinished, is_template, read_run_config
from envs.atari import print_games_if_requested
from scripts._cli import cli_main, one_line, tyro_cli

PROG = "train"
__all__ = ["RESUME_CHANGEABLE", "main", "parse_config"]
DESCRIPTION = (
    "Train a DQN agent. Besides the settings below: --resume DIR continues the run in DIR (only "
    "--total-steps, --device, --save-replay, logging, checkpoint and tracking flags may be given "
    "with it); --overwrite deletes the run that --output-dir holds before starting a new one."
)


def resumed_config(run_dir: str, argv: Sequence[str]) -> TrainConfig:
    """The config of the run in ``run_dir``, with the changeable flags of ``argv`` applied."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(
            f"--resume: {run_dir!r} holds no config.json; give the --output-dir of a run to "
            "continue"
        )
    saved = read_run_config(path).replace(output_dir=str(run_dir))
    config = tyro_cli(TrainConfig, saved, argv, PROG, DESCRIPTION)
    changed = [
        f.name for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(saved, f.name) and f.name not in RESUME_CHANGEABLE
    ]  # fmt: skip
    if changed:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in changed)
        accepted = ", ".join(f"--{name.replace('_', '-')}" for name in RESUME_CHANGEABLE)
        raise ValueError(
            f"--resume: {flags} would change the run being resumed; accepted with --resume: "
            f"{accepted}"
        )
    return config


def parse_config(argv: Sequence[str]) -> tuple[TrainConfig, bool]:
    """The preset named by ``--preset`` (default cleanrl) overridden by the other flags, or the
    resumed run's config; and whether to resume."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="cleanrl")
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    argv = without_overwrite(argv)
    if known.resume is not None:
        return resumed_config(known.resume, without_resume(argv)), True
    base = preset(known.preset)
    config = tyro_cli(TrainConfig, base, argv, PROG, DESCRIPTION)
    if given(argv, "--epsilon-decay-steps"):  # an explicit length beats a preset's fraction
        if given(argv, "--epsilon-decay-fraction") and config.epsilon_decay_fraction is not None:
            raise ValueError(
                "--epsilon-decay-steps/--epsilon-decay-fraction: both set the epsilon decay; "
                "give one of them"
            )
        config = config.replace(epsilon_decay_steps=config.epsilon_decay_steps)  # no fraction
    return config, False


def given(argv: Sequence[str], flag: str) -> bool:
    """Whether ``argv`` sets ``flag`` (``--flag V``, ``--flag=V``, underscores or hyphens)."""
    return any(arg.split("=", 1)[0].replace("_", "-") == flag for arg in argv)


def without_resume(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--resume DIR`` (or ``--resume=DIR``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            out.append(arg)
    return out


def without_overwrite(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--overwrite`` (a request about the directory, not a setting)."""
    return [arg for arg in argv if arg != "--overwrite"]


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    signals = SignalGuard()
    started: dict[str, object] = {}  # the run's directory and kind, once known
    with signals:  # SIGINT/SIGTERM from here on: one line, exit code 130/143 (agents.interrupts)
        try:
            return train(argv, signals, started)
        except StoppedBeforeCheckpoint as stop:  # a second signal cut the stop's checkpoint
            where = started["dir"]
            then = "start again with --overwrite"
            if stop.checkpoint is not None or started.get("resume"):
                then = f"continue with --resume {where}"
            print(
                f"stopped by {stop.name} at global step {stop.global_step} before a checkpoint "
                f"of it was written; {newest_checkpoint_text(Path(where))}; {then}",
                flush=True,
            )
            return stop.exit_code
        except Interrupted as stop:
            where = started.get("dir")
            if where is None:
                line = "nothing was written"
            elif started.get("resume"):
                line = f"the run in {where} is as it was; continue with --resume {where}"
            else:  # a directory it made is removed again
                line = "no run was started" + ("" if is_template(str(where)) else f" in {where}")
            print(f"stopped by {stop.name} during start-up; {line}", flush=True)
            return stop.exit_code


def train(argv: list[str], signals: SignalGuard, started: dict[str, object]) -> int:
    if print_games_if_requested(argv):
        return 0
    config, resume = parse_config(argv)
    overwrite = "--overwrite" in argv
    started.update(dir=config.output_dir, resume=resume)
    try:
        trainer = Trainer(config, resume=resume, overwrite=overwrite, signals=signals)
    except RunFinished as done:
        if given(argv, "--total-steps") and config.total_steps <= done.global_step:
            raise ValueError(
                f"--total-steps: {config.total_steps} is not above the {done.global_step} agent "
                f"steps the run in {config.output_dir} has done; give a larger total to extend it"
            ) from None
        print(f"{PROG}: {done}")
        return 0
    except OSError as error:  # a full disk, a vanished directory during the start-up
        print(
            f"{PROG}: error: starting the run in {config.output_dir} failed: {one_line(error)}; "
            "no step was taken",
            file=sys.stderr,
        )
        return 1
    config = trainer.config  # its output_dir filled in when it was a template
    started["dir"] = config.output_dir
    try:
        summary = trainer.run()
    except (NonFiniteLossError, TrainingError) as error:  # the state is known: see Trainer.fail
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 1
    out = config.output_dir
    if "stopped_by" in summary:
        print(
            f"stopped by {summary['stopped_by']} at global step {summary['global_step']}; "
            f"checkpoint {summary['checkpoint']}; continue with --resume {out}"
        )
        return summary["exit_code"]
    print(f"trained {config.env} for {summary['global_step']} agent steps ({summary['sps']:.0f}/s)")
    if "eval_mean_return" in summary:
        line = f"evaluation: mean return {summary['eval_mean_return']:.2f} over "
        line += f"{summary['eval_episodes']} episodes (epsilon {config.eval_epsilon})"
        if "eval_human_normalized" in summary:
            line += f", human-normalized {summary['eval_human_normalized']:.3f}"
        print(line)
    print(f"outputs: {out}/summary.json, {out}/metrics.csv, {out}/checkpoints/")
    if "video" in summary:
        print(f"video: {summary['video']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
