"""Decoded-stem cache, read side: every stem decoded once, mono, at the model rate, for fast chunks.

:func:`open_cache` gives an :class:`AudioCache` over a built cache: memory-mapped int16 audio,
chunk reads, activity envelopes and consolidation into one array; :func:`ensure_cache` builds
what is missing first. The on-disk format is described in :mod:`keras_inst.data.cache.format`; the
build (decoding, incremental updates, ``python -m keras_inst.data cache``) is
:mod:`keras_inst.data.cache.build`, whose :func:`build_cache` is imported here for ensure_cache.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from keras_inst.data.cache.build import build_cache
from keras_inst.data.cache.format import entry_key, logger, rate_dir, read_index
from keras_inst.data.datasets.base import Song

if TYPE_CHECKING:
    from keras_inst.config.schema import ExperimentConfig

CLI_ADVICE = "run `python -m keras_inst.data cache --config CONFIG` (or --dataset NAME --root DIR)"


@dataclass(frozen=True)
class CacheEntry:
    """One cached stem."""

    dataset: str
    song_id: str
    stem_id: str
    classes: frozenset[str]
    num_samples: int
    scale: float  # sample value = int16 * scale
    peak: float
    envelope_hop: int
    sample_rate: int
    audio_path: Path
    envelope_path: Path
    source: Path

    @property
    def key(self) -> str:
        return entry_key(self.dataset, self.stem_id)

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate


class Consolidated(NamedTuple):
    """Every entry's audio and envelope in one array each, in entry order."""

    audio: np.ndarray  # int16 [total_samples]; value = audio * scales[i] inside entry i
    offsets: np.ndarray  # int64 [n] start of entry i in audio
    lengths: np.ndarray  # int64 [n] samples of entry i
    scales: np.ndarray  # float32 [n]
    envelopes: np.ndarray  # float32 [total_frames] dBFS
    envelope_offsets: np.ndarray  # int64 [n]
    envelope_lengths: np.ndarray  # int64 [n]
    envelope_hop: int


