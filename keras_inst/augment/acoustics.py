"""Signal-level realism effects (beyond the paper), batched in TensorFlow: rows ``x [B, T]``
(static T) float32 and per-row parameters ``[B]``; see :mod:`keras_inst.augment.realism` for
what they model, how they are drawn and chained, and why they are built this way.

* :func:`saturate`: tanh at a drive above a reference RMS, a 2nd-order "cabinet" low-pass,
  output at the input's RMS;
* :func:`compress`: feed-forward hard-knee compressor, frame-wise (no per-sample recursion);
* :func:`add_noise`: white/pink noise from a seeded table at an exact SNR;
* :func:`band_limit`: zero-phase Butterworth low-pass magnitude, one FFT pass;
* :func:`room_impulse_responses` / :func:`reverberate`: exponentially decaying noise rooms with
  a given RT60 after a pre-delay, convolved by FFT;
* :func:`loudness`: ungated BS.1770 loudness (K-weighted mean square, "LUFS") by one FFT;
* :func:`limit`: look-ahead peak limiter to a ceiling; :func:`mix_bus`: compressor, gain to a
  target loudness, limiter (the mix bus of a mastered recording).

Every per-item quantity that goes through exp/log/pow is computed in float64 and rounded once,
or built from multiplications only, so an item's output does not depend on its batch (tested).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import tensorflow as tf

from keras_inst.augment.effects import fast_len
from keras_inst.augment.params import (
    COMP_HOP,
    COMP_LAGS,
    LIMIT_BLOCK,
    LIMIT_LAGS,
    LIMIT_RELEASE_S,
    LUFS_OFFSET,
    k_weighting,
)

__all__ = ["add_noise", "band_limit", "compress", "limit", "loudness", "mix_bus", "reverberate",
           "room_impulse_responses", "saturate"]

NOISE_TABLE = 1 << 17  # samples per noise table (8.2 s at 16 kHz; > any chunk or RIR length)
NOISE_SEED = 20261204
NOISE_BLOCK = 64  # noise segments start on whole blocks of 64 samples (2048 per table)
SAT_REF = 0.25  # RMS (-12 dBFS) the source is normalised to before the drive
FILTER_PAD = 1024  # zero padding that absorbs the zero-phase filters' two-sided responses
DB_PER_NEPER = 20.0 / math.log(10.0)  # 8.686 dB: a one-pole decay of time constant tau
LN_1000 = math.log(1000.0)  # 60 dB of amplitude decay (RT60)
ROOM_SECONDS = 2.0  # room responses are cut here (-60 dB at RT60 <= 2 s, the config's limit)


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
    n = fast_len(t + FILTER_PAD)
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


def reverberate(bus: tf.Tensor, rt60_s: tf.Tensor, predelay_s: tf.Tensor, u: tf.Tensor, *,
                 sample_rate: float) -> tf.Tensor:
    """``bus [B, T]`` convolved with each item's room (``ROOM_SECONDS`` long), first T
    samples: FFT zero-padded to ``T + L - 1``, so nothing wraps into [0, T)."""
    t = bus.shape[-1]
    length = min(t, int(round(ROOM_SECONDS * sample_rate)))
    n = fast_len(t + length - 1)
    h = room_impulse_responses(rt60_s, predelay_s, u, length=length, sample_rate=sample_rate)
    return tf.signal.irfft(tf.signal.rfft(bus, [n]) * tf.signal.rfft(h, [n]), [n])[:, :t]


# ----------------------------------------------------------------------------------------------
# Mix bus: loudness and a look-ahead limiter


@functools.cache
def _k_power(n: int, sample_rate: float, t: int) -> np.ndarray:
    """float32 ``[n // 2 + 1]``: ``|H_K(f)|^2`` of the K-weighting at the rfft bins of size
    ``n``, times each bin's Parseval weight (2, or 1 at DC and Nyquist) / (n T): the weighted
    sum of ``|X|^2`` is the K-weighted energy of the zero-padded signal over ``t`` samples."""
    z = np.exp(-2j * np.pi * np.arange(n // 2 + 1) / n)  # z^-1 on the unit circle
    h2 = np.ones(z.size)
    for b, a in k_weighting(sample_rate):
        h2 *= np.abs(np.polyval(b[::-1], z) / np.polyval(a[::-1], z)) ** 2
    w = np.full(z.size, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return (h2 * w / (n * t)).astype(np.float32)


def loudness(x: tf.Tensor, *, sample_rate: float = 16000) -> tf.Tensor:
    """Ungated BS.1770 loudness (LUFS, float64 ``[B]``) of ``x [B, T]``: ``-0.691 + 10 log10``
    of the K-weighted mean square over T (the filters' ringing past T included; zero padding
    of ``FILTER_PAD`` absorbs it). The gating of integrated loudness is left out: on a 4-s
    chunk it drops little, and steady signals match it (tested against
    :func:`keras_inst.corpus.synth.integrated_loudness`)."""
    x = tf.convert_to_tensor(x, tf.float32)
    t = x.shape[-1]
    n = fast_len(t + FILTER_PAD)
    spec = tf.signal.rfft(x, [n])  # [B, F]
    power = tf.square(tf.math.real(spec)) + tf.square(tf.math.imag(spec))
    w = _k_power(n, float(sample_rate), t)
    # Rows padded to whole 64-byte lines: a vectorised row sum splits a row by its alignment,
    # and a row's alignment would depend on its place in the batch ([B, F] with F odd).
    pad = -w.size % 16
    e = tf.reduce_sum(tf.pad(power * w, [[0, 0], [0, pad]]), -1)  # [B] K-weighted mean square
    return LUFS_OFFSET + _to_db(e)


def limit(x: tf.Tensor, ceiling_db: Any, *, sample_rate: float = 16000) -> tf.Tensor:
    """Look-ahead peak limiter of ``x [B, T]`` to ``ceiling_db [B]`` (dBFS), no clipping but a
    final safety clip at the ceiling (rounding only).

    Per sample the gain that keeps it under the ceiling, ``min(1, c / |x|)``; its minimum per
    block of ``LIMIT_BLOCK`` (from the block's peak) and over the neighbouring blocks (the
    look-ahead: every sample within one block sees it); an exponential release (at most
    ``LIMIT_LAGS`` blocks back, ``LIMIT_RELEASE_S``); a box average over ``2 LIMIT_BLOCK + 1``
    samples (a 4-ms attack ramp; on block-constant gains, 3 blocks weighted per sample). Every
    gain averaged into sample n is <= n's own bound, so the mean is too. Offline, the
    look-ahead needs no delay: the window is centred.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    t, blk = x.shape[-1], LIMIT_BLOCK
    nb = -(-(t + 2 * blk) // blk)  # one block of zeros before; >= one after
    xp = tf.pad(x, [[0, 0], [blk, nb * blk - t - blk]])  # [B, nb * blk]
    c = tf.cast(_db_to_gain(ceiling_db), tf.float32)[:, None]  # [B, 1]
    peak = tf.reduce_max(tf.abs(tf.reshape(xp, [-1, nb, blk])), -1)  # [B, nb]
    g = tf.minimum(1.0, c / tf.maximum(peak, 1e-30))  # = the block's min of c / |x|
    g1 = tf.pad(g, [[0, 0], [1, 1]], constant_values=1.0)
    g = tf.minimum(tf.minimum(g1[:, :-2], g1[:, 1:-1]), g1[:, 2:])  # with the neighbours
    # Release: min_k g[b - k] r^k over k < LIMIT_LAGS (r: the recovery per block), by doubling
    # as in _max_plus (a max-plus in dB is a min-times in gain; multiplications only).
    r, k = math.exp(blk / (LIMIT_RELEASE_S * sample_rate)), 1
    while k < LIMIT_LAGS:
        shifted = tf.pad(g, [[0, 0], [k, 0]], constant_values=1.0)[:, :nb]
        g = tf.minimum(g, shifted * np.float32(r**k))
        k *= 2
    # The box over padded samples [n, n + 2 blk] of the block-constant gain, n = q blk + i:
    # (blk - i) samples of block q, all of block q + 1, i + 1 of block q + 2 -> [B, nb - 2, blk].
    i = tf.range(blk, dtype=tf.float32)
    box = ((blk - i) * g[:, :-2, None] + blk * g[:, 1:-1, None] + (i + 1) * g[:, 2:, None])
    box = tf.reshape(box / (2 * blk + 1), [-1, (nb - 2) * blk])[:, :t]
    return tf.clip_by_value(x * box, -c, c)


def mix_bus(x: tf.Tensor, threshold_db: Any, ratio: Any, attack_s: Any, release_s: Any,
            target_lufs: Any, ceiling_db: Any, max_gain_db: Any, *,
            sample_rate: float = 16000) -> tf.Tensor:
    """The mix bus of ``x [B, T]`` (parameters ``[B]``): :func:`compress` (threshold re the
    mix's RMS, no make-up), gain to ``target_lufs`` (:func:`loudness`; at most
    ``max_gain_db``, so near-silence is not raised into loud noise), :func:`limit` to
    ``ceiling_db``. A limited mix ends a little below its target."""
    y = compress(x, threshold_db, ratio, attack_s, release_s, sample_rate=sample_rate,
                 makeup=False)
    gain_db = tf.minimum(tf.cast(target_lufs, tf.float64) - loudness(y, sample_rate=sample_rate),
                         tf.cast(max_gain_db, tf.float64))
    y = y * tf.cast(_db_to_gain(gain_db), tf.float32)[:, None]
    return limit(y, ceiling_db, sample_rate=sample_rate)
