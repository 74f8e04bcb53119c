"""MTG-Jamendo tagging data for pre-training (paper §2.2): tracks, tags, splits, chunk streams.

Tracks come from :mod:`keras_inst.data.datasets.mtg_jamendo` and are decoded once into the audio
cache; training examples are random 4-second chunks (reproducible per example index, so a
resumed run continues the same sequence); validation and test use evenly spaced chunks per
track, averaged per track by :mod:`keras_inst.training.pretrain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_inst.config.schema import ExperimentConfig
from keras_inst.data.cache.build import build_cache
from keras_inst.data.cache.store import AudioCache, CacheEntry, open_cache
from keras_inst.data.datasets.base import ReaderReport, Song

DATASET = "mtg_jamendo"
SPLITS = ("train", "validation", "test")


@dataclass
class TaggingData:
    """Cached tracks and their multi-hot tags, per split."""

    tags: tuple[str, ...]  # output order of the model's sigmoids
    tsv: Path
    cache: AudioCache
    entries: dict[str, list[CacheEntry]]  # split -> cached tracks
    labels: dict[str, np.ndarray]  # split -> float32 [n_tracks, n_tags]
    split_source: str  # "official" or "random (...)"


def tag_matrix(songs: Sequence[Song], tags: Sequence[str]) -> np.ndarray:
    """float32 ``[len(songs), len(tags)]``: 1 where a song's (raw) tag is in ``tags``."""
    col = {t: i for i, t in enumerate(tags)}
    out = np.zeros((len(songs), len(tags)), np.float32)
    for r, song in enumerate(songs):
        for label in song.stems[0].labels:
            if label in col:
                out[r, col[label]] = 1.0
    return out


