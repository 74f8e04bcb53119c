"""The batched phase vocoder (keras_inst.augment.vocoder): framing, overlap-add, batch independence,
the stretch-only shortcut, the generic-hop path and the input reach.

Pitch/time measurements through the whole chain (sine frequencies, click periods, levels) are
in tests/test_effects.py, for both the TF chain and the NumPy reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_inst.augment import effects as E
from keras_inst.augment import reference as EN
from keras_inst.augment import vocoder as V
from keras_inst.config.schema import EffectsConfig

SR = 16000
T = 64000
CFG = EffectsConfig()
T_IN = V.required_input_samples(T, CFG)


def signal(n: int, seed: int = 0) -> np.ndarray:
    """Noise plus a sine per item: broadband content and a stable partial."""
    rng = np.random.default_rng(seed)
    t = np.arange(T_IN) / SR
    tones = np.sin(2 * np.pi * rng.uniform(200, 2000, (n, 1)) * t)
    return (0.05 * rng.standard_normal((n, T_IN)) + 0.3 * tones).astype(np.float32)


@pytest.mark.parametrize("hop", [256, 512])
def test_frame_and_overlap_add_match_tf_signal(hop):
    n, frames = 1024, 9
    x = tf.constant(np.random.default_rng(1).standard_normal((3, (frames - 1) * hop + n)),
                    tf.float32)
    ours = V._frame(x, n, hop, tf.constant(frames))
    np.testing.assert_array_equal(ours.numpy(), tf.signal.frame(x, n, hop).numpy())
    f = tf.constant(np.random.default_rng(2).standard_normal((3, frames, n)), tf.float32)
    np.testing.assert_allclose(V._overlap_add(f, hop).numpy(),
                               tf.signal.overlap_and_add(f, hop).numpy(), atol=1e-6)


def test_result_does_not_depend_on_the_batch():
    """An item gives the same output alone and among others (different frame counts, pitch
    and stretch): the resampler's positions use a float64 pitch factor, so the vectorised and
    scalar float32 pow paths cannot move late samples."""
    x = signal(5)
    s = np.float32([-2.7, 1.3, 0.0, 2.9, -0.4])
    r = np.float32([1.2, 0.85, 1.1, 1.0, 0.95])
    batch = V.time_pitch(x, s, r, out_samples=T).numpy()
    for i in range(5):
        alone = V.time_pitch(x[i: i + 1], s[i: i + 1], r[i: i + 1], out_samples=T).numpy()
        assert np.abs(alone[0] - batch[i]).max() < 2e-6, i


def test_stretch_only_items_skip_the_resampler_exactly():
    """With p = 1 the resampler reads u at integer positions (Catmull-Rom returns the sample
    itself), so the shortcut y = u gives the same output as the resampled path."""
    x = signal(2, seed=3)
    s = np.float32([0.0, 0.0])
    r = np.float32([1.2, 0.9])
    alone = V.time_pitch(x, s, r, out_samples=T).numpy()  # no item with p != 1: shortcut
    mixed = V.time_pitch(np.concatenate([x, x[:1]]), np.float32([0.0, 0.0, 1.0]),
                         np.float32([1.2, 0.9, 1.0]), out_samples=T).numpy()  # resampled path
    assert np.abs(alone - mixed[:2]).max() < 1e-5


def test_phase_vocoder_path_is_near_identity():
    """time_pitch always runs the PV; with s = 0, r = 1 it reconstructs its input."""
    x = signal(2)
    y = V.time_pitch(x, tf.zeros([2]), tf.ones([2]), out_samples=T).numpy()
    assert np.abs(y - x[:, :T]).max() < 1e-4


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_generic_hop_path_shifts_pitch_like_the_default(semitones):
    """hop 256 (normalised overlap-add, not the folded 50 % window) gives the same tone."""
    t = np.arange(T_IN) / SR
    x = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None]
    ys = [V.time_pitch(x, np.float32([semitones]), np.float32([1.0]), out_samples=T,
                       hop=hop).numpy()[0] for hop in (256, 512)]
    expected = 440.0 * 2 ** (semitones / 12)
    for y in ys:
        spec = np.abs(np.fft.rfft(y[4096:-4096] * np.hanning(T - 8192), 8 * (T - 8192)))
        f = np.argmax(spec) * SR / (8 * (T - 8192))
        assert abs(f / expected - 1) < 0.002
        assert abs(np.sqrt(np.mean(y[4096:-4096] ** 2)) / np.sqrt(0.125) - 1) < 0.05
    with pytest.raises(ValueError, match="multiple of hop"):
        V.time_pitch(x, np.float32([1.0]), np.float32([1.0]), out_samples=T, hop=300)


def test_input_beyond_required_samples_is_not_read():
    """Worst case of the config (fastest, lowest): x past required_input_samples does not matter."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, T_IN + 5000)).astype(np.float32)
    p = EN.EffectParams(*(np.full(1, v, dtype=bool if isinstance(v, bool) else np.float32)
                          for v in EN.IDENTITY._replace(rate=CFG.stretch_rate[1],
                                                        semitones=CFG.pitch_semitones[0])))
    a = E.apply_effects(x[:, :T_IN], p, out_samples=T).numpy()
    b = E.apply_effects(x, p, out_samples=T).numpy()
    assert np.abs(a - b).max() < 1e-6
    # Three hops less input than required do change the output (the bound is not loose).
    c = E.apply_effects(x[:, : T_IN - 3 * EN.PV_HOP], p, out_samples=T).numpy()
    assert np.abs(a - c).max() > 1e-3
