"""The realism mix bus (``effects.mix_bus``, beyond the paper), tested by measurement: loudness
against BS.1770, the target reached, the limiter's ceiling and release, the bus compressor's
static curve and time constants, the NumPy reference, the per-mix draws and the off switch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_inst.augment import acoustics as A
from keras_inst.augment import realism as R
from keras_inst.augment.params import LIMIT_RELEASE_S, k_weighting
from keras_inst.augment.reference import loudness_np, mix_bus_np
from keras_inst.config.io import load_config
from keras_inst.config.schema import (
    CompressorConfig,
    EffectsConfig,
    MixBusConfig,
    NoiseConfig,
    ReverbConfig,
    SaturationConfig,
)
from keras_inst.corpus.synth import integrated_loudness

SR = 16000
BUS_ON = EffectsConfig(
    reverb=ReverbConfig(probability=0.5), compressor=CompressorConfig(probability=0.5),
    saturation=SaturationConfig(probability=0.5), noise=NoiseConfig(probability=0.5),
    mix_bus=MixBusConfig(probability=0.5))
T = np.arange(4 * SR) / SR


def sine(freq: float, amp: float = 1.0) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * T)).astype(np.float32)


def bus(x: np.ndarray, *, threshold_db: float = 0.0, ratio: float = 1.0, attack_s: float = 0.01,
        release_s: float = 0.1, target_lufs: float = -14.0, ceiling_db: float = -1.0,
        max_gain_db: float = 30.0) -> np.ndarray:
    """``A.mix_bus`` of rows ``x [B, T]``, the same parameters on every row."""
    b = len(x)
    return A.mix_bus(x, [threshold_db] * b, [ratio] * b, [attack_s] * b, [release_s] * b,
                     [target_lufs] * b, [ceiling_db] * b, [max_gain_db] * b).numpy()


def block_db(x: np.ndarray, block: int = 256) -> np.ndarray:
    """Level (dB) per block of whole periods of the test sines."""
    return 10 * np.log10(np.mean(x[: len(x) // block * block].reshape(-1, block) ** 2, 1))


def drums(seed: int = 0) -> np.ndarray:
    """Transients: noise bursts with 30-ms decays every 0.25 s (crest factor ~20 dB) over a
    quiet sine."""
    env = np.exp(-(T % 0.25) / 0.03)
    noise = np.random.default_rng(seed).standard_normal(T.size)
    return (0.05 * noise * env + sine(330, 0.005)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Loudness and the limiter


def test_k_weighting_is_bs1770s_and_loudness_matches_integrated_loudness() -> None:
    # ITU-R BS.1770-4's published 48 kHz coefficients (shelf, then high-pass)
    spec = [([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585]),
            ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])]
    for (b, a), (b2, a2) in zip(k_weighting(48000), spec, strict=True):
        np.testing.assert_allclose(b, b2, atol=1e-12)
        np.testing.assert_allclose(a, a2, atol=1e-12)
    rng = np.random.default_rng(1)
    steady = np.stack([sine(440, 0.1), sine(100, 0.3) + sine(3000, 0.05),
                       (0.02 * rng.standard_normal(T.size)).astype(np.float32)])
    got = A.loudness(steady).numpy()
    for x, lufs in zip(steady, got, strict=True):
        assert lufs == pytest.approx(integrated_loudness(x, SR), abs=0.05)  # gating: no effect
        assert lufs == pytest.approx(loudness_np(x, sample_rate=SR), abs=1e-4)
    # K-weighting: +4 dB shelf at high frequencies, about 0 dB at 1 kHz, a high-pass at 38 Hz.
    pair = A.loudness(np.stack([sine(1000, 0.1), sine(6000, 0.1), sine(20, 0.1)])).numpy()
    assert pair[1] - pair[0] == pytest.approx(3.3, abs=0.4)
    assert pair[2] < pair[0] - 10.0


@pytest.mark.parametrize("target", [-14.0, -10.0, -8.0])
def test_bus_raises_a_quiet_steady_mix_to_the_target(target: float) -> None:
    x = np.stack([sine(220, 0.01) + sine(660, 0.005),  # -40 LUFS: raised by ~30 dB
                  sine(440, 0.05)])
    for ratio in (1.0, 3.0):
        y = bus(x, threshold_db=-3.0, ratio=ratio, target_lufs=target, max_gain_db=40.0)
        for row in y:
            assert integrated_loudness(row, SR) == pytest.approx(target, abs=0.5)
            assert np.abs(row).max() <= 10 ** (-1 / 20) + 1e-6


def test_gain_is_capped_so_near_silence_stays_quiet() -> None:
    x = sine(440, 1e-4)[None]
    y = bus(x, target_lufs=-10.0, max_gain_db=30.0)
    gain = 10 * np.log10(np.mean(y**2) / np.mean(x**2))
    assert gain == pytest.approx(30.0, abs=1e-3)
    np.testing.assert_array_equal(bus(np.zeros((1, T.size), np.float32)), 0.0)


@pytest.mark.parametrize("ceiling", [-1.0, -3.0])
def test_limiter_holds_the_ceiling_on_transients_without_clipping(ceiling: float) -> None:
    x = np.stack([drums(0), drums(1)])
    y = bus(x, target_lufs=-8.0, ceiling_db=ceiling)
    c = 10 ** (ceiling / 20)
    assert np.abs(y).max() <= c * (1 + 1e-6)
    # The loudness gain alone would overshoot the ceiling by > 6 dB: the limiter worked, ...
    gain = 10 ** ((-8.0 - A.loudness(x).numpy()) / 20)
    assert np.all(np.abs(x).max(1) * gain > 2 * c)
    # ... by gain, not by clipping: few samples sit at the ceiling, and the output's bursts
    # keep their shape (the gain moves slowly).
    assert np.mean(np.abs(y) >= c * (1 - 1e-4)) < 1e-3
    limited = A.limit(x * gain[:, None].astype(np.float32), [ceiling] * 2).numpy()
    np.testing.assert_allclose(limited, y, atol=1e-6)
    ratio = limited / np.where(np.abs(x) > 1e-3, x * gain[:, None], np.nan)
    step = np.abs(np.diff(ratio, axis=1))
    assert np.nanmax(step) < 0.03  # <= 1/65 per sample from the box smoothing (plus rounding)


def test_limiter_looks_ahead_and_releases_at_its_time_constant() -> None:
    # A steady sine under the ceiling with one 50-ms burst 12 dB over it.
    x = sine(1000, 0.5)
    burst = (T >= 1.0) & (T < 1.05)
    x = np.where(burst, 4 * x, x).astype(np.float32)
    y = A.limit(x[None], [0.0]).numpy()[0]
    assert np.abs(y).max() <= 1.0 + 1e-6
    onset = np.flatnonzero(burst)[0]
    np.testing.assert_array_equal(y[: onset - 80], x[: onset - 80])  # untouched well before
    assert np.abs(y[onset: onset + 16]).max() <= 1.0 + 1e-6  # the first peaks are already down
    g = block_db(y[onset:], 16) - block_db(x[onset:], 16)  # 1-ms blocks of a 1-kHz sine
    after = np.arange(len(g)) * 16 / SR
    sel = (after > 0.06) & (g < -1.0) & (g > -9.0)  # the recovery after the burst
    slope = np.polyfit(after[sel], g[sel], 1)[0]
    assert slope == pytest.approx(20 / np.log(10) / LIMIT_RELEASE_S, rel=0.05)


# ----------------------------------------------------------------------------------------------
# The bus compressor


def test_bus_compression_static_curve_slope_is_one_over_ratio() -> None:
    # Level steps of 4 dB, 0.5 s each; the limiter never acts (quiet target, ceiling 0 dBFS).
    levels_db = np.arange(8) * 4.0 - 40.0
    env = np.repeat(10 ** (levels_db / 20), SR // 2)
    x = (sine(1000) * env).astype(np.float32)[None]
    thr_abs = 10 * np.log10(np.mean(x**2))  # threshold 0 dB re the RMS
    for ratio in (2.0, 4.0):
        y = bus(x, threshold_db=0.0, ratio=ratio, target_lufs=-30.0, ceiling_db=0.0)[0]
        out = np.array([10 * np.log10(np.mean(seg[4000:-2000] ** 2))
                        for seg in y.reshape(8, -1)])
        in_db = levels_db - 3.01  # a sine's RMS
        above = in_db > thr_abs + 1.0
        below = in_db < thr_abs - 1.0
        assert above.sum() >= 2 and below.sum() >= 2
        assert np.polyfit(in_db[above], out[above], 1)[0] == pytest.approx(1 / ratio, abs=0.01)
        assert np.polyfit(in_db[below], out[below], 1)[0] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(("loud_first", "tau"), [(True, 0.1), (True, 0.3), (False, 0.1)])
def test_bus_compressor_attack_and_release_time_constants(loud_first: bool, tau: float) -> None:
    env = np.where((T < 2.0) == loud_first, 1.0, 0.01)
    x = (sine(1000, 0.5) * env).astype(np.float32)[None]
    release, attack = (tau, 0.005) if loud_first else (0.1, tau)
    y = bus(x, threshold_db=-18.0, ratio=8.0, attack_s=attack, release_s=release,
            target_lufs=-40.0, ceiling_db=0.0)[0]
    g = block_db(y) - block_db(x[0])  # gain per block: reduction plus a constant loudness gain
    t_blk = np.arange(len(g)) * 256 / SR
    steady_loud = g[(t_blk > 1.0) & (t_blk < 1.8)].mean() if loud_first else g[-20:].mean()
    steady_quiet = g[-20:].mean() if loud_first else g[(t_blk > 1.0) & (t_blk < 1.8)].mean()
    assert steady_quiet - steady_loud > 15.0  # deep reduction while loud
    sel = ((g > steady_loud + 2.0) & (g < steady_quiet - 2.0) & (t_blk > 2.0))
    assert sel.sum() >= 5
    slope = np.polyfit(t_blk[sel], g[sel], 1)[0]
    assert abs(slope) == pytest.approx(20 / np.log(10) / tau, rel=0.03)


# ----------------------------------------------------------------------------------------------
# Reference, determinism, draws, the switch


def test_tf_matches_the_numpy_reference() -> None:
    rng = np.random.default_rng(4)
    x = np.stack([drums(2), sine(220, 0.05) * (1 + np.sign(np.sin(2 * np.pi * 0.7 * T))) / 2,
                  (0.03 * rng.standard_normal(T.size)).astype(np.float32), sine(100, 1e-4)])
    x = x.astype(np.float32)
    p = dict(threshold_db=[-6.0, -3.0, -9.0, 0.0], ratio=[3.0, 2.0, 4.0, 1.5],
             attack_s=[0.01, 0.005, 0.02, 0.01], release_s=[0.1, 0.3, 0.05, 0.2],
             target_lufs=[-8.0, -10.0, -14.0, -9.0], ceiling_db=[-1.0, -1.0, -2.0, -1.0],
             max_gain_db=[30.0] * 4)
    got = A.mix_bus(x, **p).numpy()
    for i in range(4):
        want = mix_bus_np(x[i], *(v[i] for v in p.values()), sample_rate=SR)
        assert np.abs(got[i] - want).max() < 1e-4
        assert np.abs(got[i]).max() > 1e-3  # not trivially silent (row 3: the gain cap)


def test_draws_are_per_mix_in_range_and_leave_the_other_draws_alone() -> None:
    seeds = np.stack([np.arange(4000), np.arange(4000) * 5 + 1], axis=1).astype(np.int64)
    p = R.RealismParams(*(np.asarray(v) for v in R.draw_realism(seeds, 6, BUS_ON)))
    off = R.RealismParams(*(np.asarray(v) for v in R.draw_realism(
        seeds, 6, dataclasses.replace(BUS_ON, mix_bus=MixBusConfig()))))
    for name in R.RealismParams._fields:
        v = getattr(p, name)
        if name.startswith("bus_"):  # one bus per mix
            np.testing.assert_array_equal(v, np.repeat(v[:, :1], 6, axis=1))
        else:
            np.testing.assert_array_equal(v, getattr(off, name))
    assert p.bus_on[:, 0].mean() == pytest.approx(0.5, abs=0.03) and not off.bus_on.any()
    c = BUS_ON.mix_bus
    for name, (lo, hi), scale in (("bus_threshold_db", c.threshold_db, 1.0),
                                  ("bus_ratio", c.ratio, 1.0), ("bus_attack_s", c.attack_ms, 1e3),
                                  ("bus_release_s", c.release_ms, 1e3),
                                  ("bus_target_lufs", c.target_lufs, 1.0)):
        v = getattr(p, name)[:, 0] * scale
        assert v.min() >= lo - 1e-4 and v.max() <= hi + 1e-4
        assert v.max() - v.min() > 0.9 * (hi - lo)
    np.testing.assert_array_equal(p.bus_ceiling_db, c.ceiling_db)
    one = R.draw_realism(seeds[7], 6, BUS_ON)
    for a, b in zip(p, one, strict=True):
        np.testing.assert_array_equal(a[7], np.asarray(b))


def _mixes(cfg: EffectsConfig, y: np.ndarray, mix_of: np.ndarray, seeds: np.ndarray
           ) -> tuple[np.ndarray, R.RealismParams]:
    p = R.draw_realism(seeds, 2, cfg)
    rows = R.RealismParams(*(tf.reshape(v, [-1]) for v in p))  # [B * 2]: two sources a mix
    return R.mix_with_realism(y, mix_of, rows, sample_rate=SR).numpy(), p


def test_probability_zero_is_bit_identical_and_a_mix_is_batch_independent() -> None:
    rng = np.random.default_rng(5)
    b = 12
    y = (0.05 * rng.standard_normal((2 * b, 2 * SR))).astype(np.float32)
    mix_of = np.repeat(np.arange(b), 2)
    seeds = np.stack([np.arange(b) + 11, np.arange(b) * 3], 1).astype(np.int64)
    plain, _ = _mixes(dataclasses.replace(BUS_ON, mix_bus=MixBusConfig()), y, mix_of, seeds)
    half, p = _mixes(BUS_ON, y, mix_of, seeds)
    on = np.asarray(p.bus_on)[:, 0]
    assert on.any() and not on.all()
    np.testing.assert_array_equal(half[~on], plain[~on])  # mixes without the bus: untouched
    assert all(not np.allclose(a, b, atol=1e-3) for a, b in zip(half[on], plain[on], strict=True))
    loud = A.loudness(half[on]).numpy()
    assert np.all(loud > -15.0) and np.abs(half[on]).max() <= 10 ** (-1 / 20) + 1e-6
    # An item's mix does not depend on its batch.
    for idx in ([0], [3, 4, 5], list(range(7, 12))):
        rows = np.concatenate([[2 * i, 2 * i + 1] for i in idx])
        part, _ = _mixes(BUS_ON, y[rows], np.repeat(np.arange(len(idx)), 2), seeds[idx])
        np.testing.assert_array_equal(part, half[idx])
    # Only the bus's probability 0 and everything else off: no realism graph at all.
    assert R.draw_realism(seeds, 2, EffectsConfig(mix_bus=MixBusConfig(target_lufs=(-9, -8)))) is None


def test_mix_bus_is_off_in_paper_and_demo_and_bad_values_name_the_key() -> None:
    for name in ("paper", "demo"):
        assert load_config(name).effects.mix_bus.probability == 0.0
    for override, key in (("effects.mix_bus.ratio=[0.5,2]", "effects.mix_bus.ratio"),
                          ("effects.mix_bus.ceiling_db=1.0", "effects.mix_bus.ceiling_db"),
                          ("effects.mix_bus.target_lufs=[-8,-14]", "effects.mix_bus.target_lufs"),
                          ("effects.mix_bus.probability=-0.1", "effects.mix_bus.probability"),
                          ("effects.mix_bus.attack_ms=[0,5]", "effects.mix_bus.attack_ms")):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            load_config("paper", [override])
