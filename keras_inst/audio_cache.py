"""Decoded-stem cache: every stem decoded once, mono, at the model rate, for fast chunk reads.

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
import math
import os
import re
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from keras_inst.datasets.base import Song

if TYPE_CHECKING:
    from keras_inst.config import ExperimentConfig

logger = logging.getLogger("keras_inst.audio_cache")

FORMAT_VERSION = 1
ENVELOPE_FLOOR_DB = -120.0
FAILURE_KINDS = ("missing_file", "empty_file", "unreadable_audio", "empty_audio", "invalid_audio")
CLI_ADVICE = "run `python -m keras_inst.data cache --config CONFIG` (or --dataset NAME --root DIR)"
_CHECKPOINT_SECONDS = 30.0


def rate_dir(cache_dir: str | Path, sample_rate: int) -> Path:
    """The folder holding the cache for one sample rate."""
    return Path(cache_dir).expanduser() / f"sr{int(sample_rate)}"


def decode_mono(path: str | Path, *, sample_rate: int) -> np.ndarray:
    """Decode any soundfile-readable file to float32 mono ``[samples]`` at ``sample_rate``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [frames, channels]
    mono = data.mean(axis=1, dtype=np.float32)  # [frames]
    if sr != sample_rate and mono.size:
        g = math.gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, sr // g).astype(np.float32)  # [frames*up/down]
    return mono


def frame_rms_db(x: np.ndarray, hop: int) -> np.ndarray:
    """RMS in dBFS of non-overlapping ``hop``-sample frames: ``[n] -> [ceil(n/hop)]`` float32."""
    frames = -(-x.size // hop)
    padded = np.zeros(frames * hop, np.float64)
    padded[: x.size] = x
    ms = np.mean(padded.reshape(frames, hop) ** 2, axis=1)  # [frames]
    floor = 10.0 ** (ENVELOPE_FLOOR_DB / 10.0)
    return (10.0 * np.log10(np.maximum(ms, floor))).astype(np.float32)


def _write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _process_job(job: dict[str, Any]) -> dict[str, Any]:
    """Decode one stem and write its two files (runs in a worker process)."""
    import soundfile as sf

    path = Path(job["source"])
    try:
        if os.path.getsize(path) == 0:
            return {"ok": False, "kind": "empty_file", "message": "file is empty (0 bytes)"}
        x = decode_mono(path, sample_rate=job["sample_rate"])
    except FileNotFoundError as e:
        return {"ok": False, "kind": "missing_file", "message": str(e)}
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, EOFError) as e:
        return {"ok": False, "kind": "unreadable_audio", "message": f"{type(e).__name__}: {e}"}
    if x.size == 0:
        return {"ok": False, "kind": "empty_audio", "message": "decoded to 0 samples"}
    if not np.isfinite(x).all():
        return {"ok": False, "kind": "invalid_audio", "message": "decoded to NaN/inf samples"}
    peak = float(np.max(np.abs(x)))
    scale = np.float32(peak / 32767.0 if peak > 0 else 1.0 / 32767.0)
    q = np.clip(np.rint(x / scale), -32767, 32767).astype(np.int16)  # [samples]
    stems = Path(job["root"]) / "stems"
    _write_npy(stems / job["audio"], q)
    _write_npy(stems / job["envelope"], frame_rms_db(x, job["envelope_hop"]))
    return {"ok": True, "num_samples": int(x.size), "scale": float(scale), "peak": peak}


@dataclass
class CacheReport:
    """What a build did: stems decoded now, found up to date, problems as (kind, file, message)."""

    cache_dir: Path
    sample_rate: int
    built: int = 0
    up_to_date: int = 0
    pruned: int = 0
    seconds: float = 0.0  # audio held for the listed stems
    bytes_on_disk: int = 0
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, kind: str, file: str | Path, message: str) -> None:
        self.problems.append((kind, str(file), message))
        logger.warning("audio cache: %s: %s: %s", kind, file, message)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(k for k, _, _ in self.problems))

    @property
    def failed(self) -> int:
        return sum(1 for k, _, _ in self.problems if k in FAILURE_KINDS)

    def summary(self, *, max_problems: int = 50) -> str:
        lines = [
            f"audio cache {self.cache_dir}: {self.built} stems cached now, "
            f"{self.up_to_date} up to date, {self.failed} failed; "
            f"{self.seconds / 3600:.2f} h of audio at {self.sample_rate} Hz, "
            f"{self.bytes_on_disk / 2**20:.1f} MiB on disk"
        ]
        if self.problems:
            counts = sorted(self.counts.items())
            lines.append("problems: " + ", ".join(f"{k} {n}" for k, n in counts))
            lines += [f"  {k}: {f}: {m}" for k, f, m in self.problems[:max_problems]]
            if len(self.problems) > max_problems:
                lines.append(f"  ... and {len(self.problems) - max_problems} more")
        return "\n".join(lines)


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
        return f"{self.dataset}/{self.stem_id}"

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


