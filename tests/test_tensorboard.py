"""TensorBoard event files: the scalars of metrics.csv (tags, steps, values, wall times) read back
with TensorBoard's own reader, a resumed run with no step twice, failures that warn once and never
stop a run, and a missing package named in one line before a run starts."""

import dataclasses
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    SCALARS,
    EventAccumulator,
)

from agents.dqn.config import TrainConfig  # noqa: E402
from agents.run.tracking import (  # noqa: E402
    TENSORBOARD_DIR,
    Tracker,
    _rows,
    read_metrics,
    require_tensorboard,
    truncate_metrics,
)


def f32(value):
    """``value`` as the event format stores it."""
    return float(np.float32(value))


def without_tensorboard(monkeypatch):
    """Make ``import tensorboard`` fail as it does where the package is not installed."""
    for name in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)


def events(run_dir):
    """{tag: [(step, value, wall_time)]} of the run's event files, every event kept."""
    acc = EventAccumulator(str(run_dir / TENSORBOARD_DIR), size_guidance={SCALARS: 0})
    acc.Reload()
    return {
        tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def steps_and_values(run_dir):
    return {tag: [(s, v) for s, v, _ in points] for tag, points in events(run_dir).items()}


def csv_as_float32(run_dir):
    """metrics.csv as the event format stores it: each value a float32."""
    series = read_metrics(run_dir / "metrics.csv")
    return {k: [(s, f32(v)) for s, v in points] for k, points in series.items()}


def event_files(run_dir):
    return sorted((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))


def log_steps(tracker, steps, offset=0.0):
    for step in steps:
        tracker.log({"charts/episodic_return": step / 3 + offset, "losses/td_loss": 1 / step},
                    step=step)  # fmt: skip


def test_event_files_hold_the_scalars_of_metrics_csv(tmp_path):
    tracker = Tracker(tmp_path, {"lr": 1e-4}, tensorboard=True)
    log_steps(tracker, (100, 200))
    tracker.log({"charts/episodic_return": float("nan"), "charts/SPS": 1234.5678}, step=300)
    tracker.log({"charts/episodic_return": 21.0}, step=300)  # two values at one step
    tracker.log({"eval/mean_return": -20.5}, step=300)
    start = tracker.metrics.start_time
    tracker.finish()
    assert steps_and_values(tmp_path) == csv_as_float32(tmp_path)
    assert steps_and_values(tmp_path) == {
        "charts/episodic_return": [(100, f32(33.3333)), (200, f32(66.6667)), (300, 21.0)],
        "losses/td_loss": [(100, f32(0.01)), (200, f32(0.005))],
        "charts/SPS": [(300, f32(1234.57))],  # 6 digits, as metrics.csv holds it
        "eval/mean_return": [(300, -20.5)],
    }  # fmt: skip
    # wall times on the run's clock: its start plus metrics.csv's wall_seconds
    walls = {}
    for row in _rows(tmp_path / "metrics.csv"):
        walls.setdefault(row["metric"], []).append(start + float(row["wall_seconds"]))
    assert {tag: [w for _, _, w in p] for tag, p in events(tmp_path).items()} == walls
    assert len(event_files(tmp_path)) == 1


def test_the_config_switches_tensorboard_on(tmp_path):
    Tracker(tmp_path / "on", {"tensorboard": True}).finish()
    Tracker(tmp_path / "off", {"tensorboard": False}).finish()
    Tracker(tmp_path / "absent", {"lr": 1e-4}).finish()
    assert len(event_files(tmp_path / "on")) == 1
    assert not (tmp_path / "off" / TENSORBOARD_DIR).exists()
    assert not (tmp_path / "absent" / TENSORBOARD_DIR).exists()


def test_a_resumed_run_has_each_step_once(tmp_path):
    tracker = Tracker(tmp_path, {}, tensorboard=True)
    log_steps(tracker, (100, 200, 300, 400, 500))
    tracker.finish()
    # resumed from a checkpoint at step 300, as the training loop does: metrics.csv is cut back,
    # then steps 400 and 500 come again (other values) and the run goes on
    wall, _ = truncate_metrics(tmp_path / "metrics.csv", 300)
    tracker = Tracker(tmp_path, {}, tensorboard=True, wall_offset_seconds=wall)
    log_steps(tracker, (400, 500, 600), offset=1000.0)
    tracker.finish()
    assert len(event_files(tmp_path)) == 1
    got = steps_and_values(tmp_path)
    assert got == csv_as_float32(tmp_path)
    assert [s for s, _ in got["charts/episodic_return"]] == [100, 200, 300, 400, 500, 600]
    assert got["charts/episodic_return"][3] == (400, f32(1133.33))


def test_tensorboard_on_for_the_first_time_at_resume_gets_the_whole_history(tmp_path):
    tracker = Tracker(tmp_path, {})
    log_steps(tracker, (100, 200))
    tracker.finish()
    tracker = Tracker(tmp_path, {}, tensorboard=True)
    log_steps(tracker, (300,))
    tracker.finish()
    got = steps_and_values(tmp_path)
    assert got == csv_as_float32(tmp_path)
    assert [s for s, _ in got["losses/td_loss"]] == [100, 200, 300]


def test_tensorboard_that_cannot_start_warns_once_and_the_run_goes_on(tmp_path, capsys):
    (tmp_path / TENSORBOARD_DIR).write_text("not a folder")
    tracker = Tracker(tmp_path, {}, tensorboard=True)
    log_steps(tracker, (100, 200))
    tracker.finish()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("warning: tensorboard could not start (FileExistsError: ")
    assert err[0].endswith(f"continuing with local metrics in {tmp_path / 'metrics.csv'}")
    assert [s for s, _ in read_metrics(tmp_path / "metrics.csv")["losses/td_loss"]] == [100, 200]


def test_tensorboard_that_fails_mid_run_warns_once_and_metrics_continue(tmp_path, capsys):
    tracker = Tracker(tmp_path, {}, tensorboard=True)
    log_steps(tracker, (100,))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    tracker.tensorboard.writer.add_scalar = full_disk
    log_steps(tracker, (200, 300))
    tracker.finish()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: tensorboard stopped working (OSError: [Errno 28] No space left on device); "
        "local metrics continue"
    ]
    assert [s for s, _ in read_metrics(tmp_path / "metrics.csv")["losses/td_loss"]] == [
        100, 200, 300]  # fmt: skip
    assert [s for s, _ in steps_and_values(tmp_path)["losses/td_loss"]] == [100]


