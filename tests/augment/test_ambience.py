"""Non-music ambience beyond the paper (:mod:`keras_inst.augment.ambience`), tested by
measurement: each texture's character (rain's impulsiveness above surf's, surf's swell
frequency, rumble's low energy, no tonal peak in any), the SNR / level of the beds, the draws
and their seeding, and in the training stream: the frequency of negatives, their exact zero
labels, the other examples unchanged, and the stream bit-identical when ambience is off."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import tensorflow as tf
from cache_corpus import tone_table  # tests/ is on sys.path under pytest

from keras_inst.augment import ambience as A
from keras_inst.augment.effects import uniform_in
from keras_inst.config.io import load_config
from keras_inst.config.schema import AMBIENCE_TEXTURES, AmbienceConfig, EffectsConfig

SR = 16000
ON = AmbienceConfig(probability=1.0)


def seeds(n: int, offset: int = 0) -> np.ndarray:
    i = np.arange(offset, offset + n)
    return np.stack([i * 7919 + 11, i * 104729 + 3], 1).astype(np.int64)


def beds(kind: str, n: int, t: int, *, sample_rate: int = SR, offset: int = 0):
    """``n`` beds of one texture ``[n, t]`` and their params (NumPy)."""
    p = A.draw_ambience(seeds(n, offset), np.ones(n, np.int32), ON)
    p = p._replace(kind=tf.fill([n], AMBIENCE_TEXTURES.index(kind)))
    x = A.ambience_beds(p, t, sample_rate=sample_rate).numpy()
    return x, A.AmbienceParams(*(np.asarray(v) for v in p))


def crest(x: np.ndarray) -> np.ndarray:
    return np.abs(x).max(-1) / np.sqrt(np.mean(x**2, -1))


def kurtosis(x: np.ndarray) -> np.ndarray:
    return np.mean(x**4, -1) / np.mean(x**2, -1) ** 2


def tonal_peak_db(x: np.ndarray) -> float:
    """Largest excess (dB) of a Welch PSD bin (3.9 Hz) over the median of its +-4 neighbours,
    over the bins from 40 Hz to 7.5 kHz within 60 dB of the PSD's maximum (a tone stands out
    by tens of dB; noise through smooth filters, by its estimate's scatter only)."""
    f, psd = scipy.signal.welch(x, SR, nperseg=4096)
    local = scipy.ndimage.median_filter(psd, size=9, mode="nearest")
    sel = (f >= 40) & (f <= 7500) & (psd > psd.max() * 1e-6)
    return float(10 * np.log10(np.max(psd[sel] / local[sel])))


# ----------------------------------------------------------------------------------------------
# The textures


@pytest.fixture(scope="module")
def four_s():
    return {k: beds(k, 6, 4 * SR)[0] for k in AMBIENCE_TEXTURES}


def test_beds_have_unit_power_and_rain_is_more_impulsive_than_surf(four_s) -> None:
    for x in four_s.values():
        assert np.isfinite(x).all()
        np.testing.assert_allclose(np.mean(x**2, -1), 1.0, rtol=1e-4)
    # Drops are impulses: every rain draw above every surf (and wind) draw.
    assert crest(four_s["rain"]).min() > 1.5 * crest(four_s["surf"]).max()
    assert kurtosis(four_s["rain"]).min() > 2 * kurtosis(four_s["surf"]).max()
    assert crest(four_s["rain"]).min() > crest(four_s["wind"]).max()


def test_rumble_is_low_and_the_others_are_not(four_s) -> None:
    def below(x: np.ndarray, hz: float) -> np.ndarray:
        spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2
        return spec[:, np.fft.rfftfreq(x.shape[-1], 1 / SR) < hz].sum(-1) / spec.sum(-1)

    assert below(four_s["rumble"], 300).min() > 0.95
    assert below(four_s["rumble"], 20).max() < 0.2  # the 20-Hz high-pass (brown: most there)
    assert below(four_s["rain"], 300).max() < 0.05
    assert below(four_s["wind"], 300).max() < 0.5


def test_no_texture_has_a_tonal_peak(four_s) -> None:
    for kind, x in four_s.items():
        for row in x:
            assert tonal_peak_db(row) < 6.0, kind
    # The measure sees a tone 20 dB below the bed's power.
    t = np.arange(4 * SR) / SR
    tone = four_s["surf"][0] + np.sqrt(2 * 0.01) * np.sin(2 * np.pi * 3000 * t)
    assert tonal_peak_db(tone) > 10.0


