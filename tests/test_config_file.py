"""``--config FILE``: settings from YAML or JSON, the preset < file < flags precedence, a run's
config.json repeating the run, and every bad file refused in one line (exit code 2) naming the
file and the key."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from agents.dqn.config import TrainConfig
from agents.dqn.presets import preset
from agents.run.checkpoint import config_to_dict
from agents.run.directory import read_run_config
from agents.supervised.classifier import SupervisedConfig, config_dict
from scripts import train as train_script
from scripts import train_supervised
from scripts._config_file import read_config_file

CARTPOLE = [
    "--preset", "cartpole", "--env", "CartPole-v1", "--total-steps", "300",
    "--learning-starts", "100", "--buffer-size", "1000", "--log-every-steps", "100",
    "--eval-every-steps", "0", "--target-update-steps", "100", "--epsilon-decay-steps", "200",
    "--no-progress", "--no-record-video", "--final-eval-episodes", "0",
]  # fmt: skip


def write(path, data: dict) -> str:
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return str(path)


def parse(*argv: str) -> TrainConfig:
    config, resume = train_script.parse_config(list(argv))
    assert not resume
    return config


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_a_full_config_round_trips(tmp_path, suffix):
    config = preset("drq").replace(
        env="CartPole-v1", seed=7, hidden=(32, 16), wandb_tags=("a", "b"), stop_at_return=12.5,
        epsilon_decay_fraction=0.25, exp_name="x", output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    path = write(tmp_path / f"config{suffix}", config_to_dict(config))
    assert parse("--config", path) == config


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_supervised_config_round_trips(tmp_path, suffix):
    config = SupervisedConfig(
        dataset="xor", model="mlp", epochs=7, learning_rate=0.03, hidden=(8, 4), torch_threads=2,
        data_dir=tmp_path, progress=False,
    )  # fmt: skip
    path = write(tmp_path / f"config{suffix}", config_dict(config))
    assert train_supervised.parse_config(["--config", path]) == config


def test_the_preset_then_the_file_then_the_flags(tmp_path):
    path = write(tmp_path / "c.yaml", {"preset": "drq", "learning_rate": 0.001,
                                       "total_steps": 5000, "gamma": 0.9})  # fmt: skip
    assert parse("--config", path) == preset("drq").replace(
        learning_rate=0.001, total_steps=5000, gamma=0.9
    )
    assert parse("--config", path, "--total-steps", "7") == preset("drq").replace(
        learning_rate=0.001, total_steps=7, gamma=0.9
    )
    # --preset chooses the preset; the file's values still override it
    assert parse("--preset", "nature", "--config", path) == preset("nature").replace(
        learning_rate=0.001, total_steps=5000, gamma=0.9
    )
    # a file that names no preset goes over the default one (cleanrl)
    plain = write(tmp_path / "plain.json", {"batch_size": 64})
    assert parse("--config", plain) == preset("cleanrl").replace(batch_size=64)
    assert parse("--config", plain, "--preset", "smoke") == preset("smoke").replace(batch_size=64)


def test_an_epsilon_decay_length_in_a_file_drops_the_presets_fraction(tmp_path):
    assert preset("cleanrl").epsilon_decay_fraction == 0.1
    path = write(tmp_path / "c.yaml", {"epsilon_decay_steps": 5000})
    config = parse("--config", path)
    assert (config.epsilon_decay_steps, config.epsilon_decay_fraction) == (5000, None)
    fraction = write(tmp_path / "f.yaml", {"epsilon_decay_fraction": 0.5})
    config = parse("--config", fraction, "--epsilon-decay-steps", "300")  # the flag is last
    assert (config.epsilon_decay_steps, config.epsilon_decay_fraction) == (300, None)


def test_yaml_reads_exponents_hyphens_and_whole_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning-rate: 1e-4\noptimizer_eps: 1.5E-5\ngamma: 1\nhidden: [64]\n")
    assert read_config_file(path, TrainConfig) == {
        "learning_rate": 0.0001, "optimizer_eps": 1.5e-5, "gamma": 1.0, "hidden": (64,),
    }  # fmt: skip
    assert type(read_config_file(path, TrainConfig)["gamma"]) is float
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_config_file(empty, TrainConfig) == {}


def test_supervised_files_may_hold_the_former_names(tmp_path):
    path = write(tmp_path / "old.json", {"lr": 0.05, "threads": 2, "dataset": "xor"})
    config = train_supervised.parse_config(["--config", path, "--epochs", "3"])
    assert config == SupervisedConfig(dataset="xor", learning_rate=0.05, torch_threads=2, epochs=3)
    both = write(tmp_path / "both.json", {"lr": 0.05, "learning_rate": 0.1})
    with pytest.raises(ValueError) as info:
        train_supervised.parse_config(["--config", both])
    assert str(info.value) == (
        f"--config {both}: 'learning_rate' sets 'learning_rate', which another key sets too"
    )


def test_a_runs_config_json_repeats_the_run(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert train_script.main([*CARTPOLE, "--seed", "1", "--output-dir", str(first)]) == 0
    saved = first / "config.json"
    config = parse("--config", str(saved), "--seed", "2", "--output-dir", str(second))
    assert config == read_run_config(saved).replace(seed=2, output_dir=str(second))
    argv = ["--config", str(saved), "--seed", "2", "--output-dir", str(second)]
    assert train_script.main(argv) == 0
    a, b = (json.loads((d / "config.json").read_text()) for d in (first, second))
    assert {k for k in a if a[k] != b[k]} == {"seed", "output_dir"}
    assert (b["seed"], b["output_dir"]) == (2, str(second))
    assert set(a) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_a_supervised_runs_config_json_repeats_the_run(tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    argv = ["--dataset", "xor", "--epochs", "2", "--no-progress"]
    assert train_supervised.main([*argv, "--output-dir", str(first)]) == 0
    saved = json.loads((first / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["learning_rate"] == 0.01  # the xor/mlp preset's
    again = ["--config", str(first / "config.json"), "--seed", "2", "--output-dir", str(second)]
    assert train_supervised.main(again) == 0
    repeated = json.loads((second / "config.json").read_text())
    assert {k for k in saved if saved[k] != repeated[k]} == {"seed", "output_dir"}


BAD_FILES = [
    ("c.yaml", "learning_rat: 0.1\n", "unknown setting 'learning_rat'; did you mean "
     "'learning_rate'?"),
    ("c.json", '{"colour": "red"}', "unknown setting 'colour'; accepted: the settings --help "
     "lists"),
    ("c.yaml", "total_steps: many\n", "config field 'total_steps' is 'many'; expected an "
     "integer"),
    ("c.json", '{"total_steps": 1.5}', "config field 'total_steps' is 1.5; expected an integer"),
    ("c.yaml", "double_dqn: 1\n", "config field 'double_dqn' is 1; expected true or false"),
    ("c.yaml", "protocol: deepmind\n", "config field 'protocol' is 'deepmind'; expected one of "
     "nature, machado, atari100k"),
    ("c.yaml", "hidden: [64, x]\n", "config field 'hidden' is [64, 'x']; expected a list of "
     "integers"),
    ("c.yaml", "gamma: .nan\n", "config field 'gamma' is nan; expected finite numbers"),
    ("c.yaml", "preset: fastest\n", "preset 'fastest' is not accepted; use one of nature, "
     "cleanrl, rainbow, der, drq, apex, cartpole, cartpole-rainbow, fast, smoke"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), BAD_FILES, ids=[t for _, t, _ in BAD_FILES])
def test_a_bad_key_or_value_is_one_line_naming_the_file_and_key(tmp_path, capsys, name, text,
                                                                message):  # fmt: skip
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "run"
    code = train_script.main(["--config", str(path), "--env", "CartPole-v1", "--output-dir",
                              str(out)])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [f"train: error: --config {path}: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


def test_unreadable_files_are_one_line(tmp_path, capsys):
    cases = [
        ("bad.yaml", "a: [1, 2\n", "is not valid YAML (while parsing a flow sequence"),
        ("list.yaml", "- 1\n- 2\n", "holds a YAML list; a mapping of settings is expected"),
        ("bad.json", "{", "is not valid JSON"),
        ("list.json", "[1]", "holds a JSON list; a JSON object is expected"),
    ]
    for name, text, words in cases:
        path = tmp_path / name
        path.write_text(text)
        assert train_script.main(["--config", str(path)]) == 2
        line = capsys.readouterr().err.splitlines()
        assert len(line) == 1 and line[0].startswith(f"train: error: --config {path} "), line
        assert words in line[0], line
    missing = tmp_path / "missing.yaml"
    assert train_script.main(["--config", str(missing)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"train: error: --config {missing} cannot be read (No such file or directory)"
    ]
    toml = tmp_path / "c.toml"
    assert train_script.main(["--config", str(toml)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"train: error: --config: '{toml}' is not accepted; use a .yaml, .yml or .json file"
    ]


def test_config_is_refused_with_resume(tmp_path, capsys):
    path = write(tmp_path / "c.yaml", {"seed": 3})
    code = train_script.main(["--resume", str(tmp_path / "run"), "--config", path])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"train: error: --config: not accepted with --resume; the run in {tmp_path / 'run'} "
        "continues with its own config.json"
    ]
