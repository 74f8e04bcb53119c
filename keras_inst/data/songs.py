"""Whole songs for song-level evaluation: each song's full musical mix and the classes that sound in it.

The window metrics (ROC-AUC, PR-AUC) judge 4-second musical chunks
(:func:`keras_inst.data.pipeline.musical_eval_dataset`); the question a user asks of a file is
"which instruments play here" (:mod:`keras_inst.runtime.presence`). That needs every song of a
split as one signal, with labels of the whole song:

- the **mix**: the sum of all its cached stems (the decoded-stem cache: mono, at the model
  rate, absolute levels kept), no effects, then the evaluation mixes' normalisation: scaled
  down to ``mixing.peak_normalize`` when its peak exceeds it (one gain for the whole song, as a
  produced song has; :func:`keras_inst.data.mixdown.mix_rows` does the same per chunk);
- the **labels**: the union of the (hierarchy-closed) classes of the stems that sound: a stem
  whose loudest envelope frame (RMS over ``features.hop_length`` samples, dBFS) stays below
  ``silence_floor_db`` over the whole song is left out of the labels (still summed, adding
  nothing audible). BabySlakh ships such stems (shared fixtures: S01-S10 of Track00001).

NumPy only, one song in memory at a time (:func:`song_mixes` is a generator).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from keras_inst.data.cache.store import AudioCache, CacheEntry
from keras_inst.data.datasets.base import Song

logger = logging.getLogger("keras_inst.data.songs")

# Frame RMS in dBFS below which a stem counts as silent over the whole song: 60 dB under full
# scale is inaudible under any mix at the levels the datasets are mixed at (and a rendered
# silent stem sits at the cache's -120 dB floor).
SILENCE_FLOOR_DB = -60.0


@dataclass(frozen=True)
class SongMix:
    """One song as a single signal with its song-level labels."""

    dataset: str
    song_id: str
    audio: np.ndarray  # float32 [samples] at sample_rate: the peak-normalised sum of its stems
    sample_rate: int
    classes: frozenset[str]  # closed classes of the stems that sound
    silent_stems: tuple[str, ...]  # stem ids below the silence floor (no labels from them)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def sounds(cache: AudioCache, entry: CacheEntry, *, silence_floor_db: float = SILENCE_FLOOR_DB) -> bool:
    """Whether a cached stem's loudest envelope frame reaches ``silence_floor_db`` (dBFS)."""
    env = np.asarray(cache.envelope(entry))
    return bool(env.size) and float(env.max()) >= silence_floor_db


def full_mix(cache: AudioCache, entries: Sequence[CacheEntry], *, peak_normalize: float) -> np.ndarray:
    """float32 ``[max stem length]``: the stems summed (shorter ones end in silence), scaled down
    to ``peak_normalize`` when the sum's peak exceeds it."""
    if not 0.0 < peak_normalize <= 1.0:
        raise ValueError(f"peak_normalize must be in (0, 1], got {peak_normalize}")
    mix = np.zeros(max((e.num_samples for e in entries), default=0), np.float32)
    for e in entries:
        mix[: e.num_samples] += cache.audio(e)
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > peak_normalize:
        mix *= np.float32(peak_normalize / peak)
    return mix


def song_mixes(cache: AudioCache, songs: Sequence[Song], *, peak_normalize: float,
               silence_floor_db: float = SILENCE_FLOOR_DB) -> Iterator[SongMix]:
    """Every song of ``songs`` with a cached stem, in the given order, as a :class:`SongMix`
    (module doc); songs without any cached stem are left out with a warning."""
    by_song: dict[tuple[str, str], list[CacheEntry]] = {}
    for e in cache.entries:
        by_song.setdefault((e.dataset, e.song_id), []).append(e)
    skipped = []
    for song in songs:
        entries = by_song.get((song.dataset, song.song_id), [])
        if not entries:
            skipped.append(f"{song.dataset}/{song.song_id}")
            continue
        loud = [sounds(cache, e, silence_floor_db=silence_floor_db) for e in entries]
        classes = frozenset().union(*(e.classes for e, ok in zip(entries, loud, strict=True) if ok))
        yield SongMix(song.dataset, song.song_id, full_mix(cache, entries, peak_normalize=peak_normalize),
                      cache.sample_rate, classes, tuple(e.stem_id for e, ok in zip(entries, loud, strict=True) if not ok))
    if skipped:
        logger.warning("%d songs have no cached stem and are left out of the song-level evaluation (e.g. %s)",
                       len(skipped), skipped[0])
