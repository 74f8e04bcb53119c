"""Building the decoded-stem cache: decoding, incremental parallel builds, the ``cache`` command.

:func:`build_cache` decodes the stems that are new or changed since the last build (format and
layout in :mod:`keras_inst.data.cache.format`), in a pool of worker processes, checkpointing the
index as it goes; broken files are remembered and reported in a :class:`CacheReport`.
:func:`run_cache_cli` is ``python -m keras_inst.data cache``. Reading is
:mod:`keras_inst.data.cache.store`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst import atomic
from keras_inst.data.cache.format import (
    ENVELOPE_FLOOR_DB,
    empty_index,
    entry_key,
    file_base,
    logger,
    rate_dir,
    read_index,
    write_index,
    write_npy,
)
from keras_inst.data.datasets.base import Song

FAILURE_KINDS = ("missing_file", "empty_file", "unreadable_audio", "empty_audio", "invalid_audio")
_CHECKPOINT_SECONDS = 30.0


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
    write_npy(stems / job["audio"], q)
    write_npy(stems / job["envelope"], frame_rms_db(x, job["envelope_hop"]))
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
        index = read_index(root, sample_rate) or empty_index(sample_rate)
        entries, failed = index["entries"], index["failed"]
        listed, jobs = _plan(songs, root, index, envelope_hop=envelope_hop, report=report)
        n_workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
        last_write = time.monotonic()
        try:
            desc = f"caching stems at {sample_rate} Hz"
            for job, res in _run_jobs(jobs, n_workers, progress, desc):
                _record(index, job, res, report)
                if time.monotonic() - last_write > _CHECKPOINT_SECONDS:
                    write_index(root, index)
                    last_write = time.monotonic()
        except BaseException:
            write_index(root, index)  # keep what was finished: its files are complete
            raise
        if prune:
            for table in (entries, failed):
                for key in [k for k in table if k not in listed]:
                    del table[key]
                    report.pruned += table is entries
        write_index(root, index)
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
            key = entry_key(song.dataset, stem.stem_id)
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
            base = file_base(key, st.st_size, st.st_mtime_ns, envelope_hop)
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
    atomic.clean_stale(root)


def run_cache_cli(args: Any) -> int:
    """``python -m keras_inst.data cache``: read the datasets, build the cache, print a summary."""
    from keras_inst.config.io import load_config
    from keras_inst.data.datasets import read_dataset

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
        found, reader_report = read_dataset(name, root,
                                            problem_stems=cfg.data.problem_stems_for(name))
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
