"""The Atari 100k suite (scripts/atari100k.py): the reference table, the report's arithmetic on
made-up results, the resumable loop's decisions, and one tiny real run end to end."""

import json
import math
import os
import signal
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from helpers import hang_up_when, start_in_terminal, wait_for

from agents.dqn.presets import preset
from agents.run.checkpoint import config_to_dict
from envs import atari100k
from envs.scores import human_score, random_score
from scripts import atari100k as suite
from scripts import atari100k_report as tables

ROOT = Path(__file__).resolve().parents[1]


def test_reference_table_is_the_projects_copy_with_its_published_aggregates():
    rows = atari100k.table()
    assert len(atari100k.GAMES) == 26 and atari100k.GAMES[0] == "Alien"
    assert rows["Breakout"] == {"random": 1.7, "human": 30.5, "der": 1.9, "drq_eps": 19.8,
                                "spr": 19.6, "bbf": 370.6}  # fmt: skip
    assert rows["Frostbite"]["der"] == 866.8  # the value that reproduces DER's median
    for game in atari100k.GAMES:  # the same random/human scores as the DQN Zoo table
        assert (rows[game]["random"], rows[game]["human"]) == (random_score(game),
                                                               human_score(game))  # fmt: skip
    everything = atari100k.GAMES
    agg = tables.published_aggregates(everything)
    assert round(agg["der"]["mean"], 3) == 0.285 and round(agg["der"]["median"], 3) == 0.161
    assert round(agg["drq_eps"]["mean"], 3) == 0.465
    assert round(agg["spr"]["mean"], 3) == 0.616 and round(agg["spr"]["median"], 3) == 0.396
    assert round(agg["bbf"]["mean"], 3) == 2.247 and round(agg["bbf"]["median"], 3) == 0.917
    # the published means on the README's 8 games
    eight = tables.published_aggregates(atari100k.EIGHT_GAMES)
    assert (round(eight["drq_eps"]["mean"], 3), round(eight["drq_eps"]["median"], 3)) == (
        0.538, 0.488,
    )  # fmt: skip
    assert (round(eight["der"]["mean"], 3), round(eight["der"]["median"], 3)) == (0.326, 0.087)
    assert (round(eight["spr"]["mean"], 3), round(eight["spr"]["median"], 3)) == (0.949, 0.637)


def test_game_names_and_normalization():
    assert atari100k.game_name("ALE/MsPacman-v5") == "MsPacman"
    assert atari100k.game_name("road_runner") == "RoadRunner"
    assert atari100k.normalized("Pong", 14.6) == pytest.approx(1.0)
    assert atari100k.normalized("pong", -20.7) == 0.0
    with pytest.raises(ValueError, match="26 Atari-100k games"):
        atari100k.game_name("Tennis")


def write_run(path, game, seed, mean_return, total=100_000, episodes=100, **extra):
    """A finished run as ``scripts.train --preset drq`` leaves it: its full config.json and a
    summary with the final evaluation."""
    path.mkdir(parents=True)
    config = preset("drq").replace(env=game, seed=seed, total_steps=total, output_dir=str(path))
    (path / "config.json").write_text(json.dumps(config_to_dict(config)))
    summary = {"env": game, "preset": "drq", "protocol": "atari100k", "seed": seed,
               "global_step": total, "sps": 50.0, "eval_mean_return": mean_return,
               "eval_episodes": episodes, "eval_epsilon": 0.001, **extra}  # fmt: skip
    (path / "summary.json").write_text(json.dumps(summary))