def test_surf_swells_at_its_drawn_period() -> None:
    sr, seconds = 4000, 48  # a low rate keeps 48 s (4 swells of 12 s) small
    x, p = beds("surf", 6, seconds * sr, sample_rate=sr)
    period = uniform_in(tf.constant(p.knobs[:, 0]), A.SURF_PERIOD_S, log=True).numpy()
    frame = sr // 10
    env = np.sqrt(np.mean(x.reshape(6, -1, frame) ** 2, -1))  # [6, 480] RMS per 0.1 s
    spec = np.abs(np.fft.rfft(env - env.mean(-1, keepdims=True), axis=-1))
    f = np.fft.rfftfreq(env.shape[-1], 0.1)
    peak = f[np.argmax(spec, -1)]
    assert np.all(np.abs(peak - 1 / period) <= 1 / seconds + 1e-9), (peak, 1 / period)
    assert peak.min() >= 1 / 12 - 1 / seconds and peak.max() <= 1 / 4 + 1 / seconds
    assert (env.max(-1) / env.min(-1)).min() > 2  # a swell, not a steady hiss


def test_beds_are_seeded_and_batch_independent() -> None:
    n, t = 8, SR
    p = A.draw_ambience(seeds(n), np.ones(n, np.int32), ON)
    full = A.ambience_beds(p, t, sample_rate=SR).numpy()
    np.testing.assert_array_equal(full, A.ambience_beds(p, t, sample_rate=SR).numpy())
    for idx in ([0], [5, 2], list(range(3, 8))):
        part = A.ambience_beds(A.AmbienceParams(*(tf.gather(v, idx) for v in p)), t,
                               sample_rate=SR).numpy()
        np.testing.assert_array_equal(part, full[idx])
    other = A.ambience_beds(A.draw_ambience(seeds(n, 100), np.ones(n, np.int32), ON), t,
                            sample_rate=SR).numpy()
    assert np.abs(np.corrcoef(full[0], other[0])[0, 1]) < 0.1


# ----------------------------------------------------------------------------------------------
# Levels and draws


def test_bed_snr_and_negative_level_are_the_drawn_ones() -> None:
    n, t = 48, SR
    rng = np.random.default_rng(0)
    mix = (rng.uniform(0.01, 0.3, (n, 1)) * rng.standard_normal((n, t))).astype(np.float32)
    count = np.where(np.arange(n) % 4 == 0, 0, 3).astype(np.int32)
    mix[count == 0] = 0.0  # a negative has no source
    p = A.draw_ambience(seeds(n), count, AmbienceConfig(probability=0.5))
    out = A.add_ambience(mix, p, sample_rate=SR).numpy()
    on, neg = np.asarray(p.on), count == 0
    np.testing.assert_array_equal(neg, np.asarray(p.negative))
    assert on[neg].all() and 0 < on[~neg].sum() < (~neg).sum()
    np.testing.assert_array_equal(out[~on], mix[~on])  # no bed: bit-identical
    bed = out.astype(np.float64) - mix
    pos = on & ~neg
    snr = 10 * np.log10(np.mean(mix[pos].astype(np.float64) ** 2, -1) / np.mean(bed[pos] ** 2, -1))
    np.testing.assert_allclose(snr, np.asarray(p.snr_db)[pos], atol=0.5)
    level = 10 * np.log10(np.mean(bed[neg] ** 2, -1))
    np.testing.assert_allclose(level, np.asarray(p.level_db)[neg], atol=0.5)
    assert np.asarray(p.snr_db).min() >= 0.0 and np.asarray(p.level_db).max() <= -10.0


