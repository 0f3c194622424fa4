"""The GPU run scripts work end to end on this CPU with a tiny budget (they run unchanged on a GPU
machine, where only the budgets differ). The budgets here count steps, never seconds, so the
tests pass on a machine of any speed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, out: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable, "OUT": str(out), "SKIP_WHEELS": "1", **env}
    return subprocess.run(
        ["bash", f"scripts/{name}"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


@pytest.mark.atari
def test_gpu_pong_script_trains_prints_returns_and_exports_the_agent(tmp_path):
    flags = (
        "--num-envs 2 --learning-starts 200 --buffer-size 5000 --eval-every-steps 400 "
        "--eval-episodes 1 --final-eval-episodes 1 --eval-max-steps 300 --compile off "
        "--log-every-steps 200"
    )
    done = run_script(
        "gpu_pong.sh", tmp_path / "out", PONG_STEPS="400", PONG_SECONDS="0", PONG_FLAGS=flags,
        EXPORT_EPISODES="1", RUN=str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train exit code 0 (0: step budget 400 or return 19 reached;" in done.stdout
    assert "evaluation returns (agent steps, wall-clock seconds, mean return):" in done.stdout
    rows = re.findall(r"^ +(\d+) +[\d.]+ s +[-+][\d.]+$", done.stdout, flags=re.MULTILINE)
    assert rows == ["400"]  # the periodic evaluation, also the final one (the same weights)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["global_step"] == 400
    weights = tmp_path / "out" / "pong.safetensors"
    assert 3_000_000 < weights.stat().st_size < 4_000_000  # half precision, 1.69M parameters
    meta = json.loads((tmp_path / "out" / "pong.json").read_text())
    assert meta["env_id"] == "Pong" and meta["dtype"] == "float16"
    assert (tmp_path / "out" / "metrics.csv").exists()


@pytest.mark.slow
def test_gpu_bench_script_writes_every_row(tmp_path):
    done = run_script("gpu_bench.sh", tmp_path / "out", BENCH_STEPS="200")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "out" / "bench_all.json").read_text())["results"]
    for n in (1, 4, 8, 16):
        assert rows[f"env N={n}"]["frames_per_s"] > 0
        assert rows[f"e2e N={n}"]["steps_per_s"] > 0
        if not rows["device"]["cuda"]:  # the update's share of the run's own wall time
            assert 0.0 < rows[f"e2e N={n}"]["in_loop_share"] < 1.0
    assert rows["update compiled"]["updates_per_s"] > 0
    assert 7.0 < rows["replay 1M"]["gb"] < 7.2