def test_report_arithmetic_on_made_up_results(tmp_path):
    # Pong: HNS (r + 20.7) / 35.3; Boxing: (r - 0.1) / 12; Breakout: (r - 1.7) / 28.8.
    results = {
        ("Pong", 1): 14.6, ("Pong", 2): -3.05,  # HNS 1.0 and 0.5
        ("Boxing", 1): 6.1, ("Boxing", 2): 12.1,  # HNS 0.5 and 1.0
        ("Breakout", 1): 1.7,  # HNS 0.0; seed 2 never finished
    }  # fmt: skip
    games = ["Boxing", "Breakout", "Pong", "Seaquest"]  # Seaquest: no run at all
    runs = [tables.Run(g, s, tmp_path / g / f"seed{s}") for g in games for s in (1, 2)]
    costs = {"wall_seconds": 3_600.0, "updates": 98_400, "peak_rss_gb": 1.5}  # Pong seed 1
    for (game, seed), value in results.items():
        extra = costs if (game, seed) == ("Pong", 1) else {}
        write_run(tmp_path / game / f"seed{seed}", game, seed, value, **extra)
    (tmp_path / "Breakout" / "seed2" / "checkpoints").mkdir(parents=True)  # interrupted
    (tmp_path / "Breakout" / "seed2" / "checkpoints" / "step_000000020000.pt").write_bytes(b"")
    report = tables.build_report(games, runs, "drq", reps=500)
    rows = {row["game"]: row for row in report["rows"]}
    assert rows["Pong"]["ours"] == pytest.approx((14.6 - 3.05) / 2)
    assert rows["Pong"]["ours_hns"] == pytest.approx(0.75)
    assert [r["hns"] for r in rows["Pong"]["runs"]] == pytest.approx([1.0, 0.5])
    assert rows["Boxing"]["ours_hns"] == pytest.approx(0.75)
    assert rows["Breakout"]["ours_hns"] == pytest.approx(0.0)
    assert [r["seed"] for r in rows["Breakout"]["runs"]] == [1]
    assert "ours" not in rows["Seaquest"] and rows["Seaquest"]["drq_eps"] == 352.3
    assert rows["Pong"]["drq_eps_hns"] == pytest.approx((-9.1 + 20.7) / 35.3)
    agg = report["aggregates"]
    assert agg["games_with_results"] == ["Boxing", "Breakout", "Pong"] and agg["runs"] == 5
    ours = agg["ours"]
    assert ours["mean"]["point"] == pytest.approx((0.75 + 0.0 + 0.75) / 3)
    assert ours["median"]["point"] == pytest.approx(0.75)
    # IQM of the 5 pooled run scores [0, 0.5, 0.5, 1, 1]: drop 1 at each end -> mean(0.5, 0.5, 1)
    assert ours["iqm"]["point"] == pytest.approx(2.0 / 3.0)
    for name in ("mean", "median", "iqm"):
        assert ours[name]["low"] <= ours[name]["point"] <= ours[name]["high"]
    # Breakout's single run cannot vary; Pong's and Boxing's resample {0.5, 1}: mean in [1/3, 2/3]
    assert ours["mean"]["low"] >= 1 / 3 - 1e-12 and ours["mean"]["high"] <= 2 / 3 + 1e-12
    same = agg["published_same_games"]["drq_eps"]
    hns = sorted(rows[g]["drq_eps_hns"] for g in ("Boxing", "Breakout", "Pong"))
    assert same["mean"] == pytest.approx(np.mean(hns)) and same["median"] == hns[1]
    text = tables.render_markdown(report)
    assert (
        "| Pong | -20.7 | 14.6 | -19.3 | -9.1 | -5.4 | 16.7 | 5.8 | 1,2 | 100,100 | 0.750 |" in text
    )
    assert "| Seaquest | 68.4 | 42,054.7 |" in text and "| — | — | — | — |" in text
    assert "over the 3 of 4 games with results (5 runs" in text
    assert "Published aggregates over all 4 selected games" in text
    # each run's cost: 98,400 updates in one hour; a summary without the figures shows dashes
    assert "| Pong | 1 | 14.60 | 100 | 1.00 | 27.3 | 1.50 |" in text
    assert "| Pong | 2 | -3.05 | 100 | — | — | — |" in text
    assert [(r["game"], r["seed"], r["state"], r["checkpoint_step"]) for r in report["unfinished"]
            ] == [("Breakout", 2, "interrupted", 20_000), ("Seaquest", 1, "new", None),
                  ("Seaquest", 2, "new", None)]  # fmt: skip
    assert text.endswith(
        "Not finished (3 of 8 runs): Breakout seed 2 (checkpoint at 20,000 agent steps); "
        "Seaquest seed 1 (not started); Seaquest seed 2 (not started).\n"
    )


