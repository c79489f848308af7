"""Configuration layering: defaults < recipe < command line, and the checks every config shares.

A method's configuration is one frozen dataclass. A run's configuration is the package's recipe for the dataset
(or the named ``--recipe``), with the options the user gave on the command line (and ``--set field=value``)
replacing single fields; the result is validated and saved as ``config.json``. Evaluation and resume rebuild the
same dataclass from that file. None of this needs the CLI: `mixlab.cli` and the evaluation code both use it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from mixlab.errors import ConfigError, RunDirError


def need(condition: bool, message: str) -> None:
    """Raise the user-facing ConfigError `message` unless `condition` holds."""
    if not condition:
        raise ConfigError(message)


# -- values of the right type -------------------------------------------------------------------------------------
def _describe(kind: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if kind in names:
        return names[kind]
    return str(kind).replace("typing.", "")


def coerce(name: str, value: Any, kind: Any) -> Any:
    """``value`` as the field type ``kind`` (int, float, bool, str, tuples, optionals, literals), else a ConfigError
    naming the field: a wrong type stops at the command line instead of deep inside training."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(name, value, option)
            except ConfigError:
                pass
        raise ConfigError(
            f"{name} expects {' or '.join(_describe(a) for a in args if a is not type(None))}, got {value!r}"
        )
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{name} must be one of {', '.join(map(str, args))}, not {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} expects a list such as [1, 2], got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(name, v, args[0]) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{name} expects {len(args)} values, got {len(value)}")
        return tuple(coerce(name, v, a) for v, a in zip(value, args)) if args else tuple(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} expects true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name} expects an integer, got {value!r}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if value == "inf":
            return float("inf")
        raise ConfigError(f"{name} expects a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ConfigError(f"{name} expects a string, got {value!r}")
    return value


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


# -- layering -----------------------------------------------------------------------------------------------------
def override(config: Any, **values: Any) -> Any:
    """`dataclasses.replace` with the options the user gave (None means 'keep the recipe's value'), type-checked."""
    given = {k: v for k, v in values.items() if v is not None}
    types_ = field_types(type(config))
    unknown = sorted(set(given) - set(types_))
    if unknown:
        raise ConfigError(f"unknown option(s) for {type(config).__name__}: {', '.join(unknown)}")
    return dataclasses.replace(config, **{k: coerce(k, v, types_[k]) for k, v in given.items()})


def config_from_dict(cls: type, data: dict[str, Any], *, where: str = "the saved config") -> Any:
    """Rebuild a (frozen) config dataclass from its saved dict; fields renamed since (``cls.RENAMED``) are mapped."""
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    data = {renamed.get(k, k): v for k, v in data.items()}
    types_ = field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(
            f"{where} has fields this version of {cls.__name__} does not know. Unknown fields: {', '.join(unknown)}; "
            "it was written by another method or a newer version"
        )
    return cls(**{k: coerce(k, v, types_[k]) for k, v in data.items()})


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs (values parsed as JSON when they can be: numbers, true/false, lists)."""
    result: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if value == "inf":
            value = float("inf")
        result[key.strip().replace("-", "_")] = value
    return result


def merge_options(explicit: dict[str, Any], set_items: list[str] | None) -> dict[str, Any]:
    """The command's own options (None = not given) plus its `--set` fields; a field given both ways is an error."""
    extra = parse_set_options(set_items)
    both = sorted(k for k in extra if explicit.get(k) is not None)
    if both:
        raise ConfigError(f"{', '.join(both)} given both as an option and with --set; give it once")
    return {**explicit, **extra}


def resolve_config(book: Any, recipe: str | None, overrides: dict[str, Any]) -> Any:
    """The recipe (named, or the package's default for the dataset given, the book's built-in dataset when none:
    ``digits``, or ``digit-scenes`` for segmentation) with the overrides."""
    builtin = getattr(book, "builtin_dataset", "digits")
    base = book.get(recipe).config if recipe else book.default(overrides.get("dataset") or builtin).config
    return override(base, **overrides).validate()


def load_run_config(run_dir: str | Path, config_cls: type, package: str) -> Any:
    """The configuration a run directory was trained with; a run of another package is refused by name."""
    from mixlab.engine.rundir import CONFIG, read_json

    path = Path(run_dir) / CONFIG
    try:
        saved = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"cannot read {path}: {exc}") from None
    writer = saved.get("method")
    if writer is not None and writer != package:
        raise RunDirError(
            f"{run_dir} is a run of `{writer}`, not `{package}`: continue it with `{writer} train --resume`"
        )
    return config_from_dict(config_cls, saved.get("config", {}), where=str(path))
