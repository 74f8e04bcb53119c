"""Per-source effects (paper §2.3), tested by measurement on both implementations.

"tf" is the batched TensorFlow chain :func:`keras_inst.augment.effects.apply_effects`; "numpy" is the
per-signal NumPy/SciPy reference :func:`keras_inst.augment.reference.apply_effects_np`.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import tensorflow as tf

from keras_inst.augment import effects as E
from keras_inst.augment import reference as EN
from keras_inst.config.schema import EffectsConfig

SR = 16000
T = 64000
CFG = EffectsConfig()
T_IN = E.required_input_samples(T, CFG)
IMPLS = ("tf", "numpy")
EffectParams = EN.EffectParams
# hash_uniform([3, 9], 3): the effect-parameter stream of a seed, pinned.
GOLDEN_HASH_3_9 = np.float32([0.394514799118042, 0.812825083732605, 0.12120044231414795])


def params(n: int = 1, **fields: float | bool) -> EffectParams:
    """Identity parameters for ``n`` items with some fields overridden (numpy arrays [n])."""
    base = EN.IDENTITY._replace(**fields)
    return EN.EffectParams(*(np.full(n, v, dtype=bool if isinstance(v, bool) else np.float32)
                             for v in base))


def run(impl: str, x: np.ndarray, p: EffectParams, out_samples: int = T) -> np.ndarray:
    """Apply the full chain with implementation ``impl`` to ``x [n, T_in]`` -> ``[n, out]``."""
    if impl == "tf":
        return E.apply_effects(tf.constant(x, tf.float32), p, out_samples=out_samples).numpy()
    return np.stack([EN.apply_effects_np(x[i], EN.params_item(p, i), out_samples=out_samples)
                     for i in range(len(x))])


def noise(n: int = 1, length: int = T_IN, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((n, length))).astype(np.float32)


def sine(freq: float, length: int = T_IN) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(length) / SR)).astype(np.float32)[None]


def clicks(period: int, length: int = T_IN) -> np.ndarray:
    x = np.zeros(length, np.float32)
    x[period // 2 :: period] = 1.0
    return x[None]


def band_gain_db(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Energy ratio output/input (dB) of the FFT bins in [lo, hi] Hz."""
    fx, fy = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    sel = (f >= lo) & (f <= hi)
    return float(10 * np.log10(fy[sel].sum() / fx[sel].sum()))


def peak_freq(y: np.ndarray) -> float:
    """Frequency of the spectral peak: Hann window, 8x zero padding, parabolic interpolation."""
    y = y[4096:-4096]
    n = 8 * len(y)
    mag = np.log(np.abs(np.fft.rfft(y * np.hanning(len(y)), n)) + 1e-12)
    k = int(np.argmax(mag))
    a, b, c = mag[k - 1 : k + 2]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / n


def period(y: np.ndarray, expected: float) -> float:
    """Click period (samples): onsets are peaks of the 256-sample energy envelope; the period is
    the slope of a line fitted to onset time vs. click number (a click's PV-smeared position
    jitters by up to a hop, so single intervals are too noisy). Missed clicks are bridged by
    rounding each interval to a whole number of expected periods, so an unchanged period
    (off by a factor 0.8 or 1.25) still fails."""
    env = np.convolve(y**2, np.ones(256), mode="same")
    peaks, _ = scipy.signal.find_peaks(env, distance=int(0.6 * expected), height=0.05 * env.max())
    if len(peaks) < 8:
        raise AssertionError(f"found only {len(peaks)} clicks")
    number = np.concatenate([[0], np.cumsum(np.maximum(1, np.round(np.diff(peaks) / expected)))])
    return float(np.polyfit(number, peaks, 1)[0])


# ---------------------------------------------------------------------------------------------
# RBJ coefficients and the FFT-domain EQ


