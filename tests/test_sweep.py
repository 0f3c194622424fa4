"""Sweeps on Ray (scripts/sweep.py; scripts/sweep_tasks.py, sweep_plan.py and
sweep_report.py): the grid and its run names and commands, bad input refused before any work, a
real sweep of tiny CartPole runs with a failing cell (retried once, reported, retried again by the
next invocation while the finished runs are skipped), failures kept over invocations
(failures.json), and the report's arithmetic on made-up run directories, the Atari 100k table
among it."""

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
from helpers import hang_up_when, snapshot, start_in_terminal, wait_for

from envs.atari100k import GAMES as ATARI_100K_GAMES
from envs.scores import human_score, random_score
from scripts import sweep, sweep_plan

PY = sys.executable
TINY = ["--total-steps", "300", "--learning-starts", "100", "--eval-every-steps", "0",
        "--final-eval-episodes", "2"]  # fmt: skip
"""Flags after -- of the real sweep: a CartPole run of 300 agent steps, a few seconds."""


def no_ray(monkeypatch):
    """Make ``import ray`` fail, as without the distributed extra."""
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.mark.atari
def test_dry_run_prints_the_grid_its_directories_and_commands(tmp_path, capsys, monkeypatch):
    no_ray(monkeypatch)  # a dry run needs no Ray
    out = tmp_path / "sweep1"
    argv = ["--games", "Pong,Breakout", "--seeds", "1,2", "--preset", "smoke", "--set",
            "learning_rate=1e-4,3e-4", "--output-dir", str(out), "--dry-run", "--",
            "--total-steps", "300"]  # fmt: skip
    assert sweep.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"8 runs (2 games x 2 seeds x 2 combinations), preset smoke, in {out}: 8 new, "
        "0 interrupted, 0 trained, 0 finished"
    )
    expected = []
    for game in ("Pong", "Breakout"):
        for lr in ("0.0001", "0.0003"):
            for seed in (1, 2):
                path = out / game / f"learning_rate={lr}" / f"seed{seed}"
                command = [PY, "-m", "scripts.train", "--preset", "smoke", "--env", game,
                           "--seed", str(seed), "--output-dir", str(path), "--no-progress",
                           "--torch-threads", "1", "--learning-rate", lr, "--total-steps",
                           "300"]  # fmt: skip
                name = f"{game}-learning_rate={lr}-seed{seed}"
                expected.append(f"{name}  new  {path}  {shlex.join(command)}")
    assert lines[1:] == expected
    assert not out.exists()  # nothing written
    # the flag spelling of the key and another spelling of the value: the same runs
    argv[argv.index("learning_rate=1e-4,3e-4")] = "learning-rate=0.0001,3e-4,1e-4"
    assert sweep.main(argv) == 0
    assert capsys.readouterr().out.splitlines()[1:] == expected


def test_no_set_no_set_part_and_track_puts_every_run_in_one_wandb_group(tmp_path, capsys):
    out = tmp_path / "grouped"
    argv = ["--games", "CartPole-v1", "--seeds", "3", "--preset", "cartpole", "--output-dir",
            str(out), "--cpus-per-run", "2", "--track", "--dry-run"]  # fmt: skip
    assert sweep.main(argv) == 0
    line = capsys.readouterr().out.splitlines()[1]
    path = out / "CartPole-v1" / "seed3"
    command = [PY, "-m", "scripts.train", "--preset", "cartpole", "--env", "CartPole-v1",
               "--seed", "3", "--output-dir", str(path), "--no-progress", "--torch-threads",
               "2", "--track", "--wandb-group", "grouped", "--exp-name",
               "CartPole-v1-seed3"]  # fmt: skip
    assert line == f"CartPole-v1-seed3  new  {path}  {shlex.join(command)}"


@pytest.mark.atari
def test_suite_atari100k_is_its_26_games_with_the_preset_given(tmp_path, capsys):
    argv = ["--suite", "atari100k", "--preset", "drq", "--output-dir", str(tmp_path / "s"),
            "--dry-run"]  # fmt: skip
    assert sweep.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split("  ")[0] for line in lines] == [f"{g}-seed1" for g in ATARI_100K_GAMES]
    assert all("--preset drq --env" in line for line in lines)


