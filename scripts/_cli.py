"""Helpers shared by the command-line scripts: user errors become one stderr line and exit code 2.

Library code raises ``ValueError`` with one clear message for anything a user can get wrong
(unknown name, bad number, missing file); a script's ``main`` wrapped in ``cli_main`` prints that
message on one line, without a traceback, and returns 2. ``SystemExit`` raised while parsing
(``--help``, a malformed flag) becomes the return value, so tests can call ``main([...])``
in-process.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

USER_ERROR_EXIT_CODE = 2


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
