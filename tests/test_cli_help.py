"""Every script's --help, in-process: real defaults (never "(default: None)"), every setting of
TrainConfig and SupervisedConfig a flag under its heading, the chosen preset's values, and parse
errors as one line with exit code 2."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re

import pytest

from agents.dqn.config import FLAG_GROUPS, UNSET_MEANS, TrainConfig
from agents.dqn.presets import preset
from agents.supervised.classifier import SUPERVISED_FLAG_GROUPS, SupervisedConfig
from scripts import _cli, train_supervised
from scripts import train as train_script

SCRIPTS = ["train", "train_supervised", "evaluate", "plot", "aggregate", "atari100k", "ablation",
           "benchmark", "export_pretrained", "demo", "soak"]  # fmt: skip
# Every script's parser is scripts._cli.ArgumentParser: each option that takes a value shows its
# default, or what happens without it ("(default: none: ...)"), unless it is required.
REQUIRED = {"export_pretrained": {"--name"}, "soak": {"--output-dir"}}
TRAIN_HEADINGS = ["run and env", "algorithm", "Rainbow switches", "evaluation and logging",
                  "distributed (Ape-X)", "speed"]  # fmt: skip


def run_help(capsys, script: str, *args: str) -> str:
    main = importlib.import_module(f"scripts.{script}").main
    assert main([*args, "--help"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def option_blocks(text: str) -> dict[str, str]:
    """{first flag of an option: its lines of help joined}, in the order of the help text."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^  (--?[\w-]+)", line)
        if match:
            current = match.group(1)
            blocks[current] = line.strip()
        elif current is not None and line.startswith("    "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


def takes_value(block: str) -> bool:
    """Whether the option's first line shows a metavar after its flags (``--seed INT``)."""
    return re.match(r"^--?[\w-]+(?:, --?[\w-]+)* [A-Z{\[]", block) is not None


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def one_error_line(capsys, main, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_and_never_shows_a_default_of_none(capsys, script):
    text = run_help(capsys, script)
    assert text.startswith("usage: ")
    assert "(default: None)" not in text and "default: None" not in text


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_that_takes_a_value_shows_its_default(capsys, script):
    blocks = option_blocks(run_help(capsys, script))
    valued = [f for f, block in blocks.items() if takes_value(block)]
    assert valued, blocks  # the parsing of the help text found the options
    missing = [
        f for f in valued if "(default" not in blocks[f] and f not in REQUIRED.get(script, ())
    ]
    assert missing == []


def test_train_help_has_every_field_under_its_heading_in_order(capsys):
    text = run_help(capsys, "train")
    starts = [text.index(f"\n{title}:\n") for title in TRAIN_HEADINGS]
    assert starts == sorted(starts) and list(FLAG_GROUPS) == TRAIN_HEADINGS
    ends = [*starts[1:], len(text)]
    blocks = option_blocks(text)
    for (title, names), start, end in zip(FLAG_GROUPS.items(), starts, ends):
        section = text[start:end]
        for name in names:
            assert re.search(rf"^  {flag(name)}[ ,\n]", section, re.M), (title, name)
    fields = {flag(f.name) for f in dataclasses.fields(TrainConfig)}
    assert fields <= set(blocks)
    for extra in ("--resume", "--overwrite", "--list-games", "--config", "--preset", "-h"):
        assert extra in blocks
    assert blocks["--resume"].startswith("--resume DIR ")
    assert blocks["--config"].startswith("--config FILE ")
    assert blocks["--double-dqn"].startswith("--double-dqn, --no-double-dqn ")
    assert blocks["--hidden"].startswith("--hidden [INT ...] ")
    assert blocks["--stop-at-return"].startswith("--stop-at-return FLOAT|none ")
    assert "(default: none: train for all of --total-steps)" in blocks["--stop-at-return"]
    assert "(default: none: no tags)" in blocks["--wandb-tags"]
    assert blocks["--total-steps"].endswith(
        "Agent steps to train for, summed over the parallel envs. (default: 10000000)"
    )


def test_the_flag_groups_hold_every_field_exactly_once():
    for cls, groups in ((TrainConfig, FLAG_GROUPS), (SupervisedConfig, SUPERVISED_FLAG_GROUPS)):
        listed = [name for names in groups.values() for name in names]
        assert sorted(listed) == sorted(f.name for f in dataclasses.fields(cls))
        _cli.check_groups(cls, groups)  # the check the parser makes passes
    bad = {"a": ("env", "seed", "seed"), "b": ("nonsense",)}
    with pytest.raises(RuntimeError) as info:
        _cli.check_groups(TrainConfig, bad)
    message = str(info.value)
    assert message.startswith(
        "TrainConfig flag groups: twice ['seed'], missing ['actor_chunk_steps', "
    )
    assert message.endswith("unknown ['nonsense']")


def test_a_field_no_group_names_still_gets_its_flag_last():
    groups = {title: names for title, names in FLAG_GROUPS.items() if title != "speed"}
    parser = _cli.ArgumentParser(prog="x")
    defaults = _cli.default_texts(TrainConfig(), UNSET_MEANS)
    _cli.add_config_flags(parser, TrainConfig, groups, defaults)
    text = parser.format_help()
    tail = text[text.index("\nother settings:\n") :]
    assert list(option_blocks(tail)) == [flag(name) for name in FLAG_GROUPS["speed"]]


def test_every_field_has_its_docstring_as_help():
    for cls in (TrainConfig, SupervisedConfig):
        docs = _cli.field_docs(cls)
        assert sorted(docs) == sorted(f.name for f in dataclasses.fields(cls))
        assert all(docs.values())
    assert _cli.field_docs(TrainConfig)["gamma"] == "Discount factor."
    assert _cli.field_docs(TrainConfig)["seed"] == (
        "Seed for envs, network initialisation, exploration and replay sampling."
    )


@pytest.mark.parametrize("name", ["drq", "nature", "cartpole", "cleanrl"])
def test_help_shows_the_chosen_presets_values(capsys, name):
    blocks = option_blocks(run_help(capsys, "train", "--preset", name))
    config = preset(name)
    assert blocks["--learning-rate"].endswith(f"(default: {config.learning_rate})")
    assert blocks["--total-steps"].endswith(f"(default: {config.total_steps})")
    assert blocks["--optimizer-eps"].endswith(f"(default: {config.optimizer_eps})")
    assert blocks["--preset"].endswith(f"(default: {name})")


def test_help_of_drq_and_of_the_default_preset_differ_by_their_values(capsys):
    drq = option_blocks(run_help(capsys, "train", "--preset", "drq"))
    default = option_blocks(run_help(capsys, "train"))
    assert drq["--learning-rate"].endswith("(default: 0.0001)")
    assert drq["--optimizer-eps"].endswith("(default: 0.00015)")
    assert default["--optimizer-eps"].endswith("(default: 1e-08)")
    assert drq["--augment"].endswith("(default: true)")
    assert default["--augment"].endswith("(default: false)")
    assert drq["--total-steps"].endswith("(default: 100000)")
    assert default["--total-steps"].endswith("(default: 10000000)")
    assert default["--epsilon-decay-fraction"].endswith("(default: 0.1)")


def test_help_shows_a_config_files_values(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("preset: nature\nlearning_rate: 0.003\n")
    blocks = option_blocks(run_help(capsys, "train", "--config", str(path)))
    assert blocks["--learning-rate"].endswith("(default: 0.003)")
    assert blocks["--preset"].endswith("(default: nature)")
    assert blocks["--optimizer"].endswith("(default: rmsprop)")


def test_train_supervised_help_shows_the_preset_of_the_dataset_and_model(capsys):
    text = run_help(capsys, "train_supervised")
    blocks = option_blocks(text)
    assert {flag(f.name) for f in dataclasses.fields(SupervisedConfig)} <= set(blocks)
    assert "--config" in blocks
    starts = [text.index(f"\n{title}:\n") for title in SUPERVISED_FLAG_GROUPS]
    assert starts == sorted(starts)
    assert blocks["--epochs"].endswith("(default: 100, the digits/mlp preset)")
    assert blocks["--learning-rate"].endswith("(default: 0.002, the digits/mlp preset)")
    assert blocks["--hidden"].endswith("(default: 256 256, the digits/mlp preset)")
    assert blocks["--torch-threads"].endswith("(default: 1)")
    assert blocks["--data-dir"].endswith("(default: data/mnist)")
    lenet = option_blocks(run_help(capsys, "train_supervised", "--model", "lenet"))
    assert lenet["--epochs"].endswith("(default: 120, the digits/lenet preset)")
    assert lenet["--hidden"].endswith("(default: none: only the mlp has hidden widths)")
    frames = option_blocks(
        run_help(capsys, "train_supervised", "--dataset", "atari-frames", "--model", "nature-cnn")
    )
    assert frames["--epochs"].endswith("(default: 3, the atari-frames/nature-cnn preset)")
    unknown = option_blocks(run_help(capsys, "train_supervised", "--dataset", "cifar"))
    assert unknown["--epochs"].endswith(
        "(default: 30 for mlp, 15 for lenet, 10 for nature-cnn, adjusted per dataset)"
    )


# -- parse errors: one line, exit code 2 ------------------------------------------------------

TRAIN_ERRORS = [
    (["--totl-steps", "5"],
     "train: error: unrecognized arguments: --totl-steps 5; did you mean --total-steps? "
     "(see train --help)"),
    (["--total-steps", "many"],
     "train: error: --total-steps: 'many' is not accepted; use an integer (see train --help)"),
    (["--protocol", "deepmind"],
     "train: error: --protocol: 'deepmind' is not accepted; use one of nature, machado, "
     "atari100k (see train --help)"),
    (["--preset", "fastest"],
     "train: error: --preset: unknown preset 'fastest'; accepted: nature, cleanrl, rainbow, der, "
     "drq, apex, cartpole, cartpole-rainbow, fast, smoke"),
    (["--gamma", "high"],
     "train: error: --gamma: 'high' is not accepted; use a number (see train --help)"),
    (["--hidden", "64", "wide"],
     "train: error: --hidden: 'wide' is not accepted; use integers separated by spaces "
     "(see train --help)"),
    (["--epsilon-decay-fraction", "half"],
     "train: error: --epsilon-decay-fraction: 'half' is not accepted; use a number or none "
     "(see train --help)"),
    (["--lr", "0.1"],
     "train: error: unrecognized arguments: --lr 0.1; did you mean --learning-rate? "
     "(see train --help)"),
    (["--threads", "2"],
     "train: error: unrecognized arguments: --threads 2; did you mean --torch-threads? "
     "(see train --help)"),
    (["--total"],
     "train: error: unrecognized arguments: --total; did you mean --total-steps? "
     "(see train --help)"),
    (["--double-dqn=yes"],
     "train: error: argument --double-dqn/--no-double-dqn: ignored explicit argument 'yes' "
     "(see train --help)"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "line"), TRAIN_ERRORS, ids=[" ".join(a) for a, _ in TRAIN_ERRORS])
def test_train_parse_errors_are_one_line(tmp_path, capsys, argv, line):
    out = tmp_path / "run"
    argv = ["--env", "CartPole-v1", "--output-dir", str(out), *argv]
    assert one_error_line(capsys, train_script.main, argv) == line
    assert not out.exists()


SUPERVISED_ERRORS = [
    (["--epocs", "3"],
     "train_supervised: error: unrecognized arguments: --epocs 3; did you mean --epochs? "
     "(see train_supervised --help)"),
    (["--epochs", "3.5"],
     "train_supervised: error: --epochs: '3.5' is not accepted; use an integer or none "
     "(see train_supervised --help)"),
    (["--model", "resnet"],
     "train_supervised: error: --model: 'resnet' is not accepted; use one of mlp, lenet, "
     "nature-cnn (see train_supervised --help)"),
    (["--lr", "0.1"],
     "train_supervised: error: unrecognized arguments: --lr 0.1; did you mean --learning-rate? "
     "(see train_supervised --help)"),
    (["--threads", "2"],
     "train_supervised: error: unrecognized arguments: --threads 2; did you mean "
     "--torch-threads? (see train_supervised --help)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "line"), SUPERVISED_ERRORS, ids=[" ".join(a) for a, _ in SUPERVISED_ERRORS]
)
def test_train_supervised_parse_errors_are_one_line(tmp_path, capsys, argv, line):
    out = tmp_path / "run"
    argv = ["--dataset", "xor", "--output-dir", str(out), *argv]
    assert one_error_line(capsys, train_supervised.main, argv) == line
    assert not out.exists()


def test_the_other_scripts_name_the_closest_flag(tmp_path, capsys):
    from scripts import aggregate

    line = one_error_line(capsys, aggregate.main, [str(tmp_path), "--sed", "5"])
    assert line == (
        "aggregate: error: unrecognized arguments: --sed 5; did you mean --seed? "
        "(see aggregate --help)"
    )
    from scripts import ablation

    line = one_error_line(capsys, ablation.main, ["--seed", "1"])  # flags are never abbreviated
    assert line == (
        "ablation: error: unrecognized arguments: --seed 1; did you mean --seeds? "
        "(see ablation --help)"
    )


def test_evaluate_and_plot_help_say_what_each_option_is_and_its_default(capsys):
    evaluate = option_blocks(run_help(capsys, "evaluate"))
    assert evaluate["--seed"].endswith("evaluation seed (default: 0)")
    assert evaluate["--max-episode-frames"].endswith("(default: 108000)")
    assert evaluate["--device"].endswith("(default: auto)")
    assert evaluate["--pretrained"].endswith("(default: none: play CHECKPOINT)")
    assert evaluate["--record"].endswith("(default: none: no videos)")
    assert evaluate["--save-trajectories"].endswith("(default: none: no trajectories are saved)")
    assert "(default: RUN/evaluation beside the checkpoints folder;" in evaluate["--output-dir"]
    for name in ("--epsilon", "--protocol"):  # what the flag is comes first
        assert "(default:" in evaluate[name]
        assert not evaluate[name].split(maxsplit=2)[-1].startswith("default"), evaluate[name]
    text = run_help(capsys, "plot")
    description = text.split("\n\n")[1]
    assert description.rstrip().endswith("[--label RUN_DIR=NAME ...]``."), description
    plot = option_blocks(text)
    assert plot["--output-dir"].endswith(
        "where the figures are written (.png and .svg) (default: runs/plots)"
    )
    assert plot["--x"].endswith("(default: steps)")
    assert plot["--window"].endswith("(default: 20)")
    assert plot["--bootstrap-reps"].endswith("(default: 2000)")
    assert plot["--seed"].endswith("bootstrap seed (default: 0)")


def test_bootstrap_resamples_and_json_output_have_one_spelling(tmp_path, capsys):
    """--bootstrap-reps in plot, aggregate and atari100k; --json FILE in aggregate and benchmark.
    The old spellings are refused with the new one named."""
    from scripts import aggregate, atari100k, benchmark, plot

    for script in ("plot", "aggregate", "atari100k"):
        blocks = option_blocks(run_help(capsys, script))
        assert "--bootstrap-reps" in blocks and "--reps" not in blocks, script
    for script in ("aggregate", "benchmark"):
        blocks = option_blocks(run_help(capsys, script))
        assert blocks["--json"].startswith("--json FILE "), script
        assert "--output" not in blocks, script
    old = [
        (plot, "plot", [str(tmp_path), "--reps", "5"], "--reps 5", "--bootstrap-reps"),
        (aggregate, "aggregate", [str(tmp_path), "--reps", "5"], "--reps 5", "--bootstrap-reps"),
        (aggregate, "aggregate", [str(tmp_path), "--output", "a.json"], "--output a.json",
         "--json"),
        (atari100k, "atari100k", ["--reps", "5"], "--reps 5", "--bootstrap-reps"),
        (benchmark, "benchmark", ["dqn", "--output", "b.json"], "--output b.json", "--json"),
    ]  # fmt: skip
    for module, prog, argv, given, new in old:
        line = one_error_line(capsys, module.main, argv)
        assert line == (
            f"{prog}: error: unrecognized arguments: {given}; did you mean {new}? "
            f"(see {prog} --help)"
        )
    assert not list(tmp_path.iterdir())


def test_flags_take_underscores_and_none():
    config, resume = train_script.parse_config(
        ["--preset", "cartpole", "--total_steps", "5000", "--learning_rate=0.5",
         "--stop-at-return", "none", "--no_double_dqn", "--hidden", "16", "8"]
    )  # fmt: skip
    assert not resume
    assert config == preset("cartpole").replace(
        total_steps=5000, learning_rate=0.5, stop_at_return=None, double_dqn=False, hidden=(16, 8)
    )
    assert preset("cartpole").stop_at_return == 475.0  # none really changed it


def test_convert_names_the_flag_the_value_and_what_is_accepted():
    from typing import Literal

    hint = tuple[int, ...] | None
    assert _cli.convert("--h", hint, ["3", "4"]) == (3, 4)
    assert _cli.convert("--h", hint, ["None"]) is None
    assert _cli.convert("--x", float | None, "1e-4") == 0.0001
    assert _cli.convert("--m", Literal["a", "b"], "b") == "b"
    assert _cli.convert("--p", str, "x", choices=("x", "y")) == "x"
    with pytest.raises(argparse.ArgumentError) as info:
        _cli.convert("--h", hint, ["3", "x"])
    assert str(info.value) == "--h: 'x' is not accepted; use integers separated by spaces or none"
    with pytest.raises(argparse.ArgumentError) as info:
        _cli.convert("--p", str, "z", choices=("x", "y"))
    assert str(info.value) == "--p: 'z' is not accepted; use one of x, y"
    with pytest.raises(argparse.ArgumentError) as info:
        _cli.convert("--d", _cli.Path, " ")
    assert str(info.value) == "--d: ' ' is not accepted; use a path"
