"""DSP building blocks of the built-in sound engines (synthesizer, drum machine, guitar amp).

Pure NumPy/SciPy, float64, mono. Filters are RBJ-cookbook biquads (``sos`` rows); a low-pass
whose cutoff moves (a synth's filter envelope) is run in short blocks through ``lfilter`` with
its state carried over, because SciPy has no time-varying filter and a per-sample Python loop is
~100x slower. Oscillators read band-limited single-cycle tables built from their harmonic series
up to the note's highest frequency, so no partial lies above Nyquist (no aliasing), whatever the
shape; a pulse is the difference of two such saws.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import lfilter, sosfilt

TABLE_SIZE = 4096  # samples per cycle; linear interpolation error stays below -70 dB for a saw
_LN1000 = np.log(1000.0)  # an exponential segment of length T falls by 60 dB over T


def resample(x: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """``x`` recorded at ``rate`` -> at ``sample_rate`` (polyphase, SciPy's default anti-alias
    filter); ``x`` itself when the rates are equal. Recorded samples and flite's speech use it."""
    if rate == sample_rate:
        return x
    from scipy.signal import resample_poly

    g = int(np.gcd(rate, sample_rate))
    return resample_poly(x, sample_rate // g, rate // g)


# ------------------------------------------------------------------ biquads


def biquad(kind: str, hz: float, sample_rate: float, *, q: float = 0.7071, gain_db: float = 0.0) -> np.ndarray:
    """One RBJ-cookbook biquad as an ``sos`` row [6]; kind: lowpass, highpass, bandpass, peak,
    lowshelf, highshelf. ``hz`` is clamped to (10 Hz, 0.49 * rate) so a drawn setting never
    makes an unstable filter at a low sample rate."""
    w0 = 2 * np.pi * float(np.clip(hz, 10.0, 0.49 * sample_rate)) / sample_rate
    c, s, amp = np.cos(w0), np.sin(w0), 10 ** (gain_db / 40)
    alpha = s / (2 * q)
    if kind == "lowpass":
        b, a = [(1 - c) / 2, 1 - c, (1 - c) / 2], [1 + alpha, -2 * c, 1 - alpha]
    elif kind == "highpass":
        b, a = [(1 + c) / 2, -(1 + c), (1 + c) / 2], [1 + alpha, -2 * c, 1 - alpha]
    elif kind == "bandpass":  # 0 dB at the centre
        b, a = [alpha, 0.0, -alpha], [1 + alpha, -2 * c, 1 - alpha]
    elif kind == "peak":
        b = [1 + alpha * amp, -2 * c, 1 - alpha * amp]
        a = [1 + alpha / amp, -2 * c, 1 - alpha / amp]
    elif kind in ("lowshelf", "highshelf"):
        sq = 2 * np.sqrt(amp) * s / np.sqrt(2)  # shelf slope S = 1
        sign = 1 if kind == "lowshelf" else -1
        b = [amp * ((amp + 1) - sign * (amp - 1) * c + sq), sign * 2 * amp * ((amp - 1) - sign * (amp + 1) * c),
             amp * ((amp + 1) - sign * (amp - 1) * c - sq)]
        a = [(amp + 1) + sign * (amp - 1) * c + sq, -sign * 2 * ((amp - 1) + sign * (amp + 1) * c),
             (amp + 1) + sign * (amp - 1) * c - sq]
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    b, a = np.asarray(b) / a[0], np.asarray(a) / a[0]
    return np.concatenate([b, a])


def filt(x: np.ndarray, *rows: np.ndarray) -> np.ndarray:
    """Run ``x`` through a cascade of biquad rows."""
    return sosfilt(np.stack(rows), x) if rows else x


def _lowpass_coefs(hz: np.ndarray, q: float, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Low-pass (b [m, 3], a [m, 3]) for an array of cutoffs."""
    w0 = 2 * np.pi * np.clip(hz, 20.0, 0.45 * sample_rate) / sample_rate
    c, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    a0 = 1 + alpha
    b = np.stack([(1 - c) / 2, 1 - c, (1 - c) / 2], axis=1) / a0[:, None]
    a = np.stack([np.ones_like(c), -2 * c / a0, (1 - alpha) / a0], axis=1)
    return b, a


def sweep_lowpass(x: np.ndarray, cutoff_hz: np.ndarray, sample_rate: float, *, q: float = 0.7071,
                  poles: int = 2, block: int = 32) -> np.ndarray:
    """Resonant low-pass with a moving cutoff (``cutoff_hz`` [n]), 12 or 24 dB/octave.

    The 4-pole form is two biquads: a Butterworth pair (Q 0.541) and the resonant one (Q = ``q``;
    1.307 makes the whole a 4th-order Butterworth, -3 dB at the cutoff). Coefficients change
    every ``block`` samples (1.5 ms at 22 kHz: faster than any envelope drawn here).
    """
    if poles not in (2, 4):
        raise ValueError(f"filter poles must be 2 or 4, got {poles}")
    qs = [q] if poles == 2 else [0.5412, q]
    if np.ptp(cutoff_hz) < 1e-6 * float(cutoff_hz[0]):  # constant: one pass
        rows = [_row(*_lowpass_coefs(cutoff_hz[:1], qq, sample_rate)) for qq in qs]
        return filt(x, *rows)
    starts = np.arange(0, len(x), block)
    mids = np.minimum(starts + block // 2, len(x) - 1)
    y = np.asarray(x, dtype=np.float64).copy()
    for qq in qs:
        b, a = _lowpass_coefs(cutoff_hz[mids], qq, sample_rate)
        zi = np.zeros(2)
        for i, s in enumerate(starts):
            y[s : s + block], zi = lfilter(b[i], a[i], y[s : s + block], zi=zi)
    return y


def _row(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.concatenate([b[0], a[0]])


# ------------------------------------------------------------------ envelopes


def adsr(n: int, sample_rate: float, *, attack: float, decay: float, sustain: float, release: float,
         gate: float) -> np.ndarray:
    """ADSR envelope [n]: linear attack to 1 over ``attack`` s, exponential decay to ``sustain``
    (within 60 dB of the step after ``decay`` s), and from the level at ``gate`` s an exponential
    release falling 60 dB in ``release`` s."""
    t = np.arange(n) / sample_rate

    def held(tt):
        a = max(attack, 1e-4)
        dec = sustain + (1 - sustain) * np.exp(-np.maximum(tt - a, 0) * _LN1000 / max(decay, 1e-4))
        return np.where(tt < a, tt / a, dec)

    level_at_gate = float(held(np.array([gate]))[0])
    rel = level_at_gate * np.exp(-np.maximum(t - gate, 0) * _LN1000 / max(release, 1e-4))
    return np.where(t < gate, held(t), rel)


def decay_env(n: int, sample_rate: float, decay_s: float) -> np.ndarray:
    """exp envelope [n] falling 60 dB in ``decay_s``."""
    return np.exp(-np.arange(n) / sample_rate * _LN1000 / max(decay_s, 1e-4))


# ------------------------------------------------------------------ band-limited tables


def _harmonic_amps(shape: str, k: np.ndarray) -> np.ndarray:
    """Sine-series amplitudes of harmonics ``k`` (1..K) of a named shape."""
    odd = k % 2 == 1
    if shape == "sine":
        return (k == 1).astype(float)
    if shape == "saw":
        return 2 / np.pi / k
    if shape == "square":
        return np.where(odd, 4 / np.pi / k, 0.0)
    if shape == "triangle":
        return np.where(odd, 8 / np.pi**2 * (-1.0) ** ((k - 1) // 2) / k**2, 0.0)
    # wavetable-engine tables: fixed spectra between which a patch morphs
    if shape == "vowel":  # a formant hump around the 4th-5th harmonic over a saw slope
        return (1 + 4 * np.exp(-(((k - 4.5) / 1.6) ** 2))) / k
    if shape == "hollow":  # odd harmonics with a notch around the 5th: clarinet-like
        return np.where(odd, 1 / k * (1 - 0.9 * np.exp(-(((k - 5) / 2.0) ** 2))), 0.0)
    if shape == "bright":  # flatter than a saw: digital, buzzy
        return 1 / np.sqrt(k)
    if shape == "organ":  # drawbars 16' 8' 5 1/3' 4' 2 2/3' 2'
        return np.select([k == 1, k == 2, k == 3, k == 4, k == 6, k == 8], [1.0, 0.8, 0.6, 0.5, 0.35, 0.3], 0.0)
    raise ValueError(f"unknown oscillator shape {shape!r}")


WAVETABLES = ("sine", "vowel", "hollow", "bright", "organ", "saw")


@lru_cache(maxsize=512)
def table(shape: str, n_harmonics: int) -> np.ndarray:
    """One cycle of ``shape`` with harmonics 1..n_harmonics, [TABLE_SIZE + 1] (a wrap guard sample).

    Wavetable shapes are scaled to the saw's RMS so a morph does not jump in level.
    """
    k = np.arange(1, max(1, min(n_harmonics, TABLE_SIZE // 2 - 1)) + 1)
    amps = _harmonic_amps(shape, k)
    spec = np.zeros(TABLE_SIZE // 2 + 1, dtype=complex)
    spec[k] = -0.5j * TABLE_SIZE * amps  # irfft of -i N/2 a_k is sum a_k sin(2 pi k x)
    cyc = np.fft.irfft(spec, TABLE_SIZE)
    if shape not in ("sine", "saw", "square", "triangle"):
        ref = np.sqrt(np.sum(_harmonic_amps("saw", k) ** 2)) / max(1e-12, np.sqrt(np.sum(amps**2)))
        cyc = cyc * ref
    return np.append(cyc, cyc[0])


def harmonics_below(f_max: float, sample_rate: float) -> int:
    """Harmonics a tone reaching ``f_max`` Hz may carry: the highest stays under 0.48 * rate."""
    return max(1, int(0.48 * sample_rate / max(f_max, 1.0)))


def read(tab: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Linear-interpolated table lookup at ``phase`` (cycles, any real) -> [n]."""
    pos = (phase % 1.0) * TABLE_SIZE
    i = pos.astype(np.int64)
    frac = pos - i
    return tab[i] * (1 - frac) + tab[i + 1] * frac


# ------------------------------------------------------------------ effects


def chorus(x: np.ndarray, sample_rate: float, *, mix: float, rate_hz: float, depth_ms: float,
           base_ms: float = 12.0) -> np.ndarray:
    """Two modulated delay lines in anti-phase (a mono chorus); level-neutral for mix in 0..1."""
    if mix <= 0:
        return x
    n = len(x)
    t = np.arange(n) / sample_rate
    wet = np.zeros(n)
    for ph in (0.0, np.pi):
        d = (base_ms + depth_ms * np.sin(2 * np.pi * rate_hz * t + ph)) * 1e-3 * sample_rate
        wet += np.interp(np.arange(n) - d, np.arange(n), x, left=0.0)
    return (x + mix * 0.5 * wet) / (1 + 0.5 * mix)


def echo(x: np.ndarray, sample_rate: float, *, time_s: float, feedback: float, mix: float,
         damp_hz: float = 3500.0) -> np.ndarray:
    """Tempo-free feedback delay: repeats every ``time_s``, each ``feedback`` times quieter and
    darker (a one-pole low-pass per repeat, like a tape or analogue delay), until -60 dB."""
    if mix <= 0 or feedback <= 0:
        return x
    d = max(1, int(round(time_s * sample_rate)))
    pole = np.exp(-2 * np.pi * min(damp_hz, 0.45 * sample_rate) / sample_rate)
    out, rep, gain = x.copy(), x, 1.0
    for k in range(1, 64):
        if k * d >= len(x) or gain < 1e-3:
            break
        rep = lfilter([1 - pole], [1, -pole], rep)
        out[k * d :] += mix * gain * rep[: len(x) - k * d]
        gain *= feedback
    return out
