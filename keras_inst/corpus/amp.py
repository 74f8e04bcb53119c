"""Electric-guitar amp and cabinet simulation for SoundFont guitar stems (GM 26-31).

GM electric guitars are clean DI-like samples (or one fixed distortion), while produced songs
play guitars through amps from clean to high gain, always through a speaker cabinet. The chain
(:func:`apply_amp`):

1. input high-pass (``input_hp_hz``, tightens the low end before the gain stage);
2. pre-emphasis: a mid peak (``pre_hz``, ``pre_db``) so the clipper bites on the mids;
3. the gain stage, oversampled x4 so the harmonics it makes above the original Nyquist are
   filtered out instead of folding back: the input is brought to a fixed RMS, multiplied by
   ``drive_db`` (0 = clean, 40 = high gain) and shaped by an asymmetric tanh: a bias
   (``asymmetry``, proportional to the input level like a tube's grid bias) moves the clipping
   point off centre, which makes even harmonics at any drive; odd ones come from the tanh;
4. a DC blocker and the tone stack: bass / treble shelves and a mid peak (negative: the scoop);
5. the cabinet: a high-pass (``cab_hp_hz``), a resonant speaker low-pass (``cab_lp_hz``, Q
   ``cab_q``) followed by a 4th-order Butterworth at 1.3 x ``cab_lp_hz`` (a 12" speaker falls
   off steeply above ~5 kHz), a presence peak and a notch (``cab_peak_*``, ``cab_notch_*``);
6. the output RMS is set back to the input's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, resample_poly, sosfilt

from keras_inst.corpus import dsp

OVERSAMPLE = 4
_DRIVE_REF_RMS = 0.1  # the gain stage sees this RMS at drive 0 dB: tanh nearly linear (THD ~1 %)
GUITAR_PROGRAMS = frozenset(range(26, 32))


@dataclass(frozen=True)
class AmpSettings:
    """One amp + cabinet setting (Hz, dB, Q)."""

    drive_db: float = 0.0
    asymmetry: float = 0.2  # bias as a fraction of the stage's input RMS
    input_hp_hz: float = 100.0
    pre_hz: float = 800.0
    pre_db: float = 3.0
    bass_db: float = 0.0
    mid_db: float = 0.0
    mid_hz: float = 600.0
    treble_db: float = 0.0
    cab_hp_hz: float = 90.0
    cab_lp_hz: float = 4500.0
    cab_q: float = 1.4
    cab_peak_hz: float = 2200.0
    cab_peak_db: float = 4.0
    cab_notch_hz: float = 450.0
    cab_notch_db: float = -4.0

    def __post_init__(self):
        if not 0.0 <= self.drive_db <= 50.0:
            raise ValueError(f"AmpSettings.drive_db: {self.drive_db} not in 0..50")
        if not 1000.0 <= self.cab_lp_hz <= 8000.0:
            raise ValueError(f"AmpSettings.cab_lp_hz: {self.cab_lp_hz} not in 1000..8000")

    @property
    def name(self) -> str:
        kind = "clean" if self.drive_db < 8 else "crunch" if self.drive_db < 25 else "high gain"
        return f"amp {kind} {self.drive_db:.0f} dB"


def draw_amp(rng: np.random.Generator, *, program: int | None = None) -> AmpSettings:
    """A setting drawn a third each from clean (0-6 dB), crunch (10-25 dB) and high gain
    (25-40 dB, with a scooped mid more often). GM 29/30 (overdriven / distortion guitar) are
    distorted samples already: their drive stays under 20 dB."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    kind = int(rng.integers(3))
    drive = (u(0, 6), u(10, 25), u(25, 40))[kind]
    if program in (29, 30):
        drive = min(drive, 20.0)
    return AmpSettings(
        drive_db=drive, asymmetry=u(0.05, 0.4), input_hp_hz=u(70, 150), pre_hz=u(600, 1200),
        pre_db=u(0, 9) if kind else u(0, 3), bass_db=u(-4, 6), mid_db=u(-10, -3) if kind == 2 and rng.random() < 0.6
        else u(-4, 4), mid_hz=u(400, 900), treble_db=u(-5, 6), cab_hp_hz=u(70, 120), cab_lp_hz=u(3000, 6000),
        cab_q=u(0.9, 2.2), cab_peak_hz=u(1500, 3000), cab_peak_db=u(1, 6), cab_notch_hz=u(300, 700),
        cab_notch_db=u(-6, -1))


def cabinet_sos(settings: AmpSettings, sample_rate: int) -> np.ndarray:
    """The cabinet as second-order sections [m, 6] (for :func:`apply_amp` and for checking)."""
    s = settings
    steep = butter(4, min(1.3 * s.cab_lp_hz, 0.45 * sample_rate), fs=sample_rate, output="sos")
    rows = [dsp.biquad("highpass", s.cab_hp_hz, sample_rate), dsp.biquad("lowpass", s.cab_lp_hz, sample_rate, q=s.cab_q),
            dsp.biquad("peak", s.cab_peak_hz, sample_rate, q=1.5, gain_db=s.cab_peak_db),
            dsp.biquad("peak", s.cab_notch_hz, sample_rate, q=2.0, gain_db=s.cab_notch_db)]
    return np.vstack([np.stack(rows), steep])


def shape(x: np.ndarray, drive_db: float, asymmetry: float) -> np.ndarray:
    """The gain stage on audio at ``_DRIVE_REF_RMS``: asymmetric tanh, unit small-signal gain at
    0 dB; no DC removal (the caller's high-pass does it)."""
    g = 10 ** (drive_db / 20)
    bias = asymmetry * _DRIVE_REF_RMS
    return (np.tanh(g * (x + bias)) - np.tanh(g * bias)) / g


def apply_amp(audio: np.ndarray, settings: AmpSettings, sample_rate: int) -> np.ndarray:
    """Play mono audio through the amp and cabinet -> float32 of the same length and RMS."""
    s, sr = settings, sample_rate
    x = np.asarray(audio, dtype=np.float64)
    rms_in = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    if rms_in < 1e-9:
        return np.zeros(len(x), dtype=np.float32)
    x = dsp.filt(x, dsp.biquad("highpass", s.input_hp_hz, sr), dsp.biquad("peak", s.pre_hz, sr, q=0.8, gain_db=s.pre_db))
    x *= _DRIVE_REF_RMS / max(1e-9, float(np.sqrt(np.mean(x**2))))
    up = resample_poly(x, OVERSAMPLE, 1)
    y = resample_poly(shape(up, s.drive_db, s.asymmetry), 1, OVERSAMPLE)[: len(x)]
    y = dsp.filt(y, dsp.biquad("highpass", 20.0, sr),  # DC blocker: the bias leaves an offset
                 dsp.biquad("lowshelf", 180.0, sr, gain_db=s.bass_db),
                 dsp.biquad("peak", s.mid_hz, sr, q=0.9, gain_db=s.mid_db),
                 dsp.biquad("highshelf", 2800.0, sr, gain_db=s.treble_db))
    y = sosfilt(cabinet_sos(s, sr), y)
    y *= rms_in / max(1e-12, float(np.sqrt(np.mean(y**2))))
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:  # a level-matched distorted stem is denser: keep the float in range
        y *= 0.99 / peak
    return y.astype(np.float32)
