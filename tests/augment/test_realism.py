"""Realism effects beyond the paper (:mod:`keras_inst.augment.realism`, signal processing in
:mod:`keras_inst.augment.acoustics`), tested by measurement:
RT60 of the rooms (Schroeder integration), the compressor's static curve and its attack/release
rates, the saturation's THD and level, the low-pass's attenuation, the noise's SNR and colour,
and the seeded, batch-independent parameter draws."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from cache_corpus import tone_table  # tests/ is on sys.path under pytest

from keras_inst.augment import acoustics as A
from keras_inst.augment import realism as R
from keras_inst.config.io import load_config
from keras_inst.config.schema import (
    BandLimitConfig,
    CompressorConfig,
    EffectsConfig,
    MixBusConfig,
    NoiseConfig,
    ReverbConfig,
    SaturationConfig,
)
from keras_inst.taxonomy import CLASS_INDEX, NUM_CLASSES

SR = 16000
ALL_ON = EffectsConfig(
    reverb=ReverbConfig(probability=0.5), compressor=CompressorConfig(probability=0.5),
    saturation=SaturationConfig(probability=0.5), band_limit=BandLimitConfig(probability=0.5),
    noise=NoiseConfig(probability=0.5))


def sine(freq: float, n: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


def db(power_ratio: float) -> float:
    return float(10 * np.log10(power_ratio))


def block_gain_db(y: np.ndarray, x: np.ndarray, block: int = 256) -> np.ndarray:
    """Output/input level (dB) per block (whole periods of a 1 kHz sine)."""
    return np.array([db(np.mean(y[i: i + block] ** 2) / np.mean(x[i: i + block] ** 2))
                     for i in range(0, len(x) - block + 1, block)])


def schroeder_rt60(h: np.ndarray, lo_db: float, hi_db: float) -> float:
    """RT60 from the energy decay curve (backward-integrated h^2): a line fitted between
    ``lo_db`` and ``hi_db`` below the start, extrapolated to 60 dB (T20: -5..-25, T30: -5..-35)."""
    edc = np.cumsum(h[::-1].astype(np.float64) ** 2)[::-1]
    edc_db = 10 * np.log10(np.maximum(edc / edc[0], 1e-300))
    sel = (edc_db <= lo_db) & (edc_db >= hi_db)
    slope = np.polyfit(np.arange(len(h))[sel] / SR, edc_db[sel], 1)[0]
    return float(-60.0 / slope)


# ----------------------------------------------------------------------------------------------
# Room


@pytest.mark.parametrize("rt60", [0.25, 0.6, 1.2])
def test_room_rt60_measured_by_schroeder_integration(rt60: float) -> None:
    h = A.room_impulse_responses([rt60] * 3, [0.012] * 3, [0.1, 0.5, 0.9], length=64000).numpy()
    for row in h:
        assert np.sum(row.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)  # unit energy
        assert np.flatnonzero(row)[0] == round(0.012 * SR)  # the pre-delay
        assert schroeder_rt60(row, -5, -25) == pytest.approx(rt60, rel=0.06)  # T20
        assert schroeder_rt60(row, -5, -35) == pytest.approx(rt60, rel=0.06)  # T30
    assert not np.allclose(h[0], h[1])  # different noise per room


def test_mix_with_room_is_dry_plus_send_bus_convolved() -> None:
    t = 8000
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal((3, t))).astype(np.float32)
    mix_of = np.array([0, 0, 1])
    rt60, pre, u = 0.3, 0.005, 0.25
    p = _params(3, send=[0.2, 0.5, 0.0], rt60_s=[rt60, rt60, 0.0], predelay_s=[pre, pre, 0.0],
                room_u=[u, u, 0.0])
    out = R.mix_with_realism(y, mix_of, p, sample_rate=SR).numpy()
    h = A.room_impulse_responses([rt60], [pre], [u], length=t).numpy()[0]
    bus = 0.2 * y[0] + 0.5 * y[1]
    want0 = 0.8 * y[0] + 0.5 * y[1] + np.convolve(bus, h)[:t]
    np.testing.assert_allclose(out[0], want0, atol=2e-5)
    np.testing.assert_array_equal(out[1], y[2])  # the second mix has no room


# ----------------------------------------------------------------------------------------------
# Compressor


@pytest.mark.parametrize(("threshold", "ratio"), [(-6.0, 4.0), (-10.0, 2.0), (-3.0, 8.0)])
def test_compressor_gain_reduction_on_a_steady_sine(threshold: float, ratio: float) -> None:
    # A steady sine sits at its own RMS: 0 dB re the threshold's reference, overshoot -threshold.
    x = sine(1000, 32000)[None]
    y = A.compress(x, [threshold], [ratio], [0.01], [0.1], makeup=False).numpy()[0]
    mid = slice(8000, 24000)
    measured = db(np.mean(y[mid] ** 2) / np.mean(x[0, mid] ** 2))
    assert measured == pytest.approx(threshold * (1 - 1 / ratio), abs=0.02)


def test_compressor_is_unity_below_threshold_and_makeup_restores_the_rms() -> None:
    x = sine(1000, 32000)[None]
    np.testing.assert_array_equal(
        A.compress(x, [3.0], [4.0], [0.01], [0.1], makeup=False).numpy(), x)
    y = A.compress(x, [-12.0], [6.0], [0.01], [0.1]).numpy()
    assert db(np.mean(y**2) / np.mean(x**2)) == pytest.approx(0.0, abs=1e-4)


def test_compressor_release_and_attack_rates() -> None:
    # Release: loud (1 s) then 40 dB quieter; the gain recovers at 8.686 / release dB per second.
    # Attack: quiet then loud; the reduction grows at 8.686 / attack dB per second.
    n = 48128
    t = np.arange(n) / SR
    for loud_first, tau in ((True, 0.1), (True, 0.3), (False, 0.1)):
        env = np.where((t < 1.0) == loud_first, 1.0, 0.01)
        x = (sine(1000, n) * env).astype(np.float32)
        release, attack = (tau, 0.005) if loud_first else (0.1, tau)
        y = A.compress(x[None], [-18.0], [8.0], [attack], [release], makeup=False).numpy()[0]
        g = block_gain_db(y, x)
        steady = g[50] if loud_first else g[-1]
        assert steady < -15.0  # deep reduction while loud
        sel = (g < -2.0) & (g > steady + 2.0) & (np.arange(len(g)) * 256 / SR > 1.0)
        assert sel.sum() >= 5
        slope = np.polyfit((np.arange(len(g)) * 256 / SR)[sel], g[sel], 1)[0]
        assert abs(slope) == pytest.approx(20 / np.log(10) / tau, rel=0.03)


# ----------------------------------------------------------------------------------------------
# Saturation, band-limit, noise


def thd(y: np.ndarray, f0: int) -> float:
    """sqrt(harmonic power / fundamental power) of a 1-second signal (bins are 1 Hz)."""
    s = np.abs(np.fft.rfft(y)) ** 2
    return float(np.sqrt(sum(s[k * f0] for k in range(2, 16)) / s[f0]))


def test_saturation_thd_grows_with_drive_and_the_level_is_compensated() -> None:
    x = sine(500, SR, amp=0.3)[None]
    drives = [0.0, 6.0, 12.0, 24.0]
    y = A.saturate(np.repeat(x, 4, 0), drives, [0.0] * 4).numpy()  # no tone filter
    thds = [thd(row, 500) for row in y]
    assert thds[0] < 0.02 and thds[-1] > 0.3
    assert all(a < b for a, b in zip(thds, thds[1:], strict=False))
    for row in (*y, *A.saturate(np.repeat(x, 4, 0), drives, [3000.0] * 4).numpy()):
        assert db(np.mean(row**2) / np.mean(x**2)) == pytest.approx(0.0, abs=0.01)
    # the tone filter takes harmonics off: less THD at the same drive
    assert thd(A.saturate(x, [24.0], [2000.0]).numpy()[0], 500) < 0.8 * thds[-1]


@pytest.mark.parametrize("order", [4, 8])
def test_band_limit_attenuation(order: int) -> None:
    fc = 2000.0
    n = 16000
    y = A.band_limit(np.stack([sine(500, n), sine(1000, n), sine(4000, n)]), [fc] * 3,
                     order=order).numpy()
    mid = slice(2000, 14000)
    gains = [db(np.mean(y[i, mid] ** 2) / np.mean(sine(f, n)[mid] ** 2))
             for i, f in enumerate((500, 1000, 4000))]
    assert gains[0] == pytest.approx(0.0, abs=0.01)  # passband
    assert gains[1] == pytest.approx(-db(1 + 0.5 ** (2 * order)), abs=0.01)
    assert gains[2] == pytest.approx(-db(1 + 2.0 ** (2 * order)), abs=0.2)  # 2 x cutoff
    assert gains[2] <= -6.0 * order + 0.2


def test_noise_snr_and_colour() -> None:
    n = 64000
    x = np.stack([sine(440, n), sine(440, n, amp=0.05), sine(440, n), np.zeros(n, np.float32)])
    snr = [10.0, 30.0, 20.0, 20.0]
    y = A.add_noise(x, snr, [False, True, True, False], [0.1, 0.7, 0.99, 0.5]).numpy()
    noise = y - x
    for i in range(3):
        assert db(np.mean(x[i] ** 2) / np.mean(noise[i] ** 2)) == pytest.approx(snr[i], abs=0.05)
    np.testing.assert_array_equal(y[3], 0.0)  # a silent source gets no noise
    # Colour: white has equal power per Hz; pink equal power per octave (-3 dB / octave per Hz).
    f = np.fft.rfftfreq(n, 1 / SR)
    for i, slope_per_octave in ((0, 0.0), (2, -3.01)):
        s = np.abs(np.fft.rfft(noise[i])) ** 2
        bands = [s[(f >= lo) & (f < 2 * lo)].mean() for lo in (250, 500, 1000, 2000, 4000)]
        fitted = np.polyfit(np.arange(5), 10 * np.log10(bands), 1)[0]
        assert fitted == pytest.approx(slope_per_octave, abs=0.5)


# ----------------------------------------------------------------------------------------------
# Parameters, determinism, the switch


def _params(n: int, **fields) -> R.RealismParams:
    """Everything off for ``n`` rows, some fields set (float32/bool arrays [n])."""
    off = dict(drive_db=0.0, tone_hz=4000.0, threshold_db=0.0, ratio=1.0, attack_s=0.01,
               release_s=0.1, cutoff_hz=0.0, lp_order=8.0, noise_on=False, snr_db=30.0, pink=False,
               noise_u=0.0, send=0.0, rt60_s=0.0, predelay_s=0.0, room_u=0.0, bus_on=False,
               bus_threshold_db=0.0, bus_ratio=1.0, bus_attack_s=0.01, bus_release_s=0.1,
               bus_target_lufs=-14.0, bus_ceiling_db=-1.0, bus_max_gain_db=30.0)
    off.update(fields)
    return R.RealismParams(**{k: np.broadcast_to(np.asarray(v, bool if isinstance(off[k], bool)
                                                           else np.float32), (n,))
                              for k, v in off.items()})


def test_disabled_draws_nothing_and_paper_yaml_is_off() -> None:
    assert R.draw_realism(np.array([[1, 2]]), 6, EffectsConfig()) is None
    assert not R.enabled(load_config("paper").effects)
    assert R.enabled(load_config("demo").effects)


def test_draws_follow_probabilities_ranges_and_are_per_mix_for_the_room() -> None:
    seeds = np.stack([np.arange(4000), np.arange(4000) * 7 + 3], axis=1).astype(np.int64)
    p = R.draw_realism(seeds, 6, ALL_ON)
    p = R.RealismParams(*(np.asarray(v) for v in p))
    assert p.send.shape == (4000, 6)
    for on in (p.drive_db > 0, p.ratio > 1, p.cutoff_hz > 0, p.noise_on):
        assert on.mean() == pytest.approx(0.5, abs=0.02)
    room = p.rt60_s[:, 0] > 0
    assert room.mean() == pytest.approx(0.5, abs=0.03)
    for field in ("rt60_s", "predelay_s", "room_u"):  # one room per mix
        v = getattr(p, field)
        np.testing.assert_array_equal(v, np.repeat(v[:, :1], 6, axis=1))
    np.testing.assert_array_equal(p.send > 0, np.repeat(room[:, None], 6, axis=1))
    c = ALL_ON
    assert p.rt60_s[room].min() >= c.reverb.rt60_s[0] and p.rt60_s.max() <= c.reverb.rt60_s[1]
    assert p.send[room].min() >= c.reverb.send[0] and p.send.max() <= c.reverb.send[1]
    on = p.ratio > 1
    assert p.ratio[on].min() >= c.compressor.ratio[0] and p.ratio.max() <= c.compressor.ratio[1]
    assert p.attack_s.min() >= 0.002 - 1e-7 and p.release_s.max() <= 0.3 + 1e-6
    lp = p.cutoff_hz > 0
    assert (p.cutoff_hz[lp].min() >= c.band_limit.cutoff_hz[0]
            and p.cutoff_hz.max() <= c.band_limit.cutoff_hz[1])
    assert p.pink.mean() == pytest.approx(c.noise.p_pink, abs=0.02)


def test_draws_are_seeded_and_batch_independent() -> None:
    seeds = np.array([[5, 9], [123, 456], [7, 7]], np.int64)
    batch = R.draw_realism(seeds, 4, ALL_ON)
    again = R.draw_realism(seeds, 4, ALL_ON)
    for i in range(3):
        one = R.draw_realism(seeds[i], 4, ALL_ON)
        for a, b, c in zip(batch, one, again, strict=True):
            np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b))
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c))


def test_saturation_only_for_the_configured_instruments() -> None:
    cfg = dataclasses.replace(ALL_ON, saturation=SaturationConfig(
        probability=1.0, instruments=("electric_guitar",)))
    classes = np.zeros((2, 3, NUM_CLASSES), np.float32)
    classes[0, 1, CLASS_INDEX["electric_guitar"]] = 1
    classes[1, 2, CLASS_INDEX["electric_guitar"]] = 1
    classes[:, 0, CLASS_INDEX["piano"]] = 1
    p = R.draw_realism(np.array([[1, 2], [3, 4]]), 3, cfg, classes=classes)
    np.testing.assert_array_equal(np.asarray(p.drive_db) > 0, classes[..., CLASS_INDEX["electric_guitar"]] > 0)
    bad = dataclasses.replace(cfg, saturation=SaturationConfig(probability=1.0,
                                                               instruments=("kazoo",)))
    with pytest.raises(ValueError, match="effects.saturation.instruments"):
        R.draw_realism(np.array([[1, 2]]), 3, bad, classes=classes[:1])


def test_bad_config_values_name_the_key() -> None:
    for override, key in (("effects.reverb.rt60_s=[1.0,0.5]", "effects.reverb.rt60_s"),
                          ("effects.compressor.ratio=[0.5,2]", "effects.compressor.ratio"),
                          ("effects.noise.probability=2", "effects.noise.probability"),
                          ("effects.band_limit.order=0", "effects.band_limit.order"),
                          ("effects.saturation.loudness=1", "effects.saturation.loudness")):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            load_config("paper", [override])


def test_source_realism_is_deterministic_and_batch_independent() -> None:
    rng = np.random.default_rng(3)
    n, t = 12, 16000
    x = (0.2 * rng.standard_normal((n, t))).astype(np.float32)
    seeds = np.stack([np.arange(n), np.arange(n) + 100], 1).astype(np.int64)
    p = R.draw_realism(seeds, 1, ALL_ON)
    p = R.RealismParams(*(tf.reshape(v, [n]) for v in p))
    full = R.source_realism(x, p, sample_rate=SR).numpy()
    np.testing.assert_array_equal(full, R.source_realism(x, p, sample_rate=SR).numpy())
    for idx in ([0], [5, 2], list(range(6, 12))):
        part = R.source_realism(x[idx], R.RealismParams(*(tf.gather(v, idx) for v in p)),
                                sample_rate=SR).numpy()
        np.testing.assert_array_equal(part, full[idx])
    off = (np.asarray(p.drive_db) == 0) & (np.asarray(p.ratio) == 1) & ~np.asarray(p.noise_on)
    off &= np.asarray(p.cutoff_hz) == 0
    assert off.any() and not off.all()
    np.testing.assert_array_equal(full[off], x[off])  # rows that draw nothing are untouched


# ----------------------------------------------------------------------------------------------
# In the training pipeline


@pytest.fixture(scope="module")
def source_table(tmp_path_factory: pytest.TempPathFactory):
    return tone_table(tmp_path_factory.mktemp("realism"), seconds=6, noise=0.1)


def _stream(table, effects: EffectsConfig, *, start: int = 0, batches: int = 2) -> list:
    from keras_inst.config.io import to_dict
    from keras_inst.data.mixing import RecipeSampler
    from keras_inst.data.pipeline import training_dataset

    sets = [f"effects.{k}.probability={v['probability']}" for k, v in to_dict(effects).items()
            if isinstance(v, dict)]
    cfg = load_config("paper", ["training.transfer=scratch", "training.pretrained=null",
                                "audio.chunk_seconds=1.0", *sets])  # 1-s chunks: quick
    sampler = RecipeSampler(table, cfg.mixing, effects, seed=7)
    ds = training_dataset(cfg, sampler, start_example=start, batch_size=4, with_recipe=True)
    out = []
    for x, y, rec in ds.take(batches):
        out.append((x.numpy(), y.numpy(), {k: np.asarray(v) for k, v in rec.items()
                                           if k != "params"}, [np.asarray(v) for v in rec["params"]]))
    return out


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
def test_pipeline_realism_changes_the_audio_only(source_table) -> None:
    off = _stream(source_table, EffectsConfig())
    # Off with other ranges: still no realism graph, bit-identical.
    other = EffectsConfig(reverb=ReverbConfig(rt60_s=(0.5, 0.6)), noise=NoiseConfig(snr_db=(0, 1)),
                          mix_bus=MixBusConfig(target_lufs=(-9.0, -8.0)))
    for a, b in zip(off, _stream(source_table, other), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    on_cfg = dataclasses.replace(ALL_ON, saturation=SaturationConfig(
        probability=1.0, instruments=("electric_guitar",)))
    on = _stream(source_table, on_cfg)
    changed = 0
    for (xa, ya, ra, pa), (xb, yb, rb, pb) in zip(off, on, strict=True):
        np.testing.assert_array_equal(ya, yb)  # same labels, recipes and paper effects
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k])
        for u, v in zip(pa, pb, strict=True):
            np.testing.assert_array_equal(u, v)
        assert np.isfinite(xb).all() and np.abs(xb).max() <= 0.95 + 1e-6
        changed += sum(not np.allclose(a, b, atol=1e-4) for a, b in zip(xa, xb, strict=True))
    assert changed >= 6  # of 8 mixes; saturation alone hits every mix with a guitar
    # Seeded per example: the stream from example 4 on gives the same mixes.
    later = _stream(source_table, on_cfg, start=4, batches=1)
    np.testing.assert_array_equal(later[0][0], on[1][0])
