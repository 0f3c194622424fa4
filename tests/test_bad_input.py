"""Every flag of scripts/train.py is checked before any work starts: exit code 2 and one line
naming the flag, the value and what is accepted. The table is the list of cases."""

from __future__ import annotations

import dataclasses

import pytest

from agents.config import TrainConfig
from scripts import train as train_script

# (flags, text the one error line must contain)
BAD_TRAIN = [
    (["--env", "Pongg"], "--env: unknown env id 'Pongg' (closest: Pong"),
    (["--env", "CartPol-v1"], "closest: CartPole-v1"),
    (["--preset", "fast-please"], "--preset: unknown preset 'fast-please'; accepted: nature"),
    (["--protocol", "deepmind"], "invalid choice 'deepmind' for argument '--protocol'"),
    (["--loss", "l1"], "invalid choice 'l1' for argument '--loss'"),
    (["--optimizer", "sgd"], "invalid choice 'sgd' for argument '--optimizer'"),
    (["--wandb-mode", "cloud"], "invalid choice 'cloud' for argument '--wandb-mode'"),
    (["--compile", "yes"], "invalid choice 'yes' for argument '--compile'"),
    (["--cuda-graphs", "1"], "invalid choice '1' for argument '--cuda-graphs'"),
    (["--tf32", "fast"], "invalid choice 'fast' for argument '--tf32'"),
    (["--async-envs", "maybe"], "invalid choice 'maybe' for argument '--async-envs'"),
    (["--total-steps", "abc"], "--total-steps: invalid literal for int()"),
    (["--learning-rate", "fast"], "--learning-rate"),
    (["--totl-steps", "5"], "Unrecognized options: --totl-steps, 5; did you mean --total-steps?"),
    (["--seed", "-1"], "--seed: -1 is not accepted; use an integer >= 0"),
    (["--total-steps", "0"], "--total-steps: 0 is not accepted; use an integer >= 1"),
    (["--num-envs", "0"], "--num-envs: 0 is not accepted; use an integer >= 1"),
    (["--buffer-size", "0"], "--buffer-size: 0 is not accepted; use an integer >= 1"),
    (
        ["--buffer-size", "40", "--num-envs", "8", "--batch-size", "4"],
        "--buffer-size: 40 is too small for --num-envs 8; use at least 56",
    ),
    (["--batch-size", "0"], "--batch-size: 0 is not accepted; use an integer >= 1"),
    (
        ["--batch-size", "64", "--buffer-size", "32"],
        "--batch-size: 64 is larger than --buffer-size 32",
    ),
    (["--train-frequency", "0"], "--train-frequency: 0 is not accepted"),
    (["--gradient-steps", "0"], "--gradient-steps: 0 is not accepted"),
    (["--n-step", "0"], "--n-step: 0 is not accepted"),
    (["--target-update-steps", "0"], "--target-update-steps: 0 is not accepted"),
    (["--eval-max-steps", "0"], "--eval-max-steps: 0 is not accepted"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints: 0 is not accepted"),
    (["--log-every-steps", "0"], "--log-every-steps: 0 is not accepted"),
    (["--checkpoint-every-steps", "-5"], "--checkpoint-every-steps: -5 is not accepted"),
    (["--learning-starts", "-1"], "--learning-starts: -1 is not accepted; use an integer >= 0"),
    (
        ["--learning-starts", "500", "--total-steps", "400"],
        "--learning-starts: 500 is not below --total-steps 400",
    ),
    (["--epsilon-decay-steps", "-1"], "--epsilon-decay-steps: -1 is not accepted"),
    (
        ["--epsilon-decay-fraction", "1.5"],
        "--epsilon-decay-fraction: 1.5 is not accepted; use a number in (0, 1] or None",
    ),
    (["--epsilon-decay-fraction", "0"], "--epsilon-decay-fraction: 0.0 is not accepted"),
    (
        ["--epsilon-decay-fraction", "0.1", "--epsilon-decay-steps", "500"],
        "--epsilon-decay-steps/--epsilon-decay-fraction: both set the epsilon decay; give one",
    ),
    (["--eval-every-steps", "-1"], "--eval-every-steps: -1 is not accepted"),
    (["--eval-episodes", "-2"], "--eval-episodes: -2 is not accepted"),
    (["--final-eval-episodes", "-1"], "--final-eval-episodes: -1 is not accepted"),
    (["--learning-rate", "-0.1"], "--learning-rate: -0.1 is not accepted; use a number > 0"),
    (["--learning-rate", "0"], "--learning-rate: 0.0 is not accepted"),
    (["--optimizer-eps", "0"], "--optimizer-eps: 0.0 is not accepted; use a number > 0"),
    (["--rmsprop-alpha", "1.5"], "--rmsprop-alpha: 1.5 is not accepted; use a number in (0, 1)"),
    (["--max-grad-norm", "-1"], "--max-grad-norm: -1.0 is not accepted; use >= 0"),
    (["--gamma", "1.5"], "--gamma: 1.5 is not accepted; use a number in [0, 1]"),
    (["--tau", "0"], "--tau: 0.0 is not accepted; use a number in (0, 1]"),
    (["--epsilon-start", "1.2"], "--epsilon-start: 1.2 is not accepted; use [0, 1]"),
    (["--epsilon-end", "-0.1"], "--epsilon-end: -0.1 is not accepted; use [0, 1]"),
    (["--eval-epsilon", "2"], "--eval-epsilon: 2.0 is not accepted; use [0, 1]"),
    (["--num-atoms", "1"], "--num-atoms: 1 is not accepted; use an integer >= 2"),
    (["--v-min", "5", "--v-max", "5"], "--v-min/--v-max: [5.0, 5.0] is not accepted"),
    (["--noisy-sigma0", "0"], "--noisy-sigma0: 0.0 is not accepted; use a number > 0"),
    (["--priority-alpha", "-1"], "--priority-alpha: -1.0 is not accepted; use >= 0"),
    (["--priority-beta-start", "1.5"], "--priority-beta-start: 1.5 is not accepted; use [0, 1]"),
    (["--hidden", "64", "0"], "--hidden: [64, 0] is not accepted; use one or more widths >= 1"),
    (["--torch-threads", "-2"], "--torch-threads: -2 is not accepted"),
    (["--wandb-init-timeout", "0"], "--wandb-init-timeout: 0.0 is not accepted; use seconds > 0"),
    (["--device", "tpu"], "--device: 'tpu' is not accepted; use auto, cpu or cuda"),
    (["--replay-device", "disk"], "--replay-device: 'disk' is not accepted"),
    (["--device", "cuda"], "--device: 'cuda' was asked for but CUDA is not available"),
    (["--resume", "{tmp}/none"], "--resume: '{tmp}/none' holds no config.json"),
    (["--output-dir", "{tmp}/file/run"], "--output-dir: '{tmp}/file/run' cannot be written"),
]
# Settings with no invalid value of their own (any value is a valid choice).
FREE = {"stop_at_return", "double_dqn", "dueling", "distributional", "noisy", "prioritized",
        "record_video", "progress", "track", "save_replay", "wandb_project", "wandb_entity",
        "wandb_group", "wandb_tags", "v_max", "output_dir"}  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_train_flag_exits_2_with_one_line_before_any_work(tmp_path, capsys, args, message):
    if "--device" in args and "cuda" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    (tmp_path / "file").write_text("a file, not a directory")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "run"
    base = ["--preset", "smoke", "--env", "CartPole-v1", "--output-dir", str(out)]
    code = train_script.main([*base, *args] if "--resume" not in args else args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("train: error: ")
    assert message.replace("{tmp}", str(tmp_path)) in err, err
    assert not out.exists()  # refused before any work


def test_the_table_covers_every_setting_that_can_be_wrong():
    covered = {a[2:].replace("-", "_") for args, _ in BAD_TRAIN for a in args if a[:2] == "--"}
    settings = {f.name for f in dataclasses.fields(TrainConfig)}
    assert settings - covered - FREE == set()


BOXED = """╭─ Unrecognized options ─────────────╮
│ Unrecognized options: --totl-steps │
│ ────────────────────────────────── │
│ Perhaps you meant:                 │
│     --total-steps INT              │
│         Agent steps. (default: 5)  │
│ ────────────────────────────────── │
│ For full helptext, run train --help│
╰────────────────────────────────────╯"""
PLAIN = """ Value error
 ------------------------------------
  Error parsing --total-steps: invalid literal for int() with base
  10: 'abc'
  ------------------------------------
  Argument helptext:
      --total-steps INT
"""


def test_tyro_errors_are_condensed_to_one_line_in_both_layouts():
    from scripts._cli import condense_tyro_error

    assert condense_tyro_error(BOXED, "train") == (
        "Unrecognized options: --totl-steps; did you mean --total-steps? (see train --help)"
    )
    assert condense_tyro_error(PLAIN, "train") == (
        "Error parsing --total-steps: invalid literal for int() with base 10: 'abc' "
        "(see train --help)"
    )
