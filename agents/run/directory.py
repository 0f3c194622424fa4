"""One run per directory: its name, its lock, what may replace it, and what a resume must match.

- ``claim_output_dir``: the default ``--output-dir`` is a template,
  ``runs/{game}__{preset}__s{seed}__{time}``, filled in and created with an exclusive ``mkdir``
  (``-2``, ``-3``... appended while the name is taken), so two runs never share a directory, even
  two started in the same second.
- ``RunLock``: an ``fcntl.flock`` on ``DIR/.lock`` held for the run's lifetime, the holder's pid
  written in the file. The kernel drops the lock when the process ends, however it ends
  (``kill -9`` included), so a stale lock never blocks a directory.
- ``prepare_new_run``: a directory that holds a run (``RUN_MARKERS``: a training run's or a
  supervised one's) is refused unless ``overwrite``; overwriting deletes only the files a run of
  this package writes, and refuses a directory that holds anything else, deleting nothing.
  ``remove_run_files`` takes a run that was stopped before it finished away again.
- ``read_run_config``: ``config.json`` checked key by key (JSON object, known keys, each value of
  its field's type) before a resume uses it.
- ``check_resume``: the resumed config against the config saved in the checkpoint (all but
  ``RESUME_CHANGEABLE``), the game by its canonical id, and ``--total-steps`` against the steps
  done; ``RunFinished`` when a finished run is resumed without more steps to take.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import re
import shutil
import time
import types
import typing
from pathlib import Path
from typing import Any, Literal

from agents.dqn.config import TrainConfig

LOCK_NAME = ".lock"
# Any of these makes a directory hold a run (model.pt: a supervised one, scripts.train_supervised).
RUN_MARKERS = ("config.json", "metrics.csv", "summary.json", "checkpoints", "model.pt")
# Settings a resumed run may change; anything else would make it a different run.
RESUME_CHANGEABLE = (
    "total_steps", "device", "replay_device", "torch_threads", "progress", "track", "wandb_mode",
    "wandb_init_timeout", "save_replay", "checkpoint_every_steps", "keep_checkpoints",
    "log_every_steps", "record_video", "final_eval_episodes", "tensorboard",
)  # fmt: skip
# Not compared with the checkpoint either: a run directory may be moved or renamed.
RESUME_IGNORED = ("output_dir",)
PLACEHOLDERS = ("{game}", "{preset}", "{seed}", "{time}")

# What a run of this package writes in its directory (``evaluation/``: scripts.evaluate's
# default output beside the checkpoints; ``wandb/``: wandb's own folder for the run).
_RUN_FILES = re.compile(
    r"^(config\.json|metrics\.csv|summary\.json|model\.pt|confusion_matrix\.png|\.lock"
    r"|\.write-test-\d+"
    r"|\.(config\.json|metrics\.csv|summary\.json|model\.pt|confusion_matrix\.png)\..+\.tmp)$"
)
_RUN_FOLDERS = {
    "checkpoints": re.compile(
        r"^(step_\d{12}\.pt|replay_\d{12}|\.step_\d{12}\.pt\..+\.tmp"
        r"|\.replay_.+\.tmp)$"
    ),  # fmt: skip
    "videos": re.compile(r"^(.+\.mp4|\..+\.tmp)$"),
    "wandb": None,  # anything: wandb's files for this run
    "tensorboard": re.compile(r"^events\.out\.tfevents\..+$"),  # agents.run.tracking.TensorBoardLog
    "evaluation": None,  # anything: scripts.evaluate's outputs for this run's network
}


class RunDirError(ValueError):
    """An output directory the run may not use (exit code 2, one line)."""


class RunFinished(Exception):  # noqa: N818 - a state, not a failure
    """The resumed run has already finished: nothing to run, nothing written."""

    def __init__(self, message: str, global_step: int) -> None:
        super().__init__(message)
        self.global_step = global_step


# -- the directory's name ----------------------------------------------------------------------
def _game_label(env: str) -> str:
    from envs.atari import canonical_game_id, is_atari_game

    if is_atari_game(env):  # ALE/Pong-v5 -> Pong
        return canonical_game_id(env).split("/")[-1].rsplit("-v", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", env).strip("-") or "env"


def _now() -> float:
    return time.time()


def run_stamp(now: float) -> str:
    """``{time}`` of a run directory's name: local time ``now`` as YYYYmmdd-HHMMSS."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now))


