"""Checks made before any work starts: every number a script takes and the paths it writes
(what a run needs of the machine is checked by ``agents.run.machine``, the files the package
reads by ``agents.run.file_checks``). Each refusal is one ``ValueError`` line naming the flag or
file, the value and what is accepted (``scripts._cli.cli_main`` prints it, exit code 2).

- Numbers: ``Range`` (an interval of integers or finite numbers, and its words) and
  ``check_number``; ``check_fields`` checks every field of a dataclass config against its type
  hint, finiteness and a table of ranges (``TRAIN_RANGES`` for ``agents.dqn.config.TrainConfig``);
  ``check_atari_seed`` keeps the largest seed a run uses within ale-py's 32 bits;
  ``format_bytes`` writes a size in words.
- Paths: ``check_output_path`` (not empty, not a filesystem root, not the current directory),
  ``check_writable_dir`` and ``check_writable_file`` (probed with a temporary file in the nearest
  existing folder, removed at once: nothing is left behind).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np

INT64_MAX = 2**63 - 1
ALE_SEED_MAX = 2**31 - 1
"""ale-py's vector env takes 32-bit signed seeds (2**31 gives a TypeError at reset)."""
CHECKPOINT_STEP_MAX = 10**12 - 1
"""Checkpoint files are named step_<12 digits>.pt and found by sorting their names."""
EVAL_SEED_OFFSET = 20_000
"""The largest offset a run adds to its seed (the final video; periodic evaluations add 10,000)."""
MAX_EVAL_ENVS = 8
"""Parallel envs of an evaluation (``evaluation.evaluate.evaluate``), each seeded seed + i."""
MAX_OBS_ELEMENTS = 10_000_000
"""Largest observation (elements per step) a checkpoint or trajectory file may declare."""
MAX_ACTIONS = 4096
"""Largest action count a checkpoint or trajectory file may declare (the ALE has 18)."""
MAX_JSON_BYTES = 64 * 2**20
"""Largest summary.json, config.json or shipped agent json read (they are a few kB)."""
DEFLATE_MAX_RATIO = 1032
"""Deflate cannot expand data more than about 1032 to 1 (its longest match, 258 bytes, coded in 2
bits); an npz member declaring more than that over its compressed bytes lies about its size."""
EXAMPLE_OUTPUT = "runs/NAME"


# --- numbers ------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def shown(value: object) -> str:
    """A value as a message shows it: numbers plainly (nan, inf, -0.1), anything else repr'd."""
    if _is_number(value):
        return str(value)
    if isinstance(value, tuple):
        return str(list(value))
    return repr(value)


@dataclass(frozen=True)
class Range:
    """Accepted values: integers (``integer``, always within int64) or finite numbers, between
    ``low`` and ``high`` (either may be None), each bound open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def accepts(self, value: object) -> bool:
        if self.integer:
            if not _is_integer(value) or not -INT64_MAX - 1 <= int(value) <= INT64_MAX:
                return False
        elif not _is_number(value) or not math.isfinite(float(value)):
            return False
        v = float(value) if not self.integer else int(value)
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return self.high is None or not (v > self.high or (self.high_open and v == self.high))

    def describe(self, value: object = None) -> str:
        """The accepted values in words ("an integer >= 1", "a number in (0, 1]"); "a finite
        number" when ``value`` is NaN or infinite."""
        non_finite = _is_number(value) and not math.isfinite(float(value))
        kind = "an integer" if self.integer else "a finite number" if non_finite else "a number"
        low, high = self.low, self.high
        if self.integer and high is None and _is_integer(value) and int(value) > INT64_MAX:
            high = INT64_MAX

        def fmt(x: float) -> str:
            if isinstance(x, int):
                return str(x)
            return str(int(x)) if float(x).is_integer() else str(x)

        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{fmt(low)}, {fmt(high)}{right}"
        if low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {fmt(low)}"
        if high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {fmt(high)}"
        return kind


def check_number(flag: str, value: object, rule: Range) -> None:
    """Raise ``FLAG: VALUE is not accepted; use <rule>`` unless ``rule`` accepts ``value``."""
    if not rule.accepts(value):
        raise ValueError(f"{flag}: {shown(value)} is not accepted; use {rule.describe(value)}")


def flag_name(field: str) -> str:
    return f"--{field.replace('_', '-')}"


