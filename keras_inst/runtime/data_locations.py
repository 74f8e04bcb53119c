"""Where a run's data live, from any working directory: the run's ``data_locations.json``.

A run's ``config.yaml`` keeps its data paths as written, and ``configs/demo.yaml`` writes them
relative (``data.roots.rendered: data/rendered``, ``data.cache_dir: data/cache``): relative to
the folder the run was started from. :func:`record_data_locations`, called when a run directory
is prepared (:meth:`keras_inst.training.run_dir.RunDir.prepare`), writes that folder and every
data path made absolute beside ``config.yaml``; :func:`resolve_data_locations` (used by
:func:`keras_inst.runtime.loader.load_artifact` for the run config it returns) gives the config
with those absolute paths, so export and evaluate find the data wherever they are run from.
Runs made before the record existed: each relative path is looked for from the working
directory, then from the run directory's parent folders (``runs/demo`` -> the checkout); one
that is not found (a cache not built yet) is taken from where the first data root was.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from keras_inst import atomic
from keras_inst.runtime.artifacts import RUN_CONFIG, RUN_DATA_LOCATIONS

# data.* keys holding one path (or None) besides data.roots.
PATH_KEYS: tuple[str, ...] = ("cache_dir", "held_out_root", "slakh_problem_stems", "soundfont")


def _absolute(path: str | None, base: Path) -> str | None:
    return None if path is None else str((base / Path(path).expanduser()).resolve())


def data_locations(cfg: Any, *, base: Path) -> dict[str, Any]:
    """``{"working_directory", "roots": {name: path}, cache_dir, ...}``: the config's data paths
    made absolute against ``base`` (absolute ones and ``~`` stay what they are)."""
    d = cfg.data
    return {"working_directory": str(base.resolve()), "roots": {k: _absolute(v, base) for k, v in d.roots.items()},
            **{k: _absolute(getattr(d, k), base) for k in PATH_KEYS}}


def record_data_locations(cfg: Any, run_dir: str | Path, *, base: str | Path | None = None) -> Path:
    """Write ``run_dir/data_locations.json`` for ``cfg`` started from ``base`` (default: the
    working directory); returns its path."""
    base = Path.cwd() if base is None else Path(base)
    return atomic.write_json(Path(run_dir) / RUN_DATA_LOCATIONS, data_locations(cfg, base=base))


def _read_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_DATA_LOCATIONS
    expected = "an object with 'roots' (written by record_data_locations)"
    rec = atomic.read_json_object(path, expected=expected)
    if rec is not None and not isinstance(rec.get("roots"), dict):
        raise ValueError(f"{path}: expected {expected}")
    return rec


def _find_base(path: str, run_dir: Path) -> Path | None:
    """The first of the working directory and the run directory's parents holding ``path``."""
    for base in (Path.cwd(), *run_dir.resolve().parents):
        if (base / path).exists():
            return base
    return None


def resolve_data_locations(cfg: Any, run_dir: str | Path) -> Any:
    """``cfg`` (the run's config) with its relative data paths made absolute: from the run's
    record if it has one, else where each is found (see module doc); a relative path found
    nowhere stays relative, and whoever reads it reports it missing."""
    run_dir = Path(run_dir)
    d = cfg.data
    rec = _read_record(run_dir)
    relative = [p for p in d.roots.values() if p and not Path(p).expanduser().is_absolute()]
    # Where the run was (probably) started: where its first relative root is found. Paths that
    # need not exist yet (the cache) are resolved against it.
    guess = next((b for p in relative if (b := _find_base(p, run_dir)) is not None), None) if rec is None else None

    def resolve(key: str, path: str | None) -> str | None:
        if path is None or Path(path).expanduser().is_absolute():
            return path
        if rec is not None:
            return rec["roots"].get(key[6:]) if key.startswith("roots.") else rec.get(key, path)
        base = _find_base(path, run_dir) or guess
        return path if base is None else _absolute(path, base)

    roots = {k: resolve(f"roots.{k}", v) or v for k, v in d.roots.items()}
    paths = {k: resolve(k, getattr(d, k)) for k in PATH_KEYS}
    return dataclasses.replace(cfg, data=dataclasses.replace(d, roots=roots, **paths))


def load_run_config(run_dir: str | Path) -> Any:
    """A run directory's ``config.yaml`` with its data paths made absolute
    (:func:`resolve_data_locations`): what every reader of a finished run starts from."""
    from keras_inst.config.io import load_config

    return resolve_data_locations(load_config(Path(run_dir) / RUN_CONFIG), run_dir)


def missing_data_hint(cfg: Any, run_dir: Path | None) -> str | None:
    """None if every dataset root of ``cfg`` is a folder, else which is missing and what to do."""
    for name in cfg.data.datasets:
        root = cfg.data.roots.get(name)
        if not root:
            return f"data root of {name!r} is not set (config key data.roots.{name} of the run)"
        if not Path(root).expanduser().is_dir():
            where = f" (relative: looked for from {Path.cwd()} and above {run_dir})" if not Path(root).expanduser().is_absolute() else ""
            record = f"{run_dir / RUN_DATA_LOCATIONS}" if run_dir is not None else RUN_DATA_LOCATIONS
            return (f"data root of {name!r} ({root}) is not available{where}; run from the folder the run was "
                    f"started in, or write its absolute location into {record} (\"roots\": {{\"{name}\": ...}})")
    return None
