"""One supervised run per directory (scripts.train_supervised): a directory that holds a run is
refused before any work, ``--overwrite`` replaces that run whole, the default directory is new
for each run, a directory in use is refused, and a run stopped by a signal leaves the directory
as it was (a supervised run cannot be continued)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import snapshot, wait_for

from agents.run.directory import RunLock
from scripts import train_supervised

ROOT = Path(__file__).resolve().parents[1]
XOR = ["--dataset", "xor", "--model", "mlp", "--no-progress"]


def train(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()
    code = train_supervised.main([*XOR, *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def metric_rows(path: Path) -> list[tuple[str, str]]:
    """(global step, metric) of each row of metrics.csv."""
    lines = path.read_text().splitlines()[1:]
    return [(line.split(",")[0], line.split(",")[2]) for line in lines]


def test_a_directory_that_holds_a_run_is_refused_and_that_run_kept(tmp_path, capsys):
    out = tmp_path / "xor"
    assert train(capsys, "--output-dir", str(out))[0] == 0
    before = snapshot(out)
    code, printed, err = train(capsys, "--output-dir", str(out), "--seed", "2")
    assert code == 2 and printed == []
    assert err == [
        f"train_supervised: error: --output-dir: {out} already holds a run (config.json, "
        "metrics.csv, summary.json, model.pt); give another --output-dir, or start over there "
        "with --overwrite (deletes that run)"
    ]
    assert snapshot(out) == before


def test_overwrite_replaces_the_run_whole(tmp_path, capsys):
    """The second run's metrics.csv holds its own rows only: before, it was appended to the
    first run's (each step's metrics twice, two runs mixed in one file)."""
    out, fresh = tmp_path / "xor", tmp_path / "fresh"
    assert train(capsys, "--output-dir", str(out))[0] == 0
    code, printed, _ = train(capsys, "--output-dir", str(out), "--seed", "2", "--overwrite")
    assert code == 0 and printed[0] == f"--overwrite: deleted the run that was in {out}"
    assert train(capsys, "--output-dir", str(fresh), "--seed", "2")[0] == 0
    rows = metric_rows(out / "metrics.csv")
    assert len(rows) == len(set(rows)) == 240  # 60 epochs x 4 metrics, once each
    assert rows == metric_rows(fresh / "metrics.csv")
    assert json.loads((out / "config.json").read_text())["seed"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {**json.loads((fresh / "summary.json").read_text()),
                       "seconds": summary["seconds"], "config": summary["config"]}  # fmt: skip


def test_overwrite_refuses_a_directory_that_holds_other_files_and_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "xor"
    assert train(capsys, "--output-dir", str(out))[0] == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = train(capsys, "--output-dir", str(out), "--overwrite")
    assert code == 2 and err == [
        f"train_supervised: error: --overwrite: {out} also holds files that are not a run's "
        "(notes.txt); nothing was deleted; move them away or give another --output-dir"
    ]
    assert snapshot(out) == before


def test_the_default_output_dir_is_a_new_directory_for_each_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = 1_800_000_000.0  # both runs start in the same second
    monkeypatch.setattr(train_supervised.time, "time", lambda: now)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    first = Path("runs/supervised") / f"xor__mlp__s0__{stamp}"
    for expected in (first, first.with_name(f"{first.name}-2")):
        code, printed, _ = train(capsys)
        assert code == 0 and printed[-1].endswith(f"parameters -> {expected}")
        assert json.loads((expected / "config.json").read_text())["output_dir"] == str(expected)
    assert sorted(p.name for p in (tmp_path / "runs/supervised").iterdir()) == [
        first.name, f"{first.name}-2"
    ]  # fmt: skip


def test_a_directory_in_use_by_a_running_run_is_refused(tmp_path, capsys):
    out = tmp_path / "xor"
    out.mkdir()
    lock = RunLock.acquire(out)  # as a run of another process holds it
    try:
        code, _, err = train(capsys, "--output-dir", str(out), "--overwrite")
    finally:
        lock.release()
    assert code == 2 and err == [
        f"train_supervised: error: --output-dir: {out} is in use by another run (pid "
        f"{os.getpid()}, which holds {out / '.lock'}); wait for it to end, or give another "
        "--output-dir"
    ]
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


@pytest.mark.parametrize("existing", [False, True], ids=["a new directory", "a user's directory"])
def test_a_run_stopped_by_a_signal_leaves_the_directory_as_it_was(tmp_path, existing):
    out, marker = tmp_path / "xor", tmp_path / "marker"
    if existing:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "DQN_TEST_PAUSE": "epoch:3", "DQN_TEST_PAUSE_MARKER": str(marker)}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.train_supervised", *XOR, "--output-dir", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(marker.exists, process)  # two epochs logged, the third about to start
    assert len(metric_rows(out / "metrics.csv")) == 8
    process.send_signal(signal.SIGINT)
    printed, err = process.communicate(timeout=600)
    assert process.returncode == 130 and err == "", err
    assert printed.splitlines() == [
        f"stopped by SIGINT before the run finished; what it wrote in {out} was removed (a "
        "supervised run cannot be continued: run it again)"
    ]
    if existing:
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()
