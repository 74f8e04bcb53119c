"""The built-in synthesizer, measured: pitch per engine and role, glide, aliasing, filter cutoff,
ADSR times, velocity response, levels, determinism and the GM program map."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import welch

from keras_inst.corpus import dsp
from keras_inst.corpus import synthesizer as S

SR = 16000
HI_SR = 22050


def _plain(patch: S.SynthPatch, **kw) -> S.SynthPatch:
    """The patch without the parts that blur a measurement (unison, sub, effects, vibrato)."""
    base = dict(unison=1, sub=0.0, osc2_level=0.0, noise=0.0, vibrato_semis=0.0, chorus_mix=0.0, delay_mix=0.0)
    return replace(patch, **{**base, **kw})


def _peak_hz(x: np.ndarray, sr: int, near: float) -> float:
    """Frequency of the spectral peak within a semitone of ``near`` (zero-padded FFT, parabolic)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 1 << 18))
    f = np.fft.rfftfreq(1 << 18, 1 / sr)
    band = np.nonzero((f > near * 2 ** (-1 / 12)) & (f < near * 2 ** (1 / 12)))[0]
    i = band[np.argmax(spec[band])]
    a, b, c = np.log(spec[i - 1 : i + 2] + 1e-30)
    return float(f[i] + 0.5 * (a - c) / (a - 2 * b + c) * (f[1] - f[0]))


def _cents(hz: float, key: float) -> float:
    return 1200 * np.log2(hz / (440 * 2 ** ((key - 69) / 12)))


def _note(patch: S.SynthPatch, *, key: int = 57, vel: int = 100, dur: float = 0.6, n: float = 1.0, sr: int = SR,
          seed: int = 0) -> np.ndarray:
    return S.render([(0.0, dur, key, vel)], patch, sample_rate=sr, n_samples=int(n * sr), rng=np.random.default_rng(seed))


@pytest.mark.parametrize("engine", S.ENGINES)
@pytest.mark.parametrize("role", S.ROLES)
def test_fundamental_is_the_keys_frequency_for_every_engine_and_role(engine, role):
    patch = _plain(S.draw_patch(role, np.random.default_rng(11)), engine=engine, mono=False,
                   attack=0.005, cutoff_hz=max(S.draw_patch(role, np.random.default_rng(11)).cutoff_hz, 400.0))
    x = _note(patch, key=57)  # 220 Hz
    seg = x[int(0.05 * SR) : int(0.55 * SR)]
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0 and np.sqrt(np.mean(seg**2)) > 1e-4
    assert abs(_cents(_peak_hz(seg, SR, 220.0), 57)) < 3.0
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    f = np.fft.rfftfreq(len(seg), 1 / SR)
    assert spec[f < 200].max() < 0.1 * spec.max()  # nothing below the fundamental (no octave error)


def test_glide_slides_from_the_previous_key_and_reaches_the_target():
    patch = _plain(S.draw_patch("lead", np.random.default_rng(2)), engine="subtractive", shape="saw", mono=True,
                   glide_s=0.12, cutoff_hz=3000.0, attack=0.005, sustain=1.0)
    x = S.render([(0.0, 0.5, 57, 100), (0.5, 0.7, 64, 100)], patch, sample_rate=SR, n_samples=int(1.3 * SR),
                 rng=np.random.default_rng(0))
    early = _cents(_peak_hz(x[int(0.51 * SR) : int(0.56 * SR)], SR, 300.0), 64)
    late = _cents(_peak_hz(x[int(0.75 * SR) : int(1.15 * SR)], SR, 329.63), 64)
    assert -650 < early < -60  # 10-60 ms after the change the pitch is still on its way from A3
    assert abs(late) < 3.0
    detached = S.render([(0.0, 0.3, 57, 100), (0.5, 0.7, 64, 100)], patch, sample_rate=SR, n_samples=int(1.3 * SR),
                        rng=np.random.default_rng(0))
    assert abs(_cents(_peak_hz(detached[int(0.505 * SR) : int(0.56 * SR)], SR, 329.63), 64)) < 30  # no glide


