"""Tests for scripts.plot: seed mean and band, frames vs agent steps, the written PNG/SVG figures,
human-normalized bars with bootstrap intervals, and refusal of bad input."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from agents.tracking import MetricsLog
from scripts import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root, name, env, seed, human_normalized=None, preset="smoke"):
    """A run directory as scripts.train writes it: episodic return k + seed at step 100 k
    (k = 1..10), evaluations 2 k + seed at steps 500 and 1000."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"env": env, "preset": preset, "seed": seed}))
    log = MetricsLog(run / "metrics.csv")
    for k in range(1, 11):
        log.log({"charts/episodic_return": k + seed}, step=100 * k)
        if k % 5 == 0:
            log.log({"eval/mean_return": 2 * k + seed}, step=100 * k)
    log.close()
    summary = {"env": env, "preset": preset, "seed": seed}
    if human_normalized is not None:
        summary["eval_human_normalized"] = human_normalized
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def atari_runs(tmp_path):
    return [
        make_run(tmp_path, "pong0", "ALE/Pong-v5", 0, 0.2),
        make_run(tmp_path, "pong1", "PongNoFrameskip-v4", 1, 0.4),  # same game, other spelling
        make_run(tmp_path, "breakout0", "ALE/Breakout-v5", 0, 1.0),
        make_run(tmp_path, "breakout1", "ALE/Breakout-v5", 1, 1.5),
    ]


