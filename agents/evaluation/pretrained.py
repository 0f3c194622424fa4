"""Shipped agents: a trained network's acting weights as a small, code-free file pair.

A training checkpoint (``Trainer.state_dict``) holds the online and target networks, the
optimizer's moments, every random generator and the env state: about 27 MB for the Nature CNN.
An agent shipped to play needs only the online network. ``save_pretrained`` writes

- ``NAME.safetensors``: the acting network's ``state_dict`` in the safetensors format (a JSON
  header plus raw tensor bytes; loading it cannot run code, unlike a pickle), float16 by default;
- ``NAME.json``: what rebuilds and judges the agent: format version, env, protocol, observation
  shape, action count, the training config, the stored dtype, the tensors' names and shapes, the
  file's SHA-256, the source checkpoint's global step and the measured evaluation with the
  tolerance a re-evaluation must meet.

``load_pretrained`` turns the pair back into the state ``evaluate.load_policy`` plays
(weights cast back to float32). Shipped pairs live in the ``agents/pretrained/`` package folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import torch

from agents.run.checkpoint import atomic_write

FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"  # agents/pretrained
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SUFFIXES = (".safetensors", ".json")

CHECK_EPISODES = 8
"""Episodes of the short re-evaluation a shipped agent must pass (one per env of ``evaluate``'s
default 8 parallel envs, so with the recorded seed they are the first episode of each env)."""

MIN_TOLERANCE = 1.0
"""Smallest tolerance on a mean return, in raw game points: when every recorded episode scored
the same the standard error is 0, yet float rounding on other hardware can flip a greedy action."""

TOLERANCE_RULE = (
    "absolute, on mean_return in raw game points: 3 standard errors of the difference between "
    "a mean over check_episodes episodes and the recorded mean, taken as independent samples with "
    "the recorded per-episode std, i.e. 3 * std * sqrt(1/check_episodes + 1/episodes), at least "
    f"{MIN_TOLERANCE:g}; the recorded seed on the same device repeats the episodes exactly, the "
    "margin covers other hardware (a flipped greedy action) and other seeds"
)

EVALUATION_KEYS = ("mean_return", "std_return", "median_return", "min_return", "max_return",
                   "episodes", "returns", "epsilon", "protocol", "max_episode_frames",
                   "human_normalized", "human_score_set")  # fmt: skip


def score_tolerance(std_return: float, episodes: int, check_episodes: int) -> float:
    """The absolute tolerance on a mean return measured over ``check_episodes`` episodes against
    one recorded over ``episodes`` (see ``TOLERANCE_RULE``)."""
    spread = 3.0 * std_return * math.sqrt(1.0 / check_episodes + 1.0 / episodes)
    return max(spread, MIN_TOLERANCE)


def recorded_evaluation(summary: dict[str, Any], seed: int) -> dict[str, Any]:
    """An ``evaluate.evaluate`` summary as stored in the json: the scores, how they were
    measured, and the tolerance of the short re-evaluation (``CHECK_EPISODES``, same seed)."""
    record = {key: summary.get(key) for key in EVALUATION_KEYS}
    record["seed"] = seed
    check = min(int(summary["episodes"]), CHECK_EPISODES)
    record["check_episodes"] = check
    record["tolerance"] = score_tolerance(summary["std_return"], summary["episodes"], check)
    record["tolerance_rule"] = TOLERANCE_RULE
    return record


def half_rounded(model: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``model`` with its floating tensors rounded to float16 and back: the weights a float16
    file gives after ``load_pretrained``."""
    return {k: t.half().float() if t.is_floating_point() else t for k, t in model.items()}


def fits_float16(model: dict[str, torch.Tensor]) -> bool:
    """Whether every floating weight lies within float16's range (|x| <= 65504)."""
    largest = torch.finfo(torch.float16).max
    return all(bool((t.abs() <= largest).all()) for t in model.values() if t.is_floating_point())


def half_precision_verdict(full: dict[str, Any], half: dict[str, Any]) -> tuple[bool, str]:
    """Whether float16 weights may be shipped: evaluations of the float32 and float16-rounded
    weights with the same seeds (``evaluate`` summaries) must agree on the mean return within
    ``score_tolerance`` of the float32 run; ``(keep float16, the reason in words)``."""
    change = abs(half["mean_return"] - full["mean_return"])
    tolerance = score_tolerance(full["std_return"], full["episodes"], half["episodes"])
    verdict = "<=" if change <= tolerance else ">"
    reason = f"mean return changed by {change:.3f} {verdict} tolerance {tolerance:.3f}"
    return change <= tolerance, reason


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"pretrained name {name!r} is not accepted; use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit"
        )
    return name


