"""Mixing recipes (paper §2.3): which stems, where, with which effects, and the mix's labels.

A *recipe* says how one example is made, without touching audio: the dataset (weights
``mixing.dataset_weights``, default equal, so Slakh does not dominate), musical (one song, N
distinct stems, one common chunk position, never pitch/time effects) or non-musical (N distinct
songs of the dataset, one stem and an independent position each; ``mixing.stem_balance``,
beyond the paper, draws rare classes' stems more often: :mod:`keras_inst.data.balance`), the
number of sources N (1 with ``p_single_source``, else uniform in [min_sources, max_sources],
capped by what is available), chunk positions, an effects seed and the labels.

Reproducibility: recipe ``i`` is a pure function of ``(seed, i)``: a NumPy Generator seeded with
``SeedSequence((seed, stream, i))``, so a stream restarts exactly at any example index and
different seeds/epochs/workers never repeat it. Evaluation recipes are keyed by a hash of the
song, so the same song gets the same chunks whatever else is in the split.

Positions lie on the activity-envelope grid (hop samples). With probability
``p_prefer_audible`` a position is drawn among the *audible* ones (musical: where at least one
chosen stem is audible), else uniformly; silence stays possible. A source is audible in its
chunk when at least ``ceil(min_active_fraction * W)`` (and at least one) of the W envelope frames
the chunk covers are active (frame RMS within ``activity_threshold_db`` of the stem's loudest
frame, :meth:`AudioCache.active_frames`). A time-stretched source (rate r) plays
``r * chunk`` samples of its stem, so W = ceil(r * chunk / hop) for it. Labels are the union of
the (hierarchy-closed) classes of the audible sources; a silent source contributes nothing.
A *negative* training example (beyond the paper, ``effects.ambience.negative_probability``,
:mod:`keras_inst.augment.ambience`) is its recipe with every source removed (``n = 0``): its
labels are then 0 by the same rule, and the pipeline lays an ambience bed in its place.

The structure of a recipe is drawn in NumPy (:class:`RecipeSampler`); effect parameters
(:func:`keras_inst.augment.effects.sample_effect_params`, stateless, seeded per recipe) and labels,
which depend on the drawn stretch rate, are computed in TensorFlow by :func:`finish_recipe`,
so the training pipeline and :func:`recipe_dataset` share one code path.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from keras_inst.augment.effects import EffectParams, identity_params, sample_effect_params
from keras_inst.config.schema import EffectsConfig, MixingConfig
from keras_inst.data.balance import balanced_songs_and_stems, table_stem_weights
from keras_inst.data.cache.store import AudioCache, CacheEntry
from keras_inst.data.datasets.base import Song
from keras_inst.taxonomy import NUM_CLASSES, multi_hot

logger = logging.getLogger("keras_inst.data.mixing")

STREAM_TRAIN = 0
STREAM_EVAL = 1
STREAM_NEGATIVE = 2  # effects.ambience.negative_probability: its own stream, so the others stay put
PAD = -1  # stem index of an unused source slot


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def song_key_hash(dataset: str, song_id: str) -> int:
    """A stable 32-bit number of a song (keys evaluation recipes to the song, not its index)."""
    return zlib.crc32(f"{dataset}/{song_id}".encode())


def min_active_count(window_frames: int | np.ndarray, fraction: float) -> np.ndarray:
    """Active frames a chunk of ``window_frames`` frames needs to be audible (float64 rule)."""
    w = np.asarray(window_frames, np.float64)
    return np.maximum(1.0, np.ceil(fraction * w - 1e-9))


def _distinct(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """min(n, size) distinct indices of range(size), in random order."""
    n = min(n, size)
    if size <= 64:
        return rng.permutation(size)[:n]
    return rng.choice(size, n, replace=False)


class SourceTable:
    """The cached stems of a set of songs, grouped by dataset and song, with their activity.

    Songs are ordered by (dataset, song_id); stems without a cache entry are left out and songs
    without any cached stem are listed in ``skipped_songs``. ``audio[k]`` is stem k's int16 array
    (a read-only memory map of the cache; sample value = int16 * ``scales[k]``).
    """

    def __init__(self, cache: AudioCache, songs: Sequence[Song], *, datasets: Sequence[str],
                 chunk_samples: int, activity_threshold_db: float,
                 min_active_fraction: float) -> None:
        self.datasets = tuple(datasets)
        self.chunk_samples = int(chunk_samples)
        self.activity_threshold_db = float(activity_threshold_db)
        self.min_active_fraction = float(min_active_fraction)
        d_index = {d: i for i, d in enumerate(self.datasets)}
        by_key = {(e.dataset, e.stem_id): e for e in cache.entries}
        hops = {e.envelope_hop for e in cache.entries}
        if len(hops) > 1:
            raise ValueError(f"audio cache {cache.root}: entries have different envelope hops "
                             f"{sorted(hops)}; rebuild it with one features.hop_length")
        self.hop = hops.pop() if hops else 256
        self.window_frames = -(-self.chunk_samples // self.hop)  # W of an unstretched chunk
        self.entries: list[CacheEntry] = []
        self.song_keys: list[tuple[str, str]] = []
        self.song_stems: list[np.ndarray] = []
        self.song_dataset: list[int] = []
        self.skipped_songs: list[tuple[str, str]] = []
        for song in sorted(songs, key=lambda s: (s.dataset, s.song_id)):
            if song.dataset not in d_index:
                raise ValueError(f"song {song.dataset}/{song.song_id}: dataset {song.dataset!r} "
                                 f"is not among {list(self.datasets)}")
            stems = [by_key[(song.dataset, s.stem_id)] for s in song.stems
                     if (song.dataset, s.stem_id) in by_key]
            if not stems:
                self.skipped_songs.append((song.dataset, song.song_id))
                continue
            first = len(self.entries)
            self.entries += stems
            self.song_keys.append((song.dataset, song.song_id))
            self.song_stems.append(np.arange(first, len(self.entries), dtype=np.int32))
            self.song_dataset.append(d_index[song.dataset])
        if self.skipped_songs:
            logger.warning("%d songs have no cached stem and are left out (e.g. %s/%s)",
                           len(self.skipped_songs), *self.skipped_songs[0])
        self.song_dataset_array = np.asarray(self.song_dataset, np.int32)  # [S]
        self.stem_song = np.concatenate(
            [np.full(len(s), j, np.int32) for j, s in enumerate(self.song_stems)] or
            [np.zeros(0, np.int32)])
        self.dataset_songs = [np.flatnonzero(self.song_dataset_array == d)
                              for d in range(len(self.datasets))]
        self.lengths = np.array([e.num_samples for e in self.entries], np.int64)
        self.scales = np.array([e.scale for e in self.entries], np.float32)
        self.classes = np.stack([multi_hot(e.classes) for e in self.entries] or
                                [np.zeros(NUM_CLASSES, np.float32)])[: len(self.entries)]
        self.audio = [cache.int16(e) for e in self.entries]
        # Last start frame: a chunk fits inside the stem (start 0 for stems shorter than it).
        self.max_start = np.maximum(0, (self.lengths - self.chunk_samples) // self.hop)
        self.active: list[np.ndarray] = []  # bool [frames] per stem
        self.audible: list[np.ndarray] = []  # bool [max_start + 1]: unstretched chunk audible
        need = int(min_active_count(self.window_frames, self.min_active_fraction))
        for k, e in enumerate(self.entries):
            act = cache.active_frames(e, self.activity_threshold_db)
            self.active.append(np.ascontiguousarray(act))
            prefix = np.concatenate([[0], np.cumsum(act, dtype=np.int64)])  # [frames + 1]
            f = np.arange(self.max_start[k] + 1)
            hi = np.minimum(f + self.window_frames, act.size)
            self.audible.append(prefix[hi] - prefix[np.minimum(f, act.size)] >= need)

    @property
    def num_songs(self) -> int:
        return len(self.song_keys)

    def songs_of(self, dataset: int) -> np.ndarray:
        return self.dataset_songs[dataset]


class Structure(NamedTuple):
    """The NumPy part of one recipe (``n`` sources)."""

    index: int  # example index in its stream (evaluation: position in the eval list)
    dataset: int  # index into SourceTable.datasets
    musical: bool
    stems: np.ndarray  # int32 [n] stem indices of the table
    starts: np.ndarray  # int64 [n] chunk start samples (multiples of hop)
    effects_seed: np.ndarray  # int64 [2] seed of sample_effect_params


class RecipeArrays(NamedTuple):
    """The padded arrays of one recipe as they travel through tf.data (NumPy arrays or tensors;
    :meth:`stack` of several, or a batched dataset, adds a leading [B] axis to every field).
    N = ``RecipeSampler.n_max`` source slots, W = ``RecipeSampler.window_max`` envelope frames."""

    index: Any  # int64 []: example index in its stream
    dataset: Any  # int32 []: index into SourceTable.datasets
    musical: Any  # bool []
    n: Any  # int32 []: used source slots (the first n of N)
    stems: Any  # int32 [N]: stem indices of the table, PAD in unused slots
    starts: Any  # int64 [N]: chunk start samples
    effects_seed: Any  # int64 [2]: seed of sample_effect_params
    active: Any  # uint8 [N, W]: each source's envelope frames from its start
    classes: Any  # float32 [N, 15]: each source's classes (zeros in unused slots)

    @classmethod
    def stack(cls, items: Sequence[RecipeArrays]) -> RecipeArrays:
        """Recipes stacked field by field: every field gets a leading [len(items)] axis."""
        return cls(*(np.stack(col) for col in zip(*items, strict=True)))


class RecipeSampler:
    """Draws recipe structures from a :class:`SourceTable` (see the module doc)."""

    def __init__(self, table: SourceTable, mixing: MixingConfig, effects: EffectsConfig, *,
                 seed: int, dataset_weights: Sequence[float] | None = None) -> None:
        if table.num_songs == 0:
            raise ValueError("no song with a cached stem to mix from; check the dataset roots "
                             "and the audio cache (python -m keras_inst.data cache)")
        self.table, self.mixing, self.effects, self.seed = table, mixing, effects, int(seed)
        self.n_max = 1 if mixing.p_single_source >= 1.0 else mixing.max_sources
        self.chunk_samples = table.chunk_samples
        r_max = effects.stretch_rate[1] if effects.p_time_stretch > 0 else 1.0
        self.max_rate = max(1.0, r_max)
        # Envelope frames carried per source: the longest (stretched) chunk.
        self.window_max = int(math.ceil(self.max_rate * self.chunk_samples / table.hop))
        w = dataset_weights if dataset_weights is not None else mixing.dataset_weights
        w = np.ones(len(table.datasets)) if w is None else np.asarray(w, np.float64)
        if w.shape != (len(table.datasets),):
            raise ValueError(f"mixing.dataset_weights: need one weight per dataset "
                             f"{list(table.datasets)}, got {list(w)}")
        empty = [d for i, d in enumerate(table.datasets) if table.songs_of(i).size == 0 and w[i] > 0]
        if empty:
            logger.warning("datasets without songs here are not sampled: %s", ", ".join(empty))
        w = np.where([table.songs_of(i).size > 0 for i in range(len(w))], w, 0.0)
        if w.sum() <= 0:
            raise ValueError(f"mixing.dataset_weights {list(w)}: every dataset with songs has "
                             f"weight 0 (datasets {list(table.datasets)})")
        self.dataset_p = w / w.sum()
        self._cum_p = np.cumsum(self.dataset_p)
        self._last = int(np.flatnonzero(self.dataset_p > 0)[-1])
        # mixing.stem_balance > 0: ([K] stem, [S] song) draw weights of non-musical mixes (beyond the paper)
        self.stem_weights = table_stem_weights(table, mixing.stem_balance) if mixing.stem_balance > 0 else None

    # -- drawing ----------------------------------------------------------------------------
    def _draw_n(self, rng: np.random.Generator) -> int:
        m = self.mixing
        single = rng.random() < m.p_single_source
        many = int(rng.integers(m.min_sources, m.max_sources + 1))
        return 1 if single else many

    def _position(self, rng: np.random.Generator, stems: np.ndarray) -> int:
        """A start frame shared by ``stems``: among audible ones with p_prefer_audible."""
        t = self.table
        if stems.size == 1:
            k = int(stems[0])
            fmax, mask = int(t.max_start[k]), t.audible[k]
        else:
            fmax = int(t.max_start[stems].max())
            mask = np.zeros(fmax + 1, bool)
            for k in stems:
                a = t.audible[k]
                mask[: a.size] |= a
        prefer = rng.random() < self.mixing.p_prefer_audible
        u = int(rng.integers(fmax + 1))
        if prefer:
            cand = np.flatnonzero(mask)
            if cand.size:
                return int(cand[rng.integers(cand.size)])
        return u

    def _musical(self, rng: np.random.Generator, song: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        pool = self.table.song_stems[song]
        stems = pool[_distinct(rng, pool.size, n)]
        start = self._position(rng, stems) * self.table.hop
        return stems, np.full(stems.size, start, np.int64)

    def _non_musical_stems(self, rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
        """One stem of each of min(n, songs) distinct songs of ``pool``: uniform (the paper), or
        class-balanced with ``mixing.stem_balance`` (:mod:`keras_inst.data.balance`)."""
        t = self.table
        if self.stem_weights is not None:
            return balanced_songs_and_stems(rng, pool, t.song_stems, *self.stem_weights, n)
        songs = pool[_distinct(rng, pool.size, n)]
        return np.array([t.song_stems[s][rng.integers(t.song_stems[s].size)] for s in songs], np.int32)

    def draw(self, index: int) -> Structure:
        """Training recipe ``index`` of the stream of ``seed``."""
        t = self.table
        rng = _rng(self.seed, STREAM_TRAIN, index)
        effects_seed = rng.integers(0, 2**62, size=2, dtype=np.int64)
        u = rng.random() * self._cum_p[-1]
        d = min(int(np.searchsorted(self._cum_p, u, side="right")), self._last)  # rounding
        musical = bool(rng.random() < self.mixing.p_musical)
        n = self._draw_n(rng)
        pool = t.songs_of(d)
        if musical:
            stems, starts = self._musical(rng, int(pool[rng.integers(pool.size)]), n)
        else:
            stems = self._non_musical_stems(rng, pool, n)
            starts = np.array([self._position(rng, stems[i: i + 1]) for i in range(stems.size)],
                              np.int64) * t.hop
        if self._negative(index):  # beyond the paper: no source, an ambience bed only
            stems, starts = np.zeros(0, np.int32), np.zeros(0, np.int64)
        return Structure(int(index), d, musical, stems, starts, effects_seed)

    def _negative(self, index: int) -> bool:
        """Whether training example ``index`` is a negative (``effects.ambience``): drawn on
        its own stream, so every other example is the one the stream without negatives has."""
        p = self.effects.ambience.negative_probability
        return p > 0 and bool(_rng(self.seed, STREAM_NEGATIVE, index).random() < p)

    def draw_eval(self, song: int, chunk: int, *, index: int = 0) -> Structure:
        """Evaluation recipe: chunk ``chunk`` of song ``song`` (musical, N as in training)."""
        t = self.table
        rng = _rng(self.seed, STREAM_EVAL, song_key_hash(*t.song_keys[song]), chunk)
        effects_seed = rng.integers(0, 2**62, size=2, dtype=np.int64)
        stems, starts = self._musical(rng, song, self._draw_n(rng))
        return Structure(int(index), int(t.song_dataset[song]), True, stems, starts, effects_seed)

    def eval_structures(self, chunks_per_song: int) -> list[Structure]:
        """Every song of the table, ``chunks_per_song`` recipes each, in song order."""
        out = []
        for j in range(self.table.num_songs):
            for c in range(chunks_per_song):
                out.append(self.draw_eval(j, c, index=len(out)))
        return out

    # -- arrays for TensorFlow ---------------------------------------------------------------
    def arrays(self, s: Structure) -> RecipeArrays:
        """Padded arrays of a structure (dtypes and shapes: :meth:`array_specs`)."""
        t, n_max, w_max = self.table, self.n_max, self.window_max
        stems = np.full(n_max, PAD, np.int32)
        starts = np.zeros(n_max, np.int64)
        active = np.zeros((n_max, w_max), np.uint8)
        classes = np.zeros((n_max, NUM_CLASSES), np.float32)
        n = s.stems.size
        stems[:n], starts[:n] = s.stems, s.starts
        for i in range(n):
            k, f = int(s.stems[i]), int(s.starts[i]) // t.hop
            a = t.active[k][f: f + w_max]
            active[i, : a.size] = a
            classes[i] = t.classes[k]
        return RecipeArrays(
            index=np.int64(s.index), dataset=np.int32(s.dataset), musical=np.bool_(s.musical),
            n=np.int32(n), stems=stems, starts=starts, effects_seed=s.effects_seed.astype(np.int64),
            active=active, classes=classes)

    def train_arrays(self, index: np.int64) -> RecipeArrays:
        return self.arrays(self.draw(int(index)))

    def array_specs(self, *, batch: int | None = None) -> RecipeArrays:
        """The :class:`tf.TensorSpec` of each field (with a leading ``[batch]`` axis if given)."""
        n, w = self.n_max, self.window_max
        lead = () if batch is None else (batch,)
        return RecipeArrays(*(tf.TensorSpec(lead + shape, dtype) for dtype, shape in (
            (tf.int64, ()), (tf.int32, ()), (tf.bool, ()), (tf.int32, ()), (tf.int32, (n,)),
            (tf.int64, (n,)), (tf.int64, (2,)), (tf.uint8, (n, w)),
            (tf.float32, (n, NUM_CLASSES)))))


def numpy_call(fn: Callable[..., Any], inputs: Sequence[tf.Tensor], specs: Any) -> Any:
    """Run ``fn(*inputs)`` as one ``tf.numpy_function``. ``fn`` returns a structure of arrays
    shaped like ``specs`` (NamedTuples/tuples of :class:`tf.TensorSpec`); so does this, with
    tensors of static shapes."""
    flat = tf.nest.flatten(specs)
    outs = tf.numpy_function(lambda *a: tf.nest.flatten(fn(*a)), list(inputs),
                             [spec.dtype for spec in flat], stateful=False)
    for t, spec in zip(outs, flat, strict=True):
        t.set_shape(spec.shape)
    return tf.nest.pack_sequence_as(specs, outs)


def finish_recipe(rec: RecipeArrays | Mapping[str, tf.Tensor], *, sampler: RecipeSampler,
                  random_effects: bool = True) -> dict[str, tf.Tensor]:
    """Add effect parameters, per-source audibility and the labels to recipes (graph code).

    Works on one recipe (:class:`RecipeArrays`, or a dict with its fields and possibly more) or
    on a batch of them (every field with a leading batch axis: one call per batch is much
    cheaper than one per example). Returns a dict of the recipe's fields plus ``valid`` bool
    [..., N], ``params`` (:class:`EffectParams`, fields [..., N]; identity for unused slots, and
    everywhere when ``random_effects`` is False), ``audible`` bool [..., N] and ``labels``
    float32 [..., 15].
    """
    rec = rec._asdict() if isinstance(rec, RecipeArrays) else dict(rec)
    n_max = sampler.n_max
    valid = tf.range(n_max) < rec["n"][..., None]  # [..., N]
    ident = EffectParams(*(tf.broadcast_to(v, tf.shape(valid)) for v in identity_params(n_max)))
    if random_effects:
        drawn = sample_effect_params(rec["effects_seed"], n_max, sampler.effects,
                                     musical=rec["musical"][..., None])
        params = EffectParams(*(tf.where(valid, p, q) for p, q in zip(drawn, ident, strict=True)))
    else:
        params = ident
    # Frames a source plays: W = ceil(rate * chunk / hop), in float64 as min_active_count.
    rate = tf.cast(params.rate, tf.float64)
    w = tf.math.ceil(rate * sampler.chunk_samples / sampler.table.hop)  # [..., N]
    w = tf.minimum(w, float(sampler.window_max))
    need = tf.maximum(tf.math.ceil(sampler.table.min_active_fraction * w - 1e-9), 1.0)  # [..., N]
    in_window = tf.range(sampler.window_max, dtype=tf.float64) < w[..., None]  # [..., N, Wmax]
    count = tf.reduce_sum(tf.cast(rec["active"] > 0, tf.float64)
                          * tf.cast(in_window, tf.float64), axis=-1)  # [..., N]
    audible = valid & (count >= need)
    labels = tf.reduce_max(rec["classes"] * tf.cast(audible, tf.float32)[..., None],
                           axis=-2)  # [..., 15]
    return {**rec, "valid": valid, "params": params, "audible": audible, "labels": labels}


def recipe_dataset(sampler: RecipeSampler, *, start: int = 0, count: int | None = None,
                   random_effects: bool = True, num_parallel_calls: int | None = None
                   ) -> tf.data.Dataset:
    """Finished training recipes ``start, start+1, ...`` (no audio), one dict per element."""
    stop = tf.int64.max if count is None else start + count
    ds = tf.data.Dataset.range(start, stop)
    calls = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls

    def one(i: tf.Tensor) -> dict[str, tf.Tensor]:
        rec = numpy_call(sampler.train_arrays, [i], sampler.array_specs())
        return finish_recipe(rec, sampler=sampler, random_effects=random_effects)

    return ds.map(one, num_parallel_calls=calls, deterministic=True)