def test_an_unfinished_run_is_said_with_its_progress():
    run = {"game": "Pong", "seed": 1, "state": "interrupted", "checkpoint_step": 40_000,
           "total_steps": 100_000}  # fmt: skip
    assert (
        tables.unfinished_text(run) == "Pong seed 1 (checkpoint at 40,000 of 100,000 agent steps)"
    )
    trained = {**run, "state": "trained", "checkpoint_step": 100_000}
    assert tables.unfinished_text(trained) == (
        "Pong seed 1 (trained; its final evaluation is still to be played)"
    )


def test_run_states_and_the_commands_that_start_or_resume_them(tmp_path):
    args = Namespace(preset="drq", torch_threads=1, no_save_replay=False)
    new = tables.Run("Pong", 1, tmp_path / "Pong" / "seed1")
    assert tables.run_state(new.path) == "new"
    cmd = suite.train_command(new, "new", args, ["--total-steps", "500"])
    assert cmd[:3] == [sys.executable, "-m", "scripts.train"]
    assert cmd[3:] == ["--preset", "drq", "--env", "Pong", "--seed", "1", "--output-dir",
                       str(new.path), "--no-progress", "--torch-threads", "1", "--save-replay",
                       "--total-steps", "500"]  # fmt: skip
    (new.path / "checkpoints").mkdir(parents=True)
    (new.path / "checkpoints" / "step_000000020000.pt").write_bytes(b"")
    assert tables.run_state(new.path) == "interrupted"
    no_replay = Namespace(**{**vars(args), "no_save_replay": True})
    cmd = suite.train_command(new, "interrupted", no_replay, [])
    assert cmd[3:] == ["--resume", str(new.path), "--no-progress", "--torch-threads", "1"]
    # a stop by a signal writes a summary without an evaluation: still to be resumed
    (new.path / "summary.json").write_text(json.dumps({"global_step": 20_000,
                                                       "stopped_by": "SIGTERM"}))  # fmt: skip
    assert tables.run_state(new.path) == "interrupted"
    done = tables.Run("Boxing", 1, tmp_path / "Boxing" / "seed1")
    write_run(done.path, "Boxing", 1, 5.0)
    assert tables.run_state(done.path) == "finished"
    # a run extended with a larger --total-steps is not finished until it reaches it
    (done.path / "checkpoints").mkdir()
    (done.path / "checkpoints" / "step_000000100000.pt").write_bytes(b"")
    assert tables.run_state(done.path) == "finished"
    (done.path / "config.json").write_text(json.dumps({"total_steps": 200_000}))
    assert tables.run_state(done.path) == "interrupted"


def test_a_directory_without_checkpoint_is_set_aside_not_deleted(tmp_path):
    path = tmp_path / "Pong" / "seed1"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    moved = suite.set_aside(path)
    assert not path.exists() and (moved / "config.json").read_text() == "{}"
    assert moved.name.startswith("seed1.abandoned-")


def test_games_seeds_and_bad_input(capsys, tmp_path):
    assert suite.select_games(None, None) == list(atari100k.EIGHT_GAMES)
    assert suite.select_games(None, "atari100k") == list(atari100k.GAMES)
    assert suite.select_games("pong, ms_pacman,Pong", None) == ["Pong", "MsPacman"]
    assert suite.parse_seeds(["1,2", "3"]) == [1, 2, 3]
    for argv, words in (
        (["--games", "Pong", "--suite", "atari100k"], "give one of them"),
        (["--games", "Tennis"], "not one of the 26"),
        (["--seeds", "x"], "--seeds"),
        (["--jobs", "0"], "--jobs"),
        (["--preset", "nope"], "--preset"),
        (["--baseline", str(tmp_path / "nope")], "is not a directory; give the --output-dir"),
        (["--baseline", str(tmp_path), "--output-dir", str(tmp_path)], "is this suite's"),
    ):
        assert suite.main(argv) == 2, argv
        assert words in capsys.readouterr().err


