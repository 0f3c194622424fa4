"""Train a DQN agent: ``python -m scripts.train --env Breakout --preset cleanrl --seed 1``.

Flags come from ``TrainConfig`` (``--help`` lists them with their docstrings, under
the headings of ``FLAG_GROUPS``); the defaults are those of ``--preset``, overridden
by a ``--config FILE`` (YAML or JSON; a run's config.json repeats that run), overridden by the
flags. Writes DIR/config.json, DIR/metrics.csv, DIR/checkpoints/,
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

SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed; not under ``nohup``), in any phase: one
line (none after SIGHUP: the terminal is gone) and exit code 130, 143 or 129, no traceback, no
half-written file. A training step and a checkpoint write finish first; start-up, an evaluation
and the video stop at once; the last whole step is checkpointed, metrics and wandb are flushed. A
second signal, one at least ``REPEAT_WINDOW_S`` (1 s) after the first, stops at once (the newest
checkpoint on disk is then the run's state); a repeat within it is the first delivered again
(``timeout``, a process group, see ``agents.run.interrupts``). A new run stopped during its
start-up leaves its directory as it found it.

Any other fault in the loop (an exception, a full disk, a NaN or infinite loss or parameter):
one line naming the step, the phase and the error, exit code 1, and an emergency checkpoint of the
last good state when there is one (see ``agents.dqn.loop.Trainer.fail``), else the newest checkpoint
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

from agents.dqn.build import build_trainer
from agents.dqn.config import FLAG_GROUPS, UNSET_MEANS, TrainConfig
from agents.dqn.presets import PRESETS, preset
from agents.run.directory import RESUME_CHANGEABLE, RunFinished, is_template, read_run_config
from agents.run.faults import (
    NonFiniteLossError,
    StoppedBeforeCheckpoint,
    TrainingError,
    newest_checkpoint_text,
)
from agents.run.interrupts import Interrupted, SignalGuard
from envs.atari import print_games_if_requested
from scripts._cli import (
    ArgumentParser,
    add_config_flags,
    cli_main,
    config_flag_values,
    default_texts,
    field_flags,
    normalize_flags,
    one_line,
)
from scripts._config_file import read_config_file

PROG = "train"
DEFAULT_PRESET = "cleanrl"
__all__ = ["RESUME_CHANGEABLE", "Command", "build_parser", "main", "parse", "parse_config"]
DESCRIPTION = (
    "Train a DQN agent. The settings come from --preset, then a --config file, then the flags: "
    "each overrides the one before. The defaults shown are the chosen preset's (and file's): "
    "--preset drq --help shows drq's. Flags take hyphens or underscores (--total-steps, "
    "--total_steps)."
)
USAGE = (
    "%(prog)s [--preset NAME] [--config FILE] [--SETTING VALUE ...] [--output-dir DIR] "
    "[--overwrite]\n       %(prog)s --resume DIR [--total-steps N ...]\n       %(prog)s "
    "--list-games"
)
EXTRA_FLAGS = ("--config", "--resume", "--overwrite", "--list-games")


def _flags(names: Sequence[str]) -> str:
    return ", ".join(f"--{name.replace('_', '-')}" for name in names)


@dataclasses.dataclass(frozen=True)
class Command:
    """A parsed command line: the run's config, whether it continues a run (``--resume``) or
    replaces one (``--overwrite``), and the settings the flags gave."""

    config: TrainConfig
    resume: bool = False
    overwrite: bool = False
    given: frozenset[str] = frozenset()


def build_parser(defaults: TrainConfig, resume: bool = False) -> ArgumentParser:
    """The parser of ``train``: ``--config``, ``--resume``, ``--overwrite``, ``--list-games`` and
    one flag per ``TrainConfig`` field under the headings of ``FLAG_GROUPS``, each showing its
    value in ``defaults`` (the chosen preset and file, or the resumed run) as its default."""
    parser = ArgumentParser(prog=PROG, usage=USAGE, description=DESCRIPTION)
    parser.add_argument(
        "--config", metavar="FILE",
        help="settings from a YAML (.yaml, .yml) or JSON (.json) file: all or some of the "
        "settings below by field name (total_steps: 100000, learning-rate: 1e-4); a file that "
        "names a preset (preset: drq) overrides that preset's values. A run's config.json "
        "repeats that run. (default: none: the preset alone)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", metavar="DIR",
        help="continue the run in DIR from its newest checkpoint, with the settings of its "
        f"config.json; only these may be given with it: {_flags(RESUME_CHANGEABLE)} "
        "(default: none: start a new run)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true",
        help="delete the run that --output-dir holds (only the files a run writes) before "
        "starting a new one",
    )  # fmt: skip
    parser.add_argument("--list-games", action="store_true",
                        help="print the Atari games ale-py ships and exit")  # fmt: skip
    add_config_flags(
        parser, TrainConfig, FLAG_GROUPS, default_texts(defaults, UNSET_MEANS),
        choices={} if resume else {"preset": tuple(PRESETS)},
    )  # fmt: skip
    return parser


def _early(argv: Sequence[str]) -> argparse.Namespace:
    """``--preset``, ``--config`` and ``--resume``: what decides the defaults of the others."""
    early = ArgumentParser(prog=PROG, add_help=False)
    for flag in ("--preset", "--config", "--resume"):
        early.add_argument(flag)
    return early.parse_known_args(argv)[0]


def _file_config(name: str | None, path: str | None) -> TrainConfig:
    """The preset (``--preset``, else the one the file names, else cleanrl) with the file's
    settings on top."""
    values = {} if path is None else read_config_file(path, TrainConfig)
    named = values.get("preset")
    if name is None and named is not None and named not in PRESETS:
        raise ValueError(
            f"--config {path}: preset {named!r} is not accepted; use one of {', '.join(PRESETS)}"
        )
    chosen = name or named or DEFAULT_PRESET
    return preset(chosen).replace(**{**values, "preset": chosen})


def _resumed(run_dir: str) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(
            f"--resume: {run_dir!r} holds no config.json; give the --output-dir of a run to "
            "continue"
        )
    return read_run_config(path).replace(output_dir=str(run_dir))


def parse(argv: Sequence[str]) -> Command:
    """The command line as a ``Command``: the preset named by ``--preset`` (else by the
    ``--config`` file, else cleanrl), the file's settings over it and the flags over both; or,
    with ``--resume DIR``, the run's config with the flags of ``RESUME_CHANGEABLE`` applied."""
    argv = normalize_flags(argv, [*field_flags(TrainConfig), *EXTRA_FLAGS])
    early = _early(argv)
    resume = early.resume is not None
    if resume and early.config is not None:
        raise ValueError(
            f"--config: not accepted with --resume; the run in {early.resume} continues with its "
            "own config.json"
        )
    base = _resumed(early.resume) if resume else _file_config(early.preset, early.config)
    args = build_parser(base, resume).parse_args(argv)
    flags = config_flag_values(args, TrainConfig)
    if resume:
        changed = [
            k for k, v in flags.items() if v != getattr(base, k) and k not in RESUME_CHANGEABLE
        ]
        if changed:
            raise ValueError(
                f"--resume: {_flags(changed)} would change the run being resumed; accepted with "
                f"--resume: {_flags(RESUME_CHANGEABLE)}"
            )
        config = dataclasses.replace(base, **flags)
    else:
        both = {"epsilon_decay_steps", "epsilon_decay_fraction"} <= set(flags)
        if both and flags["epsilon_decay_fraction"] is not None:
            raise ValueError(
                "--epsilon-decay-steps/--epsilon-decay-fraction: both set the epsilon decay; "
                "give one of them"
            )
        config = base.replace(**flags)  # --epsilon-decay-steps alone drops a fraction
    return Command(config, resume, args.overwrite, frozenset(flags))


def parse_config(argv: Sequence[str]) -> tuple[TrainConfig, bool]:
    """The config ``argv`` asks for and whether it resumes a run (``parse``)."""
    command = parse(argv)
    return command.config, command.resume


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    signals = SignalGuard()
    started: dict[str, object] = {}  # the run's directory and kind, once known
    with (
        signals
    ):  # SIGINT/SIGTERM/SIGHUP from here on: one line, exit code 130/143/129 (interrupts)
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
    if print_games_if_requested(normalize_flags(argv, EXTRA_FLAGS)):
        return 0
    command = parse(argv)
    config, resume = command.config, command.resume
    started.update(dir=config.output_dir, resume=resume)
    try:
        trainer = build_trainer(config, resume=resume, overwrite=command.overwrite, signals=signals)
    except RunFinished as done:
        if "total_steps" in command.given and config.total_steps <= done.global_step:
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
