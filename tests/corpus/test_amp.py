"""The guitar amp and cabinet, measured: cabinet roll-off above 8 kHz, harmonics growing with
drive (odd and even), oversampling against aliasing, matched output level, drawn settings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import sosfreqz, welch

from keras_inst.corpus import amp as A

SR = 22050


def _sine(hz: float, seconds: float = 1.0, level: float = 0.3) -> np.ndarray:
    return level * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)


def _harmonics_db(y: np.ndarray, f0: float, k: int) -> np.ndarray:
    """Level of harmonics 2..k relative to the fundamental (dB)."""
    seg = y[SR // 10 :]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    peaks = np.array([spec[np.abs(f - j * f0) < 5].max() for j in range(1, k + 1)])
    return 20 * np.log10(peaks[1:] / peaks[0])


@pytest.mark.parametrize("seed", range(4))
def test_cabinet_attenuates_above_8khz_as_designed(seed):
    s = A.draw_amp(np.random.default_rng(seed))
    noise = np.random.default_rng(0).normal(0, 0.1, 4 * SR)
    f, px = welch(noise, SR, nperseg=2048)
    _, py = welch(A.sosfilt(A.cabinet_sos(s, SR), noise), SR, nperseg=2048)
    measured = 10 * np.log10(py / px)
    _, h = sosfreqz(A.cabinet_sos(s, SR), worN=f, fs=SR)
    designed = 20 * np.log10(np.abs(h) + 1e-12)
    band = (f > 300) & (f < 9500)
    assert np.max(np.abs(measured[band] - designed[band])) < 1.0
    ref = np.mean(measured[(f > 800) & (f < 1200)])
    assert np.mean(measured[(f > 8000) & (f < 10000)]) < ref - 20  # a 12" speaker: dark above 8 kHz
    y = A.apply_amp(noise, replace(s, drive_db=0.0), SR)  # the whole chain, clean
    _, pa = welch(y, SR, nperseg=2048)
    whole = 10 * np.log10(pa / px)
    assert np.mean(whole[(f > 8000) & (f < 10000)]) < np.mean(whole[(f > 800) & (f < 1200)]) - 20


@pytest.mark.parametrize("seed", range(3))
def test_drive_adds_odd_and_even_harmonics_monotonically(seed):
    s = A.draw_amp(np.random.default_rng(seed))
    x = _sine(220.0)
    rows = np.array([_harmonics_db(A.apply_amp(x, replace(s, drive_db=d), SR), 220.0, 3) for d in (0, 10, 20, 30, 40)])
    h2, h3 = rows[:, 0], rows[:, 1]
    assert h2[0] < -40 and h3[0] < -40  # clean: under 1 % distortion
    assert np.all(np.diff(h2) > 0) and np.all(np.diff(h3) > 0)  # measured: -60 -> -20 dB, -60 -> -12 dB
    assert h2[-1] > -32 and h3[-1] > -20


def test_oversampling_keeps_the_distortion_from_aliasing(monkeypatch):
    s = replace(A.draw_amp(np.random.default_rng(4)), drive_db=40.0, cab_lp_hz=6000.0)
    x = _sine(1760.0)

    def inharmonic_db(y):
        seg = y[SR // 10 :]
        p = np.abs(np.fft.rfft(seg * np.blackman(len(seg)))) ** 2
        f = np.fft.rfftfreq(len(seg), 1 / SR)
        off = np.abs(f / 1760.0 - np.round(f / 1760.0)) * 1760.0 > 30
        return 10 * np.log10(p[off].sum() / p.sum())

    good = inharmonic_db(A.apply_amp(x, s, SR))
    monkeypatch.setattr(A, "OVERSAMPLE", 1)
    naive = inharmonic_db(A.apply_amp(x, s, SR))
    assert good < -40 and naive > good + 10


def test_output_level_matches_the_input_and_stays_in_range():
    rng = np.random.default_rng(5)
    x = _sine(110.0, 1.0, 0.05) + _sine(165.0, 1.0, 0.05)
    for seed in range(6):
        y = A.apply_amp(x, A.draw_amp(np.random.default_rng(seed)), SR)
        assert y.dtype == np.float32 and y.shape == x.shape and np.all(np.isfinite(y))
        assert 20 * np.log10(np.std(y) / np.std(x)) == pytest.approx(0.0, abs=0.05)
    loud = rng.normal(0, 0.5, SR)
    assert np.max(np.abs(A.apply_amp(loud, A.draw_amp(np.random.default_rng(0)), SR))) <= 1.0
    assert np.array_equal(A.apply_amp(np.zeros(100), A.AmpSettings(), SR), np.zeros(100, np.float32))


def test_drawn_settings_span_clean_to_high_gain_and_are_seeded():
    draws = [A.draw_amp(np.random.default_rng(s)) for s in range(60)]
    assert A.draw_amp(np.random.default_rng(1)) == draws[1] and len(set(draws)) == 60
    kinds = {d.name.split()[1] for d in draws}
    assert kinds == {"clean", "crunch", "high"} and min(d.drive_db for d in draws) < 6 < 35 < max(d.drive_db for d in draws)
    assert all(d.drive_db <= 20 for d in (A.draw_amp(np.random.default_rng(s), program=30) for s in range(20)))
    with pytest.raises(ValueError, match="AmpSettings.drive_db"):
        A.AmpSettings(drive_db=80.0)
