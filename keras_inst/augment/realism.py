"""Realism effects beyond the paper, batched in TensorFlow like :mod:`keras_inst.augment.effects`:
their parameters, their chain per source and the room per mix (the signal processing is in
:mod:`keras_inst.augment.acoustics`).

Opt-in (``effects.reverb / compressor / saturation / band_limit / noise / mix_bus`` in the
config, all off in ``configs/paper.yaml``): they make rendered or clean stems sound more like recordings, so
a model learns instruments rather than one SoundFont. Per source, in this order (the order of a
recording chain: amp, mixing desk, noise floor, codec):

* saturation: ``tanh`` of the source normalised to RMS ``SAT_REF`` times the drive, then a
  2nd-order "cabinet" low-pass at ``tone_hz``, scaled back to the source's RMS (level
  compensation); optionally only for some instruments (``saturation.instruments``, guitars);
* compressor: feed-forward, hard knee. The detector is a Hann-weighted RMS over 32 ms frames
  (hop ``COMP_HOP``), no recursion: the gain reduction per frame is smoothed by a rise-rate
  limit (attack, ``8.686 / attack_s`` dB/s) and a fall-rate limit (release: the exponential
  release of a one-pole peak detector, linear in dB), each a min-/max-plus convolution over
  ``COMP_LAGS`` frames (by doubling: 7 steps); frame gains are interpolated back to samples.
  A per-sample one-pole smoother would need ``tf.scan`` over 64000 samples (slow on CPU);
  frame-wise detection at 16 ms resolution is what many plug-ins do too. Make-up gain restores
  the source's RMS; the threshold is relative to that RMS, so the effect is scale-invariant;
* additive noise: white or pink (1/f) segments of a fixed seeded table (``NOISE_TABLE``
  samples, built once) at a random offset, scaled to the drawn SNR re the source's power over
  the chunk (exact: the segment's own power is measured); a silent source gets none;
* band-limiting: a zero-phase Butterworth magnitude of ``band_limit.order`` at the drawn cutoff,
  one FFT pass (codec-like steep low-pass).

Reverb is PER MIX: one synthetic room (exponentially decaying noise with the drawn RT60, after a
pre-delay; unit energy) per mix, and a send level per source (``(1 - send)`` dry, ``send`` to
the room). A recording shares one room, and convolution is linear, so the rooms of all sources
of a mix cost ONE convolution of the summed send bus (FFT zero-padded to ``T + L - 1``, L =
``ROOM_SECONDS``: only the first T output samples are kept).
Reverberation of sound before the chunk is absent (the chunk's first RT60 is drier).

The MIX BUS is per mix too, last (after the room, before the pipeline's peak normalisation),
as in mastering: the compressor above on the summed mix (threshold re the mix's RMS, no make-up),
a gain to the drawn target loudness (ungated BS.1770 loudness of the chunk: K-weighted mean
square, one FFT; at most ``max_gain_db``), then a look-ahead peak limiter to ``ceiling_db``
(:func:`keras_inst.augment.acoustics.limit`: block-minimum gain computer seeing one 2-ms block
ahead, exponential release, a 4-ms box-smoothed attack; a final clip at the ceiling only
absorbs rounding). A limited mix ends a little below its target (the limiter takes peaks off).
Training on raw, unmastered sums teaches a model quiet, dynamic mixes only; real test audio is
mostly mastered loud.

Every training mix may get them, musical or not (none changes pitch or timing); validation and
test mixes get none. Parameters come from each example's effects seed like the paper's
effects, on an independent stream (the seed's first word xor ``REALISM_TAG``): the paper's
draws are unchanged when realism is on, and an item's output depends only on its own seed and
slot, never on its batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from keras_inst.augment.acoustics import (
    add_noise,
    band_limit,
    compress,
    mix_bus,
    reverberate,
    saturate,
)
from keras_inst.augment.effects import hash_uniform, uniform_in
from keras_inst.config.schema import EffectsConfig
from keras_inst.taxonomy import CLASS_INDEX

__all__ = ["RealismParams", "draw_realism", "enabled", "mix_with_realism", "source_realism"]

REALISM_TAG = 0x5245414C49534D31  # "REALISM1": xor'd into the seed's first word
_SRC_COLS, _MIX_COLS = 15, 10  # the mix bus's 6 columns come last: the others' draws stay put


class RealismParams(NamedTuple):
    """Per-source realism parameters, fields ``[..., N]`` (or ``[M]`` rows); off = identity.

    ``rt60_s``, ``predelay_s``, ``room_u`` and the ``bus_*`` fields belong to the source's MIX
    (the same on every source of it); ``send`` is 0 for every source of a mix without reverb.
    """

    drive_db: Any  # saturation: drive (dB); 0 = off
    tone_hz: Any  # "cabinet" low-pass after saturation
    threshold_db: Any  # compressor: threshold re the source's RMS (dB)
    ratio: Any  # 1 = off
    attack_s: Any
    release_s: Any
    cutoff_hz: Any  # band-limit: 0 = off
    lp_order: Any  # its Butterworth order (band_limit.order)
    noise_on: Any  # bool
    snr_db: Any
    pink: Any  # bool: pink, else white noise
    noise_u: Any  # [0, 1): offset in the noise table
    send: Any  # reverb send in [0, 1]; 0 = dry
    rt60_s: Any
    predelay_s: Any
    room_u: Any  # [0, 1): offset of the room's noise in the table
    bus_on: Any  # bool: the mix bus (per mix, like the room fields below)
    bus_threshold_db: Any  # its compressor's threshold re the mix's RMS (dB)
    bus_ratio: Any
    bus_attack_s: Any
    bus_release_s: Any
    bus_target_lufs: Any  # loudness the mix is brought to
    bus_ceiling_db: Any  # the limiter's ceiling (dBFS; the config's, on every row)
    bus_max_gain_db: Any  # most gain towards the target (the config's, on every row)


def enabled(cfg: EffectsConfig) -> bool:
    """Whether any realism effect can happen (else nothing is added to the graph)."""
    return any(b.probability > 0 for b in (cfg.reverb, cfg.compressor, cfg.saturation,
                                           cfg.band_limit, cfg.noise, cfg.mix_bus))


def _instrument_gate(classes: Any, names: tuple[str, ...], shape: tf.Tensor) -> tf.Tensor:
    """bool ``[..., N]``: the sources whose classes ``[..., N, C]`` include one of ``names``."""
    if not names:
        return tf.ones(shape, tf.bool)
    unknown = [n for n in names if n not in CLASS_INDEX]
    if unknown:
        raise ValueError(f"config key 'effects.saturation.instruments': unknown class "
                         f"{unknown[0]!r}; known: {', '.join(CLASS_INDEX)}")
    if classes is None:
        raise ValueError("config key 'effects.saturation.instruments': restricting saturation "
                         "to instruments needs the sources' classes")
    picked = tf.gather(tf.convert_to_tensor(classes), [CLASS_INDEX[n] for n in names], axis=-1)
    return tf.reduce_max(picked, axis=-1) > 0


def draw_realism(seed: Any, n: int, cfg: EffectsConfig, *,
                 classes: Any = None) -> RealismParams | None:
    """Realism parameters for ``n`` sources per seed, or None when every probability is 0.

    ``seed``: int64 ``[..., 2]`` (the recipes' effects seeds) or an int; fields are ``[..., n]``.
    ``classes`` (float ``[..., n, C]``, multi-hot) is needed only for
    ``saturation.instruments``. Ranges of frequencies, ratios and times are log-uniform.
    """
    if not enabled(cfg):
        return None
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    seed = tf.stack([tf.constant(0, tf.int64), seed]) if seed.shape.rank == 0 else seed
    seed = tf.stack([tf.bitwise.bitwise_xor(seed[..., 0], tf.constant(REALISM_TAG, tf.int64)),
                     seed[..., 1]], axis=-1)
    batch = tf.shape(seed)[:-1]
    u = hash_uniform(seed, n * _SRC_COLS + _MIX_COLS)  # [..., n * 15 + 10]
    src = tf.reshape(u[..., : n * _SRC_COLS], tf.concat([batch, [n, _SRC_COLS]], 0))
    col = [src[..., i] for i in range(_SRC_COLS)]  # [..., n] each
    shape = tf.shape(col[0])
    mix = [tf.broadcast_to(u[..., n * _SRC_COLS + i, None], shape) for i in range(_MIX_COLS)]
    sat, comp, lp, noise, room, bus = (cfg.saturation, cfg.compressor, cfg.band_limit,
                                       cfg.noise, cfg.reverb, cfg.mix_bus)
    sat_on = (col[0] < sat.probability) & _instrument_gate(classes, sat.instruments, shape)
    comp_on = col[3] < comp.probability
    room_on = mix[0] < room.probability
    return RealismParams(
        drive_db=tf.where(sat_on, uniform_in(col[1], sat.drive_db), 0.0),
        tone_hz=uniform_in(col[2], sat.tone_hz, log=True),
        threshold_db=uniform_in(col[4], comp.threshold_db),
        ratio=tf.where(comp_on, uniform_in(col[5], comp.ratio, log=True), 1.0),
        attack_s=uniform_in(col[6], comp.attack_ms, log=True) / 1000.0,
        release_s=uniform_in(col[7], comp.release_ms, log=True) / 1000.0,
        cutoff_hz=tf.where(col[8] < lp.probability, uniform_in(col[9], lp.cutoff_hz, log=True),
                           0.0),
        lp_order=tf.fill(shape, float(lp.order)),
        noise_on=col[10] < noise.probability,
        snr_db=uniform_in(col[11], noise.snr_db),
        pink=col[12] < noise.p_pink,
        noise_u=col[13],
        send=tf.where(room_on, uniform_in(col[14], room.send), 0.0),
        rt60_s=tf.where(room_on, uniform_in(mix[1], room.rt60_s, log=True), 0.0),
        predelay_s=uniform_in(mix[2], room.predelay_ms) / 1000.0,
        room_u=mix[3],
        bus_on=mix[4] < bus.probability,
        bus_threshold_db=uniform_in(mix[5], bus.threshold_db),
        bus_ratio=uniform_in(mix[6], bus.ratio, log=True),
        bus_attack_s=uniform_in(mix[7], bus.attack_ms, log=True) / 1000.0,
        bus_release_s=uniform_in(mix[8], bus.release_ms, log=True) / 1000.0,
        bus_target_lufs=uniform_in(mix[9], bus.target_lufs),
        bus_ceiling_db=tf.fill(shape, float(bus.ceiling_db)),
        bus_max_gain_db=tf.fill(shape, float(bus.max_gain_db)),
    )


# ----------------------------------------------------------------------------------------------
# The chain: per-source stages on their rows only, then the sum per mix with its room


class _Rows(NamedTuple):
    """Rows ``[M, T]`` after a chain of stages that each rewrite SOME rows, without copying the
    others: stage k's output ``versions[k]`` holds its rows only; row i's latest content is row
    ``pos[i]`` of ``versions[latest[i]]`` (version 0: the input). Scattering each stage's rows
    back into a full [M, T] tensor copied all M rows per stage (5 ms per batch each)."""

    versions: list[tf.Tensor]
    latest: tf.Tensor  # int32 [M]
    pos: tf.Tensor  # int32 [M]

    def take(self, idx: tf.Tensor) -> tf.Tensor:
        """The latest content of rows ``idx [S]`` -> ``[S, T]`` (copies those rows only)."""
        lat, ps = tf.gather(self.latest, idx), tf.gather(self.pos, idx)
        if len(self.versions) == 1:
            return tf.gather(self.versions[0], ps)
        sel = [tf.cast(tf.where(tf.equal(lat, v))[:, 0], tf.int32) for v in range(len(self.versions))]
        return tf.dynamic_stitch(sel, [tf.gather(x, tf.gather(ps, s))
                                       for x, s in zip(self.versions, sel, strict=True)])

    def stage(self, mask: tf.Tensor, fn) -> _Rows:
        """``fn(rows [S, T], idx [S])`` on the rows where ``mask [M]``; skipped when none is."""
        idx = tf.cast(tf.where(mask)[:, 0], tf.int32)
        t = self.versions[0].shape[-1]
        out = tf.cond(tf.size(idx) > 0, lambda: fn(self.take(idx), idx),
                      lambda: tf.zeros([0, t], tf.float32))
        latest = tf.tensor_scatter_nd_update(self.latest, idx[:, None],
                                             tf.fill(tf.shape(idx), len(self.versions)))
        pos = tf.tensor_scatter_nd_update(self.pos, idx[:, None], tf.range(tf.size(idx)))
        return _Rows([*self.versions, out], latest, pos)

    def weighted_sum(self, ids: tf.Tensor, weights: tf.Tensor | None, n: tf.Tensor) -> tf.Tensor:
        """``sum_i w_i row_i`` per segment ``ids [M]`` (ascending) -> ``[n, T]``; rows with
        weight 0 are not read. A sparse [n, rows] x dense [rows, T] product per version."""
        out = None
        for v, x in enumerate(self.versions):
            on = tf.equal(self.latest, v)
            if weights is not None:
                on &= weights != 0
            rows = tf.cast(tf.where(on)[:, 0], tf.int32)
            if weights is None:  # plain sum: the segment-sum kernel, no gather copy
                part = tf.sparse.segment_sum(x, tf.gather(self.pos, rows),
                                              tf.gather(ids, rows), num_segments=n)
            else:
                coo = tf.stack([tf.gather(ids, rows), tf.gather(self.pos, rows)], 1)
                w = tf.sparse.SparseTensor(tf.cast(coo, tf.int64), tf.gather(weights, rows),
                                           tf.cast(tf.stack([n, tf.shape(x)[0]]), tf.int64))
                part = tf.sparse.sparse_dense_matmul(w, x)
            out = part if out is None else out + part
        return out


def _source_rows(x: tf.Tensor, p: RealismParams, *, sample_rate: float) -> _Rows:
    m = tf.shape(x)[0]
    rows = _Rows([x], tf.zeros([m], tf.int32), tf.range(m))

    def at(v: Any, idx: tf.Tensor) -> tf.Tensor:
        return tf.gather(v, idx)

    rows = rows.stage(p.drive_db > 0, lambda r, i: saturate(
        r, at(p.drive_db, i), at(p.tone_hz, i), sample_rate=sample_rate))
    rows = rows.stage(p.ratio > 1, lambda r, i: compress(
        r, at(p.threshold_db, i), at(p.ratio, i), at(p.attack_s, i), at(p.release_s, i),
        sample_rate=sample_rate))
    rows = rows.stage(tf.cast(p.noise_on, tf.bool), lambda r, i: add_noise(
        r, at(p.snr_db, i), at(p.pink, i), at(p.noise_u, i)))
    return rows.stage(p.cutoff_hz > 0, lambda r, i: band_limit(
        r, at(p.cutoff_hz, i), order=at(p.lp_order, i), sample_rate=sample_rate))


def source_realism(x: tf.Tensor, p: RealismParams, *, sample_rate: float) -> tf.Tensor:
    """Saturation, compressor, noise, band-limit on the rows of ``x [M, T]`` that draw them
    (``p`` fields [M]) -> ``[M, T]``; each stage runs on its rows only, and not at all when
    none draws it. (:func:`mix_with_realism` sums the rows without assembling this.)"""
    rows = _source_rows(tf.convert_to_tensor(x, tf.float32), p, sample_rate=sample_rate)
    return rows.take(tf.range(tf.shape(x)[0]))


def mix_with_realism(y: tf.Tensor, mix_of: tf.Tensor, p: RealismParams, *,
                     sample_rate: float) -> tf.Tensor:
    """Rows ``y [M, T]`` (after the paper's effects; ``mix_of [M]`` ascending mix ids, ``p``
    fields [M]) -> per-source realism -> sum per mix with each mix's room -> each mix's bus
    -> ``[<= B, T]`` (as ``tf.math.segment_sum``: up to the last id).

    With sends ``s_i`` and room ``h``: ``sum_i (1 - s_i) y_i + h * sum_i s_i y_i``
    ``= sum_i y_i + (h * bus - bus)``, so only the mixes with a room pay for the bus.
    """
    rows = _source_rows(tf.convert_to_tensor(y, tf.float32), p, sample_rate=sample_rate)
    ids = tf.cast(mix_of, tf.int32)
    n = tf.maximum(tf.reduce_max(ids) + 1, 0)  # 0 when no row (every mix a negative: ambience)
    mix = rows.weighted_sum(ids, None, n)  # [n, T]
    send = tf.cast(p.send, tf.float32)

    def with_rooms() -> tf.Tensor:
        # A mix's room fields are equal on all its rows; segment_max picks them.
        rt60, pre, u = (tf.maximum(tf.math.segment_max(tf.cast(v, tf.float32), ids), 0.0)
                        for v in (p.rt60_s, p.predelay_s, p.room_u))
        idx = tf.cast(tf.where(rt60 > 0)[:, 0], tf.int32)  # mixes with a room
        bus = tf.gather(rows.weighted_sum(ids, send, n), idx)  # what their sources send
        wet = reverberate(bus, tf.gather(rt60, idx), tf.gather(pre, idx), tf.gather(u, idx),
                           sample_rate=sample_rate)
        return tf.tensor_scatter_nd_add(mix, idx[:, None], wet - bus)

    mix = tf.cond(tf.reduce_any(send > 0), with_rooms, lambda: mix)
    return _with_mix_bus(mix, ids, p, sample_rate=sample_rate)


def _with_mix_bus(mix: tf.Tensor, ids: tf.Tensor, p: RealismParams, *,
                  sample_rate: float) -> tf.Tensor:
    """The mix bus on the mixes ``[n, T]`` that draw it (``ids [M]``: each row's mix); the
    others are left bit-identical, and nothing runs when none draws it."""
    on_rows = tf.cast(p.bus_on, tf.bool)

    def with_bus() -> tf.Tensor:
        on = tf.math.segment_max(tf.cast(on_rows, tf.int32), ids) > 0  # [n]
        idx = tf.cast(tf.where(on)[:, 0], tf.int32)  # mixes with a bus
        first = tf.gather(tf.math.segment_min(tf.range(tf.size(ids)), ids), idx)  # a row of each
        at = [tf.gather(v, first) for v in (p.bus_threshold_db, p.bus_ratio, p.bus_attack_s,
                                             p.bus_release_s, p.bus_target_lufs,
                                             p.bus_ceiling_db, p.bus_max_gain_db)]
        out = mix_bus(tf.gather(mix, idx), *at, sample_rate=sample_rate)
        return tf.tensor_scatter_nd_update(mix, idx[:, None], out)

    return tf.cond(tf.reduce_any(on_rows), with_bus, lambda: mix)
