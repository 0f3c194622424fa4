"""Helpers shared by the command-line scripts: user errors become one stderr line and exit code 2.

Library code raises ``ValueError`` with one clear message for anything a user can get wrong
(unknown name, bad number, missing file); a script's ``main`` wrapped in ``cli_main`` prints that
message on one line, without a traceback, and returns 2. ``SystemExit`` raised while parsing
(``--help``, a malformed flag) becomes the return value, so tests can call ``main([...])``
in-process.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

USER_ERROR_EXIT_CODE = 2


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