def test_a_baseline_suite_is_paired_game_by_game_with_the_settings_that_differ(tmp_path, capsys):
    here, there = tmp_path / "resets", tmp_path / "plain"
    # here: Pong HNS 1.0, Boxing 0.5, Breakout 0.0; the baseline: Pong 0.5, Boxing 1.0, no Breakout
    for game, ours, theirs in (
        ("Pong", 14.6, -3.05),
        ("Boxing", 6.1, 12.1),
        ("Breakout", 1.7, None),
    ):
        write_run(here / game / "seed1", game, 1, ours)
        config = json.loads((here / game / "seed1" / "config.json").read_text())
        config["reset_every_steps"] = 20_000
        (here / game / "seed1" / "config.json").write_text(json.dumps(config))
        if theirs is not None:
            write_run(there / game / "seed1", game, 1, theirs)
    (there / "Breakout" / "seed1" / "checkpoints").mkdir(parents=True)  # not finished there
    rc = suite.main(["--games", "Boxing,Breakout,Pong", "--output-dir", str(here), "--report",
                     "--baseline", str(there), "--bootstrap-reps", "200", "--",
                     "--reset-every-steps", "20000"])  # fmt: skip
    assert rc == 0
    comparison = json.loads((here / "report.json").read_text())["comparison"]
    assert [row["game"] for row in comparison["rows"]] == ["Boxing", "Pong"]
    assert comparison["settings"] == {"reset_every_steps": [20_000, 0]}
    assert (comparison["higher"], comparison["lower"], comparison["pairs"]) == (1, 1, 2)
    assert comparison["ours"]["mean"]["point"] == pytest.approx(0.75)
    assert comparison["baseline"]["mean"]["point"] == pytest.approx(0.75)
    text = (here / "report.md").read_text()
    assert f"## Against the baseline `{there}`" in text
    assert "Settings that differ: `reset_every_steps` `20000` here, `0` there." in text
    assert "| Boxing | 1 | 6.10 | 12.10 | 0.500 | 1.000 | -0.500 |" in text
    assert "| Pong | 1 | 14.60 | -3.05 | 1.000 | 0.500 | +0.500 |" in text
    assert "Over the 2 games with a pair (2 pairs of runs; higher on 1, lower on 1)" in text
    assert "| baseline | 0.750 [0.750, 0.750] | 0.750 [0.750, 0.750] |" in text
    assert text in capsys.readouterr().out
    empty = tables.render_comparison({"baseline_dir": "b", "rows": [], "settings": {}}, "drq")
    assert empty[-1] == "No game and seed has finished in both suites yet."


def test_report_only_writes_markdown_and_json(tmp_path, capsys):
    write_run(tmp_path / "Pong" / "seed1", "Pong", 1, -3.05)
    rc = suite.main(["--games", "Pong,Boxing", "--output-dir", str(tmp_path), "--report",
                     "--bootstrap-reps", "200"])  # fmt: skip
    assert rc == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["aggregates"]["ours"]["mean"]["point"] == pytest.approx(0.5)
    assert (tmp_path / "report.md").read_text() in capsys.readouterr().out
    assert not (tmp_path / "logs").exists()  # nothing was trained