def _key(dataset: str, stem_id: str) -> str:
    return f"{dataset}/{stem_id}"


def _file_base(key: str, size: int, mtime_ns: int, hop: int) -> str:
    digest = hashlib.sha1(f"{key}\0{size}\0{mtime_ns}\0{hop}".encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', key)[:80]}-{digest}"


def _empty_index(sample_rate: int) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "sample_rate": sample_rate,
            "entries": {}, "failed": {}}


def _read_index(root: Path, sample_rate: int) -> dict[str, Any] | None:
    """The index, or None when absent; a foreign version or rate gives an empty index (rebuild)."""
    path = root / "index.json"
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("audio cache index %s unreadable (%s); rebuilding", path, e)
        return _empty_index(sample_rate)
    found = (index.get("format_version"), index.get("sample_rate"))
    if found != (FORMAT_VERSION, sample_rate):
        logger.warning("audio cache %s has (format, rate) %s, want %s; rebuilding", path, found,
                       (FORMAT_VERSION, sample_rate))
        return _empty_index(sample_rate)
    return index


def _write_index(root: Path, index: dict[str, Any]) -> None:
    path = root / "index.json"
    tmp = root / f"index.json.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(index, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """Serialise builds of one cache folder (a second build waits); no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent builds are the user's problem
        yield
        return
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_jobs(jobs: list[dict], workers: int, progress: bool,
              desc: str) -> Iterator[tuple[dict, dict]]:
    """Yield (job, result) as jobs finish, in this process or a pool of ``workers``."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="stem", file=sys.stderr,
               disable=not progress or not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield job, _process_job(job)
                bar.update()
            return
        import multiprocessing

        # fork is fastest and works from any __main__; once TensorFlow runs threads in this
        # process a forked child could inherit held locks, so then spawn fresh interpreters
        fork = "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            futures = {pool.submit(_process_job, job): job for job in jobs}
            try:
                for fut in as_completed(futures):
                    yield futures[fut], fut.result()
                    bar.update()
            finally:
                for fut in futures:
                    fut.cancel()
    finally:
        bar.close()


def build_cache(
    songs: Sequence[Song],
    cache_dir: str | Path,
    *,
    sample_rate: int,
    workers: int | None = None,
    progress: bool = True,
    envelope_hop: int = 256,
    prune: bool = False,
) -> CacheReport:
    """Decode the stems of ``songs`` that are new or changed into the cache; see the module doc.

    ``prune`` deletes entries (and files) of stems not listed in ``songs``, whatever their dataset.
    """
    if sample_rate < 1 or envelope_hop < 1:
        raise ValueError(f"sample_rate and envelope_hop must be >= 1, "
                         f"got {sample_rate} and {envelope_hop}")
    root = rate_dir(cache_dir, sample_rate)
    (root / "stems").mkdir(parents=True, exist_ok=True)
    report = CacheReport(cache_dir=root, sample_rate=sample_rate)
    with _build_lock(root):
        index = _read_index(root, sample_rate) or _empty_index(sample_rate)
        entries, failed = index["entries"], index["failed"]
        listed, jobs = _plan(songs, root, index, envelope_hop=envelope_hop, report=report)
        n_workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
        last_write = time.monotonic()
        try:
            desc = f"caching stems at {sample_rate} Hz"
            for job, res in _run_jobs(jobs, n_workers, progress, desc):
                _record(index, job, res, report)
                if time.monotonic() - last_write > _CHECKPOINT_SECONDS:
                    _write_index(root, index)
                    last_write = time.monotonic()
        except BaseException:
            _write_index(root, index)  # keep what was finished: its files are complete
            raise
        if prune:
            for table in (entries, failed):
                for key in [k for k in table if k not in listed]:
                    del table[key]
                    report.pruned += table is entries
        _write_index(root, index)
        _remove_unreferenced(root, entries)
    for e in (entries[k] for k in listed if k in entries):
        report.seconds += e["num_samples"] / sample_rate
        report.bytes_on_disk += sum(os.path.getsize(root / "stems" / e[f])
                                    for f in ("audio", "envelope"))
    return report


def _plan(songs: Sequence[Song], root: Path, index: dict[str, Any], *, envelope_hop: int,
          report: CacheReport) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Listed stems (key -> source) and jobs for those new or changed; refreshes labels in index."""
    entries, failed = index["entries"], index["failed"]
    listed: dict[str, Path] = {}
    jobs: list[dict[str, Any]] = []
    for song in songs:
        for stem in song.stems:
            key = _key(song.dataset, stem.stem_id)
            if key in listed:
                if Path(stem.path) != listed[key]:
                    report.add("duplicate_stem", stem.path, f"{key} is also {listed[key]}")
                continue
            listed[key] = Path(stem.path)
            try:
                st = os.stat(stem.path)
            except OSError as e:
                report.add("missing_file", stem.path, str(e))
                continue
            meta = {"dataset": song.dataset, "stem_id": stem.stem_id, "song_id": song.song_id,
                    "classes": sorted(stem.classes), "source": str(stem.path)}
            sig = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            old = entries.get(key)
            if (old is not None and {k: old[k] for k in sig} == sig
                    and old["envelope_hop"] == envelope_hop
                    and all((root / "stems" / old[f]).is_file() for f in ("audio", "envelope"))):
                old.update(meta)  # labels/song may change without the audio changing
                report.up_to_date += 1
                continue
            bad = failed.get(key)
            if bad is not None and {k: bad[k] for k in sig} == sig:
                report.add(bad["kind"], stem.path, bad["message"])  # unchanged broken file
                continue
            base = _file_base(key, st.st_size, st.st_mtime_ns, envelope_hop)
            jobs.append({**meta, **sig, "key": key, "root": str(root),
                         "sample_rate": index["sample_rate"], "envelope_hop": envelope_hop,
                         "audio": base + ".npy", "envelope": base + ".env.npy"})
    return listed, jobs