POSITIVE_INT = Range(1, integer=True)
COUNT = Range(0, integer=True)
SEED = Range(0, integer=True)
PROBABILITY = Range(0.0, 1.0)
EPISODES = Range(1, 1_000_000, integer=True)
"""Episodes of one evaluation: a million 30-minute games is already beyond any protocol."""
EPISODE_FRAMES = Range(1, ALE_SEED_MAX, integer=True)
"""An episode cap in emulator frames: ale-py keeps it in a 32-bit integer."""
BOOTSTRAP_REPS = Range(1, 1_000_000, integer=True)


def format_bytes(n: float) -> str:
    """``512 bytes``, ``8.5 kB``, ``28.3 MB``, ``7.06 GB``, ``1.20 TB``: kB and MB with one
    decimal, GB and TB with two; a size that would round to 1000 of a unit is written in the next
    one (999,950 bytes is ``1.0 MB``, not ``1000.0 kB``)."""
    if n < 1000:
        return f"{int(n)} bytes"
    if n < 999_950:
        return f"{n / 1e3:.1f} kB"
    if n < 999_950_000:
        return f"{n / 1e6:.1f} MB"
    if n < 999_995_000_000:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e12:.2f} TB"


def path_arg(text: str) -> Path:
    """An argparse ``type`` for paths that refuses an empty one (``Path("")`` would silently be the
    current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted (empty); give a path")
    return Path(text)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose parse errors are one ``ValueError`` line (exit code 2
    through ``scripts._cli.cli_main``) instead of a usage block and an error line."""

    def error(self, message: str) -> typing.NoReturn:
        raise ValueError(f"{message} (see {self.prog} --help)")


TRAIN_RANGES: dict[str, Range] = {
    "seed": SEED,
    "total_steps": Range(1, CHECKPOINT_STEP_MAX, integer=True),
    "num_envs": POSITIVE_INT,
    "torch_threads": Range(0, 1024, integer=True),
    "buffer_size": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "learning_starts": COUNT,
    "train_frequency": POSITIVE_INT,
    "gradient_steps": POSITIVE_INT,
    "gamma": PROBABILITY,
    "n_step": POSITIVE_INT,
    "learning_rate": Range(0.0, low_open=True),
    "optimizer_eps": Range(0.0, low_open=True),
    "rmsprop_alpha": Range(0.0, 1.0, low_open=True, high_open=True),
    "max_grad_norm": Range(0.0),
    "target_update_steps": POSITIVE_INT,
    "reset_every_steps": COUNT,
    "tau": Range(0.0, 1.0, low_open=True),
    "num_atoms": Range(2, integer=True),
    "v_min": Range(),
    "v_max": Range(),
    "noisy_sigma0": Range(0.0, low_open=True),
    "priority_alpha": Range(0.0),
    "priority_beta_start": PROBABILITY,
    "priority_beta_end": PROBABILITY,
    "epsilon_start": PROBABILITY,
    "epsilon_end": PROBABILITY,
    "epsilon_decay_steps": COUNT,
    "epsilon_decay_fraction": Range(0.0, 1.0, low_open=True),
    "epsilon_decay_start": COUNT,
    "eval_epsilon": PROBABILITY,
    "eval_every_steps": COUNT,
    "eval_episodes": COUNT,
    "final_eval_episodes": COUNT,
    "stop_at_return": Range(),
    "eval_max_steps": POSITIVE_INT,
    "checkpoint_every_steps": POSITIVE_INT,
    "keep_checkpoints": POSITIVE_INT,
    "log_every_steps": POSITIVE_INT,
    "wandb_init_timeout": Range(0.0, low_open=True),
    "num_actors": Range(0, 4096, integer=True),
    "actor_cpus": Range(0.0, 1024.0, low_open=True),
    "actor_chunk_steps": Range(1, 100_000, integer=True),
    "actor_epsilon": PROBABILITY,
    "actor_epsilon_alpha": Range(0.0),
    "weights_every_updates": POSITIVE_INT,
}
"""The range of each numeric ``TrainConfig`` field (None, where allowed, is always accepted).
A numeric field missing here is still checked for its type, finiteness and int64 range."""