class AudioCache:
    """Read access to a built cache: memory-mapped audio, chunks, envelopes, consolidation."""

    def __init__(self, root: Path, entries: Sequence[CacheEntry], *, sample_rate: int,
                 missing: Sequence[tuple[str, str, str]] = (), max_open: int = 4096) -> None:
        self.root = root
        self.sample_rate = sample_rate
        self.entries = list(entries)
        self.missing = list(missing)  # (key, source file, reason)
        self._maps: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._max_open = max_open  # bounds open memory maps (the OS limits them per process)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries)

    def _map(self, path: Path) -> np.ndarray:
        with self._lock:
            arr = self._maps.get(path)
            if arr is None:
                arr = np.load(path, mmap_mode="r")
                self._maps[path] = arr
                if len(self._maps) > self._max_open:
                    self._maps.popitem(last=False)
            else:
                self._maps.move_to_end(path)
            return arr

    def int16(self, entry: CacheEntry) -> np.ndarray:
        """Stored int16 ``[num_samples]`` (read-only memory map); value = int16 * entry.scale."""
        return self._map(entry.audio_path)

    def audio(self, entry: CacheEntry) -> np.ndarray:
        """The whole stem as float32 ``[num_samples]``."""
        return self.int16(entry).astype(np.float32) * np.float32(entry.scale)

    def chunk(self, entry: CacheEntry, start: int, length: int) -> np.ndarray:
        """float32 ``[length]`` from sample ``start``; zeros outside the stem (either side)."""
        if length < 0:
            raise ValueError(f"chunk length must be >= 0, got {length} for {entry.key}")
        start, length = int(start), int(length)
        out = np.zeros(length, np.float32)
        lo, hi = max(start, 0), min(start + length, entry.num_samples)
        if hi > lo:
            out[lo - start: hi - start] = self.int16(entry)[lo:hi] * np.float32(entry.scale)
        return out

    def envelope(self, entry: CacheEntry) -> np.ndarray:
        """Frame RMS in dBFS, float32 ``[ceil(num_samples / envelope_hop)]`` (read-only memmap)."""
        return self._map(entry.envelope_path)

    def active_frames(self, entry: CacheEntry, threshold_db_rel_max: float, *,
                      floor_db: float = -90.0) -> np.ndarray:
        """bool ``[frames]``: frame RMS within ``threshold_db_rel_max`` (< 0) of the stem's loudest
        frame and above ``floor_db`` dBFS (so a silent stem has no active frame)."""
        env = np.asarray(self.envelope(entry))
        if env.size == 0:
            return np.zeros(0, bool)
        return (env >= env.max() + threshold_db_rel_max) & (env > floor_db)

    def consolidate(self, entries: Sequence[CacheEntry] | None = None) -> Consolidated:
        """All audio (int16) and envelopes of ``entries`` (default: all) concatenated in order."""
        entries = self.entries if entries is None else list(entries)
        hops = {e.envelope_hop for e in entries}
        if len(hops) > 1:
            raise ValueError(f"entries have different envelope hops {sorted(hops)}; "
                             "build them with one envelope_hop")
        lengths = np.array([e.num_samples for e in entries], np.int64)
        env_lengths = np.array([-(-e.num_samples // e.envelope_hop) for e in entries], np.int64)
        offsets = np.cumsum(lengths) - lengths  # [n] start of each entry
        env_offsets = np.cumsum(env_lengths) - env_lengths
        audio = np.empty(int(lengths.sum()), np.int16)
        envs = np.empty(int(env_lengths.sum()), np.float32)
        for i, e in enumerate(entries):
            audio[offsets[i]: offsets[i] + lengths[i]] = self.int16(e)
            envs[env_offsets[i]: env_offsets[i] + env_lengths[i]] = self.envelope(e)
        scales = np.array([e.scale for e in entries], np.float32)
        return Consolidated(audio, offsets, lengths, scales, envs, env_offsets, env_lengths,
                            hops.pop() if hops else 0)


def _entry(root: Path, e: dict[str, Any], sample_rate: int, song_id: str | None = None,
           classes: frozenset[str] | None = None) -> CacheEntry:
    return CacheEntry(
        dataset=e["dataset"], song_id=song_id if song_id is not None else e["song_id"],
        stem_id=e["stem_id"], classes=classes if classes is not None else frozenset(e["classes"]),
        num_samples=e["num_samples"], scale=e["scale"], peak=e["peak"],
        envelope_hop=e["envelope_hop"], sample_rate=sample_rate,
        audio_path=root / "stems" / e["audio"], envelope_path=root / "stems" / e["envelope"],
        source=Path(e["source"]))


def open_cache(cache_dir: str | Path, songs: Sequence[Song] | None = None, *,
               sample_rate: int) -> AudioCache:
    """Open the cache; with ``songs`` only their stems (song order), missing/stale ones reported."""
    root = rate_dir(cache_dir, sample_rate)
    index = read_index(root, sample_rate)
    if index is None:
        raise ValueError(f"no audio cache at {sample_rate} Hz in {root}; {CLI_ADVICE}")
    table = index["entries"]
    if songs is None:
        return AudioCache(root, [_entry(root, table[k], sample_rate) for k in sorted(table)],
                          sample_rate=sample_rate)
    entries: list[CacheEntry] = []
    missing: list[tuple[str, str, str]] = []
    for song in songs:
        for stem in song.stems:
            key = entry_key(song.dataset, stem.stem_id)
            e = table.get(key)
            if e is None:
                bad = index["failed"].get(key)
                why = f"{bad['kind']}: {bad['message']}" if bad else "not cached"
                missing.append((key, str(stem.path), why))
                continue
            try:
                st = os.stat(stem.path)
                if (st.st_size, st.st_mtime_ns) != (e["size"], e["mtime_ns"]):
                    missing.append((key, str(stem.path), "source changed since it was cached"))
                    continue
            except OSError:
                pass  # source gone: the cached copy is all there is
            entries.append(_entry(root, e, sample_rate, song.song_id, stem.classes))
    if missing:
        logger.warning("audio cache %s: %d of %d stems missing or stale (e.g. %s: %s); %s",
                       root, len(missing), len(missing) + len(entries), missing[0][1],
                       missing[0][2], CLI_ADVICE)
    return AudioCache(root, entries, sample_rate=sample_rate, missing=missing)


def ensure_cache(cfg: ExperimentConfig, songs: Sequence[Song], *, workers: int | None = None,
                 progress: bool = True) -> AudioCache:
    """Build what is missing for ``songs`` (an ExperimentConfig gives dir, rate, hop), then open."""
    kw = {"sample_rate": cfg.audio.sample_rate}
    build_cache(songs, cfg.data.cache_dir, workers=workers, progress=progress,
                envelope_hop=cfg.features.hop_length, **kw)
    return open_cache(cfg.data.cache_dir, songs, **kw)
