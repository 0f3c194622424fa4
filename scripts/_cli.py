"""What the command-line scripts share: one parser, and user errors as one stderr line with exit
code 2.

Library code raises ``ValueError`` with one clear message for anything a user can get wrong
(unknown name, bad number, missing file); a script's ``main`` wrapped in ``cli_main`` prints that
message on one line, without a traceback, and returns 2. ``SystemExit`` raised while parsing
(``--help``, a malformed flag) becomes the return value, so tests can call ``main([...])``
in-process.

- ``ArgumentParser``: argparse whose parse errors are one line, that takes no abbreviated flags,
  names the closest known flag when one is unknown (difflib, and ``RENAMED_FLAGS`` for old
  spellings), and shows every option's default in ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import io
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

USER_ERROR_EXIT_CODE = 2
RENAMED_FLAGS = {"--lr": "--learning-rate", "--threads": "--torch-threads"}
"""Old spellings of flags, named in the error when one is given."""


def exit_on_signals_while_loading() -> None:
    """Until ``main`` installs its own handlers (``agents.interrupts.SignalGuard``), SIGINT or
    SIGTERM ends the script in one line with exit code 130 or 143: it comes while the modules
    load, before anything is written."""
    import os
    import signal

    def on_signal(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"stopped by {name} during start-up; nothing was written", flush=True)
        os._exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)


def one_line(message: object) -> str:
    """``message`` as a single line (inner newlines become spaces)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def report_user_error(error: BaseException, prog: str) -> int:
    """Print ``prog: error: <message>`` on stderr and return the user-error exit code."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return USER_ERROR_EXIT_CODE


def cli_main(prog: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorate a ``main(argv) -> int`` so user errors and parser exits return an exit code."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args: object, **kwargs: object) -> int:
            try:
                return main(*args, **kwargs)
            except ValueError as error:
                return report_user_error(error, prog)
            except SystemExit as done:  # argparse / tyro: --help or a malformed flag
                if done.code is None or isinstance(done.code, int):
                    return done.code or 0
                print(done.code, file=sys.stderr)
                return 1

        return wrapped

    return decorate


# -- the parser ------------------------------------------------------------------------------


def shown_default(value: object) -> str:
    """A default as it would be typed: true/false, a list as its items, a path as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return " ".join(shown_default(v) for v in value)
    return str(value)


def _escape(text: str) -> str:
    return text.replace("%", "%%")  # argparse formats help strings with %


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless its text already speaks of it or the
    option is a switch (off unless given), required, or without a default (its help says what
    then happens)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.required
            or action.nargs == 0
            or default is None
            or default is argparse.SUPPRESS
            or "(default" in text
        ):
            return text
        return f"{text} (default: {_escape(shown_default(default))})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Descriptions and epilogs: paragraphs (split at blank lines) wrapped one by one, and
        each line that starts with ``- `` an item of a list, wrapped under its own text."""
        blocks = []
        for paragraph in re.split(r"\n\s*\n", textwrap.dedent(text).strip()):
            items = re.split(r"\n\s*(?=- )", paragraph)
            lines = []
            for item in items:
                words = " ".join(item.split())
                hang = "  " if words.startswith("- ") else ""
                lines += textwrap.wrap(words, width, initial_indent=indent,
                                       subsequent_indent=indent + hang)  # fmt: skip
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)


def normalize_flags(argv: Iterable[str], flags: Iterable[str]) -> list[str]:
    """``argv`` with ``--field_name`` (or ``--field_name=V``) spelled ``--field-name`` wherever
    that is one of ``flags``; everything else unchanged."""
    known = set(flags)
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, sep, value = arg.partition("=")
            if name.replace("_", "-") in known:
                arg = name.replace("_", "-") + sep + value
        out.append(arg)
    return out


def unknown_message(extras: Sequence[str], flags: Sequence[str]) -> str:
    """``unrecognized arguments: ...`` and, for the first unknown flag, the closest known one."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    for extra in extras:
        if not extra.startswith("-"):
            continue
        name = extra.split("=", 1)[0]
        close = difflib.get_close_matches(name, flags, n=1)
        if RENAMED_FLAGS.get(name) in flags:
            close = [RENAMED_FLAGS[name]]
        return f"{message}; did you mean {close[0]}?" if close else message
    return message


class ArgumentParser(argparse.ArgumentParser):
    """argparse for every script: a parse error is one ``ValueError`` line (exit code 2 through
    ``cli_main``), flags are never abbreviated, ``--flag_name`` is read as ``--flag-name``, an
    unknown flag is named with the closest known ones, and ``--help`` shows each default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        raise ValueError(f"{message} (see {self.prog} --help)")

    def long_flags(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        argv = normalize_flags(sys.argv[1:] if args is None else args, self.long_flags())
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            self.error(unknown_message(extras, self.long_flags()))
        return parsed


T = TypeVar("T")


def condense_tyro_error(text: str, prog: str) -> str:
    """tyro's boxed parse error as one line: the message, a suggested flag if any, the help hint.

    The box is a title, the message, then sections (help text, suggestions) between rules."""
    lines = []  # (is_rule, text)
    for raw in text.splitlines():
        core = raw.strip(" \t│╭╮╰╯")
        if core and set(core) <= set("-─ "):
            lines.append((True, ""))
        elif core.strip("─ "):
            lines.append((False, core.strip("─ ")))
    if not lines:
        return f"bad flags (see {prog} --help)"
    sections, current = [], []
    for is_rule, line in lines[1:]:  # lines[0] is the title
        if is_rule:
            if current:
                sections.append(current)
            current = []
        else:
            current.append(line)
    if current:
        sections.append(current)
    message = " ".join(sections[0]) if sections else lines[0][1]
    for section in sections[1:]:
        if section[0].startswith("Perhaps you meant"):
            flags = [line.split()[0] for line in section[1:] if line.startswith("--")]
            if flags:
                message += f"; did you mean {', '.join(flags[:3])}?"
    return f"{message} (see {prog} --help)"


def tyro_cli(
    cls: type[T], default: T, args: Sequence[str], prog: str, description: str | None = None
) -> T:
    """``tyro.cli`` whose parse errors become one ``ValueError`` line (exit 2 via cli_main);
    ``description``: the text ``--help`` shows above the flags (default: the class docstring)."""
    import tyro

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(
                cls, default=default, args=list(args), prog=prog, description=description
            )
    except SystemExit as done:
        if done.code in (0, None):
            raise
        text = re.sub(r"\x1b\[[0-9;]*m", "", captured.getvalue())
        raise ValueError(condense_tyro_error(text, prog)) from None
