"""Saving and restoring the state of Python envs as plain data, so a resumed run continues the
very episodes it was in: bit for bit, without pickling objects.

`env_state(env)` walks an env's object graph (a vector env, its sub-envs, the wrapper chain, and
helper objects defined in this package or in gymnasium) and records every attribute that is plain
data: numbers, strings, numpy arrays (as raw bytes with dtype and shape), numpy random generators
(their bit-generator state), and lists, tuples, deques and dicts of those. Spaces, env specs,
callables and constructor arguments are construction-time and left alone. An object it cannot
describe that way (ale_py's C++ vector env, an emulator handle) makes the whole env unsupported:
`env_state` returns None and the caller starts new episodes instead.

`restore_env_state(env, state)` writes the values back into an env built the same way; numpy
arrays and generators are updated in place, so objects that share them keep sharing them. The
saved structure holds only types that `torch.load(weights_only=True)` accepts.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.spaces import Space

SKIPPED_NAMES = frozenset({"_saved_kwargs", "spec", "_cached_spec", "metadata", "_metadata"})
PLAIN = (type(None), bool, int, float, str, bytes)
OWN_MODULES = ("envs.", "gymnasium.")


class UnsupportedEnvState(Exception):
    """The env holds something that cannot be described as plain data."""


def _is_own_object(value: Any) -> bool:
    module = type(value).__module__
    return hasattr(value, "__dict__") and module.startswith(OWN_MODULES)


def _encode(value: Any, path: str) -> Any:
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return {"__list_array__": [_encode(v, path) for v in value.tolist()]}
        return {"__ndarray__": value.tobytes(), "dtype": value.dtype.str, "shape": value.shape}
    if isinstance(value, np.generic):
        return {"__scalar__": _encode(np.asarray(value), path)}
    if isinstance(value, np.random.Generator):
        return {"__generator__": value.bit_generator.state}
    if isinstance(value, deque):
        return {"__deque__": [_encode(v, path) for v in value], "maxlen": value.maxlen}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, path) for v in value]}
    if isinstance(value, list):
        return [_encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, f"{path}.{k}") for k, v in value.items()}}
    if _is_own_object(value):
        return _encode_object(value, path)
    raise UnsupportedEnvState(f"{path} is a {type(value).__module__}.{type(value).__name__}")


def _encode_object(obj: Any, path: str) -> dict[str, Any]:
    attrs = {}
    for name, value in vars(obj).items():
        if name in SKIPPED_NAMES or isinstance(value, Space | EnvSpec) or callable(value):
            continue
        if isinstance(value, list) and value and all(callable(v) for v in value):
            continue  # env constructors of a vector env
        attrs[name] = _encode(value, f"{path}.{name}")
    return {"__object__": type(obj).__qualname__, "attrs": attrs}


def env_state(env: Any) -> dict[str, Any] | None:
    """The env's state as plain data, or None when it holds something that cannot be saved."""
    try:
        return _encode_object(env, "env")
    except UnsupportedEnvState:
        return None


def _decode(saved: Any, current: Any, path: str) -> Any:
    if not isinstance(saved, dict):
        if isinstance(saved, list):
            if isinstance(current, list) and len(current) == len(saved):
                return [
                    _decode(s, c, f"{path}[{i}]") for i, (s, c) in enumerate(zip(saved, current))
                ]
            return [_decode(s, None, path) for s in saved]
        return saved
    if "__ndarray__" in saved:
        array = np.frombuffer(saved["__ndarray__"], dtype=np.dtype(saved["dtype"]))
        array = array.reshape(saved["shape"])
        if (
            isinstance(current, np.ndarray)
            and current.shape == array.shape
            and current.dtype == array.dtype
            and current.flags.writeable
        ):
            current[...] = array
            return current
        return array.copy()
    if "__list_array__" in saved:
        items = [_decode(s, None, path) for s in saved["__list_array__"]]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out
    if "__scalar__" in saved:
        return _decode(saved["__scalar__"], None, path)[()]
    if "__generator__" in saved:
        generator = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        generator.bit_generator.state = saved["__generator__"]
        return generator
    if "__deque__" in saved:
        return deque((_decode(s, None, path) for s in saved["__deque__"]), maxlen=saved["maxlen"])
    if "__tuple__" in saved:
        return tuple(_decode(s, None, path) for s in saved["__tuple__"])
    if "__dict__" in saved:
        old = current if isinstance(current, dict) else {}
        return {k: _decode(v, old.get(k), f"{path}.{k}") for k, v in saved["__dict__"].items()}
    if "__object__" in saved:
        if current is None or type(current).__qualname__ != saved["__object__"]:
            found = "nothing" if current is None else type(current).__qualname__
            raise ValueError(
                f"saved env state has a {saved['__object__']} at {path} but this env has {found}; "
                "resume with the same env and settings"
            )
        _restore_object(current, saved, path)
        return current
    raise ValueError(f"saved env state at {path} is not in a known format")


def _restore_object(obj: Any, saved: dict[str, Any], path: str) -> None:
    for name, value in saved["attrs"].items():
        setattr(obj, name, _decode(value, getattr(obj, name, None), f"{path}.{name}"))


def restore_env_state(env: Any, state: dict[str, Any]) -> None:
    """Write a state from `env_state` back into an env built with the same id and settings."""
    _decode(state, env, "env")