def jamendo_root(cfg: ExperimentConfig) -> Path:
    """``data.roots.mtg_jamendo``, checked."""
    root = cfg.data.roots.get(DATASET)
    if not root:
        raise ValueError(
            f"config key 'data.roots.{DATASET}': not set; pass --set data.roots.{DATASET}=DIR"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ValueError(f"config key 'data.roots.{DATASET}': folder {str(path)!r} does not exist")
    return path


def load_tagging_data(
    cfg: ExperimentConfig,
    *,
    tsv: str | Path | None = None,
    split_dir: str | Path | None = None,
    audio_dir: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> TaggingData:
    """Read the TSV and its official split, cache the audio, and label every cached track.

    The tag vocabulary is every tag of the TSV (all rows, downloaded or not), sorted: the
    model's outputs do not depend on which part of the audio is present. Without split files
    the tracks are split at random with ``data.split``/``data.split_seed``/``data.group_by``.
    """
    from keras_inst.data.datasets import mtg_jamendo

    root_path = jamendo_root(cfg)
    tsv_path = Path(tsv).expanduser() if tsv is not None else mtg_jamendo.find_tsv(root_path)
    if not tsv_path.is_file():
        raise ValueError(f"--tsv {str(tsv_path)!r}: no such file")
    tags = mtg_jamendo.tag_vocabulary(mtg_jamendo.read_tags(tsv_path))
    if not tags:
        raise ValueError(f"{tsv_path}: no tags in any row")
    report = ReaderReport(dataset=DATASET)
    songs = mtg_jamendo.read(
        root_path, report=report, tsv=tsv_path, split_dir=split_dir, audio_dir=audio_dir
    )
    counts = ", ".join(f"{k} {n}" for k, n in sorted(report.counts.items())) or "none"
    print(
        f"{DATASET}: {len(songs)} tracks with audio, {len(tags)} tags in {tsv_path.name} "
        f"(reader problems: {counts})"
    )
    parts, split_source = _split_tracks(cfg, songs)
    all_songs = [s for name in SPLITS for s in parts[name]]
    cache_report = build_cache(
        all_songs,
        cfg.data.cache_dir,
        sample_rate=cfg.audio.sample_rate,
        workers=workers,
        progress=progress,
        envelope_hop=cfg.features.hop_length,
    )
    print(cache_report.summary(max_problems=10))
    cache = open_cache(cfg.data.cache_dir, all_songs, sample_rate=cfg.audio.sample_rate)
    entries: dict[str, list[CacheEntry]] = {}
    labels: dict[str, np.ndarray] = {}
    for name in SPLITS:
        by_id = {s.song_id: s for s in parts[name]}
        entries[name] = [e for e in cache.entries if e.song_id in by_id]  # tracks that decoded
        labels[name] = tag_matrix([by_id[e.song_id] for e in entries[name]], tags)
    for name in ("train", "validation"):
        if not entries[name]:
            raise ValueError(
                f"{DATASET}: no cached {name} tracks under {root_path} ({split_source} split); "
                "check the audio folder and the split files"
            )
    return TaggingData(tags, tsv_path, cache, entries, labels, split_source)


def _split_tracks(cfg: ExperimentConfig, songs: list) -> tuple[dict[str, list], str]:
    """The official split when the split files are there, else a seeded random one; and its name."""
    from keras_inst.data.splits import split_songs

    if any(s.official_split for s in songs):
        return split_songs(songs, use_official=True, unassigned="drop"), "official"
    parts = split_songs(
        songs, fractions=cfg.data.split, seed=cfg.data.split_seed, group_by=cfg.data.group_by
    )
    return parts, (f"random (no split files; data.split {list(cfg.data.split)}, "
                   f"seed {cfg.data.split_seed})")


def training_chunk(
    seed: int, example: int, lengths: np.ndarray, chunk_samples: int
) -> tuple[int, int]:
    """(track index, start sample) of training example ``example``: a uniformly drawn track and
    a uniform chunk position in it. A pure function of (seed, example), so a resumed run
    continues the uninterrupted stream exactly."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(example)]))
    track = int(rng.integers(len(lengths)))
    start = int(rng.integers(max(1, int(lengths[track]) - chunk_samples + 1)))
    return track, start


def _read_chunks(
    cache: AudioCache,
    entries: Sequence[CacheEntry],
    plan: Sequence[tuple[int, int]],
    chunk_samples: int,
) -> np.ndarray:
    """float32 ``[len(plan), chunk_samples]`` (zero padded past a track's end)."""
    out = np.zeros((len(plan), chunk_samples), np.float32)
    for row, (track, start) in enumerate(plan):
        out[row] = cache.chunk(entries[track], start, chunk_samples)
    return out


def _finish(ds, chunk_samples: int, n_tags: int):
    import tensorflow as tf

    def shapes(x, y):
        return tf.ensure_shape(x, [None, chunk_samples]), tf.ensure_shape(y, [None, n_tags])

    return ds.map(shapes).prefetch(tf.data.AUTOTUNE)


def training_dataset(data: TaggingData, cfg: ExperimentConfig, *, start_example: int = 0):
    """Infinite ``(waveform [B, chunk_samples], tags [B, n_tags])`` batches of random chunks.

    Examples ``start_example, start_example + 1, ...`` of the seeded stream; they are drawn at
    random already, so no shuffle buffer is used (a buffer would also break exact resume).
    """
    import tensorflow as tf

    entries, labels = data.entries["train"], data.labels["train"]
    lengths = np.array([e.num_samples for e in entries], np.int64)
    t, seed = cfg.audio.chunk_samples, cfg.training.seed

    def batch(examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = [training_chunk(seed, int(i), lengths, t) for i in examples]
        return _read_chunks(data.cache, entries, plan, t), labels[[p[0] for p in plan]]

    par = cfg.training.num_parallel_calls or tf.data.AUTOTUNE
    ds = tf.data.Dataset.range(int(start_example), np.iinfo(np.int64).max).batch(
        cfg.training.batch_size
    )
    ds = ds.map(
        lambda i: tf.numpy_function(batch, [i], (tf.float32, tf.float32)),
        num_parallel_calls=par,
        deterministic=True,
    )
    return _finish(ds, t, len(data.tags))


def evaluation_plan(
    lengths: Sequence[int], *, chunk_samples: int, chunks_per_track: int
) -> list[tuple[int, int]]:
    """(track, start) pairs: ``chunks_per_track`` evenly spaced chunks per track, from its start
    to its end (fewer, without repeats, when the track is short; one for a track <= a chunk)."""
    plan: list[tuple[int, int]] = []
    for track, n in enumerate(lengths):
        last = max(0, int(n) - chunk_samples)
        starts = np.unique(np.round(np.linspace(0, last, chunks_per_track)).astype(np.int64))
        plan += [(track, int(s)) for s in starts]
    return plan


def evaluation_dataset(data: TaggingData, cfg: ExperimentConfig, split: str):
    """Finite, deterministic ``(waveform, tags)`` batches of a split's evenly spaced chunks, and
    the track index of every chunk (``int64 [n_chunks]``) for track-level averaging."""
    import tensorflow as tf

    entries, labels = data.entries[split], data.labels[split]
    t = cfg.audio.chunk_samples
    plan = evaluation_plan(
        [e.num_samples for e in entries],
        chunk_samples=t,
        chunks_per_track=cfg.mixing.eval_chunks_per_song,
    )
    tracks = np.array([p[0] for p in plan], np.int64)
    starts = np.array([p[1] for p in plan], np.int64)

    def batch(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = list(zip(tracks[idx].tolist(), starts[idx].tolist(), strict=True))
        return _read_chunks(data.cache, entries, rows, t), labels[tracks[idx]]

    par = cfg.training.num_parallel_calls or tf.data.AUTOTUNE
    ds = tf.data.Dataset.range(len(plan)).batch(cfg.training.batch_size)
    ds = ds.map(
        lambda i: tf.numpy_function(batch, [i], (tf.float32, tf.float32)),
        num_parallel_calls=par,
        deterministic=True,
    )
    return _finish(ds, t, len(data.tags)), tracks
