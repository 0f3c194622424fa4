"""Checks of the files the package reads, field by field, before anything uses them: JSON
objects (``read_json_object``: no NaN or infinity, an object, a bounded size), configs
(``check_config_dict``: a saved TrainConfig field by field), summaries (``check_summary``),
metrics.csv row by row (``read_metrics_checked``), checkpoints (``check_checkpoint``: types,
sizes, finite networks only) and npz files (``inspect_npz``: array headers, sizes and compression
ratios read before anything is decompressed, so a zip bomb is refused unopened). The checks of
values and paths made before a run starts are in ``agents.run.checks``; of devices, envs and
memory in ``agents.run.machine``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import typing
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agents.run.checks import (
    DEFLATE_MAX_RATIO,
    INT64_MAX,
    MAX_ACTIONS,
    MAX_JSON_BYTES,
    MAX_OBS_ELEMENTS,
    PROBABILITY,
    Range,
    _is_integer,
    _is_number,
    check_number,
    format_bytes,
    shown,
    type_problem,
)
from agents.run.machine import available_memory


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def read_bounded_text(path: Path, label: str, kind: str) -> str:
    """The UTF-8 text of ``path``, refused in one line (naming ``label`` and the path) when it
    cannot be read or is larger than a ``kind`` may be (``MAX_JSON_BYTES``)."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(
                f"{label} {path} is {format_bytes(size)}; a {kind} is at most "
                f"{format_bytes(MAX_JSON_BYTES)}"
            )
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ValueError(f"{label} {path} cannot be read ({reason})") from None


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``: refused in one line naming ``what`` and the file when it is
    missing, too large, not JSON, holds NaN or an infinity (or a number that overflows to one),
    or is not an object."""
    path = Path(path)
    text = read_bounded_text(path, what, what)
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NonFinite as error:
        raise ValueError(
            f"{what} {path} holds {error} where only finite numbers are accepted"
        ) from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{what} {path} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{what} {path} holds a JSON {type(data).__name__}; a JSON object is expected"
        )
    return data


def check_config_dict(data: object, where: str, cls: type | None = None) -> None:
    """A TrainConfig (or another dataclass config, ``cls``) saved as plain types (config.json, a
    checkpoint's or shipped agent's config, a ``--config`` file): an object whose known fields
    have their types and finite numbers (unknown keys and missing fields are allowed: older and
    newer versions save other sets)."""
    from agents.dqn.config import TrainConfig

    if not isinstance(data, dict):
        raise ValueError(f"{where}: the config is a {type(data).__name__}, not an object")
    hints = typing.get_type_hints(TrainConfig if cls is None else cls)
    for name, hint in hints.items():
        if name not in data:
            continue
        value = data[name]
        value = tuple(value) if isinstance(value, list) else value
        problem = type_problem(hint, value)
        if problem is None:
            numbers = value if isinstance(value, tuple) else (value,)
            if any(_is_number(v) and not math.isfinite(float(v)) for v in numbers):
                problem = "finite numbers"
        if problem is not None:
            raise ValueError(
                f"{where}: config field {name!r} is {shown(value)}; expected {problem}"
            )


def check_played_config(kind: object, config: object, where: str) -> None:
    """The config saved with a network that is played: a TrainConfig for a Q-network
    (``check_config_dict``); a classifier's (a supervised run's settings) needs an object whose
    protocol, eval_epsilon and env, what playing it reads, have their types."""
    if kind != "classifier":
        check_config_dict(config, where)
        return
    if not isinstance(config, dict):
        raise ValueError(f"{where}: the config is a {type(config).__name__}, not an object")
    for name, ok, expected in (
        ("protocol", isinstance(config.get("protocol"), str), "a string"),
        ("env", isinstance(config.get("env"), str), "a string"),
        ("eval_epsilon", PROBABILITY.accepts(config.get("eval_epsilon")), "a number in [0, 1]"),
    ):
        if name in config and not ok:
            raise ValueError(
                f"{where}: config field {name!r} is {shown(config[name])}; expected {expected}"
            )


SUMMARY_NUMBERS = ("mean_return", "std_return", "median_return", "min_return", "max_return",
                   "human_normalized", "eval_mean_return", "eval_std_return",
                   "eval_median_return", "eval_human_normalized", "sps", "learning_sps",
                   "epsilon", "eval_epsilon")  # fmt: skip
SUMMARY_INTEGERS = ("seed", "global_step", "updates", "episodes", "eval_episodes",
                    "solved_at_step", "max_episode_frames")  # fmt: skip
SUMMARY_LISTS = ("returns", "eval_returns", "lengths", "action_counts", "eval_action_counts")
SUMMARY_STRINGS = ("env", "preset", "protocol", "trained_env", "checkpoint", "human_score_set")


def check_summary(summary: dict[str, Any], path: str | Path) -> None:
    """A summary.json of scripts.train or scripts.evaluate, field by field."""

    def bad(key: str, expected: str) -> ValueError:
        return ValueError(
            f"summary {path}: field {key!r} is {shown(summary[key])}; expected {expected}"
        )

    if not isinstance(summary.get("env"), str) or not summary["env"].strip():
        if "env" not in summary:
            raise ValueError(
                f"summary {path} has no 'env' field; not a summary of scripts.train or "
                "scripts.evaluate"
            )
        raise bad("env", "the env id as a string")
    for key in SUMMARY_STRINGS:
        if summary.get(key) is not None and not isinstance(summary[key], str):
            raise bad(key, "a string")
    for key in SUMMARY_NUMBERS:
        if summary.get(key) is not None and not _is_number(summary[key]):
            raise bad(key, "a number")
    for key in SUMMARY_INTEGERS:
        if summary.get(key) is not None and not (_is_integer(summary[key]) and summary[key] >= 0):
            raise bad(key, "an integer >= 0")
    for key in SUMMARY_LISTS:
        value = summary.get(key)
        if value is not None and not (
            isinstance(value, list) and all(_is_number(v) for v in value)
        ):
            raise bad(key, "a list of numbers")


METRICS_FIELDS = ("global_step", "wall_seconds", "metric", "value")


def read_metrics_checked(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv -> {metric: [(global_step, value), ...]}, checked row by row: the header of
    ``agents.run.tracking.MetricsLog``, then rows of an integer step >= 0, a finite wall time, a
    metric name and a finite value, each metric's steps never going back (a file two runs wrote
    into). Only a torn last line (no newline after it: a run killed while writing) is skipped;
    anything else is refused in one line naming the file and the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ValueError(f"metrics {path} cannot be read ({reason})") from None
    lines = text.splitlines(keepends=True)
    if not lines:
        raise ValueError(f"metrics {path} is empty; scripts.train writes a header and rows")
    try:
        rows = list(csv.reader(lines))
    except csv.Error as error:
        raise ValueError(f"metrics {path} is not a CSV file ({error})") from None
    if tuple(rows[0]) != METRICS_FIELDS:
        raise ValueError(
            f"metrics {path}: its header is {','.join(rows[0])!r}; expected "
            f"{','.join(METRICS_FIELDS)!r} (the metrics.csv of scripts.train)"
        )
    torn_tail = not text.endswith("\n")
    series: dict[str, list[tuple[int, float]]] = {}
    for number, row in enumerate(rows[1:], start=2):
        try:
            if len(row) != 4 or not row[2]:
                raise ValueError
            step, wall, value = int(row[0]), float(row[1]), float(row[3])
            if step < 0 or not math.isfinite(wall) or not math.isfinite(value):
                raise ValueError
        except ValueError:
            if number == len(rows) and torn_tail:
                break  # a torn last line: the run was killed while writing it
            raise ValueError(
                f"metrics {path}: line {number} {','.join(row)!r} is not a row of an integer "
                "global_step >= 0, a finite wall_seconds, a metric name and a finite value"
            ) from None
        points = series.setdefault(row[2], [])
        if points and step < points[-1][0]:
            raise ValueError(
                f"metrics {path}: line {number} logs {row[2]} at global step {step} after step "
                f"{points[-1][0]}; a run's steps never go back (two runs wrote into this file?)"
            )
        points.append((step, value))
    return series


def check_finite_tensors(where: str, field: str, tensors: Mapping[str, Any]) -> None:
    """Every floating tensor of ``tensors`` finite; else one line counting the bad values."""
    import torch

    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ValueError(
                    f"{where}: its {field} holds {bad} NaN or infinite value(s) (first in "
                    f"{name!r}); a non-finite network is never evaluated, exported or resumed"
                )


def _check_shape(where: str, key: str, value: object) -> None:
    ok = (
        isinstance(value, list | tuple)
        and len(value) in (1, 3)
        and all(_is_integer(s) and s >= 1 for s in value)
        and math.prod(int(s) for s in value) <= MAX_OBS_ELEMENTS
    )
    if not ok:
        raise ValueError(
            f"{where}: field {key!r} is {shown(value)}; expected an observation shape: 1 or 3 "
            f"integers >= 1, at most {MAX_OBS_ELEMENTS:,} elements"
        )


def check_checkpoint(state: dict[str, Any], path: object = None) -> None:
    """A loaded checkpoint (``agents.run.checkpoint.load_checkpoint``), field by field: what playing
    it needs (env_id, obs_shape, num_actions, config, a finite model; a classifier's settings),
    and every training field it holds (a finite target and optimizer state, counters, generator
    states, the saved replay's name)."""
    import torch

    where = f"checkpoint {path if path is not None else state.get('path')}"

    def bad(key: str, expected: str) -> ValueError:
        return ValueError(
            f"{where}: field {key!r} is {shown(state[key])[:100]}; expected {expected}"
        )

    required = ("env_id", "obs_shape", "num_actions", "config", "model")
    missing = [key for key in required if key not in state]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; not a checkpoint of this package")
    if not isinstance(state["env_id"], str) or not state["env_id"]:
        raise bad("env_id", "the env id as a string")
    _check_shape(where, "obs_shape", state["obs_shape"])
    if not (_is_integer(state["num_actions"]) and 1 <= state["num_actions"] <= MAX_ACTIONS):
        raise bad("num_actions", f"an integer in [1, {MAX_ACTIONS}]")
    kind = state.get("kind", "q-network")
    if kind not in ("q-network", "classifier"):
        raise bad("kind", "q-network or classifier")
    check_played_config(kind, state["config"], where)
    if kind == "classifier" and not (
        isinstance(state.get("classifier"), dict)
        and isinstance(state["classifier"].get("model"), str)
    ):
        raise ValueError(f"{where}: a classifier checkpoint without its 'classifier' settings")
    for key in ("model", "target"):
        if key not in state:
            continue
        value = state[key]
        if (
            not isinstance(value, dict)
            or not value
            or not all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in value.items())
        ):
            raise bad(key, "a state_dict: names and tensors")
        check_finite_tensors(where, f"{key} network", value)
    if "optimizer" in state:
        opt = state["optimizer"]
        if not isinstance(opt, dict) or not isinstance(opt.get("state", {}), dict):
            raise bad("optimizer", "an optimizer state_dict")
        for slot in opt.get("state", {}).values():
            if isinstance(slot, dict):
                check_finite_tensors(where, "optimizer state", slot)
    for key in ("global_step", "updates", "epsilon_decay_steps", "next_target_sync", "next_log",
                "next_checkpoint", "refill_until", "solved_at", "next_eval",
                "priority_beta_steps", "format_version"):  # fmt: skip
        value = state.get(key)
        low = -1 if key == "refill_until" else 0
        if value is not None and not (_is_integer(value) and low <= value <= INT64_MAX):
            raise bad(key, f"an integer >= {low}")
    if state.get("updates_due") is not None:
        check_number(f"{where}: field 'updates_due'", state["updates_due"], Range(0.0))
    if state.get("epsilon") is not None:
        check_number(f"{where}: field 'epsilon'", state["epsilon"], PROBABILITY)
    returns = state.get("recent_returns")
    if returns is not None and not (
        isinstance(returns, list | tuple)
        and all(_is_number(r) and math.isfinite(float(r)) for r in returns)
    ):
        raise bad("recent_returns", "a list of finite numbers")
    for key in ("torch_rng", "agent_rng", "noise_rng"):
        value = state.get(key)
        if value is not None and not (
            isinstance(value, torch.Tensor) and value.dtype == torch.uint8
        ):
            raise bad(key, "a generator state (a uint8 tensor)")
    if state.get("run_id") is not None and not isinstance(state["run_id"], str):
        raise bad("run_id", "a string")
    replay = state.get("replay")
    if replay is not None and not (
        isinstance(replay, str) and re.fullmatch(r"replay_\d{12}", replay)
    ):
        raise bad("replay", "the name of a saved replay folder, replay_<12 digits>")


NPY_VERSIONS = {(1, 0): "read_array_header_1_0", (2, 0): "read_array_header_2_0"}


def inspect_npz(path: str | Path, what: str, keys: tuple[str, ...]) -> dict[str, tuple]:
    """{key: (shape, dtype)} of the arrays ``keys`` in the npz ``path``, read from the zip
    directory and the npy headers only, before anything is decompressed. Refused in one line
    naming the file: a member that declares more than deflate can produce from its compressed
    bytes (a zip bomb), a header whose shape and dtype disagree with the member's size, object
    arrays, an unknown compression or npy version, or arrays that together need more memory
    than is available. Arrays absent from the file are left out (the caller names them)."""
    path = Path(path)

    def refuse(why: str) -> ValueError:
        return ValueError(f"{what} {path} is not usable: {why}")

    found: dict[str, tuple] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            for key in keys:
                info = infos.get(f"{key}.npy")
                if info is None:
                    continue
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise refuse(f"its array {key} uses compression {info.compress_type}")
                stored = info.compress_type == zipfile.ZIP_STORED
                if (stored and info.file_size != info.compress_size) or (
                    info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 4096
                ):
                    raise refuse(
                        f"its array {key} declares {format_bytes(info.file_size)} from "
                        f"{format_bytes(info.compress_size)} of compressed data, more than "
                        f"{'stored' if stored else 'deflate'} data can hold (a zip bomb?)"
                    )
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in NPY_VERSIONS:
                        raise refuse(f"its array {key} has npy format {version}")
                    shape, _, dtype = getattr(np.lib.format, NPY_VERSIONS[version])(f)
                    header = f.tell()
                if dtype.hasobject:
                    raise refuse(f"its array {key} holds Python objects")
                nbytes = math.prod(shape) * dtype.itemsize
                if header + nbytes != info.file_size:
                    raise refuse(
                        f"its array {key} declares shape {shape} of {dtype} "
                        f"({format_bytes(nbytes)}) but holds "
                        f"{format_bytes(info.file_size - header)}"
                    )
                total += nbytes
                found[key] = (tuple(shape), dtype)
    except ValueError as error:
        if str(error).startswith(f"{what} {path}"):
            raise
        raise refuse(f"it is not a readable npz file ({error})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise refuse(f"it is not a readable npz file ({type(error).__name__})") from None
    free = available_memory("cpu")
    if total > free:
        raise refuse(
            f"its arrays need {format_bytes(total)} of memory, more than the "
            f"{format_bytes(free)} available"
        )
    return found
