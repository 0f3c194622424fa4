"""Golden runs: seeded CPU runs whose weights, optimizer, random states, counters and metrics must
stay bitwise what they were when ``tests/data/golden.json`` was written.

A change to the code's structure (moving parts between modules, splitting the trainer into actor,
replay and learner) must not change a single bit of what a run computes. Each run below is played
through the command line in-process with one torch thread and the eager update, and reduced to
sha256 digests of its final checkpoint and its metrics (wall-clock columns left out).

Floating-point kernels differ between CPU instruction sets and torch builds, so the digests are
compared bitwise on a machine like the one that wrote them (same torch version, same CPU
capability, same processor model) and the test is skipped under another torch build or CPU
capability, naming the difference. On another processor model of the same capability (the same
torch picks other kernels on an AMD EPYC than on an Intel Xeon: the last bits of the weights
move, nothing else) everything but the weights, the target and the optimizer state is still
compared bitwise, and those three by fingerprints (the float64 sum of absolute values and of
squares of each, within a relative 1e-4, the optimizer's 1e-3: ``FINGERPRINT_RTOL``), so a change
to what a run computes still fails there.

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


FINGERPRINTED = ("model", "target", "optimizer")  # float state whose last bits follow the CPU
FINGERPRINT_RTOL = {"model": 1e-4, "target": 1e-4, "optimizer": 1e-3}
"""Relative tolerance of each fingerprint off the recording processor model. Adam's first moment
(a running mean of gradients that mostly cancel) carries the last-bit differences furthest: the
drq-pixels run's sum of its absolute values is 1.27e-4 apart between an Intel Xeon and the AMD
EPYC of the record (its weights 6.4e-6 at most, the sums of squares 8e-9); a change to what a run
computes moves these sums by far more, and fails the bitwise metrics and counters besides."""


def machine() -> dict[str, str]:
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def processor() -> str:
    """The processor's vendor and model, as /proc/cpuinfo gives them ('unknown' elsewhere)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "unknown"
    parts = [fields.get(k, "") for k in ("vendor_id", "model name", "cpu family", "model")]
    return " / ".join(parts) if any(parts) else "unknown"


def fingerprint(value: Any) -> list[float]:
    """The float64 sums of |x| and of x^2 over every floating-point tensor in ``value``."""
    sums = [0.0, 0.0]

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            t = v.detach().cpu().double()
            sums[0] += float(t.abs().sum())
            sums[1] += float((t * t).sum())
        elif isinstance(v, dict):
            for key in sorted(v, key=str):
                feed(v[key])
        elif isinstance(v, list | tuple):
            for item in v:
                feed(item)

    feed(value)
    return sums


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
        "fingerprints": {key: fingerprint(state[key]) for key in FINGERPRINTED},
    }


def play(name: str, out: Path) -> dict[str, Any]:
    from scripts.train import main

    code = main([*RUNS[name], *COMMON, "--output-dir", str(out)])
    assert code == 0, f"golden run {name} exited {code}"
    return run_digests(out)


def recorded() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def check(got: dict[str, Any], want: dict[str, Any], same_processor: bool) -> None:
    """Bitwise on the recording processor model; elsewhere the float state by fingerprints."""
    if same_processor:
        assert got == want
        return
    exact = [key for key in want if key not in (*FINGERPRINTED, "fingerprints")]
    assert {key: got[key] for key in exact} == {key: want[key] for key in exact}
    for key in FINGERPRINTED:
        assert got["fingerprints"][key] == pytest.approx(
            want["fingerprints"][key], rel=FINGERPRINT_RTOL[key]
        ), key


def played(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    golden = recorded()
    if golden["machine"] != machine():
        pytest.skip(f"digests written on {golden['machine']}; this machine is {machine()}")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    threads = torch.get_num_threads()
    try:
        return play(name, tmp_path / name)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(RUNS))
def test_golden_run_is_bitwise_unchanged(tmp_path, name, monkeypatch):
    got = played(tmp_path, name, monkeypatch)
    golden = recorded()
    check(got, golden["runs"][name], golden.get("processor") == processor())


def test_another_processor_model_compares_the_float_state_by_fingerprints(tmp_path, monkeypatch):
    got = played(tmp_path, "drq-pixels", monkeypatch)
    want = recorded()["runs"]["drq-pixels"]
    check(got, want, same_processor=False)  # passes here whichever processor wrote the record
    for key in FINGERPRINTED:  # float state that moved more than the last bits
        moved = {**got, "fingerprints": {**got["fingerprints"]}}
        moved["fingerprints"][key] = [
            x * (1 + 10 * FINGERPRINT_RTOL[key]) for x in got["fingerprints"][key]
        ]
        with pytest.raises(AssertionError, match=key):
            check(moved, want, same_processor=False)
    with pytest.raises(AssertionError):
        check({**got, "updates": got["updates"] + 1}, want, same_processor=False)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import os
    import tempfile

    os.environ["WANDB_MODE"] = "disabled"
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: play(name, Path(tmp) / name) for name in RUNS}
    GOLDEN.parent.mkdir(exist_ok=True)
    record = {"machine": machine(), "processor": processor(), "runs": runs}
    GOLDEN.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
