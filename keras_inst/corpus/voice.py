"""A sung-vowel synthesiser for the corpus's solo singers (GM 53 Voice Oohs; 52 makes a choir).

GM "Voice Oohs" is one looped sample: no vibrato, no vowels, the same timbre on every pitch. No
recorded singing reachable from this project's registries covers a pitch range (Debian has no
MBROLA voices; sonic-pi-samples' ``ambi_choir`` is one pad chord), so the singer is a
source-filter model (additive, alias-free): harmonics of a glottal source (-12 dB/octave tilt,
+6 dB/octave lip radiation) shaped by five vowel formants (Csound's tenor formant table, raised
up to 12 % for high notes), with delayed vibrato (5-6 Hz, +-0.4 semitone), slow pitch jitter,
a scoop into each note, aspiration noise through the same formants, and a vowel drawn per note
(a syllable of a lyric). Program 52 sums three detuned singers with their own vibrato (the
registry does not use it: musicnn's MTT tagger hears GM "Choir Aahs" as a choir already, this
one as a female solo; ``scripts/measure_singers.py``).
"""

from __future__ import annotations

import numpy as np

from keras_inst.corpus.gains import band_gain_db

# Csound's tenor formants: vowel -> ((Hz, amplitude dB, bandwidth Hz), ...) for F1..F5
_VOWELS = {
    "a": ((650, 0, 80), (1080, -6, 90), (2650, -7, 120), (2900, -8, 130), (3250, -22, 140)),
    "e": ((400, 0, 70), (1700, -14, 80), (2600, -12, 100), (3200, -14, 120), (3580, -20, 120)),
    "i": ((290, 0, 40), (1870, -15, 90), (2800, -18, 100), (3250, -20, 120), (3540, -30, 120)),
    "o": ((400, 0, 40), (800, -10, 80), (2600, -12, 100), (2800, -12, 120), (3000, -26, 120)),
    "u": ((350, 0, 40), (600, -20, 60), (2700, -17, 100), (2900, -14, 120), (3300, -26, 120)),
}
_ATTACK_S, _RELEASE_S = 0.06, 0.12


def _envelope(f: np.ndarray, vowel: str, shift: float) -> np.ndarray:
    """Formant magnitude (linear) at frequencies ``f`` (any shape): a sum of resonance peaks."""
    env = np.zeros_like(f)
    for hz, db, bw in _VOWELS[vowel]:
        env += 10 ** (db / 20) / np.sqrt(1.0 + ((f - hz * shift) / (0.5 * bw * shift)) ** 2)
    return env


def _one_voice(key: int, n: int, sample_rate: int, vowel: str, rng: np.random.Generator) -> np.ndarray:
    """One sung note of ``n`` samples (sustain part, no envelope) -> float64 [n]."""
    t = np.arange(n) / sample_rate
    rate, depth = rng.uniform(5.0, 6.0), rng.uniform(0.25, 0.45)  # vibrato Hz, semitones
    onset = np.clip((t - 0.15) / 0.25, 0.0, 1.0)  # vibrato grows in after 150 ms
    scoop = -0.35 * np.exp(-t / 0.04)  # singers slide up into the note
    walk = np.cumsum(rng.normal(0.0, 1.0, n))  # slow pitch drift, 0.08 semitone rms
    walk -= np.linspace(walk[0], walk[-1], n)
    jitter = 0.08 * walk / (np.std(walk) + 1e-9)
    detune = rng.normal(0.0, 0.08)  # semitones; choir singers are never exactly in tune
    semis = key + detune - 69 + scoop + onset * depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.3)) + jitter
    f0 = 440.0 * 2 ** (semis / 12)  # [n]
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    shift = 1.0 + 0.12 * np.clip((key - 60) / 24, 0.0, 1.0)  # formants rise with pitch
    k = np.arange(1, int(0.5 * sample_rate / f0.min()) + 1)[:, None]  # harmonics [K, 1]
    fk = k * f0[None, :]  # [K, n]
    amp = _envelope(fk, vowel, shift) / k * (fk < 0.45 * sample_rate)  # -6 dB/oct net tilt
    x = np.sum(amp * np.sin(k * phase[None, :]), axis=0)
    noise = rng.normal(0.0, 1.0, n)  # aspiration: noise through the formants, via FFT
    spec = np.fft.rfft(noise)
    spec *= _envelope(np.fft.rfftfreq(n, 1 / sample_rate), vowel, shift)
    return x + 0.06 * np.fft.irfft(spec, n) * np.sqrt(np.mean(x**2) / max(1e-12, np.mean(noise**2)))


def sing(
    notes: list[tuple[float, float, int, int]],
    *,
    program: int,
    sample_rate: int,
    n_samples: int,
    seed: int,
    velocity_gains: tuple[tuple[int, float], ...] = (),
) -> np.ndarray:
    """Sing (onset_s, duration_s, key, velocity) notes -> mono float32 [n_samples]; deterministic."""
    rng = np.random.default_rng([seed, program])
    out = np.zeros(n_samples, dtype=np.float64)
    vowels = "ao" if program == 52 else "aeiou"
    voices = 3 if program == 52 else 1
    for on, dur, key, vel in notes:
        a = int(round(on * sample_rate))
        if a >= n_samples:
            continue
        n = min(n_samples - a, int(round((dur + _RELEASE_S) * sample_rate)))
        if n < 8:
            continue
        vowel = vowels[int(rng.integers(len(vowels)))]
        x = sum(_one_voice(key, n, sample_rate, vowel, rng) * (1.0 + 0.2 * v) for v in range(voices)) / voices
        t = np.arange(n) / sample_rate
        env = np.clip(t / _ATTACK_S, 0, 1) * np.clip((dur + _RELEASE_S - t) / _RELEASE_S, 0, 1)
        gain = (vel / 127.0) ** 1.5 * 10 ** (band_gain_db(vel, velocity_gains) / 20)
        out[a : a + n] += gain * env * x
    return (0.05 * out).astype(np.float32)
