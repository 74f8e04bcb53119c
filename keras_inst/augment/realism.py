"""Realism effects beyond the paper, batched in TensorFlow like :mod:`keras_inst.augment.effects`.

Opt-in (``effects.reverb / compressor / saturation / band_limit / noise`` in the config, all
off in ``configs/paper.yaml``): they make rendered or clean stems sound more like recordings, so
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

Every training mix may get them, musical or not (none changes pitch or timing); validation and
test mixes get none. Parameters come from each example's effects seed like the paper's
effects, on an independent stream (the seed's first word xor ``REALISM_TAG``): the paper's
draws are unchanged when realism is on, and an item's output depends only on its own seed and
slot, never on its batch.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from keras_inst.augment.effects import _fast_len, _uniform, hash_uniform
from keras_inst.config.schema import EffectsConfig
from keras_inst.taxonomy import CLASS_INDEX

__all__ = ["RealismParams", "add_noise", "band_limit", "compress", "draw_realism", "enabled",
           "mix_with_realism", "room_impulse_responses", "saturate", "source_realism"]

REALISM_TAG = 0x5245414C49534D31  # "REALISM1": xor'd into the seed's first word
NOISE_TABLE = 1 << 17  # samples per noise table (8.2 s at 16 kHz; > any chunk or RIR length)
NOISE_SEED = 20261204
NOISE_BLOCK = 64  # noise segments start on whole blocks of 64 samples (2048 per table)
SAT_REF = 0.25  # RMS (-12 dBFS) the source is normalised to before the drive
COMP_HOP = 256  # compressor detector hop (16 ms at 16 kHz); frames are 2 hops, Hann-weighted
COMP_LAGS = 128  # frames of the attack/release windows (2 s at hop 256 / 16 kHz)
FILTER_PAD = 1024  # zero padding that absorbs the zero-phase filters' two-sided responses
DB_PER_NEPER = 20.0 / math.log(10.0)  # 8.686 dB: a one-pole decay of time constant tau
LN_1000 = math.log(1000.0)  # 60 dB of amplitude decay (RT60)
ROOM_SECONDS = 2.0  # room responses are cut here (-60 dB at RT60 <= 2 s, the config's limit)
_SRC_COLS, _MIX_COLS = 15, 4


class RealismParams(NamedTuple):
    """Per-source realism parameters, fields ``[..., N]`` (or ``[M]`` rows); off = identity.

    ``rt60_s``, ``predelay_s`` and ``room_u`` belong to the source's MIX (the same on every
    source of it); ``send`` is 0 for every source of a mix without reverb.
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


def enabled(cfg: EffectsConfig) -> bool:
    """Whether any realism effect can happen (else nothing is added to the graph)."""
    return any(b.probability > 0 for b in (cfg.reverb, cfg.compressor, cfg.saturation,
                                           cfg.band_limit, cfg.noise))


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
    u = hash_uniform(seed, n * _SRC_COLS + _MIX_COLS)  # [..., n * 15 + 4]
    src = tf.reshape(u[..., : n * _SRC_COLS], tf.concat([batch, [n, _SRC_COLS]], 0))
    col = [src[..., i] for i in range(_SRC_COLS)]  # [..., n] each
    shape = tf.shape(col[0])
    mix = [tf.broadcast_to(u[..., n * _SRC_COLS + i, None], shape) for i in range(_MIX_COLS)]
    sat, comp, lp, noise, room = (cfg.saturation, cfg.compressor, cfg.band_limit, cfg.noise,
                                  cfg.reverb)
    sat_on = (col[0] < sat.probability) & _instrument_gate(classes, sat.instruments, shape)
    comp_on = col[3] < comp.probability
    room_on = mix[0] < room.probability
    return RealismParams(
        drive_db=tf.where(sat_on, _uniform(col[1], sat.drive_db), 0.0),
        tone_hz=_uniform(col[2], sat.tone_hz, log=True),
        threshold_db=_uniform(col[4], comp.threshold_db),
        ratio=tf.where(comp_on, _uniform(col[5], comp.ratio, log=True), 1.0),
        attack_s=_uniform(col[6], comp.attack_ms, log=True) / 1000.0,
        release_s=_uniform(col[7], comp.release_ms, log=True) / 1000.0,
        cutoff_hz=tf.where(col[8] < lp.probability, _uniform(col[9], lp.cutoff_hz, log=True),
                           0.0),
        lp_order=tf.fill(shape, float(lp.order)),
        noise_on=col[10] < noise.probability,
        snr_db=_uniform(col[11], noise.snr_db),
        pink=col[12] < noise.p_pink,
        noise_u=col[13],
        send=tf.where(room_on, _uniform(col[14], room.send), 0.0),
        rt60_s=tf.where(room_on, _uniform(mix[1], room.rt60_s, log=True), 0.0),
        predelay_s=_uniform(mix[2], room.predelay_ms) / 1000.0,
        room_u=mix[3],
    )


