"""tf.data pipelines (paper §2.3): on-the-fly training mixes, fixed musical validation/test mixes.

Training (infinite): ``Dataset.range(start_example, inf, B)`` (the first example of each batch)
-> parallel map, per batch: one numpy_function (:func:`draw_batch`) draws recipes ``i .. i+B-1``
(:class:`keras_inst.data.mixing.RecipeSampler`) and reads the int16 chunks of their USED source
slots only, ``[M, T_in]`` (``T_in`` samples: enough for the longest time stretch / pitch shift)
from the cache's memory maps -> graph code on the whole batch: effect parameters and labels
(:func:`keras_inst.data.mixing.finish_recipe`), ONE vectorised
:func:`keras_inst.augment.effects.apply_effects` call over the M rows -> sorted segment sum per mix ->
peak normalisation (:mod:`keras_inst.data.mixdown`) -> ``(waveform float32 [B, T], labels
float32 [B, 15])`` -> prefetch. With ``training.effects_in: train_step`` the stream stops before
the effects and yields raw batches that the training step mixes on its device. This
design was chosen by measurement (docs/benchmarks.md "Data pipeline",
scripts/bench_pipeline.py, which also holds the alternatives): against the previous
per-example map + batch + mix, one numpy_function and one graph call per batch removed most
of the per-example overhead.

Order and determinism: maps run with ``deterministic=True`` and every random number is a pure
function of ``(training.seed, example index)``, so the same seed gives the same examples
however many threads run, and ``start_example=k`` continues the stream exactly at example k.

Shuffling: there is no shuffle buffer, on purpose. Every example is an independent draw (a
fresh recipe from its own seeded generator), so consecutive examples are already
uncorrelated; a shuffle buffer would only hold mixed examples in memory (256 x 256 KB for 256),
delay the first batch and make the order depend on the buffer's fill state, which breaks exact
resumption at ``start_example``.

Validation/test (finite): MUSICAL mixes only (paper §2.3), ``mixing.eval_chunks_per_song``
recipes per song for every song of the split, N drawn as in training, positions preferring
audible ones, and no random effects (the examples stay close to real recordings and identical
between runs and models). Recipes are drawn once up front (keyed by seed and song); the mixed
audio is cached in memory after the first pass when it fits in ``EVAL_CACHE_BYTES``.

Caveat (TensorFlow, not this module): an iterator over a dataset that calls a numpy_function,
still alive when the interpreter exits (e.g. ``it = iter(ds)`` at module level of a script),
can make the exit hang (measured: 1 exit in 6 with a five-line numpy_function pipeline).
Keras ``fit``/``predict`` release their iterators; in scripts, ``del`` iterators before exiting.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from keras_inst.augment.ambience import draw_ambience
from keras_inst.augment.effects import required_input_samples
from keras_inst.augment.realism import draw_realism
from keras_inst.config.schema import EFFECTS_IN, ExperimentConfig
from keras_inst.data.cache.store import AudioCache, ensure_cache
from keras_inst.data.datasets.base import ReaderReport, Song
from keras_inst.data.mixdown import mix_raw_batch, mix_rows, mix_sources, raw_batch, used_rows
from keras_inst.data.mixing import (
    RecipeArrays,
    RecipeSampler,
    SourceTable,
    finish_recipe,
    numpy_call,
)
from keras_inst.data.splits import SPLITS, SongSplit, load_or_make_split

logger = logging.getLogger("keras_inst.data.pipeline")

EVAL_CACHE_BYTES = 512 * 2**20  # mixed eval audio above this is re-mixed each pass instead


@dataclass(frozen=True)
class HeldOutSplit:
    """The held-out corpus as one more evaluation split (made by
    :func:`keras_inst.data.held_out.held_out_split`), described by what it holds out (sample
    sources, sound engines, song styles: ``data.held_out_*``)."""

    dataset: tf.data.Dataset  # musical mixes of every song, as the test split
    songs: int
    sources: tuple[str, ...]
    corpus: Path
    render_seed: int
    engines: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    by_style: dict[str, tf.data.Dataset] = dataclasses.field(default_factory=dict)  # several styles held out: each alone

    def describe(self) -> dict[str, Any]:
        """What a report says about the split besides its metrics (``sources``: the held-out
        sample sources, as before engines and styles existed)."""
        return {"songs": self.songs, "sources": list(self.sources), "engines": list(self.engines),
                "styles": list(self.styles), "corpus": str(self.corpus), "render_seed": self.render_seed}


@dataclass
class DataBundle:
    """Everything a run needs from the data side."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    splits: SongSplit
    cache: AudioCache
    sampler: RecipeSampler  # the training recipes (preview, tests, diagnostics)
    tables: dict[str, SourceTable] = field(default_factory=dict)  # per split
    reader_reports: dict[str, ReaderReport] = field(default_factory=dict)
    held_out: HeldOutSplit | None = None  # data.held_out_* [open] (keras_inst.data.held_out); None when not asked for


