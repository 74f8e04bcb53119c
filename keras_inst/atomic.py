"""Atomic file writes (write beside the target under a hidden temporary name, then ``os.replace``) and the one JSON-object reader.

Every output of keras_inst (configs, states, reports, models, cache files, exports) is written
through here, so an interrupted process never leaves a half-written file under the final name:
a reader sees the old file or the new one. The temporary name carries the process id, so two
processes writing the same target never share a temporary file, and :func:`clean_stale` removes
what a killed writer left behind. This module imports nothing from keras_inst (any layer may use it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def temp_path(path: str | Path) -> Path:
    """A temporary sibling of ``path`` for this process: ``.<name>.tmp-<pid><suffix>``.

    The suffixes are kept (``model.keras`` -> ``.model.keras.tmp-123.keras``,
    ``b.weights.h5`` -> ``.b.weights.h5.tmp-123.weights.h5``) because some writers
    (``keras.Model.save``, ``save_weights``, matplotlib) choose or check the format from them.
    """
    p = Path(path)
    return p.with_name(f".{p.name}{TMP_MARK}{os.getpid()}{''.join(p.suffixes)}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path``, on error it is removed.

    ``fsync=True`` flushes the file to disk before the rename (for indexes that must survive a
    power cut, not only a killed process).
    """
    final = Path(path)
    tmp = temp_path(final)
    try:
        yield tmp
        if fsync and tmp.is_file():
            _fsync(tmp)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, fsync: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent) + "\n", fsync=fsync)


def write_with(path: str | Path, writer: Callable[[Path], Any], *, fsync: bool = False) -> Path:
    """Call ``writer(tmp_path)`` (e.g. ``model.save``, ``fig.savefig``) and move the result into place."""
    with atomic_path(path, fsync=fsync) as tmp:
        writer(tmp)
    return Path(path)


def publish_dir(tmp: str | Path, final: str | Path, *, if_exists: str) -> bool:
    """Move the finished folder ``tmp`` to ``final`` by renames only; True if ``tmp`` went in.

    ``if_exists="keep"``: an existing ``final`` wins (another process finished the same work
    first; ``tmp`` is deleted). ``"replace"``: the old ``final`` is renamed aside, ``tmp`` renamed
    in, then the old one deleted, so ``final`` is never missing or half-written.
    """
    tmp, final = Path(tmp), Path(final)
    if if_exists not in ("keep", "replace"):
        raise ValueError(f"if_exists must be 'keep' or 'replace', got {if_exists!r}")
    if if_exists == "keep":
        try:
            if not final.exists():
                os.replace(tmp, final)
                return True
        except OSError:  # lost a race: final appeared between the check and the rename
            if not final.exists():
                raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    old = final.with_name(f".{final.name}.old-{os.getpid()}") if final.exists() else None
    if old is not None:
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return True


def clean_stale(folder: str | Path) -> int:
    """Remove temporary files of :func:`temp_path` that killed writers left in ``folder``; their count."""
    n = 0
    for p in Path(folder).glob(f".*{TMP_MARK}*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def read_json_object(path: str | Path, *, expected: str = "a JSON object at the top level") -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if there is no such file; ValueError naming the file
    (and ``expected``) if it is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected {expected}")
    return dict(data)