_ENTRY_FIELDS = ("dataset", "stem_id", "song_id", "classes", "source", "size", "mtime_ns",
                 "envelope_hop", "audio", "envelope")


def _record(index: dict[str, Any], job: dict[str, Any], res: dict[str, Any],
            report: CacheReport) -> None:
    """Enter one finished job in the index: a new entry, or a remembered failure."""
    key = job["key"]
    if res["ok"]:
        index["failed"].pop(key, None)
        index["entries"][key] = {**{k: job[k] for k in _ENTRY_FIELDS}, "num_samples":
                                 res["num_samples"], "scale": res["scale"], "peak": res["peak"]}
        report.built += 1
    else:
        index["entries"].pop(key, None)
        index["failed"][key] = {"size": job["size"], "mtime_ns": job["mtime_ns"],
                                "kind": res["kind"], "message": res["message"]}
        report.add(res["kind"], job["source"], res["message"])


def _remove_unreferenced(root: Path, entries: dict[str, dict]) -> None:
    """Delete files of replaced/pruned entries and temp files of killed builds (under the lock)."""
    keep = {e[f] for e in entries.values() for f in ("audio", "envelope")}
    for p in (root / "stems").iterdir():
        if p.name not in keep:
            p.unlink(missing_ok=True)
    for p in root.glob("index.json.tmp-*"):
        p.unlink(missing_ok=True)


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
    index = _read_index(root, sample_rate)
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
            key = _key(song.dataset, stem.stem_id)
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


def run_cache_cli(args: Any) -> int:
    """``python -m keras_inst.data cache``: read the datasets, build the cache, print a summary."""
    from keras_inst.config import load_config
    from keras_inst.datasets import read_dataset

    cfg = load_config(args.config or "paper", args.overrides)
    if args.root and not args.dataset:
        raise ValueError("--root needs --dataset NAME")
    if args.dataset:
        roots = {args.dataset: args.root or cfg.data.roots.get(args.dataset)}
    elif args.config:
        roots = {name: cfg.data.roots.get(name) for name in cfg.data.datasets}
    else:
        raise ValueError("give --config (its data.datasets and data.roots) "
                         "or --dataset NAME --root DIR")
    unset = [name for name, root in roots.items() if not root]
    if unset:
        raise ValueError(f"no root folder for {', '.join(unset)}: "
                         f"pass --root or --set data.roots.{unset[0]}=DIR")
    songs: list[Song] = []
    for name, root in roots.items():
        if name == "rendered" and not Path(root).expanduser().is_dir():
            raise ValueError(f"rendered corpus not found at {root}; render it first: "
                             f"python -m keras_inst.data render --out {root}")
        found, reader_report = read_dataset(name, root)
        n_stems = sum(len(s.stems) for s in found)
        counts = ", ".join(f"{k} {n}" for k, n in sorted(reader_report.counts.items())) or "none"
        print(f"{name}: {len(found)} songs, {n_stems} stems in {root} (reader problems: {counts})")
        songs += found
    report = build_cache(songs, args.cache_dir or cfg.data.cache_dir,
                         sample_rate=args.sample_rate or cfg.audio.sample_rate,
                         workers=args.workers, envelope_hop=cfg.features.hop_length)
    print(report.summary())
    has_stems = any(s.stems for s in songs)
    return 0 if (report.built + report.up_to_date) > 0 or not has_stems else 1
