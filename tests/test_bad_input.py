"""Every flag of scripts/train.py is checked before any work starts: exit code 2 and one line
naming the flag, the value and what is accepted, and nothing left on disk. The tables are the list
of cases: named flags, every numeric setting of TrainConfig against NaN, infinities and int64
(taken from the dataclass, so a new field is covered when it is added), envs the package cannot
train, devices this machine does not have, output paths, and sizes that do not fit in memory."""

from __future__ import annotations

import dataclasses
import math
import typing

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.dqn.config import TrainConfig
from agents.dqn.presets import preset
from agents.dqn.replay.sizing import replay_bytes, replay_slots
from agents.dqn.validation import validate
from agents.run import checks, machine
from scripts import train as train_script

# (flags, text the one error line must contain)
BAD_TRAIN = [
    (
        ["--address", "auto"],
        "--address: 'auto' names a Ray cluster for Ape-X actors, but "
        "--num-actors is 0; give --num-actors N or drop --address",
    ),
    (
        ["--num-actors", "4", "--buffer-size", "400", "--batch-size", "8"],
        "--buffer-size: 400 is too small for 4 actors x 1 envs with --actor-chunk-steps 50; use "
        "at least 440 (110 slots per stream)",
    ),
    (["--env", "Pongg"], "--env: unknown env id 'Pongg' (closest: Pong"),
    (["--env", "CartPol-v1"], "closest: CartPole-v1"),
    (["--preset", "fast-please"], "--preset: unknown preset 'fast-please'; accepted: nature"),
    (
        ["--protocol", "deepmind"],
        "--protocol: 'deepmind' is not accepted; use one of nature, machado, atari100k",
    ),
    (["--loss", "l1"], "--loss: 'l1' is not accepted; use one of huber, mse"),
    (["--weight-init", "he"], "--weight-init: 'he' is not accepted; use one of torch, xavier"),
    (["--conv-padding", "full"], "--conv-padding: 'full' is not accepted; use one of valid, same"),
    (["--reset-layers", "all"], "--reset-layers: 'all' is not accepted; use one of head, dense"),
    (["--optimizer", "sgd"], "--optimizer: 'sgd' is not accepted; use one of adam, rmsprop"),
    (
        ["--wandb-mode", "cloud"],
        "--wandb-mode: 'cloud' is not accepted; use one of auto, online, offline, disabled",
    ),
    (["--compile", "yes"], "--compile: 'yes' is not accepted; use one of auto, on, off"),
    (["--cuda-graphs", "1"], "--cuda-graphs: '1' is not accepted; use one of auto, on, off"),
    (["--tf32", "fast"], "--tf32: 'fast' is not accepted; use one of auto, on, off"),
    (["--async-envs", "maybe"], "--async-envs: 'maybe' is not accepted; use one of auto, on, off"),
    (["--total-steps", "abc"], "--total-steps: 'abc' is not accepted; use an integer (see train"),
    (["--total-steps", "1e5"], "--total-steps: '1e5' is not accepted; use an integer"),
    (["--learning-rate", "fast"], "--learning-rate: 'fast' is not accepted; use a number (see"),
    (
        ["--stop-at-return", "high"],
        "--stop-at-return: 'high' is not accepted; use a number or none",
    ),
    (["--hidden", "64", "x"], "--hidden: 'x' is not accepted; use integers separated by spaces"),
    (
        ["--totl-steps", "5"],
        "unrecognized arguments: --totl-steps 5; did you mean --total-steps? (see train --help)",
    ),
    (["--lr", "0.1"], "unrecognized arguments: --lr 0.1; did you mean --learning-rate?"),
    (["--seed"], "argument --seed: expected one argument (see train --help)"),
    (["--seed", "-1"], "--seed: -1 is not accepted; use an integer >= 0"),
    (
        ["--total-steps", "0"],
        "--total-steps: 0 is not accepted; use an integer in [1, 999999999999]",
    ),
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
    (["--max-grad-norm", "-1"], "--max-grad-norm: -1.0 is not accepted; use a number >= 0"),
    (["--gamma", "1.5"], "--gamma: 1.5 is not accepted; use a number in [0, 1]"),
    (["--tau", "0"], "--tau: 0.0 is not accepted; use a number in (0, 1]"),
    (["--epsilon-start", "1.2"], "--epsilon-start: 1.2 is not accepted; use a number in [0, 1]"),
    (["--epsilon-end", "-0.1"], "--epsilon-end: -0.1 is not accepted; use a number in [0, 1]"),
    (["--eval-epsilon", "2"], "--eval-epsilon: 2.0 is not accepted; use a number in [0, 1]"),
    (["--num-atoms", "1"], "--num-atoms: 1 is not accepted; use an integer >= 2"),
    (["--v-min", "5", "--v-max", "5"], "--v-min/--v-max: [5.0, 5.0] is not accepted"),
    (["--noisy-sigma0", "0"], "--noisy-sigma0: 0.0 is not accepted; use a number > 0"),
    (["--priority-alpha", "-1"], "--priority-alpha: -1.0 is not accepted; use a number >= 0"),
    (
        ["--priority-beta-start", "1.5"],
        "--priority-beta-start: 1.5 is not accepted; use a number in [0, 1]",
    ),
    (["--hidden", "64", "0"], "--hidden: [64, 0] is not accepted; use one or more widths >= 1"),
    (["--torch-threads", "-2"], "--torch-threads: -2 is not accepted"),
    (["--wandb-init-timeout", "0"], "--wandb-init-timeout: 0.0 is not accepted; use a number > 0"),
    (["--device", "tpu"], "--device: 'tpu' is not accepted; use auto, cpu, cuda or cuda:N"),
    (["--replay-device", "disk"], "--replay-device: 'disk' is not accepted"),
    (["--device", "cuda"], "--device: 'cuda' was asked for but CUDA is not available"),
    (["--resume", "{tmp}/none"], "--resume: '{tmp}/none' holds no config.json"),
    (["--output-dir", "{tmp}/file/run"], "--output-dir: '{tmp}/file/run' cannot be written"),
]
# Settings with no invalid value of their own (any value is a valid choice); numeric settings
# are covered by the NaN / infinity / int64 tables below.
FREE = {"double_dqn", "dueling", "distributional", "noisy", "prioritized", "record_video",
        "progress", "track", "save_replay", "wandb_project", "wandb_entity", "wandb_group",
        "wandb_tags", "shared_hidden", "augment", "exp_name", "tensorboard"}  # fmt: skip


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing else left


