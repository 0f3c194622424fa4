"""Every script's --help, in-process: real defaults (never "(default: None)"), and parse errors as
one line with exit code 2."""

from __future__ import annotations

import importlib
import re

import pytest

SCRIPTS = ["evaluate", "plot", "aggregate", "atari100k", "ablation", "benchmark",
           "export_pretrained", "demo", "soak"]  # fmt: skip
# Scripts whose flags are this package's shared parser: each value a flag takes shows its
# default. Options without one are required.
OWN = [s for s in SCRIPTS if s not in ("evaluate", "plot")]
REQUIRED = {"export_pretrained": {"--name"}, "soak": {"--output-dir"}}


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


@pytest.mark.parametrize("script", OWN)
def test_every_option_that_takes_a_value_shows_its_default(capsys, script):
    blocks = option_blocks(run_help(capsys, script))
    valued = [f for f, block in blocks.items() if takes_value(block)]
    assert valued, blocks  # the parsing of the help text found the options
    missing = [
        f for f in valued if "(default" not in blocks[f] and f not in REQUIRED.get(script, ())
    ]
    assert missing == []


def test_the_other_scripts_name_the_closest_flag(tmp_path, capsys):
    from scripts import aggregate

    line = one_error_line(capsys, aggregate.main, [str(tmp_path), "--rep", "5"])
    assert line == (
        "aggregate: error: unrecognized arguments: --rep 5; did you mean --reps? "
        "(see aggregate --help)"
    )
    from scripts import ablation

    line = one_error_line(capsys, ablation.main, ["--seed", "1"])  # flags are never abbreviated
    assert line == (
        "ablation: error: unrecognized arguments: --seed 1; did you mean --seeds? "
        "(see ablation --help)"
    )
