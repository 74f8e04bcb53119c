"""Synthesised analogue-style drum machine kits (808/909-like) playing General-MIDI drum keys.

The corpus's drum sources are recorded acoustic kits; produced pop, dance and hip-hop songs use
drum machines, which the model missed. Each voice follows the analogue circuits in spirit:

- kick: a sine whose pitch falls from ``kick_sweep`` times ``kick_hz`` to ``kick_hz`` within
  ``kick_sweep_s``, a 60 dB decay in ``kick_decay_s`` (808 boom: long; 909: short), a noise click
  and soft saturation;
- snare: two tuned sines plus band/high-passed noise ("snappy");
- clap: ``clap_bursts`` noise bursts ~10 ms apart and a band-passed reverberant tail;
- hats and cymbals: six detuned square oscillators (the 808's metallic bank, scaled per kit)
  plus noise, through band-pass and high-pass filters, with an exponential decay per key
  (closed < pedal < open < ride < crash); an open hat is choked by the next closed/pedal hat;
- toms and congas: sines with a small pitch drop; rimshot, cowbell (two squares through a
  band-pass), claves and maracas.

A kit is drawn per stem (:func:`draw_kit`); :data:`KIT_KEYS` are the GM keys it plays (every
key :mod:`keras_inst.corpus.drums` writes). One hit per key is synthesised once per render and
scaled by velocity (a drum machine's accent changes level, not timbre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_inst.corpus import dsp
from keras_inst.corpus.gains import note_gain_db

METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)  # TR-808 cymbal/hat oscillators
_MAX_HIT_S = 3.0
# GM key -> (voice, parameter): toms and congas by pitch step, metal by decay field
_KEYS: dict[int, tuple[str, object]] = {
    35: ("kick", 0.9), 36: ("kick", 1.0), 37: ("rim", None), 38: ("snare", 1.0), 40: ("snare", 1.06),
    39: ("clap", None), 42: ("metal", "closed"), 44: ("metal", "pedal"), 46: ("metal", "open"),
    41: ("tom", 0), 43: ("tom", 1), 45: ("tom", 2), 47: ("tom", 3), 48: ("tom", 4), 50: ("tom", 5),
    49: ("metal", "crash"), 52: ("metal", "crash"), 55: ("metal", "splash"), 57: ("metal", "crash"),
    51: ("metal", "ride"), 59: ("metal", "ride"), 53: ("metal", "bell"), 54: ("metal", "tambourine"),
    56: ("cowbell", None), 58: ("cowbell", None), 60: ("tom", 8), 61: ("tom", 7), 62: ("tom", 7.5),
    63: ("tom", 6.5), 64: ("tom", 5.5), 65: ("tom", 6), 66: ("tom", 5), 67: ("cowbell", 1.3),
    68: ("cowbell", 1.15), 69: ("maracas", None), 70: ("maracas", None), 75: ("claves", None),
    76: ("claves", 0.8), 77: ("claves", 0.7),
}
KIT_KEYS = frozenset(_KEYS)
HATS_CHOKING_OPEN = (42, 44)
# peak of each voice at velocity 127, a drum machine's mixer: the drawn filters and tunings
# would otherwise move e.g. the hats by up to 19 dB from kit to kit (measured over 5 kits)
_PEAK = {"kick": 1.0, "snare": 0.8, "clap": 0.7, "metal": 0.45, "tom": 0.8, "rim": 0.5, "cowbell": 0.4,
         "claves": 0.4, "maracas": 0.3}


@dataclass(frozen=True)
class DrumKit:
    """One kit's voice parameters (Hz, seconds of 60 dB decay, linear levels)."""

    style: str  # "808" or "909": the family the draw started from (for the stem's name)
    kick_hz: float = 50.0
    kick_sweep: float = 3.0  # start pitch / end pitch
    kick_sweep_s: float = 0.03
    kick_decay_s: float = 0.6
    kick_click: float = 0.2
    kick_drive: float = 1.0  # tanh drive; 1 ~ clean
    snare_hz: float = 180.0
    snare_ratio: float = 1.8  # second tone / first
    snare_tone_s: float = 0.1
    snare_noise_s: float = 0.2
    snare_noise_hz: float = 5000.0
    snappy: float = 0.6  # noise share
    clap_bursts: int = 4
    clap_gap_s: float = 0.01
    clap_tail_s: float = 0.25
    clap_hz: float = 1200.0
    metal_scale: float = 1.0  # times METAL_HZ
    metal_hz: float = 8000.0  # hat band-pass centre
    metal_noise: float = 0.2
    closed_s: float = 0.05
    pedal_s: float = 0.08
    open_s: float = 0.4
    ride_s: float = 1.2
    crash_s: float = 1.8
    tom_hz: float = 85.0  # lowest tom (GM 41)
    tom_step: float = 1.2  # pitch ratio between toms
    tom_s: float = 0.35
    cowbell_s: float = 0.3
    velocity_curve: float = 1.5  # amplitude ~ (velocity / 127) ** curve

    @property
    def name(self) -> str:
        return f"drum machine {self.style}"


