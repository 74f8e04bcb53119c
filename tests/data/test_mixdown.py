"""Mixdown: a raw batch (training.effects_in: train_step) mixes to exactly the stream's mixes.

Uses test_pipeline's tiny sine-stem trees (same folder, on sys.path under pytest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_pipeline import make_config, write_cached_trees

from keras_inst.data.mixdown import RAW_KEYS, mix_raw_batch
from keras_inst.data.pipeline import build_data, step_mixer, training_dataset

SR = 16000
# Every realism effect on every mix (beyond the paper), so the raw batch carries all parameters.
REALISM_ON = ["effects.reverb.probability=1.0", "effects.compressor.probability=1.0",
              "effects.saturation.probability=1.0", "effects.band_limit.probability=1.0",
              "effects.noise.probability=1.0", "effects.mix_bus.probability=1.0"]
# Paths round differently by < 1e-6; the mix bus's loudness gain (up to 30 dB) scales that
# (measured 1.6e-6), while a parameter drawn differently would differ by ~1e-2.
EFFECTS = {"paper_effects": ([], 1e-6), "with_realism_no_bus": (REALISM_ON[:-1], 1e-6),
           "with_realism": (REALISM_ON, 2e-5)}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cached_trees(tmp_path_factory.mktemp("mixdown"))


# with_realism_no_bus (19 s in CI; its tighter tolerance without the bus's gain) runs with -m slow
@pytest.mark.parametrize("effects", [pytest.param(e, marks=pytest.mark.slow) if e == "with_realism_no_bus" else e
                                     for e in EFFECTS])
def test_raw_batches_mix_to_the_streams_mixes(tree: Path, effects: str) -> None:
    overrides, atol = EFFECTS[effects]
    realism = bool(overrides)
    cfg = make_config(tree, *overrides)
    step_cfg = make_config(tree, *overrides, "training.effects_in=train_step")
    sampler = build_data(cfg, run_dir=tree / "run", progress=False).sampler
    mixed = training_dataset(cfg, sampler, with_recipe=True)
    raw = training_dataset(step_cfg, sampler, with_recipe=True, effects_in="train_step")
    mixer = step_mixer(step_cfg)
    assert step_mixer(cfg) is None  # the default config mixes in the stream
    b, n = cfg.training.batch_size, sampler.n_max
    for (x, y, rec), (r, y2, rec2) in zip(mixed.take(3), raw.take(3), strict=True):
        # ambience (off here) travels only when on: tests/augment/test_ambience.py
        assert set(r) == set(RAW_KEYS) - {"ambience"} - (set() if realism else {"realism"})
        assert all(t.dtype != tf.bool for t in tf.nest.flatten(r))  # tf.distribute reduces it
        assert r["audio"].dtype == tf.int16 and tuple(r["audio"].shape[:2]) == (b, n)
        valid = rec["valid"].numpy()
        np.testing.assert_array_equal(r["valid"].numpy(), valid.astype(np.uint8))
        # PAD slots carry no audio and no scale; used slots carry their chunk
        assert not np.any(r["audio"].numpy()[~valid]) and not np.any(r["scales"].numpy()[~valid])
        assert np.all(r["scales"].numpy()[valid] > 0)
        np.testing.assert_array_equal(y2.numpy(), y.numpy())
        np.testing.assert_array_equal(rec2["index"].numpy(), rec["index"].numpy())
        got = mixer(r).numpy()
        assert got.shape == (b, cfg.audio.chunk_samples)
        np.testing.assert_allclose(got, x.numpy(), atol=atol)
        assert np.abs(x.numpy()).max() > 0.05  # not silence on both sides


def test_a_replicas_share_of_a_raw_batch_mixes_its_own_examples(tree: Path) -> None:
    # tf.distribute splits every field of a raw batch along its first axis: the halves must mix
    # to the halves of the whole batch's mixes (a ragged row axis would not).
    cfg = make_config(tree, *REALISM_ON, "training.effects_in=train_step")
    sampler = build_data(cfg, run_dir=tree / "run", progress=False).sampler
    r, _ = next(iter(training_dataset(cfg, sampler, effects_in="train_step")))
    kw = {"out_samples": cfg.audio.chunk_samples, "sample_rate": SR,
          "peak_normalize": cfg.mixing.peak_normalize}
    whole = mix_raw_batch(r, **kw).numpy()
    half = cfg.training.batch_size // 2
    for lo in (0, half):
        part = tf.nest.map_structure(lambda t, lo=lo: t[lo: lo + half], r)
        np.testing.assert_allclose(mix_raw_batch(part, **kw).numpy(), whole[lo: lo + half], atol=1e-6)


def test_effects_in_is_checked(tree: Path) -> None:
    cfg = make_config(tree)
    with pytest.raises(ValueError, match="training.effects_in"):
        make_config(tree, "training.effects_in=gpu")
    sampler = build_data(cfg, run_dir=tree / "run", progress=False).sampler
    with pytest.raises(ValueError, match="effects_in"):
        training_dataset(cfg, sampler, effects_in="train_step", random_effects=False)
