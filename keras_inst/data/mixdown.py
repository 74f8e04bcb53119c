"""Mixdown of drawn sources: effects per source row, sum per mix, peak normalisation.

Two places run it. By default the training stream does (``training.effects_in: pipeline``,
:mod:`keras_inst.data.pipeline`): CPU cores mix and the model receives waveforms. With
``training.effects_in: train_step`` the stream stops after the recipe draws and the reads and
yields a *raw batch* (:func:`raw_batch`: the int16 sources ``[B, N, T_in]`` with their scales,
validity and effect parameters); :func:`mix_raw_batch` then runs the same graph inside the
training step (:mod:`keras_inst.training.step_effects`), on the device that trains, so a GPU is
not starved by the host's cores. Both give the same mixes for the same examples (tested).

Raw batches keep every slot (``[B, N, ...]``, PAD slots zero) rather than the ragged used rows
``[M, ...]``: every tensor then has the batch as its first axis, which tf.distribute splits
between replicas and workers (a ragged ``M`` axis would be split across mixes).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_inst.augment.ambience import AmbienceParams, add_ambience
from keras_inst.augment.effects import apply_effects
from keras_inst.augment.params import EffectParams
from keras_inst.augment.realism import RealismParams, mix_with_realism

RAW_KEYS = ("audio", "scales", "valid", "params", "realism", "ambience")  # a raw batch's fields


def mix_rows(x: tf.Tensor, scale: tf.Tensor, params: Any, mix_of: tf.Tensor, *, batch: Any,
             out_samples: int, sample_rate: int, peak_normalize: float,
             random_effects: bool, realism: RealismParams | None = None,
             ambience: AmbienceParams | None = None) -> tf.Tensor:
    """Used source slots ``x [M, T_in]`` (int16 or float; ``scale``, ``params`` fields and
    ``mix_of`` [M], the mix of each row, ascending) -> effects -> sum -> peak-normalised mixes
    float32 ``[batch, out_samples]``. ``realism`` (fields [M], beyond the paper): its per-source
    effects before the sum, each mix's room and mix bus
    (:func:`keras_inst.augment.realism.mix_with_realism`). ``ambience`` (fields [batch], beyond
    the paper): each mix's bed, after the bus (:func:`keras_inst.augment.ambience.add_ambience`);
    a mix without rows (a negative example) is silence plus its bed.

    ONE effects call for all rows, which casts per effect group only what that group reads and
    folds the int16 scales into the gain; a sorted segment sum (3.7x faster than the unsorted
    one here) adds the rows of each mix.
    """
    if random_effects:
        y = apply_effects(x, params, out_samples=out_samples, sample_rate=sample_rate,
                          scale=scale)
    else:
        y = tf.cast(x[:, :out_samples], tf.float32) * scale[:, None]  # [M, T]
    if realism is None:
        mix = tf.math.segment_sum(y, tf.cast(mix_of, tf.int32))  # [<= B, T]: up to the last id
    else:
        mix = mix_with_realism(y, mix_of, realism, sample_rate=sample_rate)  # [<= B, T]
    mix = tf.pad(mix, [[0, batch - tf.shape(mix)[0]], [0, 0]])  # [B, T]
    if ambience is not None:
        mix = add_ambience(mix, ambience, sample_rate=sample_rate)
    peak = tf.reduce_max(tf.abs(mix), axis=1)  # [B]
    gain = tf.where(peak > peak_normalize, peak_normalize / tf.maximum(peak, 1e-12), 1.0)
    return mix * gain[:, None]


def used_rows(valid: tf.Tensor, params: Any) -> tuple[tf.Tensor, Any]:
    """The used slots of ``valid [B, N]`` as rows of ``[B * N]`` (ascending: example-major, the
    order of :func:`draw_batch`'s audio) and the params fields ``[B, N]`` gathered to ``[M]``."""
    rows = tf.where(tf.reshape(valid, [-1]))[:, 0]  # [M]
    return rows, type(params)(*(tf.gather(tf.reshape(p, [-1]), rows) for p in params))


def mix_sources(audio: tf.Tensor, scales: tf.Tensor, params: Any, valid: tf.Tensor,
                **kwargs: Any) -> tf.Tensor:
    """Sources ``audio`` int16 ``[B, N, T_in]`` (``scales``, ``valid`` and params fields
    ``[B, N]``) -> :func:`mix_rows` of the used slots -> float32 ``[B, out_samples]``.

    Only the M used slots are processed (unused slots of mixes with N < N_max would otherwise
    make up ~40 % of the rows that every full-tensor step copies).
    """
    n, t_in = audio.shape[1], audio.shape[2]
    rows, flat_params = used_rows(valid, params)
    mix = mix_rows(tf.gather(tf.reshape(audio, [-1, t_in]), rows),
                   tf.gather(tf.reshape(scales, [-1]), rows), flat_params, rows // n,
                   batch=tf.shape(audio)[0], **kwargs)
    mix.set_shape([audio.shape[0], kwargs["out_samples"]])
    return mix


def _bools_as_uint8(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: tf.cast(v, tf.uint8) if v.dtype == tf.bool else v for k, v in fields.items()}


def _uint8_as_bools(fields: dict[str, Any], record: type) -> Any:
    return record(**{k: tf.cast(v, tf.bool) if k in BOOL_FIELDS else v for k, v in fields.items()})


# Boolean fields travel as uint8: Keras' fit reduces one whole input batch over the replicas
# (MEAN) to learn its shapes, and TensorFlow cannot add booleans.
BOOL_FIELDS = frozenset({"valid", "eq_first", "noise_on", "pink", "bus_on", "on", "negative"})


def raw_batch(audio: tf.Tensor, scales: tf.Tensor, valid: tf.Tensor, params: EffectParams,
              realism: RealismParams | None,
              ambience: AmbienceParams | None = None) -> dict[str, Any]:
    """The used rows ``audio`` int16 ``[M, T_in]`` and ``scales`` [M] (example-major, the order
    of ``valid [B, N]``'s true slots) scattered back to every slot, with the parameters
    ``[B, N]``: a dict :func:`mix_raw_batch` mixes. Parameter records travel as dicts (plain
    nested structures for tf.data and tf.distribute), booleans as uint8."""
    b, n = valid.shape[0], valid.shape[1]
    rows = tf.cast(tf.where(tf.reshape(valid, [-1])), tf.int32)  # [M, 1]
    flat = tf.scatter_nd(rows, audio, tf.stack([b * n, tf.shape(audio)[1]]))  # [B * N, T_in]
    raw = {"audio": tf.reshape(flat, [b, n, audio.shape[1]]),
           "scales": tf.reshape(tf.scatter_nd(rows, scales, [b * n]), [b, n]),
           "valid": tf.cast(valid, tf.uint8), "params": _bools_as_uint8(params._asdict())}
    if realism is not None:
        raw["realism"] = _bools_as_uint8(realism._asdict())
    if ambience is not None:  # per mix: fields [B]
        raw["ambience"] = _bools_as_uint8(ambience._asdict())
    return raw


def mix_raw_batch(raw: dict[str, Any], *, out_samples: int, sample_rate: int,
                  peak_normalize: float) -> tf.Tensor:
    """A :func:`raw_batch` (or a replica's share of one) -> mixes float32 ``[B, out_samples]``
    with the random effects and, when present, the realism effects."""
    valid = tf.cast(raw["valid"], tf.bool)
    realism = raw.get("realism")
    if realism is not None:
        realism = used_rows(valid, _uint8_as_bools(realism, RealismParams))[1]  # fields [M]
    ambience = raw.get("ambience")
    if ambience is not None:
        ambience = _uint8_as_bools(ambience, AmbienceParams)
    return mix_sources(raw["audio"], raw["scales"], _uint8_as_bools(raw["params"], EffectParams),
                       valid, out_samples=out_samples, sample_rate=sample_rate,
                       peak_normalize=peak_normalize, random_effects=True, realism=realism,
                       ambience=ambience)