def draw_kit(rng: np.random.Generator) -> DrumKit:
    """A kit between the 808 (long boomy kick, tuned snare, soft hats) and the 909 (short
    punchy kick with click, noisy snare, bright hats), every voice drawn on its own."""
    style = "808" if rng.random() < 0.55 else "909"
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    long = style == "808"
    return DrumKit(
        style=style, kick_hz=u(42, 62), kick_sweep=u(1.8, 4.0) if long else u(3.0, 6.0),
        kick_sweep_s=u(0.015, 0.05), kick_decay_s=u(0.5, 1.4) if long else u(0.2, 0.5),
        kick_click=u(0.0, 0.2) if long else u(0.2, 0.6), kick_drive=u(1.0, 3.0),
        snare_hz=u(150, 250), snare_ratio=u(1.5, 2.1), snare_tone_s=u(0.06, 0.18),
        snare_noise_s=u(0.1, 0.35), snare_noise_hz=u(2500, 7000), snappy=u(0.3, 0.6) if long else u(0.5, 0.85),
        clap_bursts=int(rng.integers(3, 6)), clap_gap_s=u(0.006, 0.013), clap_tail_s=u(0.12, 0.4),
        clap_hz=u(900, 1800), metal_scale=u(0.85, 1.25), metal_hz=u(6000, 10000),
        metal_noise=u(0.05, 0.3) if long else u(0.3, 0.7), closed_s=u(0.03, 0.09), pedal_s=u(0.06, 0.12),
        open_s=u(0.25, 0.7), ride_s=u(0.8, 2.0), crash_s=u(1.2, 2.5), tom_hz=u(70, 110), tom_step=u(1.12, 1.3),
        tom_s=u(0.2, 0.6), cowbell_s=u(0.15, 0.4), velocity_curve=u(1.0, 2.0))


# ------------------------------------------------------------------ voices (one hit, velocity 127)


