"""On-disk format of the decoded-stem cache: folder layout, file names, atomic index/array I/O.

:mod:`keras_inst.data.cache.build` writes the cache, :mod:`keras_inst.data.cache.store` reads it; both
use only the helpers here to find and name its files.

Format version 1, one folder per sample rate, ``<cache_dir>/sr<rate>/``:

- ``index.json``: ``{"format_version": 1, "sample_rate": int, "entries": {key: entry},
  "failed": {key: failure}}`` with ``key = "<dataset>/<stem_id>"``. An entry holds dataset,
  stem_id, song_id, classes, source (path), size and mtime_ns of the source when decoded,
  envelope_hop, num_samples, scale, peak and the two file names below. A failure holds the
  source's size/mtime_ns, kind and message, so an unchanged broken file is reported, not re-read.
- ``stems/<name>.npy``: int16 ``[num_samples]`` mono audio; the sample value is
  ``int16 * scale`` with ``scale = peak / 32767`` (float32), so absolute levels, and with them
  the relative levels of a song's stems, are kept. Read memory-mapped.
- ``stems/<name>.env.npy``: float32 ``[ceil(num_samples / envelope_hop)]`` activity envelope:
  RMS in dB re full scale of non-overlapping frames ``[i*hop, (i+1)*hop)`` (last one zero
  padded), floored at -120 dB.

Decoding: soundfile -> mean over channels -> ``scipy.signal.resample_poly`` to the model rate.
Files are written to a temp name and ``os.replace``d; names carry a digest of the source's
size/mtime, so a rebuilt stem gets new files and the index (also replaced atomically and
checkpointed during a build) only ever names complete files. Files no index entry names are
deleted at the end of the next build. A different format version or sample rate in an index
means a full rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst import atomic

# One logger for the whole cache (format, build and reads), as before the modules were split.
logger = logging.getLogger("keras_inst.data.cache.store")

FORMAT_VERSION = 1
ENVELOPE_FLOOR_DB = -120.0


def rate_dir(cache_dir: str | Path, sample_rate: int) -> Path:
    """The folder holding the cache for one sample rate."""
    return Path(cache_dir).expanduser() / f"sr{int(sample_rate)}"


def entry_key(dataset: str, stem_id: str) -> str:
    """The index key of a stem: ``"<dataset>/<stem_id>"``."""
    return f"{dataset}/{stem_id}"


def file_base(key: str, size: int, mtime_ns: int, hop: int) -> str:
    """File name stem of a cached stem: readable key plus a digest of the source's signature."""
    digest = hashlib.sha1(f"{key}\0{size}\0{mtime_ns}\0{hop}".encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', key)[:80]}-{digest}"


def empty_index(sample_rate: int) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "sample_rate": sample_rate,
            "entries": {}, "failed": {}}


def read_index(root: Path, sample_rate: int) -> dict[str, Any] | None:
    """The index, or None when absent; a foreign version or rate gives an empty index (rebuild)."""
    path = root / "index.json"
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("audio cache index %s unreadable (%s); rebuilding", path, e)
        return empty_index(sample_rate)
    found = (index.get("format_version"), index.get("sample_rate"))
    if found != (FORMAT_VERSION, sample_rate):
        logger.warning("audio cache %s has (format, rate) %s, want %s; rebuilding", path, found,
                       (FORMAT_VERSION, sample_rate))
        return empty_index(sample_rate)
    return index


def write_index(root: Path, index: dict[str, Any]) -> None:
    """Replace ``root/index.json`` atomically (temp file, fsync, rename)."""
    atomic.write_json(root / "index.json", index, indent=None, fsync=True)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` through a temp name, so ``path`` is complete or absent."""
    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a path
            np.save(f, array)

    atomic.write_with(path, save)