def test_a_missing_tensorboard_package_is_one_line_naming_the_install(tmp_path, monkeypatch,
                                                                      capsys):  # fmt: skip
    require_tensorboard()  # installed here: nothing to say
    without_tensorboard(monkeypatch)
    with pytest.raises(ValueError) as raised:
        require_tensorboard()
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(
        "--tensorboard: the tensorboard package cannot be imported (import of tensorboard halted"
    )
    assert message.endswith(
        "install it with `pip install -e .[tensorboard]` (or `pip install tensorboard`), or "
        "leave out --tensorboard"
    )
    # a Tracker asked for it anyway warns and goes on
    tracker = Tracker(tmp_path, {}, tensorboard=True)
    log_steps(tracker, (100,))
    tracker.finish()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("warning: tensorboard could not start (ModuleNotFoundError: ")
    assert read_metrics(tmp_path / "metrics.csv")["losses/td_loss"] == [(100, 0.01)]
    assert not (tmp_path / TENSORBOARD_DIR).exists()


# --- through scripts.train --tensorboard ---------------------------------------------------------

needs_flag = pytest.mark.skipif(
    "tensorboard" not in {f.name for f in dataclasses.fields(TrainConfig)},
    reason="TrainConfig has no tensorboard setting",
)
CARTPOLE = [
    "--env", "CartPole-v1", "--preset", "cartpole", "--learning-starts", "200", "--buffer-size",
    "1000", "--log-every-steps", "100", "--checkpoint-every-steps", "300", "--eval-every-steps",
    "0", "--target-update-steps", "150", "--no-progress", "--no-record-video",
    "--final-eval-episodes", "1",
]  # fmt: skip


@needs_flag
def test_train_with_tensorboard_writes_metrics_csv_as_events_and_resumes(tmp_path):
    from scripts.train import main as train_main

    out = tmp_path / "run"
    args = [*CARTPOLE, "--tensorboard", "--total-steps", "700", "--output-dir", str(out)]
    assert train_main(args) == 0
    assert steps_and_values(out) == csv_as_float32(out)
    assert [s for s, _ in steps_and_values(out)["charts/SPS"]][-1] == 700
    # as if killed between the checkpoints at 600 and 700: the resumed run makes steps 601..700
    # again, and the event files hold each of them once, as metrics.csv does
    (out / "checkpoints" / "step_000000000700.pt").unlink()
    assert train_main(["--resume", str(out)]) == 0
    got = steps_and_values(out)
    assert got == csv_as_float32(out)
    assert [s for s, _ in got["charts/SPS"]] == list(range(100, 800, 100))
    assert len(event_files(out)) == 1
    # --overwrite deletes the event files with the rest of the run
    assert train_main([*args, "--total-steps", "300", "--overwrite"]) == 0
    assert [s for s, _ in steps_and_values(out)["charts/SPS"]] == [100, 200, 300]
    assert len(event_files(out)) == 1


@needs_flag
def test_train_tensorboard_without_the_package_exits_2_before_the_run(
    tmp_path, monkeypatch, capsys
):
    from scripts.train import main as train_main

    without_tensorboard(monkeypatch)
    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--tensorboard", "--output-dir", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--tensorboard: the tensorboard package cannot be imported" in line
    assert "pip install -e .[tensorboard]" in line
    assert not out.exists()
