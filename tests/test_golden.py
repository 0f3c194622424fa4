"""Golden runs: seeded CPU runs whose weights, optimizer, random states, counters and metrics must
stay bitwise what they were when ``tests/data/golden.json`` was written.

A change to the code's structure (moving parts between modules, splitting the trainer into actor,
replay and learner) must not change a single bit of what a run computes. Each run below is played
through the command line in-process with one torch thread and the eager update, and reduced to
sha256 digests of its final checkpoint and its metrics (wall-clock columns left out).

Floating-point kernels differ between CPU instruction sets and torch builds, so the digests are
compared bitwise on a machine like the one that wrote them (same torch version, same CPU
capability) and the test is skipped elsewhere, naming the difference.

Rewrite the digests only when a run's numbers are meant to change (or, for ``torch_rng``, when
the global generator's use changes, as when the network's initialisation stopped drawing from
it):
``python tests/test_golden.py --write`` (and say why in the commit).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).parent / "data" / "golden.json"
COMMON = [
    "--torch-threads", "1", "--compile", "off", "--no-progress", "--no-record-video",
    "--wandb-mode", "disabled",
]  # fmt: skip
RUNS: dict[str, list[str]] = {
    "cartpole": [
        "--env", "CartPole-v1", "--preset", "cartpole", "--seed", "3", "--total-steps", "3000",
        "--eval-every-steps", "1000", "--eval-episodes", "2", "--final-eval-episodes", "2",
    ],
    "rainbow-pixels": [
        "--env", "fake-pixels", "--preset", "smoke", "--seed", "5", "--total-steps", "400",
        "--learning-starts", "100", "--train-frequency", "2", "--double-dqn", "--dueling",
        "--n-step", "3", "--prioritized", "--distributional", "--v-min", "0", "--v-max", "100",
        "--noisy", "--eval-every-steps", "200", "--eval-episodes", "1",
        "--final-eval-episodes", "1",
    ],
    "drq-pixels": [
        "--env", "fake-pixels", "--preset", "drq", "--seed", "7", "--total-steps", "300",
        "--learning-starts", "100", "--eval-every-steps", "0", "--final-eval-episodes", "1",
    ],
}  # fmt: skip
TIME_COLUMNS = {"wall_seconds"}
TIME_METRICS = ("SPS", "sps", "time", "seconds")  # metric names measuring the clock, not the run


def machine() -> dict[str, str]:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def digest(value: Any) -> str:
    """sha256 of a nested structure of tensors, arrays and plain values, order-independent for
    dict keys."""
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, np.ndarray):
            h.update(f"A{v.dtype}{v.shape}".encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, dict):
            h.update(b"{")
            for key in sorted(v, key=str):
                h.update(repr(key).encode())
                feed(v[key])
            h.update(b"}")
        elif isinstance(v, list | tuple):
            h.update(b"[")
            for item in v:
                feed(item)
            h.update(b"]")
        elif isinstance(v, float):
            h.update(float(v).hex().encode())
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()


def run_digests(run_dir: Path) -> dict[str, Any]:
    (checkpoint,) = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [
            {k: v for k, v in row.items() if k not in TIME_COLUMNS}
            for row in csv.DictReader(f)
            if not any(word in row.get("metric", "") for word in TIME_METRICS)
        ]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "global_step": state["global_step"],
        "updates": state["updates"],
        "model": digest(state["model"]),
        "target": digest(state["target"]),
        "optimizer": digest(state["optimizer"]),
        "agent_rngs": digest([state["agent_rng"], state["noise_rng"]]),
        "torch_rng": digest(state["torch_rng"]),
        "epsilon": float(state["epsilon"]).hex(),
        "recent_returns": digest(state["recent_returns"]),
        "metrics_rows": len(rows),
        "metrics": digest([sorted(row.items()) for row in rows]),
        "eval_mean_return": summary.get("eval_mean_return"),
    }


def play(name: str, out: Path) -> dict[str, Any]:
    from scripts.train import main

    code = main([*RUNS[name], *COMMON, "--output-dir", str(out)])
    assert code == 0, f"golden run {name} exited {code}"
    return run_digests(out)


def recorded() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", list(RUNS))
def test_golden_run_is_bitwise_unchanged(tmp_path, name, monkeypatch):
    golden = recorded()
    if golden["machine"] != machine():
        pytest.skip(f"digests written on {golden['machine']}; this machine is {machine()}")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    threads = torch.get_num_threads()
    try:
        got = play(name, tmp_path / name)
    finally:
        torch.set_num_threads(threads)
    assert got == golden["runs"][name]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import os
    import tempfile

    os.environ["WANDB_MODE"] = "disabled"
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: play(name, Path(tmp) / name) for name in RUNS}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
