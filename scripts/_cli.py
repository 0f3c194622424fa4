"""What the command-line scripts share: one parser, flags generated from a config dataclass,
config files, and user errors as one stderr line with exit code 2.

Library code raises ``ValueError`` with one clear message for anything a user can get wrong
(unknown name, bad number, missing file); a script's ``main`` wrapped in ``cli_main`` prints that
message on one line, without a traceback, and returns 2. ``SystemExit`` raised while parsing
(``--help``) becomes the return value, so tests can call ``main([...])`` in-process.

- ``ArgumentParser``: argparse whose parse errors are one line, that takes no abbreviated flags,
  names the closest known flag when one is unknown (difflib, and ``RENAMED_FLAGS`` for old
  spellings), and shows every option's default in ``--help``.
- ``add_config_flags``: one flag per field of a frozen dataclass config (``TrainConfig``,
  ``SupervisedConfig``): ``--field-name`` (``--field_name`` is accepted too), its help from the
  attribute docstring under the field, its type from the annotation (int, float, str, Path, bool
  as ``--flag/--no-flag``, Literal as choices, ``X | None`` taking ``none``, tuples as a list of
  values), the default the run would use, and the fields under headings. A value that does not
  convert is refused naming the flag, the value and what is accepted.

Config files (``--config FILE``) are read by ``scripts._config_file.read_config_file``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

USER_ERROR_EXIT_CODE = 2
RENAMED_FLAGS = {
    "--lr": "--learning-rate", "--threads": "--torch-threads", "--reps": "--bootstrap-reps",
    "--output": "--json",
}  # fmt: skip
"""Old spellings of flags, named in the error when one is given."""


def exit_on_signals_while_loading() -> None:
    """Until ``main`` installs its own handlers (``agents.run.interrupts.SignalGuard``), SIGINT,
    SIGTERM or SIGHUP ends the script in one line with exit code 130, 143 or 129: it comes while
    the modules load, before anything is written. SIGHUP stays ignored where it is (``nohup``);
    after it the terminal may be gone, and the line is then not printed."""
    import os
    import signal

    def on_signal(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        try:
            print(f"stopped by {name} during start-up; nothing was written", flush=True)
        except OSError:  # the terminal hung up (EIO)
            pass
        os._exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if sig != signal.SIGHUP or signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, on_signal)


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` cut at the first ``--``: the script's own flags, and the flags it passes on to
    every ``scripts.train`` call (the suites, sweeps and soak runs)."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


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
            except SystemExit as done:  # argparse: --help
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


# -- flags generated from a dataclass ----------------------------------------------------------


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: the docstring under it, as one paragraph}``, read from the class source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def split_optional(hint: object) -> tuple[object, bool]:
    """``(X, True)`` for ``X | None``, else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return rest[0], True
    return hint, False


def _is_tuple(hint: object) -> bool:
    return typing.get_origin(hint) is tuple


_WORDS = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    Path: ("a path", "paths"),
}
_METAVARS = {int: "INT", float: "FLOAT", str: "STR", Path: "PATH"}


def accepted_words(hint: object, choices: Sequence[str] | None = None) -> str:
    """What a flag of type ``hint`` accepts, in words ("an integer or none", "one of a, b")."""
    inner, optional = split_optional(hint)
    if _is_tuple(inner):
        element = typing.get_args(inner)[0]
        words = _WORDS.get(element, ("a string", "strings"))[1] + " separated by spaces"
    elif choices is not None or typing.get_origin(inner) is Literal:
        words = "one of " + ", ".join(map(str, choices or typing.get_args(inner)))
    else:
        words = _WORDS.get(inner, ("a string", "strings"))[0]
    return words + (" or none" if optional else "")


def _metavar(hint: object, choices: Sequence[str] | None) -> str:
    inner, optional = split_optional(hint)
    if _is_tuple(inner):  # [INT ...]; none is a word of the help text
        inner, optional = typing.get_args(inner)[0], False
    if choices is not None or typing.get_origin(inner) is Literal:
        text = "{" + ",".join(map(str, choices or typing.get_args(inner))) + "}"
    else:
        text = _METAVARS.get(inner, "STR")
    return f"{text}|none" if optional else text