def svg_texts(path):
    root = ET.parse(path).getroot()  # raises if the SVG is not well-formed XML
    return {"".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")}


def test_seed_mean_band_is_mean_plus_minus_1_96_standard_errors():
    # seeds [1, 2] and [3, 6]: mean [2, 4]; std (ddof 1) [sqrt 2, sqrt 8];
    # SE = std / sqrt 2 = [1, 2]; half-width 1.96 SE
    mean, half = plot.seed_mean_band(np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_allclose(mean, [2.0, 4.0])
    np.testing.assert_allclose(half, [1.96, 3.92])
    mean, half = plot.seed_mean_band(np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(mean, [1.0, 2.0])
    assert half is None


def test_learning_curve_of_two_seeds(atari_runs):
    runs = [plot.load_run(d) for d in atari_runs[:2]]
    x, mean, half = plot.learning_curve(runs, window=1, points=10)
    np.testing.assert_allclose(x, np.linspace(100, 1000, 10))
    # seeds return k and k + 1 at step 100 k: mean k + 0.5; std 1/sqrt 2, SE 1/2 -> 0.98
    np.testing.assert_allclose(mean, x / 100 + 0.5)
    np.testing.assert_allclose(half, np.full(10, 0.98))
    # window 3 at the last point: seed 0 averages 8, 9, 10 -> 9; seed 1 -> 10
    assert plot.learning_curve(runs, window=3)[1][-1] == pytest.approx(9.5)


@pytest.mark.parametrize(
    ("env", "skip"),
    [("ALE/Pong-v5", 4), ("Breakout", 4), ("PongNoFrameskip-v4", 4), ("CartPole-v1", 1)],
)
def test_frame_skip_is_4_for_atari_and_1_otherwise(env, skip):
    assert plot.frame_skip(env) == skip


def test_frames_multiply_agent_steps_by_the_frame_skip(tmp_path):
    pong = plot.load_run(make_run(tmp_path, "pong", "ALE/Pong-v5", 0))
    cartpole = plot.load_run(make_run(tmp_path, "cp", "CartPole-v1", 0))
    for run, skip in ((pong, 4), (cartpole, 1)):
        steps = plot.learning_curve([run], x_scale=1)[0]
        frames = plot.learning_curve([run], x_scale=plot.frame_skip(run["env"]))[0]
        np.testing.assert_allclose(frames, skip * steps)
        assert frames[-1] == 1000 * skip


def test_main_writes_png_and_svg_with_panels_and_labels(atari_runs, tmp_path, capsys):
    out = tmp_path / "plots"
    assert plot.main([*map(str, atari_runs), "--output-dir", str(out), "--reps", "300"]) == 0
    for stem in ("learning_curves", "human_normalized"):
        png = (out / f"{stem}.png").read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 20_000, stem
    curves = svg_texts(out / "learning_curves.svg")
    assert {
        "ALE/Pong-v5",
        "ALE/Breakout-v5",
        "agent steps",
        "episodic return (raw score)",
    } <= curves
    assert "smoke (2 seed(s))" in curves  # both Pong spellings are seeds of one curve
    assert "PongNoFrameskip-v4" not in curves
    bars = svg_texts(out / "human_normalized.svg")
    assert {"pong", "breakout", "mean", "median", "iqm", "human-normalized score"} <= bars
    assert {"per game: mean over seeds, 95% CI", "aggregate over games, 95% CI"} <= bars
    names = ["learning_curves.png", "learning_curves.svg"]
    names += ["human_normalized.png", "human_normalized.svg"]
    assert capsys.readouterr().out.split() == [str(out / name) for name in names]


def test_x_frames_labels_and_ticks(tmp_path):
    runs = [
        make_run(tmp_path, "pong", "ALE/Pong-v5", 0),
        make_run(tmp_path, "cp", "CartPole-v1", 0),
    ]
    args = [str(r) for r in runs]
    assert plot.main([*args, "--output-dir", str(tmp_path / "frames"), "--x", "frames"]) == 0
    assert plot.main([*args, "--output-dir", str(tmp_path / "steps")]) == 0
    frames = svg_texts(tmp_path / "frames" / "learning_curves.svg")
    steps = svg_texts(tmp_path / "steps" / "learning_curves.svg")
    assert {"emulator frames (skip 4)", "emulator frames (skip 1)"} <= frames
    assert "agent steps" in steps and "agent steps" not in frames
    # the Pong panel reaches step 1000 = frame 4000; CartPole stays at 1000
    assert "4000" in frames and "1000" in frames
    assert "4000" not in steps


def test_human_normalized_table_numbers(atari_runs):
    table = plot.human_normalized_table([plot.load_run(d) for d in atari_runs], reps=2000)
    games = table["smoke"]["games"]
    # breakout seeds [1.0, 1.5]: resample means 1.0, 1.25, 1.5 -> 95% interval [1.0, 1.5]
    breakout = games["breakout"]
    assert (breakout.point, breakout.low, breakout.high) == pytest.approx((1.25, 1.0, 1.5))
    assert games["pong"].point == pytest.approx(0.3)
    assert (games["pong"].low, games["pong"].high) == pytest.approx((0.2, 0.4))
    aggregates = table["smoke"]["aggregates"]
    # mean = median of [0.3, 1.25] = 0.775; IQM of [0.2, 0.4, 1.0, 1.5] drops 1 each end -> 0.7
    assert aggregates["mean"].point == pytest.approx(0.775)
    assert aggregates["median"].point == pytest.approx(0.775)
    assert aggregates["iqm"].point == pytest.approx(0.7)


def test_one_game_has_no_aggregate_group(atari_runs):
    table = plot.human_normalized_table([plot.load_run(d) for d in atari_runs[:2]], reps=100)
    assert set(table["smoke"]["games"]) == {"pong"} and table["smoke"]["aggregates"] == {}


def test_bars_skipped_with_a_note_without_human_scores(tmp_path, capsys):
    runs = [make_run(tmp_path, f"cp{s}", "CartPole-v1", s) for s in range(2)]
    out = tmp_path / "plots"
    assert plot.main([*map(str, runs), "--output-dir", str(out)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: no run has a human-normalized score (e.g. CartPole); no bar chart written"
    ]
    assert (out / "learning_curves.svg").exists()
    assert not (out / "human_normalized.png").exists()


def test_dir_without_metrics_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert plot.main([str(tmp_path / "empty"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("plot: error:") and "no metrics.csv" in err
    assert not (tmp_path / "out").exists()


def test_bad_x_unit_and_window_are_refused(atari_runs, tmp_path):
    with pytest.raises(ValueError, match="x unit 'seconds' is not accepted; use one of steps"):
        plot.plot_learning_curves(atari_runs, tmp_path, x_unit="seconds")
    with pytest.raises(ValueError, match="--window: 0"):
        plot.plot_learning_curves(atari_runs, tmp_path, window=0)
