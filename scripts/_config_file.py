"""The settings in a config file (``--config FILE``): YAML or JSON, a mapping of a config
dataclass's field names to values, all of them or some; a run's ``config.json`` is such a file.

``read_config_file`` checks each key against the dataclass (an unknown key is refused with the
closest field named; types through ``agents.run.file_checks.check_config_dict``) and gives each
value as its field holds it. YAML is read with PyYAML's safe loader, except that ``1e-4`` is a
number as in YAML 1.2.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts._cli import one_line, split_optional

_YAML_FLOAT = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's safe loader, except that ``1e-4`` and ``3E5`` are numbers (YAML 1.2 reads them
    so; PyYAML's YAML 1.1 rule wants a dot and would give the string ``'1e-4'``)."""
    import yaml

    float_tag = "tag:yaml.org,2002:float"

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != float_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(float_tag, _YAML_FLOAT, list("-+0123456789."))
    return Loader


def _read_yaml(path: Path, flag: str) -> dict[str, Any]:
    import yaml

    from agents.run.file_checks import read_bounded_text

    text = read_bounded_text(path, flag, "config file")
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError) as error:
        raise ValueError(f"{flag} {path} is not valid YAML ({one_line(error)})") from None
    if data is None:  # an empty file: no settings
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{flag} {path} holds a YAML {type(data).__name__}; a mapping of settings is expected"
        )
    return data


def _as_field_value(hint: object, value: object) -> object:
    """A value read from a file as its field holds it: lists as tuples, whole numbers of a float
    field as floats, text of a path field as a Path."""
    inner, _ = split_optional(hint)
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(value)
    if inner is float and isinstance(value, int):
        return float(value)
    if inner is Path and isinstance(value, str):
        return Path(value)
    return value


def read_config_file(
    path: str | Path, cls: type, renamed: Mapping[str, str] | None = None, flag: str = "--config"
) -> dict[str, object]:
    """``{field: value}`` of the settings in ``path``: YAML (``.yaml``, ``.yml``) or JSON
    (``.json``), a mapping of field names (hyphens or underscores) of ``cls`` to values, all of
    them or some. ``renamed``: old names of fields, read as the new ones. One ``ValueError``
    line names the file and the key for an unknown key (with the closest field) or a value of
    the wrong type (``agents.run.file_checks.check_config_dict``)."""
    from agents.run import file_checks

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = file_checks.read_json_object(path, flag)
    elif suffix in (".yaml", ".yml"):
        data = _read_yaml(path, flag)
    else:
        raise ValueError(f"{flag}: {str(path)!r} is not accepted; use a .yaml, .yml or .json file")
    where = f"{flag} {path}"
    fields = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, object] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        name = (renamed or {}).get(name, name)
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else "; accepted: the settings --help lists"
            )
            raise ValueError(f"{where}: unknown setting {key!r}{hint}")
        if name in values:
            raise ValueError(f"{where}: {key!r} sets {name!r}, which another key sets too")
        values[name] = value
    file_checks.check_config_dict(values, where, cls)
    hints = typing.get_type_hints(cls)
    return {name: _as_field_value(hints[name], value) for name, value in values.items()}