def _hint_types(name: str) -> tuple:
    hint = typing.get_type_hints(TrainConfig)[name]
    return typing.get_args(hint) or (hint,)


FLOAT_SETTINGS = sorted(
    f.name for f in dataclasses.fields(TrainConfig) if float in _hint_types(f.name)
)
INT_SETTINGS = sorted(f.name for f in dataclasses.fields(TrainConfig) if int in _hint_types(f.name))


def test_the_table_covers_every_setting_that_can_be_wrong():
    covered = {a[2:].replace("-", "_") for args, _ in BAD_TRAIN for a in args if a[:2] == "--"}
    settings = {f.name for f in dataclasses.fields(TrainConfig)}
    assert settings - covered - FREE - set(FLOAT_SETTINGS) - set(INT_SETTINGS) == set()
    assert len(FLOAT_SETTINGS) >= 17 and len(INT_SETTINGS) >= 20  # the tables below are not empty


def refused(tmp_path, capsys, args: list[str], base_env: str = "CartPole-v1") -> str:
    """Run scripts.train with ``args`` on the smoke preset; assert exit code 2, one stderr line
    and nothing written; return the line."""
    out = tmp_path / "run"
    base = ["--preset", "smoke", "--env", base_env, "--output-dir", str(out)]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = train_script.main([*base, *args])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("train: error: ")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == before
    assert "replay:" not in captured.out  # nothing was allocated or announced
    return err


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_setting_refuses_nan_and_infinities(tmp_path, capsys, name, value):
    flag = f"--{name.replace('_', '-')}"
    err = refused(tmp_path, capsys, [f"{flag}={value}"])
    assert f"{flag}: {value} is not accepted; use a finite number" in err, err