# ----------------------------------------------------------------------------------------------
# Audio of the sources


def _read_chunk(table: SourceTable, k: int, lo: int, out: np.ndarray) -> float:
    """Stem ``k``'s int16 samples from ``lo`` into ``out [length]`` (zeros past the stem's end);
    returns the stem's int16 -> float scale."""
    src = table.audio[k]
    m = max(0, min(lo + out.shape[0], src.shape[0]) - lo)
    out[:m] = src[lo: lo + m]
    out[m:] = 0
    return float(table.scales[k])


def gather_sources(table: SourceTable, stems: np.ndarray, starts: np.ndarray,
                   length: int) -> tuple[np.ndarray, np.ndarray]:
    """int16 ``[N, length]`` chunks (zeros past a stem's end and for PAD slots) and their
    float32 ``[N]`` scales (0 for PAD)."""
    n = stems.shape[0]
    out = np.zeros((n, length), np.int16)
    scales = np.zeros(n, np.float32)
    for i in range(n):
        if stems[i] >= 0:
            scales[i] = _read_chunk(table, int(stems[i]), int(starts[i]), out[i])
    return out, scales


class BatchDraw(NamedTuple):
    """What :func:`draw_batch` returns: the recipes and the audio of their used slots."""

    recipes: RecipeArrays  # every field with a leading [size] axis
    audio: Any  # int16 [M, length]: the chunks of the M used slots, example-major
    scales: Any  # float32 [M]: their int16 -> float scales


def draw_batch(sampler: RecipeSampler, first: int, size: int, length: int) -> BatchDraw:
    """Training recipes ``first .. first + size - 1`` stacked and the int16 chunks of their USED
    slots only, in example-major order (no PAD rows are read or copied)."""
    recipes = RecipeArrays.stack([sampler.train_arrays(first + j) for j in range(size)])
    used = recipes.stems >= 0  # [size, N]
    audio = np.empty((int(used.sum()), length), np.int16)
    scales = np.empty(audio.shape[0], np.float32)
    rows = zip(recipes.stems[used].tolist(), recipes.starts[used].tolist(), strict=True)
    for r, (k, lo) in enumerate(rows):
        scales[r] = _read_chunk(sampler.table, k, lo, audio[r])
    return BatchDraw(recipes, audio, scales)


def draw_batch_specs(sampler: RecipeSampler, size: int, length: int) -> BatchDraw:
    """The :class:`tf.TensorSpec` of each field of ``draw_batch(sampler, _, size, length)``."""
    return BatchDraw(sampler.array_specs(batch=size), tf.TensorSpec((None, length), tf.int16),
                     tf.TensorSpec((None,), tf.float32))


_RECIPE_KEYS = ("index", "dataset", "musical", "n", "stems", "starts", "valid", "params",
                "audible", "labels", "effects_seed")


def _output(rec: dict[str, Any], mix: Any, with_recipe: bool) -> tuple:
    if with_recipe:
        return mix, rec["labels"], {k: rec[k] for k in _RECIPE_KEYS}
    return mix, rec["labels"]