def _inharmonic_db(x: np.ndarray, f0: float, sr: int) -> float:
    """Energy away from the harmonics of f0 (> 40 Hz off), relative to the total."""
    p = np.abs(np.fft.rfft(x * np.blackman(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    off = np.abs(f / f0 - np.round(f / f0)) * f0 > 40
    return float(10 * np.log10(p[off].sum() / p.sum()))


@pytest.mark.parametrize("engine,shape", [("subtractive", "saw"), ("subtractive", "square"), ("subtractive", "pulse"),
                                          ("fm", "saw"), ("wavetable", "saw")])
def test_a_high_note_has_no_aliased_partials(engine, shape):
    patch = _plain(S.draw_patch("lead", np.random.default_rng(5)), engine=engine, shape=shape, cutoff_hz=20000.0,
                   key_track=0.0, filter_env_oct=0.0, velocity_to_filter_oct=0.0, pwm_depth=0.0, fm_ratio=1.0,
                   fm_index=8.0, fm_sustain=1.0, tables=("bright", "saw"), attack=0.005, sustain=1.0, glide_s=0.0)
    for key in (84, 96):  # C6, C7 (2093 Hz: 5 harmonics below Nyquist)
        x = _note(patch, key=key, dur=0.5, sr=HI_SR)[int(0.05 * HI_SR) : int(0.45 * HI_SR)]
        f0 = 440 * 2 ** ((key - 69) / 12)
        # measured: -86 dB (tables), -46 dB (FM at C6: index capped by Carson's rule + 3)
        assert _inharmonic_db(x, f0, HI_SR) < (-40 if engine == "fm" else -70)
    t = np.arange(len(x)) / HI_SR  # the measurement can fail: a naive (aliasing) saw reads -10 dB
    assert _inharmonic_db(2 * ((2093.0 * t) % 1.0) - 1, 2093.0, HI_SR) > -30


@pytest.mark.parametrize("poles,q", [(2, 0.7071), (4, 1.307)])
def test_low_pass_is_3db_down_at_the_cutoff_and_falls_at_its_slope(poles, q):
    x = np.random.default_rng(0).normal(0, 1, 4 * SR)
    for cutoff in (200.0, 400.0):  # well under Nyquist, where the bilinear transform bends the slope
        y = dsp.sweep_lowpass(x, np.full(len(x), cutoff), SR, q=q, poles=poles)
        f, px = welch(x, SR, nperseg=4096)
        _, py = welch(y, SR, nperseg=4096)
        gain = 10 * np.log10(py / px)
        assert np.interp(cutoff, f, gain) == pytest.approx(-3.0, abs=0.6)
        butterworth = -10 * np.log10(1 + 4.0 ** (2 * poles))  # two octaves up: -24 / -48 dB
        assert np.interp(4 * cutoff, f, gain) == pytest.approx(butterworth, abs=1.5)


def test_moving_cutoff_matches_the_fixed_filter_and_the_envelope_darkens_a_pluck():
    x = np.random.default_rng(1).normal(0, 1, SR)
    fixed = dsp.sweep_lowpass(x, np.full(SR, 800.0), SR, poles=4, q=1.0)
    blocks = dsp.sweep_lowpass(x, np.full(SR, 800.0) * (1 + 1e-5 * np.arange(SR) / SR), SR, poles=4, q=1.0)
    assert np.max(np.abs(fixed - blocks)) < 1e-3 * np.max(np.abs(fixed))  # block switching adds no junk

    def centroid(y):
        p, f = np.abs(np.fft.rfft(y)) ** 2, np.fft.rfftfreq(len(y), 1 / SR)
        return float(np.sum(f * p) / np.sum(p))

    base = _plain(S.draw_patch("pluck", np.random.default_rng(3)), engine="subtractive", shape="saw", sustain=1.0,
                  decay=1.0, filter_env_oct=0.0, velocity_to_filter_oct=0.0)
    dark, bright = (_note(replace(base, cutoff_hz=c)) for c in (400.0, 1600.0))
    assert centroid(bright[: SR // 2]) > 1.5 * centroid(dark[: SR // 2])
    env = _note(replace(base, cutoff_hz=300.0, filter_env_oct=3.0, filter_adsr=(0.001, 0.15, 0.0, 0.1)))

    def above_1k_db(y):  # share of the energy above 1 kHz
        p, f = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2, np.fft.rfftfreq(len(y), 1 / SR)
        return 10 * np.log10(p[f > 1000].sum() / p.sum())

    # the envelope opens the filter 3 octaves (2.4 kHz) at the onset and closes it within 0.15 s
    assert above_1k_db(env[: int(0.04 * SR)]) > above_1k_db(env[int(0.35 * SR) : int(0.5 * SR)]) + 15


def _rms_db(x: np.ndarray, win: int) -> np.ndarray:
    frames = x[: len(x) // win * win].reshape(-1, win).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def test_attack_and_release_times_match_the_adsr():
    patch = _plain(S.draw_patch("pad", np.random.default_rng(4)), engine="subtractive", shape="saw", attack=0.5,
                   decay=0.5, sustain=1.0, release=1.2, filter_env_oct=0.0, cutoff_hz=2000.0)
    win = SR // 100  # 10 ms RMS frames
    env = _rms_db(_note(patch, dur=1.0, n=2.5), win)
    peak = env[:100].max()
    t90 = np.argmax(env >= peak + 20 * np.log10(0.9)) * 0.01  # linear attack: 90 % at 0.9 * attack
    assert t90 == pytest.approx(0.45, abs=0.03)
    at_gate = env[99]
    t20 = (np.argmax(env[100:] <= at_gate - 20) + 1) * 0.01  # 60 dB in release: 20 dB in a third of it
    assert t20 == pytest.approx(1.2 / 3, rel=0.12)


@pytest.mark.parametrize("role", S.ROLES)
def test_velocity_response_is_monotonic_and_within_its_range(role):
    patch = _plain(S.draw_patch(role, np.random.default_rng(7)))
    levels = [float(np.sqrt(np.mean(_note(patch, vel=v) ** 2))) for v in (32, 64, 96, 127)]
    assert all(b > a for a, b in zip(levels, levels[1:], strict=False))
    # amplitude ~ velocity^curve (curve 0.6-1.6: 3.6-9.5 dB) plus brighter filtering at 127
    assert 3.0 < 20 * np.log10(levels[3] / levels[1]) < 14.0


def test_dense_parts_stay_in_range_and_renders_are_deterministic():
    chord = [(0.0, 1.0, k, 127) for k in (36, 40, 43, 48, 52, 55, 60, 64, 67, 72)]
    for program in sorted(S.PROGRAM_ROLES):
        x, name = S.play_synth(chord, program=program, sample_rate=SR, n_samples=SR, seed=program)
        assert x.dtype == np.float32 and np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0, name
    notes = [(0.2, 0.3, 60, 100), (0.6, 0.3, 64, 70)]
    a, name = S.play_synth(notes, program=81, sample_rate=SR, n_samples=SR, seed=3)
    b, _ = S.play_synth(notes, program=81, sample_rate=SR, n_samples=SR, seed=3)
    c, _ = S.play_synth(notes, program=81, sample_rate=SR, n_samples=SR, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and name.startswith("lead/")
    assert np.max(np.abs(a[: int(0.19 * SR)])) == 0.0  # silent before the first onset
    quiet, _ = S.play_synth(notes, program=81, sample_rate=SR, n_samples=SR, seed=3, velocity_gains=((76, -6.0), (127, 0.0)))
    second = slice(int(0.62 * SR), int(0.85 * SR))  # the velocity-70 note: 6 dB down (its own band)
    assert 20 * np.log10(np.std(quiet[second]) / np.std(a[second])) == pytest.approx(-6.0, abs=1.0)


def test_patches_differ_by_seed_and_roles_keep_their_character():
    draws = {r: [S.draw_patch(r, np.random.default_rng(s)) for s in range(40)] for r in S.ROLES}
    assert S.draw_patch("pad", np.random.default_rng(1)) == S.draw_patch("pad", np.random.default_rng(1))
    assert len(set(draws["lead"])) == 40
    assert all(0.2 <= p.attack <= 2.0 and p.release >= 0.5 for p in draws["pad"])
    assert all(p.attack <= 0.005 and p.sustain <= 0.1 for p in draws["pluck"])
    assert np.mean([p.mono for p in draws["bass"]]) > 0.6 and np.mean([p.sub > 0 for p in draws["bass"]]) > 0.5
    assert np.mean([p.glide_s > 0 for p in draws["lead"]]) > 0.3 and any(p.vibrato_semis > 0 for p in draws["lead"])
    assert {p.engine for r in S.ROLES for p in draws[r]} == set(S.ENGINES)


def test_gm_programs_map_to_roles_and_bad_input_names_the_field():
    assert S.PROGRAM_ROLES[38] == S.PROGRAM_ROLES[39] == "bass"  # a synth bass is a synth, not an electric bass
    assert {S.PROGRAM_ROLES[p] for p in range(80, 88)} == {"lead"} and {S.PROGRAM_ROLES[p] for p in range(88, 96)} == {"pad"}
    assert set(range(96, 104)) <= set(S.PROGRAM_ROLES)
    rng = np.random.default_rng(0)
    assert S.patch_for_program(81, rng).shape == "saw" and S.patch_for_program(80, rng).shape == "square"
    fifths = S.patch_for_program(86, rng)
    assert fifths.osc2_semis == 7.0 and fifths.osc2_level > 0
    with pytest.raises(ValueError, match="not a synth program"):
        S.patch_for_program(33, rng)
    with pytest.raises(ValueError, match="unknown synth role"):
        S.draw_patch("drone", rng)
    with pytest.raises(ValueError, match="SynthPatch.unison"):
        S.SynthPatch(role="pad", engine="fm", unison=9)
    with pytest.raises(ValueError, match="filter poles"):
        dsp.sweep_lowpass(np.zeros(64), np.full(64, 500.0), SR, poles=3)