def type_problem(hint: object, value: object) -> str | None:
    """None when ``value`` fits the type hint, else the accepted values in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return None if value is None else "None"
    if origin in (Union, types.UnionType):
        problems = [type_problem(arg, value) for arg in args]
        return None if None in problems else " or ".join(problems)
    if origin is Literal:
        ok = any(value == a and type(value) is type(a) for a in args)
        return None if ok else f"one of {', '.join(str(a) for a in args)}"
    if origin is tuple:
        element = args[0] if args else object
        if not isinstance(value, tuple | list):
            return f"a list of {_plural(type_problem(element, object()) or 'values')}"
        inner = [type_problem(element, v) for v in value]
        bad = next((p for p in inner if p is not None), None)
        return None if bad is None else f"a list of {_plural(bad)}"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if _is_integer(value) else "an integer"
    if hint is float:
        return None if _is_number(value) else "a number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if hint is Path:
        return None if isinstance(value, str | Path) else "a path"
    return None


def _plural(words: str) -> str:
    return {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(
        words, words
    )


def check_fields(config: object, ranges: Mapping[str, Range], flag=flag_name) -> None:
    """Every field of the dataclass ``config``: its type (from the type hints), finite numbers,
    integers within int64, and the range in ``ranges`` when it has one; the first problem is
    raised as one line naming the flag, the value and what is accepted."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        hint = hints.get(field.name)
        problem = type_problem(hint, value) if hint is not None else None
        if problem is not None:
            raise ValueError(f"{flag(field.name)}: {shown(value)} is not accepted; use {problem}")
        values = value if isinstance(value, tuple | list) else (value,)
        for v in values:
            if value is None or isinstance(v, bool) or not _is_number(v):
                continue
            rule = ranges.get(field.name)  # for a list: the range of each element
            if rule is None:
                rule = Range(integer=True) if _is_integer(v) else Range()
            if not rule.accepts(v):
                optional = type_problem(hint, None) is None
                raise ValueError(
                    f"{flag(field.name)}: {shown(v)} is not accepted; use {rule.describe(v)}"
                    + (" or None" if optional else "")
                )


# --- paths --------------------------------------------------------------------------------------


def check_output_path(flag: str, value: object) -> None:
    """Refuse an output path that is empty, a filesystem root or the current directory: a run or
    its results there would be mixed with everything else in it."""
    text = "" if value is None else str(value)
    accepted = f"a directory of its own, e.g. {EXAMPLE_OUTPUT}"
    if not text.strip():
        raise ValueError(f"{flag}: {text!r} is not accepted (empty); use {accepted}")
    resolved = Path(text).expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise ValueError(f"{flag}: {text!r} is not accepted (a filesystem root); use {accepted}")
    if resolved == Path.cwd().resolve():
        raise ValueError(
            f"{flag}: {text!r} is not accepted (the current directory); use {accepted}"
        )


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(flag: str, path: Path, base: Path, what: str) -> None:
    """Create and remove a temporary file in ``base`` (nothing is left behind)."""
    if not base.is_dir():
        raise ValueError(
            f"{flag}: {str(path)!r} cannot be written: {base} is a file, not a directory; "
            f"give a writable {what}"
        )
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-test-", dir=base)
        os.close(fd)
        os.unlink(tmp)
    except OSError as error:
        raise ValueError(
            f"{flag}: {str(path)!r} cannot be written ({error.strerror or error}); give a "
            f"writable {what}"
        ) from None


def check_writable_dir(flag: str, path: str | Path) -> None:
    """``path`` is (or can be created as) a directory this process can write into; nothing is
    created."""
    check_output_path(flag, path)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {str(path)!r} is a file, not a directory; give a directory")
    _probe(flag, path, _existing_ancestor(path), "directory")


def check_writable_file(flag: str, path: str | Path) -> None:
    """``path`` is a file this process can create or replace; nothing is created."""
    text = str(path)
    if not text.strip():
        raise ValueError(f"{flag}: {text!r} is not accepted (empty); give a file path")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag}: {text!r} is a directory; give a file path")
    _probe(flag, path, _existing_ancestor(path.parent), "file path")


def check_atari_seed(env_id: str, seed: int, top: int, what: str) -> None:
    """ale-py seeds its emulators with 32-bit integers: the largest seed a run uses, ``seed +
    top``, must fit."""
    from envs.atari import is_atari_game

    if is_atari_game(env_id) and seed + top > ALE_SEED_MAX:
        raise ValueError(
            f"--seed: {seed} is not accepted for the Atari game {env_id!r}: ale-py takes 32-bit "
            f"seeds and {what} uses seeds up to seed + {top:,}; use an integer in "
            f"[0, {ALE_SEED_MAX - top:,}]"
        )