# ----------------------------------------------------------------------------------------------
# Training stream


def step_mixer(cfg: ExperimentConfig) -> Callable[[dict], tf.Tensor] | None:
    """What the training step runs on a raw batch under ``training.effects_in: train_step``
    (raw batch -> mixes ``[B, T]``); None when the stream mixes (the default)."""
    if cfg.training.effects_in != "train_step":
        return None
    return functools.partial(mix_raw_batch, out_samples=cfg.audio.chunk_samples,
                             sample_rate=cfg.audio.sample_rate,
                             peak_normalize=cfg.mixing.peak_normalize)


def training_input_samples(cfg: ExperimentConfig) -> int:
    """Samples read per source: the chunk, plus what time stretch / pitch shift need."""
    t = cfg.audio.chunk_samples
    if cfg.mixing.p_musical >= 1.0:  # musical sources never get pitch/time effects
        return t
    return required_input_samples(t, cfg.effects)


def _with_intra_op(ds: tf.data.Dataset, threads: int | None) -> tf.data.Dataset:
    if threads is None:
        return ds
    opts = tf.data.Options()
    opts.threading.max_intra_op_parallelism = int(threads)
    return ds.with_options(opts)


def training_dataset(cfg: ExperimentConfig, sampler: RecipeSampler, *, start_example: int = 0,
                     batch_size: int | None = None, with_recipe: bool = False,
                     random_effects: bool = True, num_parallel_calls: int | None = None,
                     intra_op_parallelism: int | None = 1,
                     stride: int | None = None, effects_in: str = "pipeline") -> tf.data.Dataset:
    """The infinite training stream of ``sampler`` from example ``start_example`` (module doc).

    ``with_recipe`` adds a third element, the recipe dict (stems, starts, params, audible, ...).
    ``random_effects=False`` mixes the raw chunks (tests). ``intra_op_parallelism`` (tf.data
    ``max_intra_op_parallelism``; None: the process-wide intra-op pool): 1 runs each op of the
    stream on its tf.data thread, so parallel batches fill the cores without splitting small
    ops across threads (measured 7 % less CPU per example) and the model's training step keeps
    the intra-op pool to itself.

    ``stride`` (default: the batch size) is the distance between the first examples of
    consecutive batches: a multi-worker run gives each worker ``batch_size`` = its share of the
    global batch, ``stride`` = the global batch and its own ``start_example``
    (:func:`keras_inst.training.distribute.worker_stream`), so no example is drawn twice across
    workers and their union at each step is the single-process batch.

    ``effects_in="train_step"`` (``training.effects_in``) stops before the effects: the first
    element is then a raw batch (:func:`keras_inst.data.mixdown.raw_batch`) that the training
    step mixes on its device (:func:`keras_inst.data.mixdown.mix_raw_batch`), the same mixes.
    """
    b = cfg.training.batch_size if batch_size is None else int(batch_size)
    stride = b if stride is None else int(stride)
    if start_example < 0 or stride < b:
        raise ValueError(f"start_example must be >= 0 and stride >= the batch size {b}, got "
                         f"{start_example} and {stride}")
    if effects_in not in EFFECTS_IN or (effects_in != "pipeline" and not random_effects):
        raise ValueError(f"effects_in must be one of {', '.join(EFFECTS_IN)} (train_step: with random effects), got {effects_in!r}")
    calls = num_parallel_calls if num_parallel_calls is not None else (
        cfg.training.num_parallel_calls or tf.data.AUTOTUNE)
    t_out = cfg.audio.chunk_samples
    t_in = training_input_samples(cfg) if random_effects else t_out
    specs = draw_batch_specs(sampler, b, t_in)

    def batch_of(first: tf.Tensor) -> tuple:
        # One numpy_function per batch draws its b recipes and reads only the used slots'
        # chunks ([M, T_in]); graph code finishes the recipes and mixes, all on [b, ...] tensors.
        drawn = numpy_call(lambda i: draw_batch(sampler, int(i), b, t_in), [first], specs)
        rec = finish_recipe(drawn.recipes, sampler=sampler, random_effects=random_effects)
        # Realism effects (beyond the paper): None, and no graph, when all are off.
        realism = draw_realism(rec["effects_seed"], sampler.n_max, sampler.effects,
                               classes=rec["classes"]) if random_effects else None
        # Ambience beds per mix (beyond the paper; negatives have n = 0): None when off.
        ambience = draw_ambience(rec["effects_seed"], rec["n"], sampler.effects.ambience
                                 ) if random_effects else None
        if effects_in == "train_step":  # the recipe draws stop here; the device mixes
            raw = raw_batch(drawn.audio, drawn.scales, rec["valid"], rec["params"], realism,
                            ambience)
            return _output(rec, raw, with_recipe)
        rows, flat_params = used_rows(rec["valid"], rec["params"])  # draw_batch's rows
        mix = mix_rows(drawn.audio, drawn.scales, flat_params, rows // sampler.n_max, batch=b,
                       out_samples=t_out, sample_rate=cfg.audio.sample_rate,
                       peak_normalize=cfg.mixing.peak_normalize, random_effects=random_effects,
                       realism=None if realism is None else used_rows(rec["valid"], realism)[1],
                       ambience=ambience)
        mix.set_shape((b, t_out))
        return _output(rec, mix, with_recipe)

    ds = tf.data.Dataset.range(start_example, tf.int64.max, stride)  # first example of a batch
    ds = ds.map(batch_of, num_parallel_calls=calls, deterministic=True)
    return _with_intra_op(ds.prefetch(tf.data.AUTOTUNE), intra_op_parallelism)


