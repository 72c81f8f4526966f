"""Typed specs: one nested dataclass per task, loaded strictly from YAML.

A recipe is a YAML file checked against its dataclass. Unknown keys, wrong types and missing required
fields fail at load and name the dotted path (``optim.lr: expected float, got 'fast'``). Overrides on the
command line are ``key.sub=value`` where ``value`` is parsed as YAML (``optim.lr=3e-4``,
``data.train=[a.jsonl,b.jsonl]``). The resolved spec (:func:`spec_to_dict`) is saved beside every checkpoint
and export.

Usage::

    @dataclass
    class Optim:
        lr: float            # required: no default
        weight_decay: float = 0.0

    @dataclass
    class TrainSpec:
        optim: Optim
        epochs: int = 10

    spec = load_spec(TrainSpec, "recipe.yaml", ["optim.lr=1e-3"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import SpecError

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    if isinstance(tp, type):
        return tp.__name__
    if get_origin(tp) in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    return str(tp).replace("typing.", "")


class _PathError(SpecError):
    """A spec error about the dotted ``path``; ``mismatch``: the value there has the wrong type (a union tries each
    of its types and reports the most specific error of those that failed)."""

    def __init__(self, message: str, path: str, mismatch: bool = False):
        super().__init__(message)
        self.path = path
        self.mismatch = mismatch


def _mismatch(path: str, expected: str, value: Any) -> _PathError:
    return _PathError(f"{path or '<root>'}: expected {expected}, got {value!r}", path, mismatch=True)


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against type ``tp`` and return it converted (dataclasses built recursively)."""
    origin = get_origin(tp)
    where = path or "<root>"
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in get_args(tp):
                return None
            raise _PathError(f"{where}: expected {_type_name(tp)}, got null", path, mismatch=True)
        failed = []
        for arg in get_args(tp):
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except _PathError as exc:
                failed.append(exc)
        # the error of the type that matched deepest (``xs[1]: expected int`` of a list[int] | None), unless every
        # type failed on the value itself: then the union's own message
        specific = [e for e in failed if not (e.mismatch and e.path == path)]
        if specific:
            raise max(specific, key=lambda e: len(e.path))
        raise _mismatch(path, _type_name(tp), value)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise _mismatch(path, f"one of {list(choices)}", value)
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _mismatch(path, f"a mapping for {tp.__name__}", value)
        return _build(tp, value, path)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _mismatch(path, "a list", value)
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise _PathError(f"{where}: expected {len(args)} items, got {len(value)}", path, mismatch=True)
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _mismatch(path, "a mapping", value)
        args = get_args(tp) or (Any, Any)
        return {_convert(args[0], k, f"{path}.{k}"): _convert(args[1], v, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(path, "bool", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch(path, "int", value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string; accept plain float literals
            try:
                return float(value)
            except ValueError:
                pass
        raise _mismatch(path, "float", value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _mismatch(path, "str", value)
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _mismatch(path, "a path", value)
    raise _PathError(f"{where}: unsupported spec type {_type_name(tp)}", path)


def _build(cls: type[T], data: dict, path: str) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise _PathError(
            f"{prefix}{unknown[0]}: unknown key for {cls.__name__} (known keys: {', '.join(sorted(fields))})",
            prefix + str(unknown[0]),
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], prefix + name)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise _PathError(f"{prefix}{name}: required field missing ({_type_name(hints[name])})", prefix + name)
    try:
        return cls(**kwargs)
    except _PathError:
        raise
    except SpecError as exc:  # raised by a __post_init__: keep its message
        raise _PathError(str(exc), path) from exc
    except (ValueError, TypeError) as exc:  # __post_init__ validation
        raise _PathError(f"{path or '<root>'}: {exc}", path) from exc


def spec_from_dict(cls: type[T], data: dict | None) -> T:
    """Build ``cls`` from a plain mapping, strictly."""
    return _build(cls, data or {}, "")


def spec_to_dict(spec: Any) -> Any:
    """The resolved spec as plain YAML-able data (paths become strings, tuples lists)."""
    if dataclasses.is_dataclass(spec):
        return {f.name: spec_to_dict(getattr(spec, f.name)) for f in dataclasses.fields(spec)}
    if isinstance(spec, (list, tuple)):
        return [spec_to_dict(v) for v in spec]
    if isinstance(spec, dict):
        return {k: spec_to_dict(v) for k, v in spec.items()}
    if isinstance(spec, Path):
        return str(spec)
    return spec


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-4"`` -> ``(["optim", "lr"], 3e-4)``. The value is parsed as YAML."""
    if "=" not in text:
        raise SpecError(f"override {text!r}: expected key.sub=value (for example optim.lr=3e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise SpecError(f"override {text!r}: empty key (write key.sub=value)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise SpecError(f"override {text!r}: value is not valid YAML ({exc.problem})") from exc
    return key.split("."), value


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Set each ``key.sub=value`` into a nested mapping (creating intermediate mappings)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for i, k in enumerate(keys[:-1]):
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            elif not isinstance(child, dict):
                raise SpecError(f"override {text!r}: {'.'.join(keys[: i + 1])} is not a section")
            node = child
        node[keys[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found (pass --spec with the path of a recipe YAML, see recipes/)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: top level must be a mapping of spec fields, got {type(data).__name__}")
    return data


def load_spec(cls: type[T], path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> T:
    """Load a YAML recipe strictly against ``cls`` and apply ``key.sub=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    try:
        return spec_from_dict(cls, data)
    except SpecError as exc:
        if path is not None:
            raise SpecError(f"{path}: {exc}") from None
        raise


def save_spec(spec: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
