"""scripts.ablation stopped and continued: Ctrl-C (or SIGTERM to the ablation alone) stops the
run under way with its checkpoint, starts no other and writes no table; the same command then
continues the stopped run, trains the rest and writes the table; once more, it trains nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--seeds", "1", "--variants", "DQN", "+ 3-step", "--jobs", "1", "--max-steps", "10000"]


def ablation(out: Path, pause: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    if pause is not None:  # the first run waits in its first evaluation (step 5,000)
        env.update(DQN_TEST_PAUSE="evaluation", DQN_TEST_PAUSE_MARKER=str(pause))
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.ablation", *ARGS, "--output-dir", str(out)], cwd=ROOT,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip


def rows(metrics: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(",")[0:3:2]) for line in metrics.read_text().splitlines()[1:]]


@pytest.mark.parametrize(("how", "code"), [("Ctrl-C", 130), ("SIGTERM to the ablation", 143)])
def test_a_stopped_ablation_is_continued_by_the_same_command(tmp_path, how, code):
    out, marker = tmp_path / "ablation", tmp_path / "marker"
    process = ablation(out, pause=marker)
    wait_for(marker.exists, process)
    if how == "Ctrl-C":  # the terminal's process group: the ablation and its workers
        os.killpg(process.pid, signal.SIGINT)
    else:  # the ablation alone: it passes SIGTERM on to the run
        process.send_signal(signal.SIGTERM)
    printed = process.communicate(timeout=600)[0]
    assert process.returncode == code and "Traceback" not in printed, printed
    name = signal.Signals(code - 128).name
    assert printed.splitlines()[-1] == (
        f"stopped by {name}: 0 of 2 runs ended, 2 stopped with their checkpoint or not started; "
        "the same command continues them"
    )
    stopped = json.loads((out / "DQN-seed1" / "summary.json").read_text())
    assert stopped["stopped_by"] == name and stopped["global_step"] == 5000
    assert sorted(p.name for p in out.iterdir()) == ["DQN-seed1"]  # no other run, no table
    if how != "Ctrl-C":
        return
    process = ablation(out)
    printed = process.communicate(timeout=600)[0]
    assert process.returncode == 0, printed
    results = json.loads((out / "ablation.json").read_text())
    assert [(r["variant"], r["seed"]) for r in results] == [("DQN", 1), ("+ 3-step", 1)]
    for run in ("DQN-seed1", "3-step-seed1"):
        summary = json.loads((out / run / "summary.json").read_text())
        assert "stopped_by" not in summary
        assert summary["global_step"] == 10000 or summary["solved_at_step"] is not None
        metrics = rows(out / run / "metrics.csv")
        assert len(metrics) == len(set(metrics))  # continued, not written twice
    table = (out / "ablation.md").read_bytes()
    process = ablation(out)  # everything ended: nothing is trained, the same table
    printed = process.communicate(timeout=600)[0]
    assert process.returncode == 0 and "device:" not in printed, printed
    assert (out / "ablation.md").read_bytes() == table
    assert json.loads((out / "ablation.json").read_text()) == results


def test_a_run_refused_ends_the_ablation_in_one_line_and_starts_no_other(tmp_path):
    """A run's directory that also holds other files is not overwritten: the ablation stops
    there (exit 2, one line) instead of training every other run first."""
    out = tmp_path / "ablation"
    (out / "DQN-seed1").mkdir(parents=True)
    (out / "DQN-seed1" / "metrics.csv").write_text("global_step,wall_seconds,metric,value\n")
    (out / "DQN-seed1" / "notes.txt").write_text("mine")
    process = ablation(out)
    printed = process.communicate(timeout=600)[0]
    assert process.returncode == 2, printed
    assert printed.splitlines() == [
        f"ablation: error: --overwrite: {out / 'DQN-seed1'} also holds files that are not a "
        "run's (notes.txt); nothing was deleted; move them away or give another --output-dir"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["DQN-seed1"]
    left = sorted(p.name for p in (out / "DQN-seed1").iterdir())
    assert left == [".lock", "metrics.csv", "notes.txt"]  # the lock file of the refused run