def _squares(hz: tuple[float, ...], n: int, sr: int) -> np.ndarray:
    """Sum of band-limited squares (odd harmonics under Nyquist) [n]."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for f in hz:
        for k in range(1, dsp.harmonics_below(f, sr) + 1, 2):
            out += np.sin(2 * np.pi * k * f * t) / k
    return out * 4 / np.pi / len(hz)


def _kick(kit: DrumKit, scale: float, n: int, sr: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    hz = kit.kick_hz * scale * (1 + (kit.kick_sweep - 1) * np.exp(-t / (kit.kick_sweep_s / 3)))
    body = np.sin(2 * np.pi * np.cumsum(hz) / sr) * dsp.decay_env(n, sr, kit.kick_decay_s)
    click = dsp.filt(rng.normal(0, 1, n), dsp.biquad("highpass", 1500, sr)) * dsp.decay_env(n, sr, 0.006)
    x = body + kit.kick_click * click
    return np.tanh(kit.kick_drive * x) / np.tanh(kit.kick_drive)


def _snare(kit: DrumKit, scale: float, n: int, sr: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    f = kit.snare_hz * scale
    tone = (np.sin(2 * np.pi * f * t) + 0.6 * np.sin(2 * np.pi * f * kit.snare_ratio * t)) / 1.6
    noise = dsp.filt(rng.normal(0, 1, n), dsp.biquad("bandpass", kit.snare_noise_hz, sr, q=0.5),
                     dsp.biquad("highpass", 800, sr))
    noise *= 2.0 * dsp.decay_env(n, sr, kit.snare_noise_s)
    return (1 - kit.snappy) * tone * dsp.decay_env(n, sr, kit.snare_tone_s) + kit.snappy * noise


def _clap(kit: DrumKit, n: int, sr: int, rng) -> np.ndarray:
    bp = dsp.biquad("bandpass", kit.clap_hz, sr, q=1.2)
    noise = dsp.filt(rng.normal(0, 1, n), bp, dsp.biquad("highpass", 400, sr)) * 3.0
    env = 0.6 * dsp.decay_env(n, sr, kit.clap_tail_s)
    for b in range(kit.clap_bursts):
        s = int(b * kit.clap_gap_s * sr)
        env[s:] += dsp.decay_env(n - s, sr, 0.02)  # each burst: a hand, 20 ms to -60 dB
    return noise * np.minimum(env, 1.2)


def _metal_decay(kit: DrumKit, which: str) -> float:
    return {"closed": kit.closed_s, "pedal": kit.pedal_s, "open": kit.open_s, "ride": kit.ride_s,
            "bell": kit.ride_s * 0.8, "crash": kit.crash_s, "splash": kit.crash_s * 0.5,
            "tambourine": 0.2}[which]


def _metal(kit: DrumKit, which: str, n: int, sr: int, rng) -> np.ndarray:
    """Six detuned squares + noise through a band-pass and a high-pass: hats and cymbals."""
    hz = tuple(f * kit.metal_scale * (1.6 if which == "tambourine" else 1.0) for f in METAL_HZ)
    raw = _squares(hz, n, sr) + kit.metal_noise * rng.normal(0, 1, n)
    cymbal = which in ("crash", "ride", "splash", "bell")
    centre = min(kit.metal_hz * (0.6 if cymbal else 1.0), 0.4 * sr)  # at 16 kHz: under Nyquist
    x = dsp.filt(raw, dsp.biquad("bandpass", centre, sr, q=0.8), dsp.biquad("highpass", 0.7 * centre, sr))
    if which == "bell":  # the ride's bell: the square bank's own ring, less filtered
        x = 0.5 * x + 0.5 * dsp.filt(_squares(hz[3:], n, sr), dsp.biquad("highpass", 1500, sr))
    return 3.0 * x * dsp.decay_env(n, sr, _metal_decay(kit, which))


def _tom(kit: DrumKit, step: float, n: int, sr: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = kit.tom_hz * kit.tom_step**step
    hz = f0 * (1 + 0.3 * np.exp(-t / 0.04))  # a short pitch drop on the attack
    body = np.sin(2 * np.pi * np.cumsum(hz) / sr) * dsp.decay_env(n, sr, kit.tom_s * (1 - 0.04 * step))
    return body + 0.05 * rng.normal(0, 1, n) * dsp.decay_env(n, sr, 0.02)


def _length_s(kit: DrumKit, voice: str, arg) -> float:
    """Seconds until a voice is 60 dB down."""
    if voice == "metal":
        return _metal_decay(kit, arg)
    return {"kick": kit.kick_decay_s, "snare": max(kit.snare_tone_s, kit.snare_noise_s),
            "clap": kit.clap_tail_s + kit.clap_bursts * kit.clap_gap_s, "tom": kit.tom_s, "rim": 0.05,
            "cowbell": kit.cowbell_s, "claves": 0.07, "maracas": 0.06}[voice]


def _hit(kit: DrumKit, key: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One full-velocity hit of ``key`` [until 60 dB down, at most 3 s]."""
    voice, arg = _KEYS[key]
    n = int(min(_MAX_HIT_S, 1.05 * _length_s(kit, voice, arg) + 0.01) * sr)
    t = np.arange(n) / sr
    if voice == "kick":
        x = _kick(kit, arg, n, sr, rng)
    elif voice == "snare":
        x = _snare(kit, arg, n, sr, rng)
    elif voice == "clap":
        x = _clap(kit, n, sr, rng)
    elif voice == "metal":
        x = _metal(kit, arg, n, sr, rng)
    elif voice == "tom":
        x = _tom(kit, arg, n, sr, rng)
    elif voice == "rim":  # two short tones and a click through a band-pass
        x = (np.sin(2 * np.pi * 455 * t) + np.sin(2 * np.pi * 1667 * t)) * dsp.decay_env(n, sr, 0.04)
        x = dsp.filt(x + rng.normal(0, 0.3, n) * dsp.decay_env(n, sr, 0.004), dsp.biquad("bandpass", 1200, sr, q=0.7))
    elif voice == "cowbell":
        ratio = arg or 1.0
        x = _squares((540 * ratio * kit.metal_scale, 800 * ratio * kit.metal_scale), n, sr)
        env = 0.7 * dsp.decay_env(n, sr, 0.05) + 0.3 * dsp.decay_env(n, sr, kit.cowbell_s)
        x = dsp.filt(x, dsp.biquad("bandpass", 2640 * ratio * kit.metal_scale, sr, q=1.0)) * env * 2
    elif voice == "claves":
        x = np.sin(2 * np.pi * 2500 * (arg or 1.0) * t) * dsp.decay_env(n, sr, 0.06)
    else:  # maracas
        x = dsp.filt(rng.normal(0, 1, n), dsp.biquad("highpass", 5000, sr)) * dsp.decay_env(n, sr, 0.05)
        x *= np.clip(t / 0.004, 0, 1)
    env = np.abs(x)
    last = np.nonzero(env > 1e-3 * env.max())[0]
    return _PEAK[voice] * x[: int(last[-1]) + 1 if len(last) else 1] / max(1e-12, float(env.max()))


