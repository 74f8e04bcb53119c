"""Time stretch and pitch shift in one phase-vocoder pass, vectorised over a batch (paper §2.3).

:func:`time_pitch` stretches by ``rate`` r and shifts by ``semitones`` s (p = 2**(s/12)) per
item, with no Python loop over items or frames, so one call processes every vocoder source of a
batch of mixes inside ``tf.data``:

1. analysis STFT (n_fft 1024, hop 512: :data:`TF_PV_HOP`; frames cut by a reshape, not a gather);
2. the PV time-scales by r/p (vectorised fractional frame positions, magnitude interpolation,
   phase accumulation as a blocked cumsum of phase increments) into an intermediate signal u of
   about ``p * T`` samples, with the bins above Nyquist/p zeroed (anti-aliasing);
3. items with p != 1 are resampled: u is upsampled 2x by a half-band filter and the output is
   ``y[t] = u(p t)`` by Catmull-Rom interpolation (accurate because u then only occupies half the
   band): measured level error < 0.3 dB for source content up to 7 kHz, -0.7 dB at 7.3 kHz,
   -2 dB at 7.6 kHz. Items with p == 1 (time stretch only) skip this step: ``y = u``.

Contract: ``y[t]`` holds the content of ``x[t * r]``; see :func:`required_input_samples`.

CPU speed is the design goal (the input pipeline runs this on 2 cores); comments name the
formulations that measured fastest (docs/benchmarks.md "Data pipeline"). The NumPy reference is
:func:`keras_inst.augment.reference.time_stretch_np` / ``pitch_shift_np``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from keras_inst.augment.params import PV_N_FFT
from keras_inst.config.schema import EffectsConfig

__all__ = ["TF_PV_HOP", "required_input_samples", "time_pitch"]

HALFBAND_TAPS = 24  # 2x upsampler before the cubic interpolation of the pitch shift
# Phase-vocoder hop: n_fft / 2 (50 % overlap), twice the NumPy reference's PV_HOP. It halves the
# frames of both STFTs (35 % less CPU per vocoder source) and passes the same measurement tests;
# the cost is a little more smearing of fast frequency changes (spectrogram error of a
# shifted/stretched chirp 0.20-0.43 vs 0.09-0.31 at hop 256, NumPy reference 0.14-0.40;
# stationary tones unchanged). Numbers: docs/benchmarks.md "Data pipeline".
TF_PV_HOP = 512


def required_input_samples(
    out_samples: int, cfg: EffectsConfig, *, n_fft: int = PV_N_FFT, hop: int = TF_PV_HOP
) -> int:
    """Input length ``T_in`` that :func:`time_pitch` needs for any parameters drawn from ``cfg``.

    The output covers ``x[0 : out_samples * rate]``; the phase vocoder also reads the analysis
    frames overlapping the last output frame, about ``(n_fft / 2 + h)(r/p) + n_fft / 2`` samples
    beyond that with ``h = min(hop, n_fft / 4)`` (plus a few samples for the interpolators).
    Measured over a grid of the paper's ranges for hop 256 and 512 (n_fft 1024): the output
    does not change (< 1e-6) when input past ``T_in - 260`` is dropped; a hop above n_fft / 4
    reaches no further because its extra reach lies in the Hann fade of the last frames.
    Musical sources (no pitch/time) only need ``out_samples``.
    """
    r_max = cfg.stretch_rate[1] if cfg.p_time_stretch > 0 else 1.0
    p_min = 2.0 ** (min(cfg.pitch_semitones[0], 0.0) / 12.0) if cfg.p_pitch_shift > 0 else 1.0
    if r_max == 1.0 and p_min == 1.0:
        return out_samples
    ratio = max(r_max, 1.0) / p_min
    extra = n_fft / 2 * (ratio + 1) + min(hop, n_fft / 4) * ratio + 2 * r_max + 8
    return int(math.ceil(out_samples * max(r_max, 1.0) + extra))


# ----------------------------------------------------------------------------------------------
# Framing and overlap-add by reshapes (hop divides n_fft)

def _frame(x: tf.Tensor, n: int, hop: int, frames: tf.Tensor) -> tf.Tensor:
    """``x [b, (frames - 1) * hop + n]`` -> ``[b, frames, n]`` by concatenating ``n / hop``
    shifted views of its hop-sized blocks (``tf.signal.frame`` gathers, ~2x slower on CPU)."""
    r = n // hop
    blocks = tf.reshape(x, [tf.shape(x)[0], frames + r - 1, hop])
    return tf.concat([blocks[:, i: i + frames] for i in range(r)], axis=-1)


def _overlap_add(frames: tf.Tensor, hop: int) -> tf.Tensor:
    """``[b, J, n]`` -> ``[b, (J - 1) * hop + n]``: frame j added at offset ``j * hop``.

    ``n / hop`` shifted adds of the frames' hop-sized parts; ``tf.signal.overlap_and_add``
    transposes and pads the whole tensor first (~3x slower here).
    """
    b, j, n = tf.shape(frames)[0], tf.shape(frames)[1], frames.shape[-1]
    r = n // hop
    parts = tf.reshape(frames, [b, j, r, hop])
    out = tf.add_n([tf.pad(parts[:, :, i], [[0, 0], [i, r - 1 - i], [0, 0]]) for i in range(r)])
    return tf.reshape(out, [b, (j + r - 1) * hop])  # [b, J + r - 1 blocks of hop]


# ----------------------------------------------------------------------------------------------
# Phase accumulation and the resampler

def _halfband(taps: int = HALFBAND_TAPS, passband: float = 0.45) -> np.ndarray:
    """Least-squares half-sample interpolator [taps]: flat (< 0.1 dB) up to 0.43 fs."""
    off = np.arange(taps // 2) + 0.5  # symmetric taps at +-0.5, +-1.5, ...
    f = np.linspace(0.0, passband, 400)
    g = np.linalg.lstsq(2.0 * np.cos(2.0 * np.pi * np.outer(f, off)), np.ones_like(f), rcond=None)[0]
    return np.concatenate([g[::-1], g])  # taps for u[n - taps/2 + 1 .. n + taps/2]


def _upsample2(u: tf.Tensor, block: int = 32) -> tf.Tensor:
    """Band-limited 2x upsampling ``[b, L] -> [b, 2L]``: even samples are u, odd ones the
    half-band interpolation between neighbours.

    Done as one matmul of overlapping blocks ``[b, nb, 2 block]`` with a constant
    ``[2 block, 2 block]`` matrix whose columns emit the interleaved output directly; on CPU this
    is ~4x faster than a 1-channel ``conv1d`` followed by an interleaving ``stack``.
    """
    taps = HALFBAND_TAPS
    h = _halfband(taps)
    mat = np.zeros((2 * block, 2 * block), np.float32)
    for r in range(block):
        mat[r + taps // 2 - 1, 2 * r] = 1.0  # even output 2r: u itself
        mat[r : r + taps, 2 * r + 1] = h  # odd output 2r+1: taps around u(r + 1/2)
    b, length = tf.shape(u)[0], tf.shape(u)[1]
    nb = (length + block - 1) // block
    padded = tf.pad(u, [[0, 0], [taps // 2 - 1, (nb + 1) * block - length - taps // 2 + 1]])
    blocks = tf.reshape(padded, [b, nb + 1, block])
    windows = tf.concat([blocks[:, :-1], blocks[:, 1:]], axis=-1)  # [b, nb, 2 block]
    return tf.reshape(tf.matmul(windows, tf.constant(mat)), [b, -1])[:, : 2 * length]


def _anchored_phase(g: tf.Tensor, j0: tf.Tensor, ph0: tf.Tensor, block: int = 16) -> tf.Tensor:
    """Exclusive cumsum of ``g [b, J, F]`` along J, shifted per item so that row ``j0 [b]``
    equals ``ph0 [b, F]``.

    Blocked triangular matmuls (``tf.cumsum`` along a middle axis is several times slower on
    CPU); the anchor shift is folded into the per-block offsets [b, nb, F], which saves a full
    [b, J, F] addition.
    """
    b, j, f = tf.shape(g)[0], tf.shape(g)[1], tf.shape(g)[2]
    nb = (j + block - 1) // block
    g4 = tf.reshape(tf.pad(g, [[0, 0], [0, nb * block - j], [0, 0]]), [b, nb, block, f])
    tri = tf.constant(np.tril(np.ones((block, block), np.float32), -1))  # strictly lower
    inner = tf.matmul(tri, g4)  # [b, nb, block, F] sums within each block
    # Block offsets (a small [b, nb, F] tensor) in float64, wrapped into [0, 2 pi): the phases
    # then stay below ~16 * 2 pi instead of growing to J * 2 pi, which keeps float32 rounding
    # (and so the dependence of the result on the batch's shapes) ~10x smaller.
    offsets = tf.cumsum(tf.cast(tf.reduce_sum(g4, axis=2), tf.float64), axis=1,
                        exclusive=True)  # [b, nb, F]
    at_j0 = (tf.cast(tf.gather_nd(inner, tf.stack([j0 // block, j0 % block], axis=1)[:, None, :],
                                  batch_dims=1)[:, 0], tf.float64)
             + tf.gather(offsets, j0 // block, batch_dims=1))  # [b, F] unshifted sum at j0
    offsets += tf.cast(ph0, tf.float64)[:, None, :] - at_j0[:, None, :]
    offsets = tf.cast(tf.math.floormod(offsets, 2.0 * np.pi), tf.float32)
    return tf.reshape(inner + offsets[:, :, None, :], [b, nb * block, f])[:, :j]


def _resample(u: tf.Tensor, p64: tf.Tensor, *, lead: int, out_samples: int) -> tf.Tensor:
    """``y[t] = u(p t)`` for ``t < out_samples``, with u-time 0 at index ``lead`` of ``u [b, L]``
    and ``p64 [b]`` float64: half-band 2x upsampling, then Catmull-Rom at ``2 p t + 2 lead``."""
    u2 = _upsample2(u)  # [b, 2L]
    p = tf.cast(p64, tf.float32)
    # pos = 2 p t + 2 lead, t = c * blk + d. 2 p t reaches 1.5e5, beyond float32 resolution, so
    # only the coarse part (c) is formed in float64, on [b, T / blk]; the fine part 2 p d < 2.4 blk
    # is exact enough in float32 (error < 1e-4).
    len2, blk = tf.shape(u2)[1], 512
    nc = -(-out_samples // blk)
    coarse = (2.0 * p64[:, None]
              * tf.range(0, nc * blk, blk, dtype=tf.float64)[None, :] + 2 * lead)  # [b, C]
    c_int = tf.floor(coarse)
    fine = (tf.cast(coarse - c_int, tf.float32)[:, :, None]
            + (2.0 * p)[:, None, None] * tf.range(blk, dtype=tf.float32))  # [b, C, blk]
    f_int = tf.floor(fine)
    f = tf.reshape(fine - f_int, [-1, nc * blk])[:, :out_samples]  # [b, T]
    i0 = tf.reshape(tf.cast(c_int, tf.int32)[:, :, None] + tf.cast(f_int, tf.int32),
                    [-1, nc * blk])[:, :out_samples]
    base = tf.minimum(i0, len2 - 3) + (tf.range(tf.shape(u2)[0]) * len2)[:, None]  # [b, T]
    # The 4 taps as 2 gathers of neighbour pairs packed into complex64 (u2[i], u2[i+1]): a
    # gather costs about the same for 4 and 8 bytes, so this is ~35 % faster than 4 flat float
    # gathers (which were 2-3x faster than `gather`, 15x faster than a batch_dims gather).
    flat = tf.reshape(u2, [-1])
    pairs = tf.complex(flat[:-1], flat[1:])
    lo, hi = (tf.gather_nd(pairs, (base + o)[..., None]) for o in (-1, 1))  # [b, T] complex64
    um, u0, u1, up = tf.math.real(lo), tf.math.imag(lo), tf.math.real(hi), tf.math.imag(hi)
    return u0 + 0.5 * f * (u1 - um + f * (2.0 * um - 5.0 * u0 + 4.0 * u1 - up
                                          + f * (3.0 * (u0 - u1) + up - um)))


# ----------------------------------------------------------------------------------------------
# The vocoder

def _synthesise(spec_out: tf.Tensor, win: tf.Tensor, hop: int, n_out: tf.Tensor) -> tf.Tensor:
    """Windowed overlap-add of ``spec_out [b, J, F]`` -> ``[b, L]``, normalised by the window sum."""
    n = int(win.shape[0])
    if 2 * hop == n:
        # 50 % overlap: sum_j win^2(t - j hop) is periodic in the interior (every sample lies in
        # two frames), which is where u is read (u-time >= 0 <-> index >= n / 2 = hop), so the
        # normalisation folds into the synthesis window and saves a pass over [b, L].
        w2 = win ** 2
        syn = win / (w2 + tf.roll(w2, hop, axis=0))
        return _overlap_add(tf.signal.irfft(spec_out, [n]) * syn, hop)  # [b, L]
    ola = _overlap_add(tf.signal.irfft(spec_out, [n]) * win, hop)  # [b, L]
    wss = _overlap_add(tf.tile(tf.reshape(win ** 2, [1, 1, n]), [1, n_out, 1]), hop)  # [1, L]
    return ola / tf.maximum(wss, 1e-3)  # [b, L]


def time_pitch(x: tf.Tensor, semitones: tf.Tensor, rate: tf.Tensor, *, out_samples: int,
               n_fft: int = PV_N_FFT, hop: int = TF_PV_HOP) -> tf.Tensor:
    """Stretch by ``rate`` and shift by ``semitones`` (both [B]) -> ``[B, out_samples]``.

    Contract: ``y[t]`` holds the content of ``x[t * rate]`` at pitch ``2**(s/12)`` times the
    original, so ``x [B, T_in]`` must hold :func:`required_input_samples` samples; a shorter input
    is zero-padded (its tail then fades). Every item goes through the phase vocoder, identity
    parameters included (near-identity, see tests); :func:`keras_inst.augment.effects.apply_effects`
    skips those items and calls this once for pitch-shifted and once for stretch-only items,
    so that the latter skip the resampler and each call pads to fewer frames.
    """
    n, half = n_fft, n_fft // 2
    if n % hop != 0:
        raise ValueError(f"time_pitch: n_fft ({n_fft}) must be a multiple of hop ({hop})")
    x = tf.convert_to_tensor(x, tf.float32)
    # [b] resampling factor, in float64 for the resampler's positions (2 p t reaches 1.5e5):
    # float32 pow rounds differently in Eigen's vectorised and scalar paths, and one ulp of p
    # moved the last output samples by 0.01 sample, so results depended on the batch size.
    p64 = tf.pow(tf.constant(2.0, tf.float64), tf.cast(semitones, tf.float64) / 12.0)
    p = tf.cast(p64, tf.float32)
    pv_rate = tf.cast(rate, tf.float32) / p  # [b] the PV makes u p/rate times longer than x
    # Output frame j is centred at u-time j*hop and reads analysis position j*pv_rate frames.
    j_need = tf.cast(tf.math.ceil((p * (out_samples + 2) + half) / hop), tf.int32) + 1  # [b]
    k_need = tf.cast(tf.floor(tf.cast(j_need, tf.float32) * pv_rate), tf.int32) + 2
    n_out = tf.reduce_max(tf.concat([j_need, [2]], 0)) + 1  # J frames for the batch
    n_in = tf.reduce_max(tf.concat([k_need, [2]], 0))  # K frames for the batch
    # [b, T_in] -> zero-padded (centred frames), cut/extended to K frames: [b, (K-1) hop + n_fft]
    xp = tf.pad(x, [[0, 0], [half, 0]])
    want = (n_in - 1) * hop + n
    xp = tf.pad(xp, [[0, 0], [0, tf.maximum(0, want - tf.shape(xp)[1])]])[:, :want]
    win = tf.signal.hann_window(n)  # periodic Hann, as tf.signal.stft
    spec = tf.signal.rfft(_frame(xp, n, hop, n_in) * win)  # [b, K, F]
    re, im = tf.math.real(spec), tf.math.imag(spec)
    mag = tf.sqrt(re * re + im * im)  # [b, K, F]
    ph = tf.math.atan2(im, re)  # real atan2: ~15x faster on CPU than tf.math.angle
    steps = tf.range(n_out, dtype=tf.float32)[None, :] * pv_rate[:, None]  # [b, J]
    k = tf.minimum(tf.cast(tf.floor(steps), tf.int32), n_in - 2)
    frac = tf.clip_by_value(steps - tf.cast(k, tf.float32), 0.0, 1.0)[..., None]  # [b, J, 1]
    # Frames k and k+1 of each output frame gathered directly: 2 passes fewer than gathering
    # frame differences computed over all K frames.
    m0, m1 = tf.gather(mag, k, batch_dims=1), tf.gather(mag, k + 1, batch_dims=1)  # [b, J, F]
    # Phase increments ph[k+1] - ph[k] (unwrapped, |.| < 2 pi) equal librosa's
    # princarg(dphi - omega) + omega modulo 2 pi, because analysis and synthesis hops are equal.
    dph = tf.gather(ph, k + 1, batch_dims=1) - tf.gather(ph, k, batch_dims=1)  # [b, J, F]
    # Phases anchored at the first output frame j0 that reads an analysis frame lying fully
    # inside the signal (frame >= n_fft / (2 hop)); anchoring at the half-empty frame 0 (as
    # librosa does) leaves inconsistent bin phases that make a stretched sine cancel itself.
    j0 = tf.minimum(tf.cast(tf.math.ceil(n / (2 * hop) / pv_rate), tf.int32), n_out - 1)  # [b]
    phase = _anchored_phase(dph, j0, tf.gather(ph, tf.gather(k, j0, batch_dims=1),
                                               batch_dims=1))  # [b, J, F]
    # Anti-aliasing for p > 1: drop bins that would land above Nyquist after resampling.
    keep = tf.cast(tf.range(half + 1, dtype=tf.float32) <= half / p[:, None], tf.float32)
    mag = (m0 + frac * (m1 - m0)) * keep[:, None, :]  # [b, J, F]
    spec_out = tf.complex(mag * tf.cos(phase), mag * tf.sin(phase))
    u = _synthesise(spec_out, win, hop, n_out)  # [b, L]
    # u: index tau + n_fft / 2 <-> u-time tau
    y = tf.cond(tf.reduce_any(tf.not_equal(p, 1.0)),
                lambda: _resample(u, p64, lead=half, out_samples=out_samples),
                lambda: u[:, half: half + out_samples])
    y.set_shape([x.shape[0], out_samples])  # u's length is dynamic (frames of the batch)
    return y