def convert(flag: str, hint: object, raw: str | list[str], choices: Sequence[str] | None = None):
    """``raw`` (one string, or a list for a tuple field) as a value of type ``hint``; ``none``
    (any case) is None where the field may be None. Raises ``argparse.ArgumentError`` naming the
    flag, the value and what is accepted."""
    inner, optional = split_optional(hint)
    if optional and (raw if isinstance(raw, str) else " ".join(raw)).lower() == "none":
        return None

    def refuse(text: str) -> typing.NoReturn:
        words = accepted_words(hint, choices)
        raise argparse.ArgumentError(None, f"{flag}: {text!r} is not accepted; use {words}")

    def one(kind: object, text: str) -> object:
        if typing.get_origin(kind) is Literal:
            match = [a for a in typing.get_args(kind) if str(a) == text]
            return match[0] if match else refuse(text)
        if choices is not None and text not in choices:
            refuse(text)
        try:
            if kind is int:
                return int(text)
            if kind is float:
                return float(text)
        except ValueError:
            refuse(text)
        if kind is Path:
            return Path(text) if text.strip() else refuse(text)
        return text

    if _is_tuple(inner):
        element = typing.get_args(inner)[0]
        return tuple(one(element, text) for text in raw)
    return one(inner, raw)


class FieldAction(argparse.Action):
    """Stores a flag's value converted to its field's type (``convert``)."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str,
        hint: object = str,
        accepted: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.hint, self.accepted = hint, accepted
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        flag = self.option_strings[0]
        setattr(namespace, self.dest, convert(flag, self.hint, values, self.accepted))


def field_flags(cls: type) -> list[str]:
    """Every flag ``add_config_flags`` makes for ``cls`` (``--no-x`` of the switches too)."""
    from agents.run import checks

    hints = typing.get_type_hints(cls)
    flags = []
    for field in dataclasses.fields(cls):
        flags.append(checks.flag_name(field.name))
        if hints[field.name] is bool:
            flags.append("--no-" + checks.flag_name(field.name)[2:])
    return flags


def check_groups(cls: type, groups: Mapping[str, Sequence[str]]) -> None:
    """Raise unless every field of ``cls`` is in exactly one of ``groups``."""
    listed = [name for names in groups.values() for name in names]
    fields = [f.name for f in dataclasses.fields(cls)]
    twice = sorted({n for n in listed if listed.count(n) > 1})
    missing, unknown = sorted(set(fields) - set(listed)), sorted(set(listed) - set(fields))
    if twice or missing or unknown:
        raise RuntimeError(
            f"{cls.__name__} flag groups: twice {twice}, missing {missing}, unknown {unknown}"
        )


def default_texts(config: object, unset_means: Mapping[str, str]) -> dict[str, str]:
    """``{field: its default as --help shows it}``: the value of ``config``, or for a None or
    empty value what it means (``unset_means``)."""
    texts = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None or value == ():
            texts[field.name] = unset_means.get(field.name, "none")
        else:
            texts[field.name] = shown_default(value)
    return texts


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    groups: Mapping[str, Sequence[str]],
    defaults: Mapping[str, str],
    choices: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """One flag per field of ``cls``, under the headings of ``groups`` in their order, each
    help text ending with ``(default: defaults[field])``; a field no group names (``check_groups``
    is what the tests hold the groups to) comes last, under "other settings". Nothing is stored
    for a flag not given (``config_flag_values`` returns the given ones)."""
    from agents.run import checks

    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    placed: set[str] = set()
    ordered = {title: [n for n in names if n in hints] for title, names in groups.items()}
    ordered["other settings"] = [
        f.name for f in dataclasses.fields(cls) if all(f.name not in g for g in groups.values())
    ]
    for title, names in ordered.items():
        if not names:
            continue
        group = parser.add_argument_group(title)
        for name in names:
            if name in placed:
                continue
            placed.add(name)
            hint, flag = hints[name], checks.flag_name(name)
            text = _escape(f"{docs.get(name, '')} (default: {defaults[name]})".strip())
            if hint is bool:
                group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                   default=argparse.SUPPRESS, help=text)  # fmt: skip
                continue
            accepted = (choices or {}).get(name)
            group.add_argument(
                flag,
                dest=name,
                action=FieldAction,
                hint=hint,
                accepted=accepted,
                nargs="*" if _is_tuple(split_optional(hint)[0]) else None,
                default=argparse.SUPPRESS,
                metavar=_metavar(hint, accepted),
                help=text,
            )


def config_flag_values(namespace: argparse.Namespace, cls: type) -> dict[str, object]:
    """``{field: value}`` of the flags given (the fields ``add_config_flags`` stored)."""
    return {
        f.name: getattr(namespace, f.name)
        for f in dataclasses.fields(cls)
        if hasattr(namespace, f.name)
    }
