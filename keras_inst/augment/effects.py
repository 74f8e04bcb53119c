"""Per-source random effects (paper §2.3) in TensorFlow, vectorised over a batch of sources.

Every function takes signals ``x [B, T]`` and per-item parameters ``[B]`` and is graph-friendly
(usable inside ``tf.data`` map and ``tf.function``; no Python loops over items or frames), so
one call processes all sources of a batch of mixes.  Effects:

* gain: a multiplication (folded into the EQ response or the vocoder output where there is one);
* EQ: low shelf, high shelf (slope S = 1) and peaking RBJ biquads, all applied at once in the
  frequency domain: ``rfft`` of the zero-padded signal times the product of the three exact
  frequency responses ``H(e^jw) = (b0 + b1 z^-1 + b2 z^-2) / (a0 + a1 z^-1 + a2 z^-2)`` at the
  FFT bins, ``irfft``, crop.  This equals ``scipy.signal.lfilter`` (zero initial state) except
  for the part of the impulse-response tail that wraps around past the padding, which decays
  below float32 precision within ``EQ_TAIL`` samples for the configured frequencies and Q;
* time stretch (rate r) and pitch shift (s semitones) in one phase-vocoder pass per item:
  :func:`keras_inst.augment.vocoder.time_pitch` (contract: ``y[t]`` holds the content of ``x[t * r]``;
  see :func:`required_input_samples`).

CPU speed is the design goal (the input pipeline runs these on 2 cores); the comments name the
formulations that measured fastest, see also :func:`apply_effects`.

Stage order: gain commutes with everything, and the three filters are LTI and commute with each
other, so only "EQ before or after pitch/time" is a real choice; it is drawn per item
(``eq_first``).  NumPy reference: :mod:`keras_inst.augment.reference`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from keras_inst.augment.params import IDENTITY, PV_N_FFT, SHELF_Q, EffectParams
from keras_inst.augment.vocoder import TF_PV_HOP, required_input_samples, time_pitch
from keras_inst.config.schema import EffectsConfig

# The vocoder's public names are re-exported: callers configure the whole chain from here.
__all__ = [
    "EQ_TAIL", "EffectParams", "apply_effects", "biquad_response", "equalize", "identity_params",
    "TF_PV_HOP", "hash_uniform", "rbj_biquad_tf", "required_input_samples", "sample_effect_params",
    "time_pitch", "fast_len", "uniform_in",
]

EQ_TAIL = 4096  # zero padding (samples) that absorbs the IIR tails before the circular wrap


def identity_params(n: int) -> EffectParams:
    """Parameters [n] that leave every source unchanged."""
    return EffectParams(*(tf.fill([n], tf.constant(v, tf.bool if isinstance(v, bool) else tf.float32))
                          for v in IDENTITY))


# ----------------------------------------------------------------------------------------------
# EQ

def rbj_biquad_tf(kind: str, f0_hz: Any, gain_db: Any, *, q: Any = SHELF_Q,
                  sample_rate: float) -> tuple[tf.Tensor, tf.Tensor]:
    """TF twin of :func:`keras_inst.augment.reference.rbj_biquad`: ``(b, a)`` float64 ``[..., 3]``.

    ``f0_hz`` is clipped into [1 Hz, 0.49 sample_rate] (tensors cannot raise in a graph).
    """
    if kind not in ("low_shelf", "high_shelf", "peaking"):
        raise ValueError(f"rbj_biquad_tf: unknown filter kind {kind!r}")
    f0 = tf.clip_by_value(tf.cast(f0_hz, tf.float64), 1.0, 0.49 * sample_rate)
    big_a = tf.pow(tf.constant(10.0, tf.float64), tf.cast(gain_db, tf.float64) / 40.0)
    w0 = 2.0 * math.pi * f0 / sample_rate
    cos_w, alpha = tf.cos(w0), tf.sin(w0) / (2.0 * tf.cast(q, tf.float64))
    if kind == "peaking":
        b = (1.0 + alpha * big_a, -2.0 * cos_w, 1.0 - alpha * big_a)
        a = (1.0 + alpha / big_a, -2.0 * cos_w, 1.0 - alpha / big_a)
    else:
        sign = 1.0 if kind == "low_shelf" else -1.0
        ap, am, two_sqrt_a_alpha = big_a + 1.0, big_a - 1.0, 2.0 * tf.sqrt(big_a) * alpha
        b = (big_a * (ap - sign * am * cos_w + two_sqrt_a_alpha),
             sign * 2.0 * big_a * (am - sign * ap * cos_w),
             big_a * (ap - sign * am * cos_w - two_sqrt_a_alpha))
        a = (ap + sign * am * cos_w + two_sqrt_a_alpha,
             -sign * 2.0 * (am + sign * ap * cos_w),
             ap + sign * am * cos_w - two_sqrt_a_alpha)
    shape = tf.broadcast_dynamic_shape(tf.shape(f0), tf.shape(big_a))
    b = tf.stack([tf.broadcast_to(c, shape) for c in b], axis=-1)
    a = tf.stack([tf.broadcast_to(c, shape) for c in a], axis=-1)
    return b, a


def _d_basis(c: tf.Tensor) -> list[tf.Tensor]:
    """``c0 + c1 z^-1 + c2 z^-2`` rewritten as ``e0 + e1 d + e2 d^2`` with ``d = z^-1 - 1``.

    Low-frequency shelves have poles near z = 1, where the direct form cancels catastrophically
    in float32; in powers of d (small there) it does not. ``c [..., 3]`` float64 -> 3 x [...].
    """
    return [c[..., 0] + c[..., 1] + c[..., 2], c[..., 1] + 2.0 * c[..., 2], c[..., 2]]


def _polymul(p: list[tf.Tensor], q: list[tf.Tensor]) -> list[tf.Tensor]:
    return [tf.add_n([p[i] * q[k - i] for i in range(len(p)) if 0 <= k - i < len(q)])
            for k in range(len(p) + len(q) - 1)]


def _poly_at_bins(e: list[tf.Tensor], fft_length: int) -> tf.Tensor:
    """``sum_k e_k d^k`` at the rfft bins, ``e``: list of [B] float64 -> [B, F] complex64.

    One small matmul per real/imaginary part against the constant powers ``d^k`` [K, F].
    """
    w = 2.0 * np.pi * np.arange(fft_length // 2 + 1) / fft_length
    d = -2.0 * np.sin(w / 2) ** 2 - 1j * np.sin(w)  # exp(-jw) - 1 without cancellation
    powers = d[None, :] ** np.arange(len(e))[:, None]  # [K, F]
    coef = tf.cast(tf.stack(e, axis=-1), tf.float32)  # [B, K]
    return tf.complex(tf.matmul(coef, tf.constant(powers.real, tf.float32)),
                      tf.matmul(coef, tf.constant(powers.imag, tf.float32)))


def biquad_response(b: tf.Tensor, a: tf.Tensor, fft_length: int) -> tf.Tensor:
    """Exact frequency response ``[B, fft_length // 2 + 1]`` complex64 of biquads ``[B, 3]``."""
    b, a = tf.cast(b, tf.float64), tf.cast(a, tf.float64)
    return _poly_at_bins(_d_basis(b), fft_length) / _poly_at_bins(_d_basis(a), fft_length)


def fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT sizes, far below the next power of two for 4 s)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def equalize(x: tf.Tensor, params: EffectParams, *, sample_rate: float,
             gain: tf.Tensor | None = None, tail: int = EQ_TAIL) -> tf.Tensor:
    """Apply the three filters of each item to ``x [B, T]`` (static T) -> ``[B, T]`` float32.

    ``gain [B]`` (linear) multiplies the output, folded into the response at no cost;
    ``params.gain_db`` is not applied here (:func:`apply_effects` folds it into ``gain``).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    t = x.shape[-1]
    if t is None:
        raise ValueError("equalize: the signal length (last axis of x) must be static")
    n = fast_len(t + tail)
    ones = tf.ones_like(tf.cast(params.low_shelf_db, tf.float64))  # [B]
    num = [ones if gain is None else tf.cast(gain, tf.float64)]
    den = [ones]
    for kind, f0, db, q in (("low_shelf", params.low_shelf_hz, params.low_shelf_db, SHELF_Q),
                            ("high_shelf", params.high_shelf_hz, params.high_shelf_db, SHELF_Q),
                            ("peaking", params.peak_hz, params.peak_db, params.peak_q)):
        b, a = rbj_biquad_tf(kind, f0, db, q=q, sample_rate=sample_rate)  # [B, 3]
        num, den = _polymul(num, _d_basis(b)), _polymul(den, _d_basis(a))
    # The cascade is one 6th-order polynomial ratio in d: [B, F] complex64.
    h = _poly_at_bins(num, n) / _poly_at_bins(den, n)
    spec = tf.signal.rfft(x, [n]) * h  # [B, F], F = n // 2 + 1
    return tf.signal.irfft(spec, [n])[:, :t]


# ----------------------------------------------------------------------------------------------
# Full chain and parameter sampling

def _gather_params(params: EffectParams, idx: tf.Tensor) -> EffectParams:
    return EffectParams(*(tf.gather(v, idx) for v in params))


def _eq_on(x: tf.Tensor, params: EffectParams, mask: tf.Tensor, *, sample_rate: float) -> tf.Tensor:
    """Equalise only the items of ``x [B, T]`` where ``mask [B]`` (the others pass untouched)."""

    def run() -> tf.Tensor:
        idx = tf.where(mask)[:, 0]
        y = equalize(tf.gather(x, idx), _gather_params(params, idx), sample_rate=sample_rate)
        return tf.tensor_scatter_nd_update(x, idx[:, None], y)

    return tf.cond(tf.reduce_any(mask), run, lambda: x)


def apply_effects(x: tf.Tensor, params: EffectParams, *, out_samples: int,
                  sample_rate: float = 16000, scale: tf.Tensor | None = None,
                  n_fft: int = PV_N_FFT, hop: int = TF_PV_HOP) -> tf.Tensor:
    """All effects of each item: ``x [B, T_in]``, ``params`` fields [B] -> float32 ``[B, out]``.

    ``x`` may be any real dtype (e.g. the int16 samples of the audio cache): each group casts
    only the rows and samples it reads; ``scale [B]`` (e.g. the cache's int16 -> float factors)
    multiplies the input and is folded into the gain, at no extra pass over the audio.
    ``T_in`` must be static and >= ``out_samples``; items with pitch shift or time stretch need
    ``T_in >= required_input_samples(out_samples, cfg)`` (else their tail fades). Items without
    them are ``x[:, :out_samples]`` with gain/EQ applied.

    The batch is split into four groups that each only pay for what they need: pitch-shifted
    items and stretch-only items (two vocoder calls: the latter skip the resampler and pad to
    fewer frames; EQ before or after the vocoder, per ``eq_first``), EQ-only items (gain folded
    into the EQ response) and gain-only items; a ``dynamic_stitch`` reassembles the batch order.
    """
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 2 or x.shape[-1] is None or x.shape[-1] < out_samples:
        raise ValueError(f"apply_effects: x must be [B, T_in] with static T_in >= out_samples="
                         f"{out_samples}, got shape {x.shape}")
    eq = (tf.not_equal(params.low_shelf_db, 0.0) | tf.not_equal(params.high_shelf_db, 0.0)
          | tf.not_equal(params.peak_db, 0.0))  # [B]
    pitch = tf.not_equal(params.semitones, 0.0)
    stretch = tf.not_equal(params.rate, 1.0) & ~pitch
    plain = ~pitch & ~stretch
    gain = tf.pow(10.0, tf.cast(params.gain_db, tf.float32) / 20.0)  # [B]
    if scale is not None:
        gain *= tf.cast(scale, tf.float32)
    groups = [tf.cast(tf.where(m)[:, 0], tf.int32)
              for m in (pitch, stretch, eq & plain, ~eq & plain)]
    empty = tf.zeros([0, out_samples])

    def rows(idx: tf.Tensor, length: int) -> tf.Tensor:  # [n, length] float32
        return tf.cast(tf.gather(x, idx)[:, :length], tf.float32)

    def vocoder_group(idx: tf.Tensor) -> tf.Tensor:
        xa, pa = rows(idx, x.shape[-1]), _gather_params(params, idx)  # [nA, T_in]
        eq_a, first_a = tf.gather(eq, idx), tf.cast(pa.eq_first, tf.bool)
        xa = _eq_on(xa, pa, eq_a & first_a, sample_rate=sample_rate)
        ya = time_pitch(xa, pa.semitones, pa.rate, out_samples=out_samples, n_fft=n_fft, hop=hop)
        return _eq_on(ya * tf.gather(gain, idx)[:, None], pa, eq_a & ~first_a,
                      sample_rate=sample_rate)

    def eq_group() -> tf.Tensor:
        idx = groups[2]
        pa = _gather_params(params, idx)
        return equalize(rows(idx, out_samples), pa, sample_rate=sample_rate,
                        gain=tf.gather(gain, idx))

    def group(k: int, fn) -> tf.Tensor:
        return tf.cond(tf.size(groups[k]) > 0, fn, lambda: empty)

    parts = [group(0, lambda: vocoder_group(groups[0])),
             group(1, lambda: vocoder_group(groups[1])),
             group(2, eq_group),
             rows(groups[3], out_samples) * tf.gather(gain, groups[3])[:, None]]
    return tf.dynamic_stitch(groups, parts)


def uniform_in(u: tf.Tensor, bounds: tuple[float, float], *, log: bool = False) -> tf.Tensor:
    """``u`` in [0, 1) -> uniform (or log-uniform) in ``bounds``, float32.

    In float64 and rounded once: Eigen's vectorised and scalar float32 ``exp`` differ by an ulp,
    which made a batch of recipes and the same recipes one by one disagree in the last digit.
    """
    lo, hi = (math.log(bounds[0]), math.log(bounds[1])) if log else bounds
    v = lo + (hi - lo) * tf.cast(u, tf.float64)
    return tf.cast(tf.exp(v) if log else v, tf.float32)


_SPLITMIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _mix64(z: tf.Tensor) -> tf.Tensor:
    """splitmix64's finaliser on uint64 (a bijection with full avalanche)."""
    r = tf.bitwise.right_shift
    z = tf.bitwise.bitwise_xor(z, r(z, tf.constant(30, tf.uint64))) * tf.constant(_SPLITMIX[1], tf.uint64)
    z = tf.bitwise.bitwise_xor(z, r(z, tf.constant(27, tf.uint64))) * tf.constant(_SPLITMIX[2], tf.uint64)
    return tf.bitwise.bitwise_xor(z, r(z, tf.constant(31, tf.uint64)))


def hash_uniform(seed: tf.Tensor, count: Any) -> tf.Tensor:
    """``count`` uniforms in [0, 1) per seed: ``seed`` int64 ``[..., 2]`` -> float32 ``[..., count]``.

    A counter-based generator (value c of seed (a, b) is ``mix(mix(b + (c + 1) G) ^ a)``,
    splitmix64), so one call serves a whole batch of per-example seeds: the stateless
    ``tf.random`` ops take one seed per call, which made the per-example graph (16 small calls
    per batch) a measurable part of the input pipeline.
    """
    seed = tf.bitcast(tf.cast(seed, tf.int64), tf.uint64)
    c = tf.range(1, tf.cast(count, tf.int64) + 1, dtype=tf.int64)
    c = tf.bitcast(c, tf.uint64) * tf.constant(_SPLITMIX[0], tf.uint64)  # [count]
    z = _mix64(tf.bitwise.bitwise_xor(_mix64(seed[..., 1:] + c), seed[..., :1]))  # [..., count]
    # The top 24 bits: exactly representable in float32, so u < 1 always.
    top = tf.bitwise.right_shift(z, tf.constant(40, tf.uint64))
    return tf.cast(tf.bitcast(top, tf.int64), tf.float32) * (2.0 ** -24)


def sample_effect_params(seed: Any, n: int, cfg: EffectsConfig, *,
                         musical: Any = False) -> EffectParams:
    """Draw parameters for ``n`` sources per seed (deterministic per ``seed``).

    ``seed``: an int, or an int tensor ``[..., 2]`` (one seed per example: a batch of examples is
    drawn in one call); fields are ``[..., n]``. Each effect is on with its probability in
    ``cfg``; an absent effect gets its identity value. Gains (dB) and semitones are uniform in
    their ranges; frequencies, Q and stretch rate are log-uniform (so that e.g. 0.8 and 1.25 are
    equally likely). ``musical`` (bool, or bool tensor broadcastable to ``[..., n]``) items never
    get pitch/time effects. ``eq_first`` is a fair coin (the order of EQ and pitch/time).
    """
    seed = tf.convert_to_tensor(seed)
    seed = tf.stack([tf.constant(0, seed.dtype), seed]) if seed.shape.rank == 0 else seed
    batch = tf.shape(seed)[:-1]
    u = tf.reshape(hash_uniform(seed, n * 17), tf.concat([batch, [n, 17]], 0))  # [..., n, 17]
    col = [u[..., i] for i in range(17)]  # [..., n] each
    musical = tf.broadcast_to(tf.cast(musical, tf.bool), tf.shape(col[0]))

    def gate(on_col: tf.Tensor, prob: float, value: tf.Tensor, identity: float) -> tf.Tensor:
        return tf.where(on_col < prob, value, identity)

    c = cfg
    pitch_on = (col[12] < c.p_pitch_shift) & ~musical
    stretch_on = (col[14] < c.p_time_stretch) & ~musical
    return EffectParams(
        gain_db=gate(col[0], c.p_gain, uniform_in(col[1], c.gain_db), 0.0),
        low_shelf_hz=uniform_in(col[2], c.low_shelf_hz, log=True),
        low_shelf_db=gate(col[3], c.p_low_shelf, uniform_in(col[4], c.low_shelf_db), 0.0),
        high_shelf_hz=uniform_in(col[5], c.high_shelf_hz, log=True),
        high_shelf_db=gate(col[6], c.p_high_shelf, uniform_in(col[7], c.high_shelf_db), 0.0),
        peak_hz=uniform_in(col[8], c.peaking_hz, log=True),
        peak_db=gate(col[9], c.p_peaking, uniform_in(col[10], c.peaking_db), 0.0),
        peak_q=uniform_in(col[11], c.peaking_q, log=True),
        semitones=tf.where(pitch_on, uniform_in(col[13], c.pitch_semitones), 0.0),
        rate=tf.where(stretch_on, uniform_in(col[15], c.stretch_rate, log=True), 1.0),
        eq_first=col[16] < 0.5,
    )
