"""Study configurations: typed fields, TOML in (``tomllib``) and out (a small writer), and
validation with errors that name the bad key and value.

A configuration is a *flat* table of scalars and lists (no nested tables): the fields a
study declares (:class:`Field`), plus ``seed``. Sources are applied in order: the study's
defaults (or its quick values with ``quick=True``), a TOML file, then ``key=value``
overrides (the value is read as a TOML value, so ``qubits=[2, 4]``, ``eps=0.1`` and
``cost="local"`` work; a bare word such as ``cost=local`` is taken as a string). Nothing is
executed and nothing is unpickled: TOML is parsed by the standard library's ``tomllib``
(``tomli`` on Python 3.10).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib

from qjaxrob.errors import ParameterError, QjrTypeError

__all__ = ["Field", "dumps_toml", "parse_override", "read_toml", "resolve", "validate"]

_UNSET = object()
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Field:
    """One configuration key.

    Attributes:
        default: the full-run value (its type fixes the key's type: ``bool``, ``int``,
            ``float``, ``str``, or a non-empty ``list`` of one of these).
        help: one line describing the key (units, meaning).
        quick: the ``--quick`` value (default: same as ``default``).
        low, high: inclusive bounds for numbers (each element of a numeric list).
        choices: the allowed values of a string (each element of a string list).
    """

    default: Any
    help: str
    quick: Any = _UNSET
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    @property
    def kind(self) -> tuple[type, bool]:
        """``(element type, is_list)``."""
        if isinstance(self.default, list):
            return type(self.default[0]), True
        return type(self.default), False

    def value(self, quick: bool):
        v = self.quick if quick and self.quick is not _UNSET else self.default
        return list(v) if isinstance(v, list) else v


def _type_name(t: type, is_list: bool) -> str:
    name = {bool: "a bool", int: "an int", float: "a number", str: "a string"}[t]
    return f"a non-empty list of {name.split(' ', 1)[1]}s" if is_list else name


def _check_scalar(key: str, v, t: type, f: Field, where: str):
    ok = (isinstance(v, bool) if t is bool else
          isinstance(v, str) if t is str else
          isinstance(v, int) and not isinstance(v, bool) if t is int else
          isinstance(v, (int, float)) and not isinstance(v, bool))
    if not ok:
        raise QjrTypeError(f"config key {key!r}{where} must be {_type_name(*f.kind)}, got "
                           f"{v!r} ({type(v).__name__})")
    if t is float:
        v = float(v)
        if not math.isfinite(v):
            raise ParameterError(f"config key {key!r}{where} must be finite, got {v!r}")
    if t in (int, float):
        if f.low is not None and v < f.low:
            raise ParameterError(f"config key {key!r}{where} must be >= {f.low}, got {v!r}")
        if f.high is not None and v > f.high:
            raise ParameterError(f"config key {key!r}{where} must be <= {f.high}, got {v!r}")
    if f.choices is not None and v not in f.choices:
        raise ParameterError(f"config key {key!r}{where} must be one of "
                             f"{', '.join(map(repr, f.choices))}; got {v!r}")
    return v


def _check(key: str, v, f: Field, where: str = ""):
    t, is_list = f.kind
    if not is_list:
        return _check_scalar(key, v, t, f, where)
    if not isinstance(v, list) or not v:
        raise QjrTypeError(f"config key {key!r}{where} must be {_type_name(t, True)}, got "
                           f"{v!r} ({type(v).__name__})")
    return [_check_scalar(key, e, t, f, where) for e in v]


def validate(fields: dict, config: dict, *, study: str = "", where: str = "") -> dict:
    """A checked copy of ``config`` (a flat dict) against ``fields``: unknown keys, wrong
    types and out-of-range values raise ``ParameterError``/``QjrTypeError`` naming them."""
    out = {}
    for key, v in config.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ParameterError(f"unknown config key {key!r}{where}"
                                 f"{f' for study {study!r}' if study else ''}; valid keys: {known}")
        out[key] = _check(key, v, fields[key], where)
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``; the value is read as a TOML value, or kept as a
    string if it is not one (``cost=local``)."""
    if not isinstance(text, str) or "=" not in text:
        raise ParameterError(f"an override must look like key=value, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ParameterError(f"an override must look like key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def read_toml(path) -> dict:
    """A flat TOML table from ``path`` (nested tables are rejected)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ParameterError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    for key, v in data.items():
        if isinstance(v, dict):
            raise ParameterError(f"config file {str(path)!r}: key {key!r} is a table; study "
                                 f"configs are flat (key = value lines)")
    return data


def resolve(study, *, quick: bool = False, file=None, overrides=(), seed=None) -> dict:
    """The full configuration of ``study`` (a ``runner.Study``): defaults (quick values if
    ``quick``), then the TOML ``file``, then ``overrides`` (``"key=value"`` strings or a
    dict), then ``seed``. A ``study = "name"`` entry in the file must name this study."""
    fields = study.all_fields
    config = {k: f.value(quick) for k, f in fields.items()}
    if file is not None:
        data = read_toml(file)
        named = data.pop("study", study.name)
        if named != study.name:
            raise ParameterError(f"config file {str(file)!r} is for study {named!r}, not "
                                 f"{study.name!r}")
        config.update(validate(fields, data, study=study.name, where=f" in {str(file)!r}"))
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, v in items:
        config.update(validate(fields, {key: v}, study=study.name, where=" (override)"))
    if seed is not None:
        config.update(validate(fields, {"seed": seed}, study=study.name))
    return config


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string (JSON escapes are TOML escapes)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(e) for e in v) + "]"
    raise QjrTypeError(f"cannot write {v!r} ({type(v).__name__}) as a TOML value")


def dumps_toml(config: dict, header: str = "") -> str:
    """A flat dict of bools, ints, floats, strings and lists of them as TOML text
    (``tomllib.loads`` reads it back to an equal dict)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for key, v in config.items():
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ParameterError(f"config key {key!r} is not a bare TOML key")
        lines.append(f"{key} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