def fill_template(config: TrainConfig, now: float | None = None) -> str:
    """``config.output_dir`` with its placeholders filled in (unchanged when it has none);
    ``{time}`` is local time, ``now`` or the current one."""
    stamp = run_stamp(_now() if now is None else now)
    values = {"{game}": _game_label(config.env), "{preset}": config.preset,
              "{seed}": str(config.seed), "{time}": stamp}  # fmt: skip
    path = config.output_dir
    for key, value in values.items():
        path = path.replace(key, value)
    return path


def is_template(output_dir: str) -> bool:
    return any(key in output_dir for key in PLACEHOLDERS)


def claim_output_dir(config: TrainConfig) -> tuple[TrainConfig, bool]:
    """A templated ``output_dir`` filled in and created, new (``claim_new_directory``). Returns
    the config naming it and whether a directory was created; a plain ``output_dir`` is
    unchanged."""
    if not is_template(config.output_dir):
        return config, False
    return config.replace(output_dir=str(claim_new_directory(Path(fill_template(config))))), True


def claim_new_directory(base: Path) -> Path:
    """Create and return ``base``, else ``base-2``, ``base-3``... where it exists: an exclusive
    mkdir, so concurrent runs never get the same one."""
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for k in range(1, 10_000):
            candidate = base if k == 1 else base.with_name(f"{base.name}-{k}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
    except OSError as error:
        raise RunDirError(
            f"--output-dir: {str(base)!r} cannot be written ({error.strerror or error}); "
            "give a writable directory"
        ) from None
    raise RunDirError(f"--output-dir: {base} and 9,999 numbered variants exist; give another")


def remove_if_unused(directory: Path) -> None:
    """Remove a directory this run created when it holds nothing but its lock file."""
    try:
        if {p.name for p in directory.iterdir()} <= {LOCK_NAME}:
            (directory / LOCK_NAME).unlink(missing_ok=True)
            directory.rmdir()
    except OSError:
        pass


# -- the lock ----------------------------------------------------------------------------------
class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock`` for the run's lifetime; the file holds the pid."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, directory: Path) -> RunLock:
        path = directory / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise RunDirError(
                f"--output-dir: {str(directory)!r} cannot be written ({error.strerror or error}); "
                "give a writable directory"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirError(
                f"--output-dir: {directory} is in use by another run (pid {holder}, which holds "
                f"{path}); wait for it to end, or give another --output-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    """The pid in the lock file; its holder may not have written it yet, so wait up to 1 s."""
    deadline = time.monotonic() + 1.0
    while True:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit() or time.monotonic() > deadline:
            return text if text.isdigit() else "unknown"
        time.sleep(0.02)


# -- a new run in a directory that may hold an old one ---------------------------------------
def run_markers(directory: Path) -> list[str]:
    """The files of a run that ``directory`` holds (none: it holds no run)."""
    return [name for name in RUN_MARKERS if (directory / name).exists()]


def prepare_new_run(directory: Path, overwrite: bool, resumable: bool = True) -> None:
    """Refuse a directory holding a run, or with ``overwrite`` delete that run's files first;
    ``resumable``: whether the error offers ``--resume`` (a training run's script has it)."""
    found = run_markers(directory)
    if not found:
        return
    if not overwrite:
        listed = ", ".join(f"{n}/" if (directory / n).is_dir() else n for n in found)
        then = f"continue it with --resume {directory}, or" if resumable else "give another " \
            "--output-dir, or"  # fmt: skip
        raise RunDirError(
            f"--output-dir: {directory} already holds a run ({listed}); {then} start over there "
            "with --overwrite (deletes that run)"
        )
    clear_run(directory)


def foreign_entries(directory: Path) -> list[str]:
    """Entries of ``directory`` that a run of this package does not write (symlinks included:
    nothing is deleted through a link)."""
    foreign = []
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            foreign.append(entry.name)
        elif entry.is_dir() and entry.name in _RUN_FOLDERS:
            pattern = _RUN_FOLDERS[entry.name]
            if pattern is not None:
                foreign += [
                    f"{entry.name}/{inner.name}" for inner in sorted(entry.iterdir())
                    if inner.is_symlink() or not pattern.match(inner.name)
                ]  # fmt: skip
        elif not (entry.is_file() and _RUN_FILES.match(entry.name)):
            foreign.append(entry.name)
    return foreign


def clear_run(directory: Path) -> None:
    """Delete the run in ``directory`` (its lock file stays, held by the caller). Refused, with
    nothing deleted, when the directory holds anything a run of this package does not write or
    its config.json is not one of this package's."""
    foreign = foreign_entries(directory)
    if foreign:
        shown = ", ".join(foreign[:5])
        shown += f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise RunDirError(
            f"--overwrite: {directory} also holds files that are not a run's ({shown}); nothing "
            "was deleted; move them away or give another --output-dir"
        )
    config = directory / "config.json"
    if config.exists():
        from agents.supervised.classifier import SupervisedConfig

        kinds = [
            ({"env", "preset"}, {f.name for f in dataclasses.fields(TrainConfig)}),
            ({"dataset", "model"}, {f.name for f in dataclasses.fields(SupervisedConfig)}),
        ]
        try:
            data = json.loads(config.read_text())
            ours = isinstance(data, dict) and any(
                needed <= set(data) <= fields for needed, fields in kinds
            )
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise RunDirError(
                f"--overwrite: {config} is not the config.json of a run of this package; nothing "
                "was deleted; give another --output-dir"
            )
    for entry in sorted(directory.iterdir()):
        if entry.name == LOCK_NAME:
            continue
        try:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as error:
            raise RunDirError(
                f"--overwrite: {entry} cannot be deleted ({error.strerror or error}); the old run "
                f"in {directory} is partly deleted: fix the permissions and run again"
            ) from None
    print(f"--overwrite: deleted the run that was in {directory}", flush=True)


def remove_run_files(directory: Path, created: bool) -> None:
    """Take away what a run that cannot be continued wrote in ``directory``: the files and
    folders a run of this package writes (anything else stays) and its lock file, and the
    directory itself when the run ``created`` it and nothing else is left. Best effort: nothing
    raises."""
    for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
        if entry.name == LOCK_NAME or entry.is_symlink():
            continue
        try:
            if entry.is_dir() and entry.name in _RUN_FOLDERS:
                shutil.rmtree(entry)
            elif entry.is_file() and _RUN_FILES.match(entry.name):
                entry.unlink()
        except OSError:
            pass
    if created:
        remove_if_unused(directory)
    else:
        with contextlib.suppress(OSError):
            (directory / LOCK_NAME).unlink(missing_ok=True)


# -- config.json -------------------------------------------------------------------------------
def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is tuple:
        item = _describe(args[0]).removeprefix("an ").removeprefix("a ")
        return f"a list of {item}s"
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _matches(hint: Any, value: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(a, value) for a in args)
    if origin is tuple:
        item = args[0] if args else Any
        return isinstance(value, list) and all(_matches(item, v) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if hint is str:
        return isinstance(value, str)
    return True  # a kind of field this check does not know: left to validate()


def read_run_config(path: Path) -> TrainConfig:
    """The run's ``config.json`` as a ``TrainConfig``, or one ``RunDirError`` line saying what is
    wrong with it: not JSON, not an object, an unknown key, a value of the wrong type. Keys it
    lacks take their defaults (a config written before that setting existed)."""
    fix = "restore it (the checkpoints hold the run's config) or start a new run"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise RunDirError(f"--resume: {path} cannot be read ({error}); {fix}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise RunDirError(f"--resume: {path} is not valid JSON ({error}); {fix}") from None
    if not isinstance(data, dict):
        raise RunDirError(
            f"--resume: {path} holds a JSON {type(data).__name__}, not an object of settings; {fix}"
        )
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise RunDirError(
            f"--resume: {path} has unknown settings: {', '.join(map(repr, unknown[:5]))}; {fix}"
        )
    for key, value in data.items():
        if not _matches(hints[key], value):
            raise RunDirError(
                f"--resume: {path}: {key} is {json.dumps(value)}, not {_describe(hints[key])}; "
                f"{fix}"
            )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return TrainConfig(**values)


# -- resuming against the checkpoint -----------------------------------------------------------
def _same_env(a: Any, b: Any) -> bool:
    from envs.atari import canonical_game_id, is_atari_game

    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str) and is_atari_game(a) and is_atari_game(b):
        return canonical_game_id(a) == canonical_game_id(b)
    return False


def config_difference(ours: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """Keys (fixed for the run's lifetime) whose values differ; keys one side lacks are not
    compared (a checkpoint written before a setting existed)."""
    skip = set(RESUME_CHANGEABLE) | set(RESUME_IGNORED)
    differ = []
    for key, value in ours.items():
        if key in skip or key not in saved:
            continue
        same = _same_env(value, saved[key]) if key == "env" else value == saved[key]
        if not same:
            differ.append(key)
    return differ


def started_otherwise(directory: Path, wanted: TrainConfig) -> str | None:
    """When ``directory`` holds a run (its ``config.json``) started with other settings than
    ``wanted``, beyond those a resume may change, the first difference as one phrase: "KEY is X
    there, Y here" (and how many more); None when it holds no run or the same settings. Keys its
    config.json lacks take their defaults, as ``read_run_config`` reads them. A suite or sweep
    asks before reusing a directory, so results of other settings are never reported as its
    own."""
    from agents.run.checkpoint import config_to_dict

    path = directory / "config.json"
    if not path.is_file():
        return None
    saved = config_to_dict(read_run_config(path))
    ours = config_to_dict(wanted)
    differ = config_difference(ours, saved)
    if not differ:
        return None
    key = differ[0]
    more = f" (and {len(differ) - 1} more: {', '.join(differ[1:4])})" if differ[1:] else ""
    return f"{key} is {json.dumps(saved[key])} there, {json.dumps(ours[key])} here{more}"


def summary_step(directory: Path) -> int | None:
    """The global step of a finished run's summary.json (None: no summary, one written when a
    signal stopped the run, or one that cannot be read)."""
    try:
        summary = json.loads((directory / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or "stopped_by" in summary:
        return None
    step = summary.get("global_step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def check_resume(config: TrainConfig, state: dict[str, Any], directory: Path) -> None:
    """Refuse to resume the checkpoint ``state`` with ``config`` unless it is the same run:
    the same settings but ``RESUME_CHANGEABLE`` ones, the same game, and steps left to take.
    Raises ``RunFinished`` when the run has finished and ``total_steps`` is what it was."""
    from agents.run.checkpoint import config_to_dict

    path = state.get("path")
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise RunDirError(f"--resume: checkpoint {path} holds no config; it cannot be resumed")
    ours = config_to_dict(config)
    differ = config_difference(ours, saved)
    env_id = state.get("env_id")
    if not differ and env_id is not None and not _same_env(config.env, env_id):
        ours, saved, differ = {"env": config.env}, {"env": env_id}, ["env"]
    if differ:
        key = differ[0]
        more = f" (and {len(differ) - 1} more: {', '.join(differ[1:4])})" if differ[1:] else ""
        raise RunDirError(
            f"--resume: {key} is {json.dumps(ours[key])} in {directory / 'config.json'} but "
            f"{json.dumps(saved[key])} in the checkpoint {path}{more}; a run resumes with the "
            "settings it was started with (restore config.json, or start a new run)"
        )
    done, total = int(state["global_step"]), config.total_steps
    started_with = saved.get("total_steps", total)
    if total == started_with and summary_step(directory) == done:
        raise RunFinished(
            f"the run in {directory} has already finished (global step {done:,}, summary.json); "
            f"nothing was run; give --total-steps above {done} to extend it",
            done,
        )
    if total <= done and total != started_with:
        raise RunDirError(
            f"--total-steps: {total} is not above the {done} agent steps the run in {directory} "
            f"has done; give a larger total to extend it"
        )