# ----------------------------------------------------------------------------------------------
# Validation / test


def musical_eval_dataset(cfg: ExperimentConfig, cache: AudioCache, songs: Sequence[Song], *,
                         seed: int, batch_size: int, with_recipe: bool = False
                         ) -> tf.data.Dataset:
    """Deterministic musical mixes of every song: ``(waveform [B, T], labels [B, 15])``.

    ``mixing.eval_chunks_per_song`` recipes per song (module doc); songs without a cached stem
    are left out with a warning. Raises ValueError when no song is left.
    """
    datasets = sorted({s.dataset for s in songs})
    table = SourceTable(cache, songs, datasets=datasets, chunk_samples=cfg.audio.chunk_samples,
                        activity_threshold_db=cfg.mixing.activity_threshold_db,
                        min_active_fraction=cfg.mixing.min_active_fraction)
    if table.num_songs == 0:
        raise ValueError(f"no song to evaluate: {len(songs)} songs given, none has a cached stem")
    sampler = RecipeSampler(table, cfg.mixing, cfg.effects, seed=seed)
    structures = sampler.eval_structures(cfg.mixing.eval_chunks_per_song)
    arrays = RecipeArrays.stack([sampler.arrays(s) for s in structures])
    t = cfg.audio.chunk_samples

    def gather(stems: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return gather_sources(table, stems, starts, t)

    def example(rec: RecipeArrays) -> dict[str, tf.Tensor]:
        audio, scales = tf.numpy_function(gather, [rec.stems, rec.starts],
                                          [tf.int16, tf.float32], stateful=False)
        audio.set_shape((sampler.n_max, t))
        scales.set_shape((sampler.n_max,))
        rec = finish_recipe(rec, sampler=sampler, random_effects=False)
        return {**rec, "audio": audio, "scales": scales}

    def mix_batch(rec: dict[str, Any]) -> tuple:
        mix = mix_sources(rec["audio"], rec["scales"], rec["params"], rec["valid"], out_samples=t,
                          sample_rate=cfg.audio.sample_rate,
                          peak_normalize=cfg.mixing.peak_normalize, random_effects=False)
        return _output(rec, mix, with_recipe)

    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size)).map(mix_batch, num_parallel_calls=tf.data.AUTOTUNE,
                                       deterministic=True)
    if len(structures) * t * 4 <= EVAL_CACHE_BYTES:
        ds = ds.cache()
    return ds.prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------------