def _stored_tensors(model: dict[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies; floating tensors as float16 (``half``) or float32."""
    dtype = torch.float16 if half else torch.float32
    return {
        key: (t.to(dtype) if t.is_floating_point() else t).detach().cpu().contiguous().clone()
        for key, t in model.items()
    }


def save_pretrained(
    state: dict[str, Any],
    directory: str | Path,
    name: str,
    half: bool = True,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """Write ``directory/NAME.safetensors`` (the acting network) and ``directory/NAME.json``
    atomically; returns the safetensors path. ``state`` is a loaded checkpoint (a training run or
    a behaviour-cloning classifier); ``evaluation`` is ``recorded_evaluation``'s dict or None."""
    from safetensors.torch import save

    from agents.run.file_checks import check_finite_tensors

    check_name(name)
    check_finite_tensors(f"checkpoint {state.get('path')}", "model network", state["model"])
    if half and not fits_float16(state["model"]):
        raise ValueError(
            f"pretrained {name!r}: weights exceed float16's range (65504); save in float32"
        )
    directory = Path(directory)
    tensors = _stored_tensors(state["model"], half)
    data = save(tensors, metadata={"format": "pt", "name": name})
    weights = atomic_write(directory / f"{name}.safetensors", lambda f: f.write(data))
    weights.chmod(0o644)  # package data, readable by all (the temporary file was 0600)
    config = state["config"]
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": state.get("kind", "q-network"),
        "env_id": state["env_id"],
        "protocol": config.get("protocol", "nature"),
        "obs_shape": [int(s) for s in state["obs_shape"]],
        "num_actions": int(state["num_actions"]),
        "config": config,
        "dtype": "float16" if half else "float32",
        "parameters": sum(t.numel() for t in tensors.values()),
        "tensors": {key: list(t.shape) for key, t in tensors.items()},
        "sha256": hashlib.sha256(data).hexdigest(),
        "global_step": state.get("global_step"),
        "source_checkpoint": Path(state["path"]).name if state.get("path") else None,
        "evaluation": evaluation,
    }
    if meta["kind"] == "classifier":
        meta["classifier"] = state["classifier"]
    text = json.dumps(meta, indent=2) + "\n"
    atomic_write(directory / f"{name}.json", lambda f: f.write(text.encode())).chmod(0o644)
    return weights


def list_pretrained(directory: str | Path = PRETRAINED_DIR) -> list[str]:
    """Names of the agents in ``directory`` (both files present), sorted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        p.stem for p in directory.glob("*.json") if p.with_suffix(".safetensors").is_file()
    )


def _looks_like_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or text.endswith(SUFFIXES)


def resolve_pretrained(name_or_path: str | Path) -> tuple[Path, Path]:
    """The (safetensors, json) pair of a shipped name or of a path to either file of a pair."""
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        base = path.with_suffix("") if path.suffix in SUFFIXES else path
    else:
        name = str(name_or_path)
        shipped = list_pretrained()
        if name not in shipped:
            known = f"shipped: {', '.join(shipped)}" if shipped else "no agent is shipped yet"
            raise ValueError(
                f"pretrained agent {name!r} is unknown ({known}); give a shipped name or the path "
                "of a .safetensors/.json pair"
            )
        base = PRETRAINED_DIR / name
    weights, meta = base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")
    for path in (weights, meta):
        if not path.is_file():
            raise ValueError(
                f"pretrained file {path} does not exist; an agent is a NAME.safetensors and "
                "NAME.json pair (scripts/export_pretrained.py writes both)"
            )
    return weights, meta


def read_pretrained_meta(path: Path) -> dict[str, Any]:
    """The json of a pair, checked field by field (``check_pretrained_meta``): one clear error for
    anything that is not one of ours."""
    from agents.run.file_checks import read_json_object

    meta = read_json_object(path, "pretrained metadata")
    required = ("format_version", "env_id", "obs_shape", "num_actions", "config", "tensors",
                "sha256")  # fmt: skip
    missing = [key for key in required if key not in meta]
    if missing:
        why = "; a shipped agent records its weights' SHA-256" if "sha256" in missing else ""
        raise ValueError(
            f"pretrained metadata {path} lacks {', '.join(missing)}{why} (export it with "
            "scripts.export_pretrained)"
        )
    check_pretrained_meta(meta, path)
    return meta


SHA256 = re.compile(r"^[0-9a-f]{64}$")
EVALUATION_NUMBERS = ("mean_return", "std_return", "median_return", "min_return", "max_return",
                      "epsilon", "human_normalized", "tolerance")  # fmt: skip


def check_pretrained_meta(meta: dict[str, Any], path: object) -> None:
    """Each field of a shipped agent's json: its type, and sizes and numbers within reason."""
    from agents.run.checks import MAX_ACTIONS, _is_integer, _is_number, shown
    from agents.run.file_checks import _check_shape, check_played_config

    where = f"pretrained metadata {path}"

    def bad(key: str, expected: str, value: object = None) -> ValueError:
        value = meta.get(key) if value is None else value
        return ValueError(f"{where}: field {key!r} is {shown(value)[:100]}; expected {expected}")

    version = meta["format_version"]
    if not _is_integer(version) or version < 1:
        raise bad("format_version", "an integer >= 1")
    if version > FORMAT_VERSION:
        raise ValueError(f"{where} has format {version}; this version reads up to {FORMAT_VERSION}")
    if not isinstance(meta["sha256"], str) or not SHA256.match(meta["sha256"]):
        raise bad("sha256", "the weights file's SHA-256 as 64 lowercase hex digits")
    if not isinstance(meta["env_id"], str) or not meta["env_id"]:
        raise bad("env_id", "the env id as a string")
    _check_shape(where, "obs_shape", meta["obs_shape"])
    if not (_is_integer(meta["num_actions"]) and 1 <= meta["num_actions"] <= MAX_ACTIONS):
        raise bad("num_actions", f"an integer in [1, {MAX_ACTIONS}]")
    tensors = meta["tensors"]
    shapes_ok = isinstance(tensors, dict) and bool(tensors) and all(
        isinstance(k, str) and isinstance(v, list) and all(_is_integer(d) and d >= 0 for d in v)
        for k, v in tensors.items()
    )  # fmt: skip
    if not shapes_ok:
        raise bad("tensors", "{name: shape} with shapes as lists of integers >= 0")
    kind = meta.get("kind", "q-network")
    if kind not in ("q-network", "classifier"):
        raise bad("kind", "q-network or classifier")
    check_played_config(kind, meta["config"], where)
    settings = meta.get("classifier")
    if kind == "classifier" and not (
        isinstance(settings, dict) and isinstance(settings.get("model"), str)
    ):
        raise ValueError(f"{where}: a classifier without its 'classifier' settings")
    if meta.get("dtype", "float32") not in ("float16", "float32"):
        raise bad("dtype", "float16 or float32")
    for key in ("name", "protocol", "source_checkpoint"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise bad(key, "a string")
    for key in ("global_step", "parameters"):
        if meta.get(key) is not None and not (_is_integer(meta[key]) and meta[key] >= 0):
            raise bad(key, "an integer >= 0")
    evaluation = meta.get("evaluation")
    if evaluation is None:
        return
    if not isinstance(evaluation, dict):
        raise bad("evaluation", "an object (the recorded evaluation) or null")
    for key in EVALUATION_NUMBERS:
        if evaluation.get(key) is not None and not _is_number(evaluation[key]):
            raise bad("evaluation", f"a number as its {key!r}", evaluation[key])
    for key in ("episodes", "check_episodes", "seed", "max_episode_frames"):
        value = evaluation.get(key)
        if value is not None and not (_is_integer(value) and value >= (key != "seed")):
            raise bad("evaluation", f"a positive integer as its {key!r}", value)
    returns = evaluation.get("returns")
    if returns is not None and not (isinstance(returns, list) and all(map(_is_number, returns))):
        raise bad("evaluation", "a list of numbers as its 'returns'", returns)


def _check_pair(weights: Path, meta: dict[str, Any], data: bytes) -> None:
    if meta.get("sha256") != hashlib.sha256(data).hexdigest():
        raise ValueError(
            f"pretrained weights {weights} do not match their json (SHA-256 differs); export "
            "the pair again"
        )


def load_pretrained(name_or_path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A shipped agent (by name) or a pair (by path) as the state ``load_policy`` plays: config,
    env_id, obs_shape, num_actions, kind (and classifier settings), model in float32, global_step,
    path, plus the json as ``pretrained``."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from agents.run.checks import format_bytes
    from agents.run.file_checks import check_finite_tensors
    from agents.run.machine import available_memory

    weights, meta_path = resolve_pretrained(name_or_path)
    meta = read_pretrained_meta(meta_path)
    size, free = weights.stat().st_size, available_memory("cpu")
    if 3 * size > free:  # the file's bytes, the tensors, their float32 copies
        raise ValueError(
            f"pretrained weights {weights} are {format_bytes(size)}; loading them needs about "
            f"{format_bytes(3 * size)}, more than the {format_bytes(free)} of memory available"
        )
    data = weights.read_bytes()
    _check_pair(weights, meta, data)  # before parsing: only the exported bytes are read
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as error:
        raise ValueError(f"pretrained weights {weights} cannot be read: {error}") from None
    check_finite_tensors(f"pretrained weights {weights}", "network", tensors)
    theirs = {key: list(t.shape) for key, t in tensors.items()}
    if theirs != meta["tensors"]:
        extra = sorted(set(theirs) - set(meta["tensors"]))
        absent = sorted(set(meta["tensors"]) - set(theirs))
        shapes = sorted(
            k for k in set(theirs) & set(meta["tensors"]) if theirs[k] != meta["tensors"][k]
        )
        raise ValueError(
            f"pretrained weights {weights} do not match {meta_path.name}: tensors not in the json "
            f"{extra or 'none'}, missing {absent or 'none'}, other shapes {shapes or 'none'}"
        )
    model = {
        key: (t.float() if t.is_floating_point() else t).to(device) for key, t in tensors.items()
    }
    state = {
        "kind": meta.get("kind", "q-network"),
        "config": meta["config"],
        "env_id": meta["env_id"],
        "obs_shape": list(meta["obs_shape"]),
        "num_actions": int(meta["num_actions"]),
        "model": model,
        "global_step": meta.get("global_step"),
        "path": str(weights),
        "pretrained": meta,
    }
    if state["kind"] == "classifier":
        state["classifier"] = meta["classifier"]
    return state