BAD_INPUT = [
    (["--preset", "nope"], "--preset: unknown preset 'nope'; accepted: nature, cleanrl"),
    (["--set", "learnin_rate=1e-4"],
     "--set: unknown setting 'learnin_rate'; did you mean 'learning_rate'?"),
    (["--set", "batch_size=32,3.5"], "--set batch_size: '3.5' is not accepted; use an integer"),
    (["--set", "learning_rate="], "--set learning_rate: '' is not accepted; give one or more"),
    (["--set", "env=Pong"], "--set: 'env' is set by the sweep itself; use --games"),
    (["--seeds", "1,-2"], "--seeds: '-2' is not accepted; use integers >= 0"),
    (["--suite", "atari57"], "invalid choice: 'atari57' (choose from 'atari100k')"),
    (["--games", "Pongg"], "--games: unknown env id 'Pongg'"),
    (["--cpus-per-run", "0"], "--cpus-per-run: 0.0 is not accepted; use a number > 0"),
    (["--gpus-per-run", "-0.5"], "--gpus-per-run: -0.5 is not accepted; use a number >= 0"),
    (["--suite", "atari100k"], "--games and --suite both choose the games; give one of them"),
    (["--set", "learning_rate=1e-4,-1"],  # one bad cell stops the whole sweep
     "CartPole-v1-learning_rate=-1.0-seed1: --learning-rate: -1.0 is not accepted; use a "
     "number > 0"),
    (["--", "--seed", "3"], "flags after --: --seed is not accepted; the sweep sets it"),
    (["--set", "num_actors=2"], "CartPole-v1-num_actors=2-seed1: --num-actors 2 is not accepted "
     "in a sweep: each run is one Ray task, and Ape-X actors are Ray actors of their own"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_exits_2_in_one_line_naming_it(tmp_path, capsys, monkeypatch, args, message):
    no_ray(monkeypatch)  # refused before Ray would be needed
    out = tmp_path / "out"
    head, tail = (
        (args[: args.index("--")], args[args.index("--") :]) if "--" in args else (args, [])
    )
    argv = ["--games", "CartPole-v1", "--preset", "cartpole", "--output-dir", str(out), *head]
    assert sweep.main([*argv, *tail]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("sweep: error: ")
    assert message in captured.err
    assert not out.exists()


def test_without_ray_a_sweep_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    no_ray(monkeypatch)
    out = tmp_path / "out"
    argv = ["--games", "CartPole-v1", "--preset", "cartpole", "--output-dir", str(out)]
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e .[distributed]" in err
    assert not out.exists()


@pytest.mark.xdist_group("ray")
def test_a_failing_run_is_retried_once_reported_and_the_next_sweep_skips_the_rest(
    tmp_path, capsys, ray_local
):
    """Four CartPole cells, one seed each, the learning rates 5e-4, 1e-3, 2e-3 and 1e30. 1e30
    is a valid setting (any positive rate passes validation), but the first updates overflow
    the network's parameters and scripts.train stops with exit code 1 before any checkpoint: a
    real failure of a training process. It is tried twice (its log shows both attempts; its
    directory, left without a checkpoint, is set aside before the second), reported as failed
    in report.md and report.json, and the sweep exits 1; the other three finish. The same
    command again skips the three (their summary.json unchanged byte for byte, no new attempt in
    their logs) and only tries the failed one, twice again."""
    out = tmp_path / "sw"
    argv = ["--games", "CartPole-v1", "--seeds", "1", "--preset", "cartpole", "--set",
            "learning_rate=5e-4,1e-3,2e-3,1e30", "--output-dir", str(out), "--", *TINY]  # fmt: skip
    assert sweep.main(argv) == 1
    first = capsys.readouterr().out
    ok = ["0.0005", "0.001", "0.002"]
    bad = "CartPole-v1-learning_rate=1e+30-seed1"
    for lr in ok:
        summary = json.loads((out / "CartPole-v1" / f"learning_rate={lr}" / "seed1" /
                              "summary.json").read_text())  # fmt: skip
        assert summary["global_step"] == 300 and summary["eval_episodes"] == 2
        assert f"CartPole-v1-learning_rate={lr}-seed1: finished in" in first
    log = (out / "logs" / f"{bad}.log").read_text()
    assert log.count("# attempt ") == 2 and log.count("# exit code 1 after") == 2
    assert "# attempt 1 of 2 (new)" in log and "# attempt 2 of 2 (new)" in log
    assert f"{bad}: failed: exited with code 1 after 2 attempts" in first
    bad_dir = out / "CartPole-v1" / "learning_rate=1e+30"
    assert len(list(bad_dir.glob("seed1.abandoned-*"))) == 1
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["failed"]] == [bad]
    assert [a["exit_code"] for a in report["failed"][0]["attempts"]] == [1, 1]
    rows = {row["group"]: row for row in report["rows"]}
    assert [rows[f"learning_rate={lr}"]["seeds"] for lr in ok] == [[1], [1], [1]]
    assert rows["learning_rate=1e+30"]["failed"] == [bad]
    assert rows["learning_rate=1e+30"]["mean_return"] is None
    row = "| CartPole-v1 | learning_rate=1e+30 | 0 of 1 | — | — | seed1 (exit codes 1, 1) | — |"
    md = (out / "report.md").read_text()
    assert row in md
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # failures.json keeps both attempts, with the last line each left in the log
    failures = json.loads((out / "failures.json").read_text())
    assert list(failures) == [bad] and failures[bad]["failed"] is True
    attempts = failures[bad]["attempts"]
    assert [(a["attempt"], a["state"], a["exit_code"]) for a in attempts] == [
        (1, "new", 1),
        (2, "new", 1),
    ]
    error = "train: error: network parameters became NaN or infinite by global step"
    assert all(a["last_line"].startswith(error) for a in attempts)
    assert f"- `{bad}`: 2 attempts, exit codes 1, 1; the last line of its log: `{error}" in md
    # --report alone, in a later invocation: still failed, with its exit codes
    assert sweep.main([*argv[: argv.index("--")], "--report"]) == 0
    assert row in (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    assert [(r["name"], r["status"]) for r in report["failed"]] == [(bad, "failed")]
    assert [a["exit_code"] for a in report["failed"][0]["failures"]] == [1, 1]
    capsys.readouterr()

    finished = {lr: snapshot(out / "CartPole-v1" / f"learning_rate={lr}" / "seed1")
                for lr in ok}  # fmt: skip
    logs = {lr: (out / "logs" / f"CartPole-v1-learning_rate={lr}-seed1.log").read_text()
            for lr in ok}  # fmt: skip
    assert sweep.main(argv) == 1
    second = capsys.readouterr().out
    assert second.splitlines()[0] == (
        f"4 runs (1 game x 1 seed x 4 combinations), preset cartpole, in {out}: 1 new, "
        "0 interrupted, 0 trained, 3 finished; 1 of them failed in an earlier sweep "
        "(failures.json)"
    )
    for lr in ok:
        run_dir = out / "CartPole-v1" / f"learning_rate={lr}" / "seed1"
        assert snapshot(run_dir)["summary.json"] == finished[lr]["summary.json"]
        assert snapshot(run_dir) == finished[lr]
        assert (out / "logs" / f"CartPole-v1-learning_rate={lr}-seed1.log").read_text() == logs[lr]
        assert f"learning_rate={lr}-seed1:" not in second
    log = (out / "logs" / f"{bad}.log").read_text()
    assert log.count("# attempt ") == 4 and log.count("# exit code 1 after") == 4
    assert "# attempt 3 of 4 (new)" in log and "# attempt 4 of 4 (new)" in log
    assert len(list(bad_dir.glob("seed1.abandoned-*"))) == 3
    assert f"{bad}: failed: exited with code 1 after 4 attempts (2 in earlier sweeps)" in second
    assert [r["name"] for r in json.loads((out / "report.json").read_text())["failed"]] == [bad]
    failures = json.loads((out / "failures.json").read_text())
    assert [a["attempt"] for a in failures[bad]["attempts"]] == [1, 2, 3, 4]
    assert "seed1 (exit codes 1, 1, 1, 1)" in (out / "report.md").read_text()


@pytest.mark.xdist_group("ray")
def test_a_run_that_failed_in_an_earlier_sweep_numbers_on_and_its_failure_goes_when_it_finishes(
    tmp_path, capsys, ray_local
):
    """A file where the run's directory belongs: scripts.train exits 2 (its output directory
    cannot be written). With --retries 0 the sweep tries once; failures.json keeps the attempt
    and the log's last line, --report shows the run failed with exit code 2, and --dry-run says
    it failed before. The file removed, the next sweep numbers its attempt 2 of 2, the run
    finishes and its entry leaves failures.json."""
    out = tmp_path / "blocked"
    argv = ["--games", "CartPole-v1", "--seeds", "1", "--preset", "cartpole", "--retries", "0",
            "--output-dir", str(out)]  # fmt: skip
    name, run = "CartPole-v1-seed1", out / "CartPole-v1" / "seed1"
    run.parent.mkdir(parents=True)
    run.write_text("in the way\n")
    assert sweep.main([*argv, "--", *TINY]) == 1
    assert f"{name}: failed: exited with code 2 after 1 attempt (log " in capsys.readouterr().out
    failures = json.loads((out / "failures.json").read_text())
    (attempt,) = failures[name]["attempts"]
    assert failures[name]["failed"] is True and failures[name]["path"] == str(run)
    assert (attempt["attempt"], attempt["state"], attempt["exit_code"]) == (1, "new", 2)
    assert attempt["last_line"] == (
        f"train: error: --output-dir: '{run}' cannot be written (File exists); give a writable "
        "directory"
    )
    assert sweep.main([*argv, "--report"]) == 0
    md = (out / "report.md").read_text()
    assert "| CartPole-v1 | — | 0 of 1 | — | — | seed1 (exit codes 2) | — |" in md
    assert f"- `{name}`: 1 attempt, exit code 2; the last line of its log: `train: error:" in md
    capsys.readouterr()
    assert sweep.main([*argv, "--dry-run", "--", *TINY]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert dry[0].endswith("; 1 of them failed in an earlier sweep (failures.json)")
    assert dry[1].endswith("  (failed before: 1 attempt, exit code 2)")

    run.unlink()
    assert sweep.main([*argv, "--", *TINY]) == 0
    assert f"{name}: finished in" in capsys.readouterr().out
    log = (out / "logs" / f"{name}.log").read_text()
    assert "# attempt 1 of 1 (new)" in log and "# attempt 2 of 2 (new)" in log
    assert json.loads((out / "failures.json").read_text()) == {}
    report = json.loads((out / "report.json").read_text())
    assert report["failed"] == [] and report["rows"][0]["seeds"] == [1]
    assert "failures" not in report["rows"][0]["runs"][0]


def write_run(path, game, seed, lr, mean_return=None, checkpoint_step=None, total=300,
              protocol="nature", episodes=2):  # fmt: skip
    """A made-up run directory as scripts.train leaves it: config.json and metrics.csv, then
    summary.json with the final evaluation (a finished run of ``total`` steps, ``episodes``
    evaluation episodes) or only a checkpoint (an interrupted one)."""
    path.mkdir(parents=True)
    config = {"env": game, "preset": "smoke", "seed": seed, "total_steps": total,
              "learning_rate": lr, "final_eval_episodes": episodes}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    rows = ["global_step,wall_seconds,metric,value"]
    rows += [f"{step},{step / 100},charts/episodic_return,{seed * step / 10}"
             for step in (50, 100, 150, 200, 250)]  # fmt: skip
    if mean_return is not None:
        rows.append(f"{total},3.0,eval/mean_return,{mean_return}")
        summary = {"env": game, "preset": "smoke", "protocol": protocol, "seed": seed,
                   "global_step": total, "sps": 100.0, "eval_mean_return": mean_return,
                   "eval_episodes": episodes, "eval_epsilon": 0.05}  # fmt: skip
        (path / "summary.json").write_text(json.dumps(summary))
    if checkpoint_step is not None:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / f"step_{checkpoint_step:012d}.pt").write_bytes(b"")
    (path / "metrics.csv").write_text("\n".join(rows) + "\n")


def test_report_alone_on_made_up_runs(tmp_path, capsys, monkeypatch):
    """Pong and Breakout (Atari: human-normalized with the random and human scores) and
    CartPole-v1 (no HNS), two learning rates, seeds 1 and 2; some runs unfinished or absent.
    Every number of the table computed by hand."""
    no_ray(monkeypatch)  # --report needs no Ray
    assert (random_score("Pong"), human_score("Pong")) == (-20.7, 14.6)
    assert (random_score("Breakout"), human_score("Breakout")) == (1.7, 30.5)
    out = tmp_path / "sweep"
    lr1, lr3 = "learning_rate=0.0001", "learning_rate=0.0003"
    write_run(out / "Pong" / lr1 / "seed1", "Pong", 1, 1e-4, 0.0)  # HNS 20.7 / 35.3
    write_run(out / "Pong" / lr1 / "seed2", "Pong", 2, 1e-4, 7.0)  # HNS 27.7 / 35.3
    write_run(out / "Pong" / lr3 / "seed1", "Pong", 1, 3e-4, -20.7)  # HNS 0
    write_run(out / "Pong" / lr3 / "seed2", "Pong", 2, 3e-4, checkpoint_step=100)
    write_run(out / "Breakout" / lr1 / "seed1", "Breakout", 1, 1e-4, 16.1)  # HNS 0.5
    write_run(out / "Breakout" / lr1 / "seed2", "Breakout", 2, 1e-4, 30.5)  # HNS 1
    write_run(out / "CartPole-v1" / lr1 / "seed1", "CartPole-v1", 1, 1e-4, 100.0)
    write_run(out / "CartPole-v1" / lr1 / "seed2", "CartPole-v1", 2, 1e-4, 200.0)
    write_run(out / "CartPole-v1" / lr3 / "seed1", "CartPole-v1", 1, 3e-4, 50.0)
    argv = ["--games", "Pong,Breakout,CartPole-v1", "--seeds", "1,2", "--preset", "smoke",
            "--set", "learning_rate=1e-4,3e-4", "--output-dir", str(out), "--report"]  # fmt: skip
    assert sweep.main(argv) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert md in printed
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[:7] == [
        "| game | settings | seeds | mean return | HNS | failed | unfinished |",
        "| Pong | learning_rate=0.0001 | 2 of 2 (1, 2) | 3.50 | 0.686 | — | — |",
        "| Pong | learning_rate=0.0003 | 1 of 2 (1) | -20.70 | 0.000 | — | seed2 (interrupted) |",
        "| Breakout | learning_rate=0.0001 | 2 of 2 (1, 2) | 23.30 | 0.750 | — | — |",
        "| Breakout | learning_rate=0.0003 | 0 of 2 | — | — | — | seed1 (new); seed2 (new) |",
        "| CartPole-v1 | learning_rate=0.0001 | 2 of 2 (1, 2) | 150.00 | — | — | — |",
        "| CartPole-v1 | learning_rate=0.0003 | 1 of 2 (1) | 50.00 | — | — | seed2 (new) |",
    ]
    report = json.loads((out / "report.json").read_text())
    rows = {(row["game"], row["group"]): row for row in report["rows"]}
    pong = [20.7 / 35.3, 27.7 / 35.3]
    assert rows[("Pong", lr1)]["mean_return"] == pytest.approx(3.5)
    assert rows[("Pong", lr1)]["hns"] == pytest.approx(sum(pong) / 2)
    assert [r["hns"] for r in rows[("Pong", lr1)]["runs"]] == pytest.approx(pong)
    assert rows[("Breakout", lr1)]["hns"] == pytest.approx(0.75)
    assert rows[("CartPole-v1", lr1)]["hns"] is None
    assert rows[("Pong", lr3)]["unfinished"] == ["Pong-learning_rate=0.0003-seed2"]
    assert report["failed"] == []
    groups = {group["group"]: group for group in report["groups"]}
    assert groups[lr1]["games"] == ["Pong", "Breakout"] and groups[lr1]["runs"] == 4
    agg = groups[lr1]["aggregates"]
    per_game = [sum(pong) / 2, 0.75]
    assert agg["mean"]["point"] == pytest.approx(sum(per_game) / 2)
    assert agg["median"]["point"] == pytest.approx(sum(per_game) / 2)  # two games: their mean
    assert agg["iqm"]["point"] == pytest.approx(sum(pong) / 2)  # 4 scores: 0.5 and 1.0 trimmed
    # each resample's mean is the mean of one Pong and one Breakout resample; the lowest and
    # highest (both seeds the lower, both the higher: 1 in 16 each) are the 2.5th/97.5th points
    assert agg["mean"]["low"] == pytest.approx((pong[0] + 0.5) / 2)
    assert agg["mean"]["high"] == pytest.approx((pong[1] + 1.0) / 2)
    assert groups[lr3]["aggregates"]["mean"] == pytest.approx(
        {"point": 0.0, "low": 0.0, "high": 0.0}
    )
    assert "| learning_rate=0.0001 | 2 | 4 | 0.718 [" in md
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "logs").exists()  # nothing was run


def atari100k_run(path, game, seed, lr, mean_return):
    """A made-up finished Atari 100k run: 100,000 agent steps, 100 evaluation episodes."""
    write_run(path, game, seed, lr, mean_return, total=100_000, protocol="atari100k",
              episodes=100)  # fmt: skip


def test_an_atari100k_sweep_reports_the_benchmark_table_of_each_group(tmp_path, capsys):
    """Pong, Boxing and Breakout with preset drq (the atari100k protocol, 100,000 steps), two
    learning rates, seeds 1 and 2: per group the published columns beside ours, our HNS beside
    DrQ(eps)'s, our aggregates with their intervals beside the published aggregates over the
    same games (scripts.atari100k's table); every number computed by hand. HNS = (return -
    random) / (human - random): Pong (r + 20.7) / 35.3, Boxing (r - 0.1) / 12, Breakout
    (r - 1.7) / 28.8."""
    out = tmp_path / "a100k"
    lr1, lr3 = "learning_rate=0.0001", "learning_rate=0.0003"
    atari100k_run(out / "Pong" / lr1 / "seed1", "Pong", 1, 1e-4, 14.6)  # HNS 1.0
    atari100k_run(out / "Pong" / lr1 / "seed2", "Pong", 2, 1e-4, -3.05)  # HNS 0.5
    atari100k_run(out / "Boxing" / lr1 / "seed1", "Boxing", 1, 1e-4, 6.1)  # HNS 0.5
    atari100k_run(out / "Boxing" / lr1 / "seed2", "Boxing", 2, 1e-4, 12.1)  # HNS 1.0
    atari100k_run(out / "Breakout" / lr1 / "seed1", "Breakout", 1, 1e-4, 1.7)  # HNS 0
    atari100k_run(out / "Pong" / lr3 / "seed1", "Pong", 1, 3e-4, -20.7)  # HNS 0
    argv = ["--games", "pong,Boxing,ALE/Breakout-v5", "--seeds", "1,2", "--preset", "drq",
            "--set", "learning_rate=1e-4,3e-4", "--output-dir", str(out), "--report",
            "--bootstrap-reps", "500"]  # fmt: skip
    assert sweep.main(argv) == 0
    md = (out / "report.md").read_text()
    assert md in capsys.readouterr().out
    first, second = md.split("## Atari 100k: ")[1:]
    assert first.startswith("`drq, learning_rate=0.0001` against the published per-game means")
    assert second.startswith("`drq, learning_rate=0.0003` against the published per-game means")
    assert "Not the benchmark's protocol" not in md  # drq: the atari100k protocol, 100k steps
    # DrQ(eps) HNS: Pong (-9.1 + 20.7) / 35.3 = 0.329, Boxing 8.9 / 12 = 0.742, Breakout
    # 18.1 / 28.8 = 0.628
    assert [line for line in first.splitlines() if line.startswith("| ")][:4] == [
        "| game | random | human | DER | DrQ(eps) | SPR | BBF | ours | seeds | episodes "
        "| ours HNS | DrQ(eps) HNS |",
        "| Pong | -20.7 | 14.6 | -19.3 | -9.1 | -5.4 | 16.7 | 5.8 | 1,2 | 100,100 | 0.750 "
        "| 0.329 |",
        "| Boxing | 0.1 | 12.1 | 0.2 | 9.0 | 35.7 | 85.8 | 9.1 | 1,2 | 100,100 | 0.750 | 0.742 |",
        "| Breakout | 1.7 | 30.5 | 1.9 | 19.8 | 19.6 | 370.6 | 1.7 | 1 | 100 | 0.000 | 0.628 |",
    ]
    # ours over the 3 games: per-game means 0.75, 0.75, 0 -> mean 0.5, median 0.75; IQM of the
    # 5 pooled runs [0, .5, .5, 1, 1] -> mean(.5, .5, 1) = 2/3. Resamples: Pong and Boxing each
    # {.5, .75, 1} with probabilities 1/4, 1/2, 1/4, Breakout 0: the lowest mean (1/3) and
    # highest (2/3) come with probability 1/16 each, more than 2.5%: they are the interval;
    # the median is the lower of Pong's and Boxing's: 0.5 with probability 7/16, 1 with 1/16;
    # the IQM: all .5 -> 0.5, all 1 -> 1. Published over the same 3 games: DER (1.4 / 35.3 +
    # 0.1 / 12 + 0.2 / 28.8) / 3 = 0.018, median 0.1 / 12 = 0.008; DrQ(eps) mean 0.566, median
    # 0.628.
    assert (
        "| ours (drq, learning_rate=0.0001) | 0.500 [0.333, 0.667] | 0.750 [0.500, 1.000] "
        "| 0.667 [0.500, 1.000] |" in first
    )
    assert "| DER (van Hasselt et al. 2019) | 0.018 | 0.008 | 0.018 |" in first
    assert "| DrQ(eps) (Agarwal et al. 2021) | 0.566 | 0.628 | 0.566 |" in first
    assert "over the 3 of 3 games with results (5 runs" in first
    assert "Published aggregates over all" not in first
    # the second group: Pong alone finished (HNS 0); published over Pong alone, then over all 3
    assert "| Pong | -20.7 | 14.6 | -19.3 | -9.1 | -5.4 | 16.7 | -20.7 | 1 | 100 | 0.000 " in second
    assert "| Boxing | 0.1 | 12.1 | 0.2 | 9.0 | 35.7 | 85.8 | — | — | — | — | 0.742 |" in second
    assert "| ours (drq, learning_rate=0.0003) | 0.000 [0.000, 0.000] |" in second
    assert "| DrQ(eps) (Agarwal et al. 2021) | 0.329 | 0.329 | 0.329 |" in second
    assert "Published aggregates over all 3 selected games" in second
    # the table of every run follows, without a second copy of the aggregates
    assert "## Every run" in second and "| settings | games | runs |" not in md
    assert "| Breakout | learning_rate=0.0001 | 1 of 2 (1) | 1.70 | 0.000 | — | seed2 (new) |" in md
    report = json.loads((out / "report.json").read_text())
    tables = {section["group"]: section for section in report["atari100k"]}
    assert list(tables) == [lr1, lr3]
    assert tables[lr1]["values"] == {"learning_rate": "0.0001"}
    assert (tables[lr1]["ours_protocol"], tables[lr1]["ours_total_steps"]) == ("atari100k",
                                                                             100_000)  # fmt: skip
    ours = tables[lr1]["aggregates"]["ours"]
    assert ours["mean"] == pytest.approx({"point": 0.5, "low": 1 / 3, "high": 2 / 3})
    assert ours["median"] == pytest.approx({"point": 0.75, "low": 0.5, "high": 1.0})
    assert ours["iqm"] == pytest.approx({"point": 2 / 3, "low": 0.5, "high": 1.0})
    rows = {row["game"]: row for row in tables[lr1]["rows"]}
    assert rows["Pong"]["ours"] == pytest.approx((14.6 - 3.05) / 2)
    assert rows["Boxing"]["ours_hns"] == pytest.approx(0.75)
    assert rows["Breakout"]["drq_eps_hns"] == pytest.approx(18.1 / 28.8)
    same = tables[lr1]["aggregates"]["published_same_games"]["der"]
    der = [1.4 / 35.3, 0.1 / 12, 0.2 / 28.8]
    assert same["mean"] == pytest.approx(sum(der) / 3) and same["median"] == pytest.approx(der[1])
    assert tables[lr3]["aggregates"]["games_with_results"] == ["Pong"]


def test_the_atari100k_table_follows_the_protocol_and_the_suite(tmp_path):
    """A group gets the Atari 100k table when its runs use the atari100k protocol (here one of
    two swept protocols); Atari-100k games under another protocol get none; --suite atari100k
    gets it whatever the protocol, with a line saying the runs do not use the benchmark's."""
    out = tmp_path / "mixed"
    argv = ["--games", "Pong", "--preset", "drq", "--set", "protocol=atari100k,nature",
            "--output-dir", str(out), "--report", "--bootstrap-reps", "100"]  # fmt: skip
    assert sweep.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert [section["group"] for section in report["atari100k"]] == ["protocol=atari100k"]
    md = (out / "report.md").read_text()
    assert "## Atari 100k: `drq, protocol=atari100k` against" in md
    assert "No run has finished yet." in md

    out = tmp_path / "nature"
    argv = ["--games", "Pong,Boxing", "--preset", "cleanrl", "--output-dir", str(out),
            "--report"]  # fmt: skip
    assert sweep.main(argv) == 0
    assert json.loads((out / "report.json").read_text())["atari100k"] == []
    assert "Atari 100k" not in (out / "report.md").read_text()

    out = tmp_path / "suite"
    argv = ["--suite", "atari100k", "--preset", "cleanrl", "--output-dir", str(out), "--report",
            "--", "--total-steps", "200000"]  # fmt: skip
    assert sweep.main(argv) == 0
    md = (out / "report.md").read_text()
    assert "## Atari 100k: `cleanrl` against the published per-game means" in md
    assert (
        "**Not the benchmark's protocol:** these runs use the nature protocol and 200,000 agent "
        "steps; the published columns use the atari100k protocol and 100,000 agent steps" in md
    )
    # the published aggregates over all 26 games, as scripts.atari100k's own test has them
    assert "| DER (van Hasselt et al. 2019) | 0.285 | 0.161 |" in md
    assert len([line for line in md.splitlines() if line.startswith("| Alien |")]) == 2


def test_report_alone_reads_the_failures_of_earlier_sweeps(tmp_path, capsys, monkeypatch):
    """failures.json as the scheduler writes it, for three CartPole runs: seed1 given up (exit
    codes 1, then lost by Ray): failed; seed2 failed once, then stopped with its checkpoint:
    interrupted, with its failed attempt; seed3 failed once, finished since: finished, its
    stale entry ignored."""
    no_ray(monkeypatch)
    out = tmp_path / "earlier"
    base = out / "CartPole-v1"
    write_run(base / "seed2", "CartPole-v1", 2, 1e-4, checkpoint_step=100)
    write_run(base / "seed3", "CartPole-v1", 3, 1e-4, 120.0)

    def attempt(number, code, error=None, last_line=None):
        return {"attempt": number, "state": "new", "exit_code": code, "seconds": 1.5,
                "error": error, "last_line": last_line, "ended": "2025-01-01 00:00:00"}  # fmt: skip

    failures = {
        "CartPole-v1-seed1": {"path": str(base / "seed1"), "failed": True, "attempts": [
            attempt(1, 1, last_line="train: error: out of `memory`"),
            attempt(2, None, error="the worker died")]},
        "CartPole-v1-seed2": {"path": str(base / "seed2"), "failed": False,
                              "attempts": [attempt(1, -9)]},
        "CartPole-v1-seed3": {"path": str(base / "seed3"), "failed": True,
                              "attempts": [attempt(1, 1)]},
    }  # fmt: skip
    (out / "failures.json").write_text(json.dumps(failures))
    argv = ["--games", "CartPole-v1", "--seeds", "1,2,3", "--preset", "smoke", "--output-dir",
            str(out), "--report"]  # fmt: skip
    assert sweep.main(argv) == 0
    md = (out / "report.md").read_text()
    assert (
        "| CartPole-v1 | — | 1 of 3 (3) | 120.00 | — | seed1 (exit codes 1, lost) "
        "| seed2 (interrupted, 1 failed attempt) |" in md
    )
    assert "- `CartPole-v1-seed1`: 2 attempts, exit codes 1, lost; Ray: the worker died" in md
    report = json.loads((out / "report.json").read_text())
    runs = {r["seed"]: r for r in report["rows"][0]["runs"]}
    assert [runs[s]["status"] for s in (1, 2, 3)] == ["failed", "interrupted", "finished"]
    assert [r["name"] for r in report["failed"]] == ["CartPole-v1-seed1"]
    assert "failures" not in runs[3] and runs[2]["failures"][0]["exit_code"] == -9
    assert json.loads((out / "failures.json").read_text()) == failures  # --report only reads


def test_run_states_follow_the_atari100k_suite(tmp_path):
    """The states come from scripts.atari100k (final_result, run_state); a run that ended early
    by reaching --stop-at-return is finished too."""
    run = tmp_path / "run"
    write_run(run, "CartPole-v1", 1, 1e-4, checkpoint_step=100)
    assert sweep_plan.state_of(run) == "interrupted"
    (run / "checkpoints" / "step_000000000300.pt").write_bytes(b"")
    assert sweep_plan.state_of(run) == "trained"
    summary = {"env": "CartPole-v1", "seed": 1, "global_step": 200, "solved_at_step": 200,
               "eval_mean_return": 480.0, "eval_episodes": 10}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    assert sweep_plan.state_of(run) == "finished"
    assert sweep_plan.result_of(run)["mean_return"] == 480.0


@pytest.mark.xdist_group("ray")
@pytest.mark.parametrize("stop", ["SIGTERM", "its terminal hangs up"])
def test_a_stop_ends_every_run_with_its_checkpoint_and_the_same_command_resumes(
    tmp_path, ray_local, stop
):
    """The sweep as its own process, joining the tests' Ray instance (``--address`` with its
    GCS address), two CartPole runs of 8,000 steps: SIGTERM once both have logged reaches each
    training as SIGTERM (the Ray task forwards the cancel), each checkpoints and exits 143, the
    report lists them as interrupted, the sweep exits 143; the same command, dry, resumes them.
    The sweep's terminal hanging up (SIGHUP; it then has nowhere to print) does the same, and
    the sweep exits 129."""
    out = tmp_path / "stopped"
    extra = ["--total-steps", "8000", "--eval-every-steps", "0", "--final-eval-episodes", "2"]
    argv = ["--games", "CartPole-v1", "--seeds", "1,2", "--preset", "cartpole", "--output-dir",
            str(out), "--address", ray_local.get_runtime_context().gcs_address]  # fmt: skip
    runs = [out / "CartPole-v1" / f"seed{seed}" for seed in (1, 2)]

    def both_logged() -> bool:
        return all((run / "metrics.csv").is_file() for run in runs)

    if stop == "SIGTERM":
        command = [PY, "-m", "scripts.sweep", *argv, "--", *extra]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip
        wait_for(both_logged, proc, timeout_s=90)
        proc.send_signal(signal.SIGTERM)
        printed = proc.communicate(timeout=90)[0]
        assert proc.returncode == 143, printed
    else:
        proc, terminal = start_in_terminal("scripts.sweep", [*argv, "--", *extra],
                                           dict(os.environ))  # fmt: skip
        printed = hang_up_when(both_logged, proc, terminal, timeout_s=90)
        assert proc.returncode == 129, printed
    for run in runs:
        assert sweep_plan.state_of(run) == "interrupted", printed
        log = (out / "logs" / f"CartPole-v1-{run.name}.log").read_text()
        assert log.count("# attempt ") == 1 and log.rstrip().splitlines()[-1].startswith(
            "# exit code 143 after"
        )
        if stop == "SIGTERM":
            assert f"CartPole-v1-{run.name}: stopped after" in printed
    md = (out / "report.md").read_text()
    assert (
        "| CartPole-v1 | — | 0 of 2 | — | — | — | seed1 (interrupted); seed2 (interrupted) |" in md
    )
    dry_run = [PY, "-m", "scripts.sweep", *argv, "--dry-run", "--", *extra]
    dry = subprocess.run(dry_run, capture_output=True, text=True, check=True).stdout.splitlines()
    assert dry[1:] == [
        f"CartPole-v1-{run.name}  interrupted  {run}  " + shlex.join(
            [PY, "-m", "scripts.train", "--resume", str(run), "--no-progress", "--torch-threads",
             "1", *extra]
        )
        for run in runs
    ]  # fmt: skip


def test_a_cell_whose_directory_holds_a_run_of_other_settings_is_refused(tmp_path, capsys):
    """A sweep never skips, resumes or reports a run started with other settings as its cell:
    another preset or other flags after -- are refused before any work, naming the setting."""
    from agents.dqn.presets import preset
    from agents.run.checkpoint import config_to_dict

    out = tmp_path / "out"
    path = out / "CartPole-v1" / "seed1"
    path.mkdir(parents=True)
    config = preset("cartpole").replace(env="CartPole-v1", seed=1, output_dir=str(path))
    (path / "config.json").write_text(json.dumps(config_to_dict(config)))
    argv = ["--games", "CartPole-v1", "--output-dir", str(out), "--dry-run"]
    assert sweep.main([*argv, "--preset", "cartpole"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("CartPole-v1-seed1  new  ")
    for args, words in [
        (["--preset", "cartpole-rainbow"], 'preset is "cartpole" there, "cartpole-rainbow" here'),
        (["--preset", "cartpole", "--", "--gamma", "0.9"], "gamma is 0.99 there, 0.9 here"),
    ]:
        assert sweep.main([*argv, *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
        assert f"CartPole-v1-seed1: {path} holds a run started with other settings" in err
