"""NumPy/SciPy reference of the per-source effects (paper §2.3), one signal at a time.

This is the straightforward ("audiomentations-style") implementation: every effect is applied
separately, biquads run through ``scipy.signal.lfilter``, time stretching is a librosa-style
phase vocoder that loops over output frames, and pitch shifting is such a phase vocoder followed
by FFT resampling (``scipy.signal.resample``).  It serves as an independent check of the
vectorised TensorFlow version in :mod:`keras_inst.augment.effects` and as the speed baseline of the
input-pipeline benchmark.  It has no TensorFlow dependency.

The parameter record (:class:`keras_inst.augment.params.EffectParams`) and the constants both
chains agree on live in :mod:`keras_inst.augment.params`.

:func:`mix_bus_np` is the reference of the realism mix bus
(:func:`keras_inst.augment.acoustics.mix_bus`): the compressor's attack and release as direct
minima/maxima over every lag (the TF code doubles), the K-weighting by ``lfilter`` (TF: one FFT),
the limiter's box average by ``np.convolve`` (TF: doubling sums).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.signal

from keras_inst.augment.params import (  # noqa: F401  (re-exported: the reference's public names)
    COMP_HOP,
    COMP_LAGS,
    FILTER_KINDS,
    IDENTITY,
    LIMIT_BLOCK,
    LIMIT_LAGS,
    LIMIT_RELEASE_S,
    LUFS_OFFSET,
    PV_N_FFT,
    SHELF_Q,
    EffectParams,
    k_weighting,
    params_item,
)

PV_HOP = 256  # the reference's phase-vocoder hop (librosa's default n_fft / 4)


def rbj_biquad(
    kind: str, f0_hz: Any, gain_db: Any, *, q: Any = SHELF_Q, sample_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """RBJ cookbook biquad coefficients ``(b [..., 3], a [..., 3])`` in float64, not normalised.

    ``kind`` is ``low_shelf``, ``high_shelf`` (slope S = 1, i.e. the default ``q``) or
    ``peaking``; ``f0_hz``, ``gain_db`` and ``q`` broadcast against each other. 0 dB gives b == a.
    """
    if kind not in FILTER_KINDS:
        raise ValueError(f"rbj_biquad: unknown filter kind {kind!r}; known: {', '.join(FILTER_KINDS)}")
    f0 = np.asarray(f0_hz, dtype=np.float64)
    if np.any(f0 <= 0) or np.any(f0 >= sample_rate / 2):
        raise ValueError(f"rbj_biquad: f0_hz must lie in (0, {sample_rate / 2}) Hz, got {f0}")
    if np.any(np.asarray(q) <= 0):
        raise ValueError(f"rbj_biquad: q must be > 0, got {q}")
    big_a = 10.0 ** (np.asarray(gain_db, dtype=np.float64) / 40.0)
    w0 = 2.0 * np.pi * f0 / sample_rate
    cos_w, alpha = np.cos(w0), np.sin(w0) / (2.0 * np.asarray(q, dtype=np.float64))
    if kind == "peaking":
        one = np.ones_like(cos_w * big_a)
        b = (1.0 + alpha * big_a, -2.0 * cos_w * one, 1.0 - alpha * big_a)
        a = (1.0 + alpha / big_a, -2.0 * cos_w * one, 1.0 - alpha / big_a)
    else:
        sign = 1.0 if kind == "low_shelf" else -1.0  # high shelf: cookbook formula with cos -> -cos
        ap, am, two_sqrt_a_alpha = big_a + 1.0, big_a - 1.0, 2.0 * np.sqrt(big_a) * alpha
        b = (
            big_a * (ap - sign * am * cos_w + two_sqrt_a_alpha),
            sign * 2.0 * big_a * (am - sign * ap * cos_w),
            big_a * (ap - sign * am * cos_w - two_sqrt_a_alpha),
        )
        a = (
            ap + sign * am * cos_w + two_sqrt_a_alpha,
            -sign * 2.0 * (am + sign * ap * cos_w),
            ap + sign * am * cos_w - two_sqrt_a_alpha,
        )
    return np.stack(np.broadcast_arrays(*b), axis=-1), np.stack(np.broadcast_arrays(*a), axis=-1)


def equalize_np(x: np.ndarray, p: EffectParams, *, sample_rate: float) -> np.ndarray:
    """Apply the enabled filters of one source (``p`` holds scalars) with ``lfilter``."""
    y = np.asarray(x, dtype=np.float64)
    for kind, f0, db, q in (
        ("low_shelf", p.low_shelf_hz, p.low_shelf_db, SHELF_Q),
        ("high_shelf", p.high_shelf_hz, p.high_shelf_db, SHELF_Q),
        ("peaking", p.peak_hz, p.peak_db, p.peak_q),
    ):
        if db != 0.0:
            b, a = rbj_biquad(kind, f0, db, q=q, sample_rate=sample_rate)
            y = scipy.signal.lfilter(b, a, y)
    return y


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Centred STFT ``[frames, n_fft // 2 + 1]`` (zero padding, periodic Hann)."""
    window = scipy.signal.get_window("hann", n_fft)
    padded = np.pad(x, n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * window, axis=-1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """Inverse of :func:`_stft`: overlap-add normalised by the window sum-square."""
    window = scipy.signal.get_window("hann", n_fft)
    frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window
    total = n_fft + hop * (len(frames) - 1)
    out, wss = np.zeros(total), np.zeros(total)
    for i, frame in enumerate(frames):
        out[i * hop : i * hop + n_fft] += frame
        wss[i * hop : i * hop + n_fft] += window**2
    out = out[n_fft // 2 :] / np.maximum(wss[n_fft // 2 :], 1e-8)
    return np.pad(out, (0, max(0, length - len(out))))[:length]


def time_stretch_np(x: np.ndarray, rate: float, *, n_fft: int = PV_N_FFT, hop: int = PV_HOP) -> np.ndarray:
    """librosa-style phase vocoder: output length ``round(len(x) / rate)``, pitch unchanged."""
    if rate <= 0:
        raise ValueError(f"time_stretch_np: rate must be > 0, got {rate}")
    spec = _stft(np.asarray(x, dtype=np.float64), n_fft, hop)
    spec = np.concatenate([spec, np.zeros_like(spec[:1])])  # one zero frame past the end
    omega = 2.0 * np.pi * hop * np.arange(spec.shape[1]) / n_fft  # expected phase advance per hop
    steps = np.arange(0.0, len(spec) - 1, rate)
    mags = np.empty((len(steps), spec.shape[1]))
    phases = np.empty_like(mags)
    phase = np.angle(spec[0])
    for t, step in enumerate(steps):  # loop over output frames, as librosa does
        k, frac = int(step), step - int(step)
        mags[t] = (1.0 - frac) * np.abs(spec[k]) + frac * np.abs(spec[k + 1])
        phases[t] = phase
        dphi = np.angle(spec[k + 1]) - np.angle(spec[k]) - omega
        phase = phase + omega + (dphi - 2.0 * np.pi * np.round(dphi / (2.0 * np.pi)))
    # Anchor the phases at the first output frame j0 that reads a frame fully inside the signal
    # (analysis frame >= n_fft / (2 hop)): librosa anchors at the half-empty frame 0, whose
    # inconsistent bin phases then persist and make a stretched sine partly cancel itself.
    j0 = min(int(np.ceil(n_fft / (2 * hop) / rate)), len(steps) - 1)
    phases += np.angle(spec[int(steps[j0])]) - phases[j0]
    out = mags * np.exp(1j * phases)
    return _istft(out, n_fft, hop, int(round(len(x) / rate)))


def pitch_shift_np(
    x: np.ndarray, semitones: float, *, n_fft: int = PV_N_FFT, hop: int = PV_HOP
) -> np.ndarray:
    """librosa-style pitch shift: stretch by 2**(s/12), then FFT-resample back to ``len(x)``."""
    factor = 2.0 ** (semitones / 12.0)
    stretched = time_stretch_np(x, 1.0 / factor, n_fft=n_fft, hop=hop)
    return scipy.signal.resample(stretched, len(x))


def apply_effects_np(
    x: np.ndarray,
    p: EffectParams,
    *,
    out_samples: int,
    sample_rate: float = 16000,
    n_fft: int = PV_N_FFT,
    hop: int = PV_HOP,
) -> np.ndarray:
    """All effects of one source ``x [T_in]`` (``p`` holds scalars) -> float32 ``[out_samples]``.

    Same contract as :func:`keras_inst.augment.effects.apply_effects`: the output covers
    ``x[0 : out_samples * rate]`` played ``rate`` times faster, so ``x`` must hold at least
    :func:`keras_inst.augment.effects.required_input_samples` samples (a shorter input is zero-padded).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"apply_effects_np: x must be one signal [T], got shape {x.shape}")
    needed = int(np.ceil(out_samples * p.rate)) + n_fft
    y = np.pad(x, (0, max(0, needed - len(x))))[:needed] * 10.0 ** (p.gain_db / 20.0)
    if p.eq_first:
        y = equalize_np(y, p, sample_rate=sample_rate)
    if p.rate != 1.0:
        y = time_stretch_np(y, p.rate, n_fft=n_fft, hop=hop)
    y = y[:out_samples + n_fft]
    if p.semitones != 0.0:
        y = pitch_shift_np(y, p.semitones, n_fft=n_fft, hop=hop)
    y = y[:out_samples]
    if not p.eq_first:
        y = equalize_np(y, p, sample_rate=sample_rate)
    return np.pad(y, (0, out_samples - len(y))).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# The realism mix bus, one signal


def _db(power: Any) -> np.ndarray:
    return 10.0 * np.log10(np.asarray(power, np.float64) + 1e-20)


def _lag_extreme(v: np.ndarray, step: float, lags: int, sign: float) -> np.ndarray:
    """``max_k sign * (v[f - k] * sign - k step)`` over k < ``lags`` (0 before the start),
    directly: sign +1 a fall-rate limit, -1 a rise-rate limit of ``v``."""
    padded = np.concatenate([np.zeros(lags - 1), v])
    k = np.arange(lags)
    windows = np.lib.stride_tricks.sliding_window_view(padded, lags)[:, ::-1]  # [F, k]
    return sign * np.max(sign * windows - k * step, axis=1)


def compress_np(x: np.ndarray, threshold_db: float, ratio: float, attack_s: float,
                release_s: float, *, sample_rate: float, hop: int = COMP_HOP,
                lags: int = COMP_LAGS) -> np.ndarray:
    """The realism compressor without make-up: Hann-weighted frames of 2 hops (centres f hop),
    static curve re the signal's RMS, rise- and fall-rate limits, gains interpolated."""
    x = np.asarray(x, np.float64)
    t = x.size
    blocks = -(-t // hop)
    p = np.pad(x**2, (hop, (blocks + 1) * hop - t))
    w = np.hanning(2 * hop + 1)[:-1]
    level = np.array([np.dot(p[f * hop: f * hop + 2 * hop], w / w.sum())
                      for f in range(blocks + 1)])
    gr = np.maximum(_db(level) - _db(np.mean(x**2)) - threshold_db, 0.0) * (1 - 1 / ratio)
    per_frame = 20.0 / np.log(10.0) * hop / sample_rate
    gr = _lag_extreme(gr, per_frame / attack_s, lags, -1.0)  # rises at most this fast
    gr = _lag_extreme(gr, per_frame / release_s, lags, 1.0)  # falls at most this fast
    gain = np.interp(np.arange(t), np.arange(blocks + 1) * hop, 10 ** (-gr / 20))
    return x * gain


def loudness_np(x: np.ndarray, *, sample_rate: float) -> float:
    """Ungated BS.1770 loudness: K-weighted (``lfilter``, ringing past the end included) energy
    over ``len(x)``."""
    y = np.pad(np.asarray(x, np.float64), (0, 8192))
    for b, a in k_weighting(sample_rate):
        y = scipy.signal.lfilter(b, a, y)
    return float(LUFS_OFFSET + _db(np.sum(y**2) / len(x)))


def limit_np(x: np.ndarray, ceiling_db: float, *, sample_rate: float) -> np.ndarray:
    """The look-ahead limiter: per-block minimum of the gain bounds, over the neighbouring
    blocks, exponential release over ``LIMIT_LAGS`` blocks, box average of 2 blocks + 1."""
    x = np.asarray(x, np.float64)
    t, blk = x.size, LIMIT_BLOCK
    nb = -(-(t + 2 * blk) // blk)
    c = 10 ** (ceiling_db / 20)
    xp = np.pad(x, (blk, nb * blk - t - blk))
    g = np.minimum(1.0, c / np.maximum(np.abs(xp), 1e-30)).reshape(nb, blk).min(axis=1)
    g = np.pad(g, 1, constant_values=1.0)
    g = np.minimum(np.minimum(g[:-2], g[1:-1]), g[2:])
    r = np.exp(blk / (LIMIT_RELEASE_S * sample_rate))
    before = np.concatenate([np.ones(LIMIT_LAGS - 1), g])  # no limiting before the start
    lagged = np.lib.stride_tricks.sliding_window_view(before, LIMIT_LAGS)[:, ::-1]  # g[b - k]
    g = np.min(lagged * r ** np.arange(LIMIT_LAGS), axis=1)
    h = np.repeat(g, blk)
    box = np.convolve(h, np.ones(2 * blk + 1) / (2 * blk + 1), mode="valid")[:t]
    return np.clip(x * box, -c, c)


def mix_bus_np(x: np.ndarray, threshold_db: float, ratio: float, attack_s: float,
               release_s: float, target_lufs: float, ceiling_db: float, max_gain_db: float, *,
               sample_rate: float = 16000) -> np.ndarray:
    """Compressor, gain to the target loudness (at most ``max_gain_db``), limiter -> float64."""
    y = compress_np(x, threshold_db, ratio, attack_s, release_s, sample_rate=sample_rate)
    gain_db = min(target_lufs - loudness_np(y, sample_rate=sample_rate), max_gain_db)
    return limit_np(y * 10 ** (gain_db / 20), ceiling_db, sample_rate=sample_rate)