# ----------------------------------------------------------------------------------------------
# Per-source effects: x [B, T] float32 (static T), parameters [B]


def _rms(x: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1))  # [B]


def _db_to_gain(v: Any, per: float = 20.0) -> tf.Tensor:
    """``10^(v / per)`` in float64, rounded once by the caller: Eigen's vectorised and scalar
    float32 pow/exp/log can differ by an ulp, and an item's values fall on other SIMD lanes in
    another batch; in float64 its output does not depend on its batch (tested)."""
    return tf.pow(tf.constant(10.0, tf.float64), tf.cast(v, tf.float64) / per)


def _to_db(power: tf.Tensor) -> tf.Tensor:
    """``10 log10(power)`` in float64, floored at -200 dB."""
    return 10.0 * tf.math.log(tf.cast(power, tf.float64) + 1e-20) / math.log(10.0)


def _lowpass(x: tf.Tensor, cutoff_hz: Any, order: Any, *, sample_rate: float) -> tf.Tensor:
    """Zero-phase Butterworth magnitude ``1 / sqrt(1 + (f / fc)^(2 order))`` of each item
    (``cutoff_hz [B]``, <= 0: no filtering; integer ``order`` <= 32, scalar or [B]) on
    ``x [B, T]``, by one zero-padded FFT pass."""
    t = x.shape[-1]
    n = _fast_len(t + FILTER_PAD)
    f = tf.constant(np.fft.rfftfreq(n, 1.0 / sample_rate), tf.float32)  # [F]
    fc = tf.cast(cutoff_hz, tf.float32)[:, None]  # [B, 1]
    r2 = tf.square(f / tf.maximum(fc, 1e-3))  # [B, F]
    # (f / fc)^(2 order) by repeated squaring: multiplications only, which round the same in
    # every SIMD lane (exp/log do not), so an item's response does not depend on its batch.
    bits = tf.reshape(tf.cast(tf.round(tf.cast(order, tf.float32)), tf.int32), [-1, 1])
    power = tf.ones_like(r2)
    for b in range(6):
        power *= tf.where(tf.bitwise.bitwise_and(bits, 1 << b) > 0, r2, 1.0)
        r2 = tf.square(r2)
    mag = tf.where(fc > 0, 1.0 / tf.sqrt(1.0 + power), 1.0)  # inf above the cutoff -> 0
    spec = tf.signal.rfft(x, [n]) * tf.complex(mag, tf.zeros_like(mag))
    return tf.signal.irfft(spec, [n])[:, :t]


def band_limit(x: tf.Tensor, cutoff_hz: Any, *, order: Any = 8,
               sample_rate: float = 16000) -> tf.Tensor:
    """Codec-like low-pass: ``order`` (scalar or [B]) x 6 dB/octave above ``cutoff_hz [B]``,
    zero phase."""
    return _lowpass(tf.convert_to_tensor(x, tf.float32), cutoff_hz, order,
                    sample_rate=sample_rate)