@pytest.mark.atari
def test_suite_trains_a_tiny_real_run_then_skips_it(tmp_path, capsys):
    """Pong, 300 agent steps of drq (200 updates), 2 evaluation episodes capped at 50 steps,
    as its own scripts.train process; the second call finds it finished and trains nothing."""
    tiny = ["--", "--total-steps", "300", "--learning-starts", "100", "--final-eval-episodes",
            "2", "--eval-max-steps", "50", "--checkpoint-every-steps", "200",
            "--no-record-video", "--epsilon-decay-start", "100",
            "--epsilon-decay-steps", "100"]  # fmt: skip
    argv = ["--games", "Pong", "--seeds", "1", "--output-dir", str(tmp_path), "--jobs", "1",
            "--torch-threads", "1", "--bootstrap-reps", "200", *tiny]  # fmt: skip
    assert suite.main(argv) == 0, (tmp_path / "logs" / "Pong-seed1.log").read_text()[-3000:]
    out = capsys.readouterr().out
    assert "Pong-seed1: started" in out and "Pong-seed1: finished" in out
    summary = json.loads((tmp_path / "Pong" / "seed1" / "summary.json").read_text())
    assert summary["global_step"] == 300 and summary["eval_episodes"] == 2
    assert summary["protocol"] == "atari100k" and summary["eval_epsilon"] == 0.001
    report = json.loads((tmp_path / "report.json").read_text())
    (row,) = report["rows"]
    assert row["ours"] == summary["eval_mean_return"]
    assert math.isclose(row["ours_hns"], (summary["eval_mean_return"] + 20.7) / 35.3)
    assert suite.main(argv) == 0
    out = capsys.readouterr().out
    assert "1 finished, 0 to run" in out and "started" not in out


def paused_suite(tmp_path: Path) -> tuple[list[str], dict[str, str], Path]:
    """A suite of one Pong run that waits while it writes its checkpoint of step 200: argv, env,
    and the marker file it writes there."""
    marker = tmp_path / "marker"
    env = {**os.environ, "WANDB_MODE": "disabled", "DQN_TEST_PAUSE": "checkpoint:1",
           "DQN_TEST_PAUSE_MARKER": str(marker)}  # fmt: skip
    argv = ["--games", "Pong", "--seeds", "1", "--output-dir", str(tmp_path / "suite"), "--jobs",
            "1", "--torch-threads", "1", "--", "--total-steps", "300", "--learning-starts", "100",
            "--checkpoint-every-steps", "200", "--final-eval-episodes", "0",
            "--no-record-video"]  # fmt: skip
    return argv, env, marker


def check_stopped_at_200(tmp_path: Path, sig: int) -> None:
    """The suite's run stopped by ``sig`` with its checkpoint of step 200, to be continued."""
    run = tmp_path / "suite" / "Pong" / "seed1"
    log = (tmp_path / "suite" / "logs" / "Pong-seed1.log").read_text().splitlines()
    assert log[-1] == (f"stopped by {signal.Signals(sig).name} at global step 200; checkpoint "
                       f"{run}/checkpoints/step_000000000200.pt; continue with --resume {run}"
                       ), log[-5:]  # fmt: skip
    assert json.loads((run / "summary.json").read_text())["global_step"] == 200
    assert tables.run_state(run) == "interrupted"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGHUP, 129)],
                         ids=["Ctrl-C", "the shell hangs up its job"])  # fmt: skip
