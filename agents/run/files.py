"""Small pieces every run uses: the torch device it asked for, its output directory checked up
front, a run id, and JSON written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from agents.run.checkpoint import atomic_write


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {name!r} was asked for but CUDA is not available; use cpu")
    return torch.device(name)


def check_output_dir(path: Path) -> None:
    """Refuse an output directory that cannot be created or written, before any work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"--output-dir: {str(path)!r} cannot be written ({error.strerror or error}); "
            "give a writable directory"
        ) from None


def new_run_id() -> str:
    """A random wandb-style run id (from the OS, so it does not touch the seeded generators)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % len(alphabet)] for b in os.urandom(8))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """JSON written atomically."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
