"""Shipped agents: a trained network's acting weights as a small, code-free file pair.

A training checkpoint (``agents.runs.trainer_state``) holds the online and target networks, the
optimizer's moments, every random generator and the env state: about 27 MB for the Nature CNN.
An agent shipped to play needs only the online network. ``save_pretrained`` writes

- ``NAME.safetensors``: the acting network's ``state_dict`` in the safetensors format (a JSON
  header plus raw tensor bytes; loading it cannot run code, unlike a pickle), float16 by default;
- ``NAME.json``: what rebuilds and judges the agent: format version, env, protocol, observation
  shape, action count, the training config, the stored dtype, the tensors' names and shapes, the
  file's SHA-256, the source checkpoint's global step and the measured evaluation with the
  tolerance a re-evaluation must meet.

``load_pretrained`` turns the pair back into the state ``agents.evaluation.load_policy`` plays
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

from agents.checkpoint import atomic_write

FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
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
    """An ``agents.evaluation.evaluate`` summary as stored in the json: the scores, how they were
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

    check_name(name)
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
    """The json of a pair, with one clear error for anything that is not one of ours."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"pretrained metadata {path} cannot be read: {error}") from None
    required = ("format_version", "env_id", "obs_shape", "num_actions", "config", "tensors")
    missing = [key for key in required if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise ValueError(f"pretrained metadata {path} lacks {', '.join(missing)}")
    if meta["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"pretrained metadata {path} has format {meta['format_version']}; this version reads "
            f"up to {FORMAT_VERSION}"
        )
    return meta


def _check_pair(weights: Path, meta: dict[str, Any], data: bytes) -> None:
    if meta.get("sha256") not in (None, hashlib.sha256(data).hexdigest()):
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

    weights, meta_path = resolve_pretrained(name_or_path)
    meta = read_pretrained_meta(meta_path)
    data = weights.read_bytes()
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as error:
        raise ValueError(f"pretrained weights {weights} cannot be read: {error}") from None
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
    _check_pair(weights, meta, data)
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