def test_a_signal_to_the_process_group_stops_each_run_with_its_checkpoint(tmp_path, sig, code):
    """Ctrl-C reaches every process of the terminal's group, the suite and its runs, as does the
    SIGHUP a shell passes to its jobs when its terminal closes; the suite also sends each run
    SIGTERM: each run takes the two as one stop, so the checkpoint it was writing (step 200 here)
    is finished and kept, and the same command continues it."""
    argv, env, marker = paused_suite(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.atari100k", *argv], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    wait_for(marker.exists, process)  # the run writes its checkpoint of step 200
    os.killpg(process.pid, sig)  # the suite and its run
    printed = process.communicate(timeout=600)[0]
    assert process.returncode == code, printed
    assert "Pong-seed1: stopped after" in printed and "with its checkpoint" in printed
    check_stopped_at_200(tmp_path, sig)


def test_the_suites_terminal_hanging_up_stops_each_run_with_its_checkpoint(tmp_path):
    """The suite leads the session of a terminal that closes: it alone gets SIGHUP, sends each
    run SIGTERM, and with nowhere left to print (the terminal answers EIO) still waits for them
    and writes its report; exit 129."""
    argv, env, marker = paused_suite(tmp_path)
    process, terminal = start_in_terminal("scripts.atari100k", argv, env)
    printed = hang_up_when(marker.exists, process, terminal)
    assert process.returncode == 129, printed
    check_stopped_at_200(tmp_path, signal.SIGTERM)
    (row,) = json.loads((tmp_path / "suite" / "report.json").read_text())["rows"]
    assert row["game"] == "Pong" and row["runs"] == []  # written, with no finished run in it


def test_a_run_stopped_during_its_final_evaluation_gets_it_from_scripts_evaluate(tmp_path):
    run = tables.Run("Pong", 2, tmp_path / "Pong" / "seed2")
    (run.path / "checkpoints").mkdir(parents=True)
    config = {"env": "Pong", "total_steps": 100_000, "final_eval_episodes": 100,
              "eval_max_steps": 27_000}  # fmt: skip
    (run.path / "config.json").write_text(json.dumps(config))
    (run.path / "checkpoints" / "step_000000080000.pt").write_bytes(b"")
    assert tables.run_state(run.path) == "interrupted"
    (run.path / "checkpoints" / "step_000000100000.pt").write_bytes(b"")
    assert tables.run_state(run.path) == "trained"
    cmd = suite.evaluate_command(run)
    assert cmd[1:] == ["-m", "scripts.evaluate", str(run.path), "--episodes", "100",
                       "--max-episode-frames", "108000", "--seed", "10002", "--output-dir",
                       str(run.path / "evaluation")]  # fmt: skip
    (run.path / "evaluation").mkdir()
    evaluation = {"env": "Pong", "mean_return": -3.05, "episodes": 100, "epsilon": 0.001,
                  "protocol": "atari100k", "global_step": 100_000}  # fmt: skip
    (run.path / "evaluation" / "summary.json").write_text(json.dumps(evaluation))
    assert tables.run_state(run.path) == "finished"
    (result,) = tables.collect([run])["Pong"]
    assert result["hns"] == pytest.approx(0.5) and result["source"] == "evaluate"
    assert (result["episodes"], result["epsilon"]) == (100, 0.001)


def test_runs_started_with_other_settings_are_refused_before_any_work(tmp_path, capsys):
    """A directory of drq runs is neither reported nor continued as another preset's, nor with
    other flags after --; the refusal names the run, the first differing setting and both
    values, and writes nothing."""
    write_run(tmp_path / "Pong" / "seed1", "Pong", 1, -3.05)
    base = ["--games", "Pong", "--seeds", "1", "--output-dir", str(tmp_path),
            "--bootstrap-reps", "200"]  # fmt: skip
    refusals = [
        (["--preset", "der", "--report"], 'preset is "drq" there, "der" here (and '),
        (["--report", "--", "--n-step", "3"], "n_step is 10 there, 3 here; give the settings"),
        (["--", "--weight-init", "torch"], 'weight_init is "xavier" there, "torch" here'),
    ]
    for args, words in refusals:
        assert suite.main(base + args) == 2, args
        err = capsys.readouterr().err
        assert f"{tmp_path / 'Pong' / 'seed1'} holds a run started with other settings" in err
        assert words in err and err.count("\n") == 1, err
        assert not (tmp_path / "report.md").exists() and not (tmp_path / "logs").exists()
    # settings a resume may change (threads, replay saving, the number of final episodes) and
    # the same values given again are the same run
    same = ["--report", "--torch-threads", "2", "--", "--n-step", "10", "--final-eval-episodes",
            "30", "--no-save-replay"]  # fmt: skip
    assert suite.main(base + same) == 0
    assert json.loads((tmp_path / "report.json").read_text())["rows"][0]["ours"] == -3.05
