"""The command-line scripts, in-process: an Atari smoke run end to end, and bad input."""

import csv
import json

import imageio_ffmpeg
import pytest

from agents.run.checkpoint import latest_checkpoint, load_checkpoint
from scripts import evaluate as evaluate_script
from scripts import train as train_script


@pytest.mark.atari
def test_breakout_smoke_train_then_evaluate_and_record(tmp_path, capsys):
    run = tmp_path / "run"
    rc = train_script.main(
        ["--env", "Breakout", "--preset", "smoke", "--total-steps", "2000", "--seed", "3",
         "--output-dir", str(run), "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((run / "summary.json").read_text())
    for key in ("env", "preset", "global_step", "sps", "eval_mean_return", "eval_episodes",
                "eval_human_normalized"):  # fmt: skip
        assert key in summary
    assert summary["global_step"] == 2000 and summary["preset"] == "smoke"
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert state["global_step"] == 2000 and state["num_actions"] == 4
    assert state["obs_shape"] == [4, 84, 84]
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    returns = [float(r["value"]) for r in rows if r["metric"] == "charts/episodic_return"]
    lengths = [float(r["value"]) for r in rows if r["metric"] == "charts/episodic_length"]
    assert returns, "no episode finished in 2,000 steps"
    # Raw game score of whole games: whole points, and far longer than one of Breakout's 5 lives.
    assert all(r >= 0 and r == int(r) for r in returns)
    assert min(lengths) > 100
    assert any(r["metric"] == "losses/td_loss" for r in rows)

    videos = tmp_path / "videos"
    rc = evaluate_script.main([str(run), "--episodes", "2", "--record", str(videos),
                               "--output-dir", str(tmp_path / "eval")])  # fmt: skip
    assert rc == 0
    mp4s = sorted(videos.glob("*.mp4"))
    assert len(mp4s) == 2
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(mp4s[0]))
    assert frames > 100
    evaluation = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert evaluation["episodes"] == 2 and evaluation["protocol"] == "nature"
    assert "human_normalized" in evaluation
    out = capsys.readouterr().out
    assert "human-normalized" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-run"], "missing-run does not exist"),
        (["{tmp}", "--episodes", "0"], "--episodes: 0"),
        (["{tmp}"], "no checkpoint"),
        (["{tmp}/garbage.pt"], "cannot be loaded"),
    ],
)
def test_evaluate_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    rc = evaluate_script.main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and message in err


def test_list_games(capsys):
    assert train_script.main(["--list-games"]) == 0
    games = capsys.readouterr().out.split()
    assert "ALE/Pong-v5" in games and len(games) > 100


@pytest.mark.atari
def test_demo_quick_tour_writes_every_output(tmp_path, capsys):
    from scripts import demo

    assert demo.main(["--quick", "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "plots" / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "plots" / "learning_curves.svg").exists()
    assert (tmp_path / "videos" / "episode_000.mp4").stat().st_size > 1_000
    for run in ("cartpole", "atari"):
        assert (tmp_path / run / "summary.json").exists()
        assert list((tmp_path / run / "wandb").glob("offline-run-*"))
    outputs = capsys.readouterr().out.split("\nOutputs:\n")[1].splitlines()
    assert len(outputs) == 5 + len(demo.list_pretrained())  # one line per output, all of them
    assert len({line.index(str(tmp_path)) for line in outputs}) == 1  # in one column