def saturate(x: tf.Tensor, drive_db: Any, tone_hz: Any, *, sample_rate: float = 16000) -> tf.Tensor:
    """tanh saturation at ``drive_db [B]`` above RMS ``SAT_REF``, a 2nd-order low-pass at
    ``tone_hz [B]`` (<= 0: none), output scaled to the input's RMS (level compensation)."""
    x = tf.convert_to_tensor(x, tf.float32)
    rms = _rms(x)  # [B]
    drive = tf.cast(_db_to_gain(drive_db), tf.float32) * SAT_REF / tf.maximum(rms, 1e-9)
    y = _lowpass(tf.tanh(x * drive[:, None]), tone_hz, 2, sample_rate=sample_rate)
    return y * (rms / tf.maximum(_rms(y), 1e-12))[:, None]


def _max_plus(g: tf.Tensor, slope: tf.Tensor, lags: int) -> tf.Tensor:
    """``max_k g[:, f - k] - k slope`` over lags k in [0, lags) (0 before the start; ``lags`` a
    power of two): ``g [B, F]``, ``slope [B]`` (dB per frame) -> ``[B, F]``. A fall-rate limit.

    By doubling, as the penalty is linear in k: ``M_2K[f] = max(M_K[f], M_K[f - K] - K slope)``,
    log2(lags) steps instead of ``lags`` shifted copies.
    """
    m, k = g, 1
    while k < lags:
        shifted = tf.pad(m, [[0, 0], [k, 0]])[:, : tf.shape(m)[1]]  # M_K[f - K], 0 before
        m = tf.maximum(m, shifted - k * slope[:, None])
        k *= 2
    return m