@pytest.mark.parametrize("name", INT_SETTINGS)
def test_every_integer_setting_refuses_values_beyond_int64(tmp_path, capsys, name):
    flag = f"--{name.replace('_', '-')}"
    err = refused(tmp_path, capsys, [flag, str(2**63)])
    assert f"{flag}: {2**63} is not accepted; use an integer" in err, err


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total_steps": 1.5}, "--total-steps: 1.5 is not accepted; use an integer"),
        ({"total_steps": "1000"}, "--total-steps: '1000' is not accepted; use an integer"),
        ({"batch_size": True}, "--batch-size: True is not accepted; use an integer"),
        ({"gamma": "0.99"}, "--gamma: '0.99' is not accepted; use a number"),
        ({"learning_rate": None}, "--learning-rate: None is not accepted; use a number"),
        ({"double_dqn": 1}, "--double-dqn: 1 is not accepted; use true or false"),
        ({"protocol": "deepmind"}, "--protocol: 'deepmind' is not accepted; use one of nature"),
        ({"hidden": (64, 1.5)}, "--hidden: [64, 1.5] is not accepted; use a list of integers"),
        ({"wandb_tags": (1,)}, "--wandb-tags: [1] is not accepted; use a list of strings"),
        ({"env": 5}, "--env: 5 is not accepted; use a string"),
        (
            {"stop_at_return": float("nan")},
            "--stop-at-return: nan is not accepted; use a finite number or None",
        ),
        ({"hidden": (2**63,)}, f"--hidden: {2**63} is not accepted; use an integer"),
    ],
)
def test_wrong_types_from_a_config_file_are_refused_by_validate(changes, message):
    config = dataclasses.replace(dataclasses.replace(preset("smoke"), env="CartPole-v1"), **changes)
    with pytest.raises(ValueError) as info:
        validate(config, machine=False)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


# --- envs the package cannot train ----------------------------------------------------------