def test_draw_frequencies_kinds_and_seeding() -> None:
    n = 4000
    cfg = AmbienceConfig(probability=0.3, textures=("rain", "wind"))
    p = A.draw_ambience(seeds(n), np.ones(n, np.int32), cfg)
    on = np.asarray(p.on)
    assert abs(on.mean() - 0.3) < 4.5 * np.sqrt(0.3 * 0.7 / n)  # binomial bounds
    kinds = np.asarray(p.kind)
    assert set(kinds.tolist()) == {AMBIENCE_TEXTURES.index("rain"), AMBIENCE_TEXTURES.index("wind")}
    assert abs(np.mean(kinds == 0) - 0.5) < 4.5 * np.sqrt(0.25 / n)
    again = A.draw_ambience(seeds(n), np.ones(n, np.int32), cfg)
    one = A.draw_ambience(seeds(n)[7], 1, cfg)
    for a, b, c in zip(p, again, one, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(a)[7], np.asarray(c))
    assert A.draw_ambience(seeds(2), np.ones(2), AmbienceConfig()) is None
    assert load_config("paper").effects.ambience == AmbienceConfig()
    assert not A.enabled(load_config("paper").effects.ambience)
    assert not A.enabled(load_config("demo").effects.ambience)


def test_bad_config_values_name_the_key() -> None:
    for override, key in (("effects.ambience.probability=1.5", "effects.ambience.probability"),
                          ("effects.ambience.negative_probability=1.0",
                           "effects.ambience.negative_probability"),
                          ("effects.ambience.snr_db=[20,10]", "effects.ambience.snr_db"),
                          ("effects.ambience.negative_level_db=[-20,3]",
                           "effects.ambience.negative_level_db"),
                          ("effects.ambience.textures=[rain,birdsong]", "effects.ambience.textures"),
                          ("effects.ambience.textures=[]", "effects.ambience.textures")):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            load_config("paper", [override])


def test_a_batch_of_negatives_only_mixes_to_beds_with_realism_on() -> None:
    """No source row at all (every example a negative): the realism sum and the mixdown still
    give one mix per example, its bed at the drawn level."""
    from keras_inst.augment.effects import sample_effect_params
    from keras_inst.augment.realism import RealismParams, draw_realism
    from keras_inst.config.schema import MixBusConfig, NoiseConfig, ReverbConfig
    from keras_inst.data.mixdown import mix_rows

    effects = EffectsConfig(reverb=ReverbConfig(probability=1.0), noise=NoiseConfig(probability=1.0),
                            mix_bus=MixBusConfig(probability=1.0))
    none = tf.zeros([0], tf.int32)
    params = sample_effect_params(seeds(1), 1, effects)
    params = type(params)(*(tf.gather(tf.reshape(v, [-1]), none) for v in params))
    realism = draw_realism(seeds(1), 1, effects)
    realism = RealismParams(*(tf.gather(tf.reshape(v, [-1]), none) for v in realism))
    amb = A.draw_ambience(seeds(3), np.zeros(3, np.int32), AmbienceConfig(negative_probability=0.5))
    mix = mix_rows(tf.zeros([0, SR], tf.int16), tf.zeros([0]), params, none, batch=3,
                   out_samples=SR, sample_rate=SR, peak_normalize=100.0, random_effects=True,
                   realism=realism, ambience=amb).numpy()
    assert mix.shape == (3, SR) and np.asarray(amb.on).all()
    level = 10 * np.log10(np.mean(mix.astype(np.float64) ** 2, -1))
    np.testing.assert_allclose(level, np.asarray(amb.level_db), atol=0.5)


# ----------------------------------------------------------------------------------------------
# In the training stream


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory):
    return tone_table(tmp_path_factory.mktemp("ambience"), seconds=3, noise=0.05)


def _sampler(table, ambience: AmbienceConfig):
    from keras_inst.data.mixing import RecipeSampler

    cfg = load_config("paper", ["training.transfer=scratch", "training.pretrained=null",
                                "audio.chunk_seconds=1.0"])
    effects = dataclasses.replace(cfg.effects, ambience=ambience)
    return cfg, RecipeSampler(table, cfg.mixing, effects, seed=3)


def _stream(table, ambience: AmbienceConfig, *, batches: int = 3, effects_in: str = "pipeline"):
    from keras_inst.data.pipeline import training_dataset

    cfg, sampler = _sampler(table, ambience)
    ds = training_dataset(cfg, sampler, batch_size=8, with_recipe=True, effects_in=effects_in)
    return [(x if isinstance(x, dict) else np.asarray(x), np.asarray(y), np.asarray(r["n"]))
            for x, y, r in ds.take(batches)]


