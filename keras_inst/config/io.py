"""Reading and writing experiment configs: YAML files, ``--set`` overrides, dict conversion.

:func:`load_config` loads a file from ``configs/`` or any path (which may name a ``base:`` file
it extends), applies ``--set section.key=value`` overrides (values parsed as YAML) and builds the
frozen dataclasses of :mod:`keras_inst.config.schema`, converting every value to its annotated type
(unknown keys and bad values raise ``ValueError`` naming the key). :func:`dump_config` /
:func:`save_config` write the fully resolved config that every run directory holds;
:func:`add_override_argument` is the ``--set`` option every CLI shares.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from keras_inst import atomic
from keras_inst.config.schema import ExperimentConfig

# ----------------------------------------------------------------------------------------
# Conversion between plain dicts (YAML) and the dataclasses, with type checking.

def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type ``tp`` or raise ValueError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for a in non_none:
            try:
                return _coerce(value, a, key)
            except ValueError as e:  # try the next member of the union
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"config key '{key}': bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"config key '{key}': must be a mapping of fields, got {value!r}")
        return _from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key '{key}': must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"config key '{key}': must be a list of {len(args)} values, got {list(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (Mapping, dict) or tp is Mapping:
        if not isinstance(value, Mapping):
            raise ValueError(f"config key '{key}': must be a mapping, got {value!r}")
        vt = args[1] if args else Any
        return types.MappingProxyType({str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()})
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"config key '{key}': must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"config key '{key}': must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads exponents without a dot, e.g. 1e-4, as strings.
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"config key '{key}': must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key '{key}': must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"config key '{key}': must be a string, got {value!r}")
        return value
    raise ValueError(f"config key '{key}': unsupported type {tp}")


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ValueError(f"unknown config key '{(prefix + '.' if prefix else '') + unknown[0]}' in {where}; known keys: {', '.join(sorted(names))}")
    kwargs = {name: _coerce(val, hints[name], f"{prefix + '.' if prefix else ''}{name}") for name, val in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain YAML-friendly dict of a config (tuples as lists, mappings as dicts)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(data: Mapping[str, Any]) -> ExperimentConfig:
    """Build a validated :class:`ExperimentConfig` from a nested dict."""
    return _from_dict(ExperimentConfig, data)


# ----------------------------------------------------------------------------------------
# YAML files (with base: chains), --set overrides, saving.

def _deep_merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def resolve_config_path(name: str | Path) -> Path:
    """A config given as a path, or by name (``paper``, ``demo.yaml``) from the shipped configs."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    stem = p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml"
    candidates = [Path(__file__).resolve().parents[2] / "configs" / stem]  # source checkout
    try:
        candidates.insert(0, Path(str(resources.files("keras_inst.configs").joinpath(stem))))
    except ModuleNotFoundError:  # editable installs do not map the configs package
        pass
    for shipped in candidates:
        if shipped.is_file():
            return shipped
    raise ValueError(f"config file {str(name)!r} not found (neither a file nor a shipped config in keras_inst/configs)")


def _load_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ValueError(f"config {path}: 'base' chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"config {path}: not valid YAML: {e}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"config {path}: top level must be a mapping, got {type(data).__name__}")
    data = dict(data)
    base = data.pop("base", None)
    if base is not None:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        if not base_path.is_file():
            base_path = resolve_config_path(base)
        data = _deep_merge(_load_yaml_chain(base_path, seen + (path,)), data)
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'mixing.p_musical=0.3'`` -> (['mixing', 'p_musical'], 0.3); values are parsed as YAML."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like section.key=value")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ValueError(f"override {item!r}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    """Apply ``--set a.b=c`` strings to a nested dict (validation happens in :func:`from_dict`)."""
    out = to_dict(data) if dataclasses.is_dataclass(data) else _deep_merge({}, data)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = {}
            elif not isinstance(nxt, Mapping):
                raise ValueError(f"override {item!r}: '{p}' is not a section")
            node[p] = dict(nxt)
            node = node[p]
        node[parts[-1]] = value
    return out


def add_config_arguments(parser: Any, *, default: str, example: str = "mixing.p_musical=0.3") -> None:
    """``--config NAME_OR_FILE`` (default ``default``) and ``--set`` (:func:`add_override_argument`),
    as the training command lines take them."""
    parser.add_argument("--config", default=default, help=f"config file or shipped name (default: {default})")
    add_override_argument(parser, example=example)


def add_override_argument(parser: Any, *, example: str = "mixing.p_musical=0.3") -> None:
    """The repeatable ``--set KEY=VALUE`` option every CLI shares (stored as ``args.overrides``)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=f"override a config value (repeatable), e.g. {example}",
    )


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load a YAML config (following ``base:``), apply overrides, validate."""
    p = resolve_config_path(path)
    data = _load_yaml_chain(p)
    data.setdefault("name", p.stem)
    return from_dict(apply_overrides(data, overrides))


def dump_config(cfg: ExperimentConfig) -> str:
    """The fully resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the fully resolved config to ``path`` (atomically: a killed run leaves no half file)."""
    atomic.write_text(path, dump_config(cfg))
