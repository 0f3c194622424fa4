"""Tests for scripts.plot: seed mean and band, frames vs agent steps, the written PNG/SVG figures,
groups from differing configs and --label, runs of unequal length drawn to their own end, axis
labels, titles inside the figure, human-normalized bars with bootstrap intervals, and refusal of
bad input."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from agents.run.tracking import MetricsLog
from scripts import plot, run_groups

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root, name, env, seed, human_normalized=None, preset="smoke", episodes=10, **config):
    """A run directory as scripts.train writes it: episodic return k + seed at step 100 k
    (k = 1..episodes), evaluations 2 k + seed at steps 500, 1000, ...; ``config``: more
    config.json fields."""
    run = root / name
    run.mkdir(parents=True)
    config = {"env": env, "preset": preset, "seed": seed, **config}
    (run / "config.json").write_text(json.dumps(config))
    log = MetricsLog(run / "metrics.csv")
    for k in range(1, episodes + 1):
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
    runs = [run_groups.load_run(d) for d in atari_runs[:2]]
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
    pong = run_groups.load_run(make_run(tmp_path, "pong", "ALE/Pong-v5", 0))
    cartpole = run_groups.load_run(make_run(tmp_path, "cp", "CartPole-v1", 0))
    for run, skip in ((pong, 4), (cartpole, 1)):
        steps = plot.learning_curve([run], x_scale=1)[0]
        frames = plot.learning_curve([run], x_scale=plot.frame_skip(run["env"]))[0]
        np.testing.assert_allclose(frames, skip * steps)
        assert frames[-1] == 1000 * skip


def test_main_writes_png_and_svg_with_panels_and_labels(atari_runs, tmp_path, capsys):
    out = tmp_path / "plots"
    assert (
        plot.main([*map(str, atari_runs), "--output-dir", str(out), "--bootstrap-reps", "300"]) == 0
    )
    for stem in ("learning_curves", "human_normalized"):
        png = (out / f"{stem}.png").read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 20_000, stem
    curves = svg_texts(out / "learning_curves.svg")
    assert {
        "ALE/Pong-v5",
        "ALE/Breakout-v5",
        "agent steps",
        "episode return, raw game score",
        "line: training, mean of the last 20 episodes; dots: evaluation",
    } <= curves
    assert "preset=smoke (2 seeds to 1k)" in curves  # both Pong spellings are seeds of one curve
    assert "PongNoFrameskip-v4" not in curves
    bars = svg_texts(out / "human_normalized.svg")
    assert {"pong", "breakout", "mean", "median", "iqm"} <= bars
    assert "human-normalized evaluation score" in bars
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
    table = plot.human_normalized_table([run_groups.load_run(d) for d in atari_runs], reps=2000)
    games = table["preset=smoke"]["games"]
    # breakout seeds [1.0, 1.5]: resample means 1.0, 1.25, 1.5 -> 95% interval [1.0, 1.5]
    breakout = games["breakout"]
    assert (breakout.point, breakout.low, breakout.high) == pytest.approx((1.25, 1.0, 1.5))
    assert games["pong"].point == pytest.approx(0.3)
    assert (games["pong"].low, games["pong"].high) == pytest.approx((0.2, 0.4))
    aggregates = table["preset=smoke"]["aggregates"]
    # mean = median of [0.3, 1.25] = 0.775; IQM of [0.2, 0.4, 1.0, 1.5] drops 1 each end -> 0.7
    assert aggregates["mean"].point == pytest.approx(0.775)
    assert aggregates["median"].point == pytest.approx(0.775)
    assert aggregates["iqm"].point == pytest.approx(0.7)


def test_one_game_has_no_aggregate_group(atari_runs):
    table = plot.human_normalized_table([run_groups.load_run(d) for d in atari_runs[:2]], reps=100)
    assert set(table["preset=smoke"]["games"]) == {"pong"}
    assert table["preset=smoke"]["aggregates"] == {}


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


# --- groups, unequal runs, labels and layout ----------------------------------------------------


def test_groups_are_labelled_by_the_settings_that_differ(tmp_path):
    def labels(*configs):
        runs = [make_run(tmp_path / str(len(list(tmp_path.iterdir()))), f"r{i}", **c)
                for i, c in enumerate(configs)]  # fmt: skip
        return run_groups.config_labels([run_groups.load_run(r) for r in runs])

    pong = {"env": "Pong", "seed": 1}
    # nothing differs but the seed, the output directory and the length: the preset names it
    assert labels({**pong, "output_dir": "a", "total_steps": 10},
                  {**pong, "seed": 2, "output_dir": "b", "total_steps": 20}) == [
        "preset=smoke", "preset=smoke"]  # fmt: skip
    # the presets differ; their learning rates come with them and go unsaid
    assert labels({**pong, "preset": "drq", "learning_rate": 1e-4},
                  {**pong, "preset": "der", "learning_rate": 2e-4},
                  {**pong, "preset": "drq", "learning_rate": 1e-4, "seed": 2}) == [
        "preset=drq", "preset=der", "preset=drq"]  # fmt: skip
    # two settings differ within one preset: both named, in config order
    assert labels({**pong, "n_step": 3, "double_dqn": True}, {**pong, "n_step": 1}) == [
        "n_step=3, double_dqn=True", "n_step=1, double_dqn=False"]  # fmt: skip
    # a setting a config.json lacks counts as TrainConfig's default (n_step 1)
    assert labels(pong, {**pong, "n_step": 1, "seed": 2}, {**pong, "n_step": 3}) == [
        "n_step=1", "n_step=1", "n_step=3"]  # fmt: skip
    # a setting that differs only between games is not a group of its own
    assert labels({**pong, "v_max": 10.0}, {"env": "Breakout", "seed": 1, "v_max": 20.0}) == [
        "preset=smoke", "preset=smoke"]  # fmt: skip


def unequal_runs(root):
    """Three seeds of one config (episodes to step 1000, 1000 and 1500) and one seed of
    n_step 3 (to step 800)."""
    return [
        make_run(root, "a1", "ALE/Pong-v5", 0),
        make_run(root, "a2", "ALE/Pong-v5", 1),
        make_run(root, "a3", "ALE/Pong-v5", 2, episodes=15),
        make_run(root, "b1", "ALE/Pong-v5", 0, episodes=8, n_step=3),
    ]


def test_unequal_runs_are_drawn_to_their_own_end(tmp_path):
    runs = [run_groups.load_run(d) for d in unequal_runs(tmp_path)]
    (panel,) = plot.curve_panels(runs, window=1, points=10)
    first, second = panel.groups
    assert (first.label, second.label) == ("n_step=1", "n_step=3")
    # every run to its last episode (steps 100 k), the longer seed past the others
    assert [run.x[-1] for run in first.runs] == [1000.0, 1000.0, 1500.0]
    assert [run.x[-1] for run in second.runs] == [800.0]
    assert first.runs[2].y.tolist() == [k + 2.0 for k in range(1, 16)]
    # the mean and band only where all three seeds have episodes: steps 100..1000
    x, mean, half = first.mean
    np.testing.assert_allclose(x, np.linspace(100, 1000, 10))
    np.testing.assert_allclose(mean, x / 100 + 1.0)  # seeds k, k + 1, k + 2
    np.testing.assert_allclose(half, np.full(10, 1.96 / np.sqrt(3)))  # std 1, SE 1/sqrt 3
    assert second.mean is None  # one seed: its own line, no mean
    assert first.coverage() == [(1000.0, 3), (1500.0, 1)]
    assert first.legend() == "n_step=1 (3 seeds to 1k, 1 to 1.5k)"
    assert second.legend() == "n_step=3 (1 seed to 800)"
    # the figure holds those numbers: each run's line ends at its own last step
    fig = plot.learning_curves_figure([panel])
    (ax,) = fig.axes
    ends = sorted(line.get_xdata()[-1] for line in ax.lines if line.get_linestyle() == "-")
    assert ends == [800.0, 1000.0, 1000.0, 1000.0, 1500.0]  # 4 runs and the mean
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "n_step=1 (3 seeds to 1k, 1 to 1.5k)", "n_step=3 (1 seed to 800)"]  # fmt: skip
    assert ax.get_legend().get_title().get_text() == plot.SEEDS_NOTE
    plot._pyplot().close(fig)


def test_frames_scale_the_ends_and_the_legend(tmp_path):
    runs = [run_groups.load_run(d) for d in unequal_runs(tmp_path)]
    (panel,) = plot.curve_panels(runs, x_unit="frames")
    assert [run.x[-1] for run in panel.groups[0].runs] == [4000.0, 4000.0, 6000.0]
    assert panel.groups[0].legend() == "n_step=1 (3 seeds to 4k, 1 to 6k)"


@pytest.mark.parametrize(
    ("value", "text"),
    [(950, "950"), (1000, "1k"), (100_000, "100k"), (123_456, "123k"), (1_500_000, "1.5M")],
)
def test_format_step(value, text):
    assert plot.format_step(value) == text


def test_y_axis_names_what_was_measured(tmp_path):
    pong = make_run(tmp_path, "pong", "ALE/Pong-v5", 0, protocol="atari100k", eval_epsilon=0.001)
    cartpole = make_run(tmp_path, "cp", "CartPole-v1", 0, protocol="nature", eval_epsilon=0.0)
    runs = [run_groups.load_run(pong), run_groups.load_run(cartpole)]
    panels = plot.curve_panels(runs, window=5)
    assert [p.ylabel for p in panels] == [
        "episode return, raw game score (atari100k protocol)\n"
        "line: training, mean of the last 5 episodes; dots: evaluation (ε 0.001)",
        "episode return\nline: training, mean of the last 5 episodes; dots: evaluation (ε 0)",
    ]
    fig = plot.learning_curves_figure(panels)
    assert [ax.get_ylabel() for ax in fig.axes] == [p.ylabel for p in panels]
    plot._pyplot().close(fig)
    # protocols that differ are not named on the axis (the group labels name them)
    other = make_run(tmp_path, "pong2", "Pong", 1, protocol="machado", eval_epsilon=0.001)
    (panel,) = plot.curve_panels([runs[0], run_groups.load_run(other)], window=5)
    assert panel.ylabel.splitlines()[0] == "episode return, raw game score"
    assert [g.label for g in panel.groups] == ["protocol=atari100k", "protocol=machado"]
    assert plot.bars_y_label([runs[0]]) == (
        "human-normalized evaluation score\n(atari100k protocol)"
    )


def test_titles_labels_and_legends_are_inside_the_figure(tmp_path):
    runs = unequal_runs(tmp_path)
    runs.append(make_run(tmp_path, "cp", "CartPole-v1", 0))
    loaded = [run_groups.load_run(d) for d in runs]
    long_label = "*b1=a much longer label that names the n-step variant"
    labels = run_groups.group_labels(loaded, [long_label])
    fig = plot.learning_curves_figure(plot.curve_panels(loaded, labels=labels))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = fig.bbox
    assert len(fig.axes) == 2
    for ax in fig.axes:
        for artist in (ax.title, ax.xaxis.label, ax.yaxis.label, ax.get_legend()):
            box = artist.get_window_extent(renderer)
            assert box.x0 >= inside.x0 and box.y0 >= inside.y0, artist
            assert box.x1 <= inside.x1 and box.y1 <= inside.y1, artist
    plot._pyplot().close(fig)


def test_label_flag_names_groups(tmp_path, capsys):
    runs = unequal_runs(tmp_path)
    loaded = [run_groups.load_run(d) for d in runs]
    assert run_groups.group_labels(loaded, ["*=base"]) == ["base"] * 4
    # a later --label wins; a path given another way matches the same run
    other_spelling = str(tmp_path / "x" / ".." / "b1")
    assert run_groups.group_labels(loaded, ["*=base", f"{other_spelling}=lr=1e-3"]) == [
        "base", "base", "base", "lr=1e-3"]  # fmt: skip
    assert run_groups.group_labels(loaded, [f"{tmp_path}/a*=three seeds"]) == [
        "three seeds", "three seeds", "three seeds", "n_step=3"]  # fmt: skip
    # runs given one name are seeds of one group
    (panel,) = plot.curve_panels(loaded, labels=run_groups.group_labels(loaded, ["*=all"]))
    assert [(g.label, len(g.runs)) for g in panel.groups] == [("all", 4)]
    assert panel.groups[0].legend() == "all (4 seeds to 800, 3 to 1k, 1 to 1.5k)"
    out = tmp_path / "plots"
    argv = [*map(str, runs), "--output-dir", str(out), "--label", f"{runs[3]}=n-step 3"]
    assert plot.main(argv) == 0
    assert "n-step 3 (1 seed to 800)" in svg_texts(out / "learning_curves.svg")


@pytest.mark.parametrize(
    ("label", "words"),
    [
        ("justaname", "--label: 'justaname' is not accepted; use --label RUN_DIR=NAME"),
        ("=name", "--label: '=name' is not accepted"),
        ("{run}=", "is not accepted; use --label RUN_DIR=NAME"),
        ("{tmp}/nope=x", "--label: '{tmp}/nope' matches none of the run directories given"),
    ],
)
def test_bad_label_is_one_line_and_draws_nothing(tmp_path, capsys, label, words):
    run = make_run(tmp_path, "pong", "ALE/Pong-v5", 0)
    out = tmp_path / "plots"
    label = label.replace("{run}", str(run)).replace("{tmp}", str(tmp_path))
    assert plot.main([str(run), "--output-dir", str(out), "--label", label]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("plot: error: "), err
    assert words.replace("{tmp}", str(tmp_path)) in err, err
    assert not out.exists()