def test_negatives_are_drawn_at_their_rate_and_leave_the_others_unchanged(table) -> None:
    n, rate = 2000, 0.3
    _, plain = _sampler(table, AmbienceConfig())
    _, neg = _sampler(table, AmbienceConfig(negative_probability=rate))
    drawn = [neg.draw(i) for i in range(n)]
    empty = np.array([s.stems.size == 0 for s in drawn])
    assert abs(empty.mean() - rate) < 4.5 * np.sqrt(rate * (1 - rate) / n)  # binomial bounds
    for i in range(0, n, 50):  # the others are the stream without negatives, field by field
        if not empty[i]:
            a, b = plain.draw(i), drawn[i]
            assert a.index == b.index and a.dataset == b.dataset and a.musical == b.musical
            np.testing.assert_array_equal(a.stems, b.stems)
            np.testing.assert_array_equal(a.starts, b.starts)
            np.testing.assert_array_equal(a.effects_seed, b.effects_seed)
    assert all(s.stems.size for s in (neg.draw_eval(0, c) for c in range(20)))  # eval: none


MIXED = AmbienceConfig(probability=0.5, negative_probability=0.3)


@pytest.fixture(scope="module")
def off(table) -> list:
    return _stream(table, AmbienceConfig())


@pytest.fixture(scope="module")
def mixed(table) -> list:
    return _stream(table, MIXED)


def test_stream_with_ambience_off_is_bit_identical(table, off) -> None:
    # Off with other ranges: no ambience graph, the same stream bit for bit.
    other = _stream(table, AmbienceConfig(snr_db=(1.0, 2.0), textures=("rain",)))
    for a, b in zip(off, other, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_stream_negatives_have_zero_labels_and_a_bed(table, off) -> None:
    neg = _stream(table, AmbienceConfig(negative_probability=0.4))
    negatives = 0
    for (xa, ya, na), (xb, yb, nb) in zip(off, neg, strict=True):
        empty = nb == 0
        negatives += empty.sum()
        np.testing.assert_array_equal(yb[empty], 0.0)  # exactly zero labels
        np.testing.assert_array_equal(yb[~empty], ya[~empty])
        np.testing.assert_array_equal(nb[~empty], na[~empty])
        # Their audio too (beds on negatives only), to rounding: other rows share the batch.
        np.testing.assert_allclose(xb[~empty], xa[~empty], atol=2e-6)
        rms_db = 10 * np.log10(np.mean(xb[empty].astype(np.float64) ** 2, -1))
        assert np.all((rms_db > -41) & (rms_db < -9.9)), rms_db  # the drawn level, or below it (peak normalisation)
    assert negatives >= 3


def test_stream_beds_change_the_audio_only(off, mixed) -> None:
    changed = kept = 0
    for (xa, ya, _), (xb, yb, nb) in zip(off, mixed, strict=True):
        full = nb > 0
        np.testing.assert_array_equal(yb[full], ya[full])  # labels unchanged under a bed
        np.testing.assert_array_equal(yb[~full], 0.0)
        assert np.isfinite(xb).all() and np.abs(xb).max() <= 0.95 + 1e-6
        same = np.array([np.allclose(a, b, atol=2e-6) for a, b in zip(xa[full], xb[full], strict=True)])
        changed, kept = changed + (~same).sum(), kept + same.sum()
    assert changed >= 3 and kept >= 3  # probability 0.5 of the 24 mixes' non-negatives


def test_train_step_mixing_lays_the_same_beds(table, mixed) -> None:
    from keras_inst.data.mixdown import mix_raw_batch

    raw = _stream(table, MIXED, effects_in="train_step")
    for (x, y, _), (r, yr, _) in zip(mixed, raw, strict=True):
        assert "ambience" in r
        mixed_here = mix_raw_batch(r, out_samples=SR, sample_rate=SR, peak_normalize=0.95).numpy()
        np.testing.assert_allclose(mixed_here, x, atol=1e-5)
        np.testing.assert_array_equal(yr, y)


def test_effects_config_carries_ambience() -> None:
    cfg = load_config("paper", ["effects.ambience.probability=0.25",
                                "effects.ambience.textures=[surf]"])
    assert cfg.effects.ambience == AmbienceConfig(probability=0.25, textures=("surf",))
    assert isinstance(cfg.effects, EffectsConfig)