class SpacesEnv(gym.Env):
    """An env that only has spaces (validate never steps it)."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def _broken():
    raise RuntimeError("no display")


BOX4 = spaces.Box(-1.0, 1.0, (4,), np.float32)
TEST_ENVS = {
    "checks/MultiDiscrete-v0": lambda: SpacesEnv(BOX4, spaces.MultiDiscrete([2, 2])),
    "checks/DiscreteFrom1-v0": lambda: SpacesEnv(BOX4, spaces.Discrete(3, start=1)),
    "checks/DictObs-v0": lambda: SpacesEnv(spaces.Dict({"x": BOX4}), spaces.Discrete(2)),
    "checks/TupleObs-v0": lambda: SpacesEnv(spaces.Tuple((BOX4, BOX4)), spaces.Discrete(2)),
    "checks/ImageHWC-v0": lambda: SpacesEnv(
        spaces.Box(0, 255, (210, 160, 3), np.uint8), spaces.Discrete(2)
    ),
    "checks/Image64-v0": lambda: SpacesEnv(
        spaces.Box(0, 255, (4, 64, 64), np.uint8), spaces.Discrete(2)
    ),
    "checks/Grid2D-v0": lambda: SpacesEnv(spaces.Box(0, 1, (8, 8), np.float32), spaces.Discrete(2)),
    "checks/Broken-v0": _broken,
    "checks/Stack84-v0": lambda: SpacesEnv(
        spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(3)
    ),
}
for _id, _make in TEST_ENVS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_make)

BAD_ENVS = [
    ("Pendulum-v1", "--env: 'Pendulum-v1' has continuous actions (Box(-2.0, 2.0, (1,), float32))"),
    ("MountainCarContinuous-v0", "--env: 'MountainCarContinuous-v0' has continuous actions"),
    ("checks/MultiDiscrete-v0", "has actions (MultiDiscrete([2 2])) that the package cannot train"),
    ("checks/DiscreteFrom1-v0", "has actions (Discrete(3, start=1)) that the package cannot train"),
    ("FrozenLake-v1", "--env: 'FrozenLake-v1' has observations Discrete(16) the package cannot"),
    ("checks/DictObs-v0", "has observations Dict('x': Box("),
    ("checks/TupleObs-v0", "has observations Tuple(Box("),
    ("checks/ImageHWC-v0", "has observations of shape (210, 160, 3)"),
    ("checks/Image64-v0", "has observations of shape (4, 64, 64)"),
    ("checks/Grid2D-v0", "has observations of shape (8, 8)"),
    (
        "checks/Broken-v0",
        "--env: 'checks/Broken-v0' cannot be built on this machine (RuntimeError: no display)",
    ),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENVS, ids=[e for e, _ in BAD_ENVS])
def test_envs_the_package_cannot_train_are_refused_in_one_line(tmp_path, capsys, env, message):
    err = refused(tmp_path, capsys, ["--env", env])
    assert message in err, err
    if "cannot be built" not in message:
        assert "accepted:" in err


def test_an_env_that_needs_a_missing_dependency_or_has_continuous_actions_is_refused(
    tmp_path, capsys
):
    err = refused(tmp_path, capsys, ["--env", "HalfCheetah-v5"])  # MuJoCo: missing or continuous
    assert "--env: 'HalfCheetah-v5'" in err and ("cannot be built" in err or "continuous" in err)


def test_vector_and_84x84_stack_envs_pass():
    for env in ("CartPole-v1", "checks/Stack84-v0", "fake", "fake-pixels", "Pong"):
        validate(dataclasses.replace(preset("smoke"), env=env))


# --- devices, output paths, seeds ---------------------------------------------------------------


def _missing_cuda(name: str) -> str:
    if not torch.cuda.is_available():
        return f"{name} was asked for but CUDA is not available on this machine; use auto or cpu"
    return f"{name} was asked for but this machine has {torch.cuda.device_count()} CUDA device(s)"


BAD_DEVICES = [
    (["--device", "mps"], "--device: 'mps' is not accepted; use auto, cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "--device: 'cuda:x' is not accepted; use auto, cpu, cuda or cuda:N"),
    (["--device", "CPU"], "--device: 'CPU' is not accepted"),
    (["--replay-device", "mps"], "--replay-device: 'mps' is not accepted"),
    (["--device", "cuda:99"], "--device: " + _missing_cuda("'cuda:99'")),
    (["--replay-device", "cuda:99"], "--replay-device: " + _missing_cuda("'cuda:99'")),
]
if not torch.cuda.is_available():
    BAD_DEVICES += [
        (["--device", "cuda"], "--device: " + _missing_cuda("'cuda'")),
        (["--replay-device", "cuda"], "--replay-device: " + _missing_cuda("'cuda'")),
        (["--device", "cuda:0"], "--device: " + _missing_cuda("'cuda:0'")),
    ]


@pytest.mark.parametrize(
    ("args", "message"), BAD_DEVICES, ids=[" ".join(a) for a, _ in BAD_DEVICES]
)
def test_devices_that_are_not_there_are_refused_up_front(tmp_path, capsys, args, message):
    assert message in refused(tmp_path, capsys, args)


BAD_OUTPUTS = [
    ("", "--output-dir: '' is not accepted (empty); use a directory of its own"),
    ("   ", "--output-dir: '   ' is not accepted (empty)"),
    ("/", "--output-dir: '/' is not accepted (a filesystem root)"),
    ("//", "--output-dir: '//' is not accepted (a filesystem root)"),
    (".", "--output-dir: '.' is not accepted (the current directory)"),
    ("./", "--output-dir: './' is not accepted (the current directory)"),
    ("sub/..", "--output-dir: 'sub/..' is not accepted (the current directory)"),
]


@pytest.mark.parametrize(("path", "message"), BAD_OUTPUTS, ids=[repr(p) for p, _ in BAD_OUTPUTS])
def test_empty_root_and_current_directory_outputs_are_refused(
    tmp_path, capsys, monkeypatch, path, message
):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code = train_script.main(["--preset", "smoke", "--env", "CartPole-v1", "--output-dir", path])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert list(work.iterdir()) == []


def test_atari_seeds_must_fit_ale_py_32_bit_seeds(tmp_path, capsys):
    err = refused(tmp_path, capsys, ["--seed", str(2**31 - 100), "--total-steps", "1000"], "Pong")
    assert "--seed: 2147483548 is not accepted for the Atari game 'Pong'" in err, err
    smoke = dataclasses.replace(preset("smoke"), env="Pong", total_steps=1000)
    top = checks.EVAL_SEED_OFFSET + smoke.num_envs + checks.MAX_EVAL_ENVS
    validate(dataclasses.replace(smoke, seed=checks.ALE_SEED_MAX - top), machine=False)
    with pytest.raises(
        ValueError,
        match=r"--seed: 2147483547 is not accepted for the Atari game "
        r"'Pong': ale-py takes 32-bit seeds .* use an integer in \[0, 2,147,463,638\]",
    ):
        validate(dataclasses.replace(smoke, seed=2**31 - 101), machine=False)
    validate(dataclasses.replace(smoke, env="CartPole-v1", seed=2**40), machine=False)


# --- memory -------------------------------------------------------------------------------------


def test_a_replay_larger_than_the_memory_is_refused_with_both_numbers(
    tmp_path, capsys, monkeypatch
):
    asked = []

    def gigabyte(device):
        asked.append(device)
        return 10**9

    monkeypatch.setattr(machine, "available_memory", gigabyte)
    size = 10**8
    err = refused(tmp_path, capsys, ["--buffer-size", str(size), "--total-steps", str(size),
                                     "--device", "cpu"])  # fmt: skip
    assert asked == ["cpu"]
    # CartPole: 4 float32 per frame, stored once, + action, reward and flags: 28 bytes
    need = replay_bytes(1, replay_slots(dataclasses.replace(preset("smoke"), buffer_size=size,
                                                            total_steps=size), 1, 1), (4,),
                        torch.float32, False)  # fmt: skip
    assert "--buffer-size: 100,000,000 is not accepted here: the replay of 100,000,000 " in err
    assert f"needs {checks.format_bytes(need)}" in err and "more than the 1.00 GB of memory " in err
    assert "available on cpu; use a --buffer-size (or --total-steps) of at most " in err
    fit = int(err.rsplit(" ", 1)[1].replace(",", ""))
    config = dataclasses.replace(
        preset("smoke"), env="CartPole-v1", buffer_size=fit, total_steps=fit
    )
    validate(config)  # the size it names fits
    monkeypatch.setattr(machine, "available_memory", lambda device: 10**5)
    err = refused(tmp_path, capsys, ["--hidden", "256", "256"])
    assert "--hidden/--num-atoms: the network (67,586 parameters, 1.4 MB with its target, " in err
    assert "more than the 100.0 kB of memory available on cpu" in err


def test_an_atari_replay_of_ten_billion_transitions_is_refused_before_allocation(tmp_path, capsys):
    err = refused(tmp_path, capsys, ["--buffer-size", "10000000000", "--total-steps",
                                     "100000000000"], "fake")  # fmt: skip
    assert "the replay of 10,000,000,000 transitions needs 70.68 TB" in err  # 7,068 B each
    assert "of memory available on" in err and "of at most" in err


def test_a_network_too_large_for_the_memory_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, ["--hidden", "100000", "100000", "100000"])
    assert "the network (20,000,900,002 parameters, 400.02 GB" in err


def test_available_memory_reads_the_machine():
    free = machine.available_memory("cpu")
    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024
               for line in open("/proc/meminfo") if line.startswith("MemAvailable")}  # fmt: skip
    assert 0 < free <= meminfo.get("MemAvailable", 2**62) * 1.1
    assert not math.isinf(free)