def test_rbj_tf_matches_numpy_and_is_identity_at_0db():
    rng = np.random.default_rng(1)
    f0, db, q = rng.uniform(30, 7000, 50), rng.uniform(-15, 15, 50), rng.uniform(0.3, 5, 50)
    for kind in EN.FILTER_KINDS:
        b, a = EN.rbj_biquad(kind, f0, db, q=q, sample_rate=SR)
        bt, at = E.rbj_biquad_tf(kind, f0, db, q=q, sample_rate=SR)
        np.testing.assert_allclose(bt.numpy(), b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(at.numpy(), a, rtol=1e-12, atol=1e-12)
        b0, a0 = EN.rbj_biquad(kind, f0, 0.0, q=q, sample_rate=SR)
        np.testing.assert_allclose(b0, a0, rtol=1e-12)
    # Golden value worked by hand from the cookbook: peaking 1 kHz, +6 dB, Q 1 at 16 kHz.
    b, a = EN.rbj_biquad("peaking", 1000.0, 6.0, q=1.0, sample_rate=SR)
    np.testing.assert_allclose(b / a[0], [1.1187, -1.6273, 0.6427], atol=1e-4)
    np.testing.assert_allclose(a / a[0], [1.0, -1.6273, 0.7614], atol=1e-4)


@pytest.mark.parametrize(("kind", "f_full", "f_half"), [("low_shelf", 0.0, None),
                                                       ("high_shelf", SR / 2, None),
                                                       ("peaking", 1500.0, None)])
def test_rbj_gains_at_characteristic_frequencies(kind, f_full, f_half):
    """Cookbook properties: full gain at DC (low shelf), Nyquist (high shelf) and f0 (peaking);
    half the dB gain at f0 for shelves; unity at the far end."""
    f0, db = 1500.0, 7.0
    b, a = EN.rbj_biquad(kind, f0, db, q=2.0 if kind == "peaking" else EN.SHELF_Q, sample_rate=SR)
    h_db = lambda f: 20 * np.log10(np.abs(scipy.signal.freqz(b, a, worN=[f], fs=SR)[1][0]))  # noqa: E731
    assert abs(h_db(f_full) - db) < 1e-9
    if kind != "peaking":
        assert abs(h_db(f0) - db / 2) < 1e-9
        assert abs(h_db(SR / 2 if kind == "low_shelf" else 0.0)) < 1e-9
    else:
        assert abs(h_db(0.0)) < 1e-9 and abs(h_db(SR / 2)) < 1e-9
    # The TF response (d-basis, float32) agrees with freqz.
    bt, at = E.rbj_biquad_tf(kind, [f0], [db], q=[2.0 if kind == "peaking" else EN.SHELF_Q],
                             sample_rate=SR)
    n = 4096
    h = E.biquad_response(bt, at, n).numpy()[0]
    ref = scipy.signal.freqz(b, a, worN=n // 2 + 1, whole=False, include_nyquist=True)[1]
    assert np.abs(h - ref).max() < 1e-5 * np.abs(ref).max()


def test_rbj_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown filter kind"):
        EN.rbj_biquad("notch", 1000.0, 3.0, sample_rate=SR)
    with pytest.raises(ValueError, match="f0_hz"):
        EN.rbj_biquad("peaking", 9000.0, 3.0, sample_rate=SR)


def test_fft_eq_equals_lfilter_cascade():
    """All three filters at the configured extremes: equal to lfilter up to float32 rounding."""
    p = params(4, low_shelf_hz=80.0, low_shelf_db=12.0, high_shelf_hz=6000.0, high_shelf_db=-12.0,
               peak_hz=200.0, peak_db=12.0, peak_q=3.0)
    p = p._replace(low_shelf_db=np.float32([12, -12, 5, 0]), peak_q=np.float32([3, 0.5, 1, 3]),
                   peak_db=np.float32([12, -12, -3, 12]), high_shelf_db=np.float32([-12, 12, 0, 7]))
    x = noise(4, T) * 10  # unit variance
    y = E.equalize(tf.constant(x), p, sample_rate=SR).numpy()
    for i in range(4):
        ref = EN.equalize_np(x[i], EN.params_item(p, i), sample_rate=SR)
        assert np.abs(y[i] - ref).max() < 2e-5 * np.abs(ref).max()


@pytest.mark.parametrize("impl", IMPLS)
def test_gain(impl):
    x = noise(2)
    y = run(impl, x, params(2)._replace(gain_db=np.float32([-6.5, 2.5])))
    for i, db in enumerate((-6.5, 2.5)):
        measured = 20 * np.log10(np.sqrt(np.mean(y[i] ** 2)) / np.sqrt(np.mean(x[i, :T] ** 2)))
        assert abs(measured - db) < 0.01


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("db", [9.0, -9.0])
def test_low_shelf(impl, db):
    x = noise(1)
    y = run(impl, x, params(low_shelf_hz=200.0, low_shelf_db=db))[0]
    assert abs(band_gain_db(x[0, :T], y, 20, 80) - db) < 1.0
    assert abs(band_gain_db(x[0, :T], y, 3000, 6000)) < 0.5


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("db", [9.0, -9.0])
def test_high_shelf(impl, db):
    x = noise(1)
    y = run(impl, x, params(high_shelf_hz=2000.0, high_shelf_db=db))[0]
    assert abs(band_gain_db(x[0, :T], y, 5000, 7900) - db) < 1.0
    assert abs(band_gain_db(x[0, :T], y, 50, 500)) < 0.5


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("db", [9.0, -9.0])
def test_peaking(impl, db):
    x = noise(1)
    y = run(impl, x, params(peak_hz=1000.0, peak_db=db, peak_q=1.0))[0]
    assert abs(band_gain_db(x[0, :T], y, 900, 1100) - db) < 1.0
    assert abs(band_gain_db(x[0, :T], y, 20, 200)) < 0.5
    assert abs(band_gain_db(x[0, :T], y, 5000, 7900)) < 0.5


# ---------------------------------------------------------------------------------------------
# Pitch shift and time stretch


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("semitones", [-3.0, -1.0, 2.0, 3.0])
def test_pitch_shift_moves_a_sine(impl, semitones):
    y = run(impl, sine(440.0), params(semitones=semitones))
    assert y.shape == (1, T)
    expected = 440.0 * 2 ** (semitones / 12)
    assert abs(peak_freq(y[0]) / expected - 1) < 0.005
    assert abs(np.sqrt(np.mean(y[0, 4096:-4096] ** 2)) / np.sqrt(0.125) - 1) < 0.05  # level kept


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_changes_tempo_not_pitch(impl, rate):
    p0 = 3000  # click period, samples
    y = run(impl, np.concatenate([clicks(p0), sine(440.0)]), params(2, rate=rate))
    assert y.shape == (2, T)
    assert abs(period(y[0], p0 / rate) / (p0 / rate) - 1) < 0.02
    assert abs(peak_freq(y[1]) / 440.0 - 1) < 0.005


@pytest.mark.parametrize("impl", IMPLS)
def test_stretch_and_shift_together(impl):
    p0, rate, semitones = 3000, 1.25, 2.0
    y = run(impl, np.concatenate([clicks(p0), sine(440.0)]), params(2, rate=rate, semitones=semitones))
    assert abs(period(y[0], p0 / rate) / (p0 / rate) - 1) < 0.02
    assert abs(peak_freq(y[1]) / (440.0 * 2 ** (semitones / 12)) - 1) < 0.005


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_stretched_output_starts_at_input_start(impl, rate):
    """Contract y[t] <-> x[t * rate]: a tone starting at 1 s in x starts at 1/rate s in y."""
    x = sine(440.0) * (np.arange(T_IN) >= SR)
    y = run(impl, x, params(rate=rate))[0]
    env = np.sqrt(np.convolve(y**2, np.ones(256) / 256, mode="same"))  # 0.35 on the tone
    onset = int(np.argmax(env > 0.2))
    assert abs(onset - SR / rate) < 400  # PV frames smear onsets by up to n_fft / 2 = 512


@pytest.mark.parametrize("impl", IMPLS)
def test_identity_parameters_pass_through(impl):
    x = noise(3)
    y = run(impl, x, params(3))
    assert np.abs(y - x[:, :T]).max() < 1e-6


def test_eq_order_flag_matters_only_with_pitch_time():
    x = noise(1)
    for fields, differs in (({"semitones": 2.0}, True), ({}, False)):
        ys = [E.apply_effects(x, params(low_shelf_db=9.0, eq_first=f, **fields), out_samples=T)
              for f in (True, False)]
        diff = float(tf.reduce_max(tf.abs(ys[0] - ys[1])))
        assert (diff > 1e-3) if differs else (diff < 1e-6)


def test_apply_effects_rejects_short_input():
    with pytest.raises(ValueError, match="T_in >= out_samples"):
        E.apply_effects(tf.zeros([2, 100]), E.identity_params(2), out_samples=200)


# ---------------------------------------------------------------------------------------------
# Parameter sampling


def test_sample_effect_params_rates_ranges_and_musical():
    n = 20000
    musical = np.arange(n) % 4 == 0
    p = E.sample_effect_params(7, n, CFG, musical=tf.constant(musical))
    p = EN.EffectParams(*(v.numpy() for v in p))
    non = ~musical

    def check_rate(on: np.ndarray, prob: float) -> None:
        sigma = np.sqrt(prob * (1 - prob) / len(on))
        assert abs(on.mean() - prob) < 4 * sigma + 1e-12

    check_rate(p.gain_db != 0, CFG.p_gain)
    check_rate(p.low_shelf_db != 0, CFG.p_low_shelf)
    check_rate(p.high_shelf_db != 0, CFG.p_high_shelf)
    check_rate(p.peak_db != 0, CFG.p_peaking)
    check_rate(p.semitones[non] != 0, CFG.p_pitch_shift)
    check_rate(p.rate[non] != 1, CFG.p_time_stretch)
    check_rate(p.eq_first, 0.5)
    assert np.all(p.semitones[musical] == 0) and np.all(p.rate[musical] == 1)
    eps = 1e-4
    for values, (lo, hi) in ((p.gain_db[p.gain_db != 0], CFG.gain_db),
                             (p.low_shelf_hz, CFG.low_shelf_hz),
                             (p.low_shelf_db[p.low_shelf_db != 0], CFG.low_shelf_db),
                             (p.high_shelf_hz, CFG.high_shelf_hz),
                             (p.high_shelf_db[p.high_shelf_db != 0], CFG.high_shelf_db),
                             (p.peak_hz, CFG.peaking_hz), (p.peak_q, CFG.peaking_q),
                             (p.peak_db[p.peak_db != 0], CFG.peaking_db),
                             (p.semitones[p.semitones != 0], CFG.pitch_semitones),
                             (p.rate[p.rate != 1], CFG.stretch_rate)):
        assert values.min() >= lo - eps * (1 + abs(lo)) and values.max() <= hi + eps * (1 + abs(hi))
        assert values.max() - values.min() > 0.9 * (hi - lo)  # the whole range is used
    # Log-uniform stretch rate: as many draws below 1 as above (0.8 .. 1.25 is symmetric).
    on = p.rate[p.rate != 1]
    check_rate(on < 1, 0.5)


def test_sample_effect_params_deterministic_per_seed():
    a = E.sample_effect_params([3, 9], 64, CFG, musical=False)
    b = E.sample_effect_params([3, 9], 64, CFG, musical=False)
    c = E.sample_effect_params([3, 10], 64, CFG, musical=False)
    for va, vb in zip(a, b, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    assert not np.array_equal(a.gain_db.numpy(), c.gain_db.numpy())
    m = E.sample_effect_params(1, 500, CFG, musical=True)
    assert np.all(m.semitones.numpy() == 0) and np.all(m.rate.numpy() == 1)


def test_hash_uniform_is_uniform_independent_and_batchable():
    seeds = tf.constant([[0, 1], [0, 2], [7, 1]], tf.int64)
    u = E.hash_uniform(seeds, 200_000).numpy()  # [3, 200000]
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    for row in u:
        assert scipy.stats.kstest(row, "uniform").pvalue > 1e-4
        assert abs(np.corrcoef(row[:-1], row[1:])[0, 1]) < 0.01  # consecutive values
    assert abs(np.corrcoef(u[0], u[1])[0, 1]) < 0.01 and abs(np.corrcoef(u[0], u[2])[0, 1]) < 0.01
    # One seed at a time gives the same numbers as the batch (the pipeline relies on it).
    np.testing.assert_array_equal(E.hash_uniform(seeds[1], 200_000).numpy(), u[1])
    # Golden values: the stream of a seed never changes between versions unnoticed.
    np.testing.assert_allclose(E.hash_uniform(tf.constant([3, 9], tf.int64), 3).numpy(),
                               GOLDEN_HASH_3_9, rtol=0, atol=0)


def test_sample_effect_params_batched_equals_per_seed():
    seeds = tf.constant([[1, 2], [3, 4], [5, 6]], tf.int64)
    musical = tf.constant([False, True, False])
    batched = E.sample_effect_params(seeds, 6, CFG, musical=musical[:, None])
    for i in range(3):
        one = E.sample_effect_params(seeds[i], 6, CFG, musical=musical[i])
        for vb, vo in zip(batched, one, strict=True):
            np.testing.assert_array_equal(vb.numpy()[i], vo.numpy())
    assert np.all(batched.semitones.numpy()[1] == 0) and np.all(batched.rate.numpy()[1] == 1)


def test_int16_input_with_scale_equals_scaled_float_input():
    """apply_effects casts per group and folds ``scale`` into the gain: same result as scaling
    the float signal first, for every group (vocoder, EQ only, gain only)."""
    rng = np.random.default_rng(5)
    x16 = rng.integers(-20000, 20000, (4, T_IN)).astype(np.int16)
    scale = np.float32([1 / 32768, 2 / 32768, 0.5 / 32768, 1 / 32768])
    p = params(4, gain_db=-3.0)
    p = p._replace(semitones=np.float32([2.0, 0, 0, 0]), rate=np.float32([1, 1.1, 1, 1]),
                   low_shelf_db=np.float32([6, 0, -6, 0]))
    a = E.apply_effects(x16, p, out_samples=T, scale=scale).numpy()
    b = E.apply_effects(x16.astype(np.float32) * scale[:, None], p, out_samples=T).numpy()
    assert np.abs(a - b).max() < 1e-5 * np.abs(b).max()


# ---------------------------------------------------------------------------------------------
# Graph mode


def test_runs_in_tf_data_map_and_tf_function():
    x = tf.constant(noise(6))

    def augment(i: tf.Tensor) -> tf.Tensor:
        p = E.sample_effect_params(tf.stack([tf.constant(5, tf.int64), i]), 6, CFG,
                                   musical=tf.constant([True, False] * 3))
        return E.apply_effects(x, p, out_samples=T)

    ds = tf.data.Dataset.range(3).map(augment, num_parallel_calls=2, deterministic=True)
    outs = [y.numpy() for y in ds]
    assert all(o.shape == (6, T) and np.isfinite(o).all() for o in outs)
    for i, o in enumerate(outs):  # graph mode equals eager mode
        np.testing.assert_allclose(augment(tf.constant(i, tf.int64)).numpy(), o, atol=1e-6)
    # A dynamic batch size also traces (input_signature with None).
    dyn = tf.function(lambda x, p: E.apply_effects(x, p, out_samples=T),
                      input_signature=[tf.TensorSpec([None, T_IN], tf.float32),
                                       EN.EffectParams(*([tf.TensorSpec([None], tf.float32)] * 10
                                                         + [tf.TensorSpec([None], tf.bool)]))])
    p = E.sample_effect_params(1, 6, CFG)
    np.testing.assert_allclose(dyn(x, p).numpy(), E.apply_effects(x, p, out_samples=T).numpy(),
                               atol=1e-6)
    assert dyn(x[:0], E.identity_params(0)).shape == (0, T)