# Datasets, split, cache


def read_datasets(cfg: ExperimentConfig) -> tuple[dict[str, list[Song]], dict[str, ReaderReport]]:
    """Read every dataset of ``cfg.data.datasets`` from ``cfg.data.roots``."""
    from keras_inst.data.datasets import read_dataset

    songs: dict[str, list[Song]] = {}
    reports: dict[str, ReaderReport] = {}
    for name in cfg.data.datasets:
        root = cfg.data.roots.get(name)
        if not root:
            raise ValueError(f"config key 'data.roots.{name}': no root folder for dataset "
                             f"{name!r}; pass --set data.roots.{name}=/path/to/{name}")
        if not Path(root).expanduser().is_dir():
            raise ValueError(f"config key 'data.roots.{name}': root folder {root!r} does not "
                             f"exist")
        songs[name], reports[name] = read_dataset(
            name, root, problem_stems=cfg.data.problem_stems_for(name))
        if not songs[name]:
            raise ValueError(f"{name} at {root}: no usable songs (reader problems: "
                             f"{reports[name].counts or 'none'})")
    return songs, reports


def source_table(cfg: ExperimentConfig, cache: AudioCache, songs: Sequence[Song], *,
                 datasets: Sequence[str] | None = None) -> SourceTable:
    """The :class:`SourceTable` of ``songs`` with the config's chunk and activity settings."""
    return SourceTable(cache, songs, datasets=datasets or cfg.data.datasets,
                       chunk_samples=cfg.audio.chunk_samples,
                       activity_threshold_db=cfg.mixing.activity_threshold_db,
                       min_active_fraction=cfg.mixing.min_active_fraction)


def build_data(cfg: ExperimentConfig, *, run_dir: Path | None = None,
               start_example: int = 0, progress: bool = True,
               worker_stream: tuple[int, int, int] | None = None,
               held_out: HeldOutSplit | None = None) -> DataBundle:
    """Read the datasets, split them (reusing ``run_dir/split.json``), ensure the audio cache
    and build the training stream (from ``start_example``) and the validation/test datasets,
    plus ``held_out`` as given (a training run's :func:`keras_inst.data.held_out.held_out_split`).
    ``worker_stream`` (multi-worker training): ``(start_example, stride, batch)`` of this worker's
    share of the training stream instead (:func:`training_dataset`).

    The training stream is seeded by ``training.seed``; validation/test recipes by
    ``data.split_seed``, so runs with different training seeds are judged on the same examples
    (and ``python -m keras_inst.evaluate --seed`` with that value reproduces the test set).
    """
    songs, reports = read_datasets(cfg)
    split = load_or_make_split(cfg, songs, run_dir=run_dir)
    for k in SPLITS:
        if not split[k]:
            raise ValueError(f"the {k} split has no songs ({sum(map(len, songs.values()))} songs "
                             f"read, data.split={list(cfg.data.split)}); use more songs")
    cache = ensure_cache(cfg, [s for k in SPLITS for s in split[k]], progress=progress)
    table = source_table(cfg, cache, split["train"])
    sampler = RecipeSampler(table, cfg.mixing, cfg.effects, seed=cfg.training.seed)
    b = cfg.training.batch_size
    eval_seed = cfg.data.split_seed
    return DataBundle(
        train=training_dataset(cfg, sampler, start_example=start_example,
                               effects_in=cfg.training.effects_in) if worker_stream is None
        else training_dataset(cfg, sampler, start_example=worker_stream[0], stride=worker_stream[1],
                              batch_size=worker_stream[2], effects_in=cfg.training.effects_in),
        validation=musical_eval_dataset(cfg, cache, split["validation"], seed=eval_seed,
                                        batch_size=b),
        test=musical_eval_dataset(cfg, cache, split["test"], seed=eval_seed, batch_size=b),
        splits=split, cache=cache, sampler=sampler, tables={"train": table},
        reader_reports=reports, held_out=held_out,
    )