def compress(x: tf.Tensor, threshold_db: Any, ratio: Any, attack_s: Any, release_s: Any, *,
             sample_rate: float = 16000, makeup: bool = True, hop: int = COMP_HOP,
             lags: int = COMP_LAGS) -> tf.Tensor:
    """Feed-forward hard-knee compressor (module doc) of ``x [B, T]``; parameters ``[B]``;
    ``threshold_db`` re each item's RMS over T. ``makeup``: restore each item's RMS."""
    x = tf.convert_to_tensor(x, tf.float32)
    t = x.shape[-1]
    blocks = -(-t // hop)
    # Power in blocks of one hop, one block of zeros on each side: [B, blocks + 2, hop].
    p = tf.pad(tf.square(x), [[0, 0], [hop, (blocks + 1) * hop - t]])
    p = tf.reshape(p, [-1, blocks + 2, hop])
    w = np.hanning(2 * hop + 1)[:-1]
    w = (w / w.sum()).astype(np.float32)  # periodic Hann over 2 hops, sum 1
    # Frame f (centre f * hop): blocks f and f + 1 -> [B, blocks + 1] mean power.
    level = (tf.linalg.matvec(p[:, :-1], tf.constant(w[:hop]))
             + tf.linalg.matvec(p[:, 1:], tf.constant(w[hop:])))
    thr = _to_db(tf.reduce_mean(tf.square(x), axis=-1)) + tf.cast(threshold_db, tf.float64)
    ratio = tf.cast(ratio, tf.float64)
    # Gain reduction (dB, >= 0) of the static curve per frame: [B, F] float64.
    gr = tf.maximum(_to_db(level) - thr[:, None], 0.0) * (1.0 - 1.0 / ratio)[:, None]
    per_frame = DB_PER_NEPER * hop / sample_rate  # dB per frame of a 1-second time constant
    attack = per_frame / tf.cast(attack_s, tf.float64)
    release = per_frame / tf.cast(release_s, tf.float64)
    gr = -_max_plus(-gr, attack, lags)  # the reduction rises at most `attack` dB per frame
    gr = _max_plus(gr, release, lags)  # and falls at most `release` dB per frame
    g = tf.cast(_db_to_gain(-gr), tf.float32)  # [B, F]
    # Linear interpolation of the frame gains (centres f * hop) back to the samples: block b
    # runs from frame b to frame b + 1, [B, blocks, hop] -> [B, T].
    frac = tf.constant(np.arange(hop) / hop, tf.float32)
    gain = g[:, :-1, None] * (1.0 - frac) + g[:, 1:, None] * frac
    y = x * tf.reshape(gain, [-1, blocks * hop])[:, :t]
    if makeup:
        y *= (_rms(x) / tf.maximum(_rms(y), 1e-12))[:, None]
    return y


@functools.cache
def _noise_tables(length: int) -> np.ndarray:
    """float32 ``[2 * blocks, NOISE_BLOCK]``: white and pink (1/f power, circular) noise of
    unit power, each followed by its first ``length`` samples (rounded up to whole blocks, so
    that any segment is a run of whole blocks), cut into rows of ``NOISE_BLOCK`` samples."""
    white = np.random.default_rng(NOISE_SEED).standard_normal(NOISE_TABLE)
    spec = np.fft.rfft(white)
    f = np.arange(spec.size, dtype=np.float64)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0.0
    pink = np.fft.irfft(spec, NOISE_TABLE)
    tables = np.stack([white, pink])
    tables /= np.sqrt(np.mean(tables**2, axis=1, keepdims=True))
    extra = -(-length // NOISE_BLOCK) * NOISE_BLOCK
    tables = np.concatenate([tables, tables[:, :extra]], axis=1).astype(np.float32)
    return tables.reshape(-1, NOISE_BLOCK)


def _table_segments(u: Any, length: int, which: Any = None) -> tf.Tensor:
    """``length`` (<= ``NOISE_TABLE``) samples of noise table ``which [B]`` (0 white, 1 pink;
    None: white) from offsets ``u [B]`` in [0, 1) of the table (in whole blocks), circularly
    -> ``[B, length]``. Gathering blocks of ``NOISE_BLOCK`` samples, not single samples:
    ``tf.gather`` of 1 M scalars took 4 ms, of 16 k blocks far less."""
    blocks = _noise_tables(length)  # [2 * per_table, NOISE_BLOCK]
    per_table = blocks.shape[0] // 2
    start = tf.cast(tf.cast(u, tf.float32) * (NOISE_TABLE // NOISE_BLOCK), tf.int32)  # [B]
    if which is not None:
        start += tf.cast(which, tf.int32) * per_table
    n = -(-length // NOISE_BLOCK)
    seg = tf.gather(tf.constant(blocks), start[:, None] + tf.range(n)[None])  # [B, n, block]
    return tf.reshape(seg, [-1, n * NOISE_BLOCK])[:, :length]


def add_noise(x: tf.Tensor, snr_db: Any, pink: Any, u: Any) -> tf.Tensor:
    """``x [B, T]`` plus white or pink (``pink [B]``) noise at ``snr_db [B]`` re each item's
    power over T; ``u [B]`` in [0, 1) picks the noise segment."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = _table_segments(u, x.shape[-1], which=tf.cast(pink, tf.int32))
    ratio = tf.reduce_mean(tf.square(x), -1) / tf.maximum(tf.reduce_mean(tf.square(n), -1), 1e-20)
    scale = tf.cast(tf.sqrt(tf.cast(ratio, tf.float64) * _db_to_gain(-tf.cast(snr_db, tf.float64), 10.0)), tf.float32)  # [B]
    return x + n * scale[:, None]


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


# ----------------------------------------------------------------------------------------------
# Room (per mix)


def room_impulse_responses(rt60_s: Any, predelay_s: Any, u: Any, *, length: int,
                           sample_rate: float = 16000) -> tf.Tensor:
    """Synthetic room responses ``[B, length]``: white noise (a table segment at ``u [B]``)
    times ``exp(-ln(1000) (t - predelay) / rt60)`` after the pre-delay (whole samples; 60 dB
    of amplitude decay at RT60), zero before it, scaled to unit energy.
    ``length`` <= ``NOISE_TABLE``."""
    if length > NOISE_TABLE:
        raise ValueError(f"room_impulse_responses: length {length} > NOISE_TABLE {NOISE_TABLE}")
    n = _table_segments(u, length)  # [B, length]
    pre = tf.round(tf.cast(predelay_s, tf.float64) * sample_rate)[:, None]  # [B, 1] samples
    rate = LN_1000 / (tf.maximum(tf.cast(rt60_s, tf.float64), 1e-3) * sample_rate)[:, None]
    # exp(-rate (k - pre)) for k = 64 a + b is exp(-rate (64 a - pre)) exp(-rate b): two small
    # float64 exps (batch-independent, see _db_to_gain) and one float32 product, instead of
    # `length` exps per room.
    blocks = -(-length // NOISE_BLOCK)
    coarse = tf.exp(-rate * (NOISE_BLOCK * tf.range(blocks, dtype=tf.float64)[None] - pre))
    fine = tf.exp(-rate * tf.range(NOISE_BLOCK, dtype=tf.float64)[None])
    env = tf.cast(coarse, tf.float32)[:, :, None] * tf.cast(fine, tf.float32)[:, None, :]
    env = tf.reshape(env, [-1, blocks * NOISE_BLOCK])[:, :length]  # [B, length]
    after = tf.range(length, dtype=tf.float64)[None] >= pre
    h = tf.where(after, n * env, 0.0)
    return h / tf.maximum(tf.sqrt(tf.reduce_sum(tf.square(h), -1, keepdims=True)), 1e-12)


def _reverberate(bus: tf.Tensor, rt60_s: tf.Tensor, predelay_s: tf.Tensor, u: tf.Tensor, *,
                 sample_rate: float) -> tf.Tensor:
    """``bus [B, T]`` convolved with each item's room (``ROOM_SECONDS`` long), first T
    samples: FFT zero-padded to ``T + L - 1``, so nothing wraps into [0, T)."""
    t = bus.shape[-1]
    length = min(t, int(round(ROOM_SECONDS * sample_rate)))
    n = _fast_len(t + length - 1)
    h = room_impulse_responses(rt60_s, predelay_s, u, length=length, sample_rate=sample_rate)
    return tf.signal.irfft(tf.signal.rfft(bus, [n]) * tf.signal.rfft(h, [n]), [n])[:, :t]


def mix_with_realism(y: tf.Tensor, mix_of: tf.Tensor, p: RealismParams, *,
                     sample_rate: float) -> tf.Tensor:
    """Rows ``y [M, T]`` (after the paper's effects; ``mix_of [M]`` ascending mix ids, ``p``
    fields [M]) -> per-source realism -> sum per mix with each mix's room -> ``[<= B, T]``
    (as ``tf.math.segment_sum``: up to the last id).

    With sends ``s_i`` and room ``h``: ``sum_i (1 - s_i) y_i + h * sum_i s_i y_i``
    ``= sum_i y_i + (h * bus - bus)``, so only the mixes with a room pay for the bus.
    """
    rows = _source_rows(tf.convert_to_tensor(y, tf.float32), p, sample_rate=sample_rate)
    ids = tf.cast(mix_of, tf.int32)
    n = tf.reduce_max(ids) + 1
    mix = rows.weighted_sum(ids, None, n)  # [n, T]
    send = tf.cast(p.send, tf.float32)

    def with_rooms() -> tf.Tensor:
        # A mix's room fields are equal on all its rows; segment_max picks them.
        rt60, pre, u = (tf.maximum(tf.math.segment_max(tf.cast(v, tf.float32), ids), 0.0)
                        for v in (p.rt60_s, p.predelay_s, p.room_u))
        idx = tf.cast(tf.where(rt60 > 0)[:, 0], tf.int32)  # mixes with a room
        bus = tf.gather(rows.weighted_sum(ids, send, n), idx)  # what their sources send
        wet = _reverberate(bus, tf.gather(rt60, idx), tf.gather(pre, idx), tf.gather(u, idx),
                           sample_rate=sample_rate)
        return tf.tensor_scatter_nd_add(mix, idx[:, None], wet - bus)

    return tf.cond(tf.reduce_any(send > 0), with_rooms, lambda: mix)