def render_hits(kit: DrumKit, notes: list[tuple[float, float, int, int]], *, sample_rate: int, n_samples: int,
                rng: np.random.Generator, velocity_gains: tuple[tuple[int, float], ...] = (),
                key_gains: tuple[tuple[int, float], ...] = ()) -> np.ndarray:
    """Play (onset_s, duration_s, key, velocity) drum notes -> mono float32 [n_samples], peak <= 1.

    Keys outside :data:`KIT_KEYS` are silent (the source registry substitutes keys first).
    """
    sr = sample_rate
    hits: dict[int, np.ndarray] = {}
    out = np.zeros(n_samples)
    notes = sorted(notes)
    chokes = [on for on, _, k, _ in notes if k in HATS_CHOKING_OPEN]
    for on, _, key, vel in notes:
        if key not in _KEYS or on * sr >= n_samples:
            continue
        if key not in hits:
            hits[key] = _hit(kit, key, sr, rng)
        x = hits[key]
        a = int(round(on * sr))
        if key == 46:  # an open hat rings until the next closed or pedal hat shuts it (5 ms)
            nxt = next((c for c in chokes if c > on), None)
            if nxt is not None and (nxt - on) * sr < len(x):
                m = int((nxt - on) * sr)
                x = x[: m + int(0.005 * sr)] * np.concatenate([np.ones(m), np.linspace(1, 0, int(0.005 * sr))])
        n = min(len(x), n_samples - a)
        gain = (vel / 127) ** kit.velocity_curve * 10 ** (note_gain_db(vel, key, velocity_gains, key_gains) / 20)
        out[a : a + n] += gain * x[:n]
    out *= 0.3
    peak = float(np.max(np.abs(out))) if n_samples else 0.0
    if peak > 0.99:  # stems are loudness-normalised afterwards; this only keeps the float in range
        out *= 0.99 / peak
    return out.astype(np.float32)


def play_drum_machine(notes: list[tuple[float, float, int, int]], *, sample_rate: int, n_samples: int, seed: int,
                      velocity_gains: tuple[tuple[int, float], ...] = (),
                      key_gains: tuple[tuple[int, float], ...] = ()) -> tuple[np.ndarray, str]:
    """A kit drawn for ``seed`` plays a drum part -> (mono float32 [n_samples], kit name)."""
    rng = np.random.default_rng([seed, 0xD7])
    kit = draw_kit(rng)
    audio = render_hits(kit, notes, sample_rate=sample_rate, n_samples=n_samples, rng=rng,
                        velocity_gains=velocity_gains, key_gains=key_gains)
    return audio, kit.name
