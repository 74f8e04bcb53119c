"""FusedBatchNormalization: Keras' BatchNormalization arithmetic, in one fused kernel when training."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_inst.models.batch_norm import FusedBatchNormalization

SHAPE = (4, 8, 6, 5)  # [B, H, W, C]


def _pair(policy: str) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    keras.mixed_precision.set_global_policy(policy)
    try:
        ref, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for layer in (ref, fused):
        layer.build(SHAPE)
        layer.gamma.assign(np.linspace(0.5, 2.0, SHAPE[-1]))
        layer.beta.assign(np.linspace(-1.0, 1.0, SHAPE[-1]))
    return ref, fused


@pytest.mark.parametrize("policy, tol, stats_rtol", [("float32", 1e-5, 1e-5), ("mixed_bfloat16", 1e-2, 2e-3)])
def test_training_step_equals_keras_batch_normalization(policy: str, tol: float, stats_rtol: float) -> None:
    rng = np.random.default_rng(0)
    x = tf.constant(3.0 * rng.standard_normal(SHAPE).astype(np.float32) + 1.0)
    proj = tf.constant(rng.standard_normal(SHAPE).astype(np.float32))
    ref, fused = _pair(policy)
    outs, grads = [], []
    for layer in (ref, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * proj)  # not invariant to x, unlike sum(y^2)
        outs.append(np.asarray(tf.cast(y, tf.float32)))
        grads.append([np.asarray(g) for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
    assert outs[1].dtype == np.float32 and str(fused(x, training=True).dtype) == str(ref(x, training=True).dtype)
    np.testing.assert_allclose(outs[1], outs[0], atol=tol)
    for g_fused, g_ref in zip(grads[1], grads[0], strict=True):
        np.testing.assert_allclose(g_fused, g_ref, atol=tol * np.abs(g_ref).max())
    # moving statistics: the biased batch variance, like Keras (two updates happened per layer)
    # (bfloat16 activations: both see the same rounded inputs, the kernels sum them differently)
    np.testing.assert_allclose(np.asarray(fused.moving_mean), np.asarray(ref.moving_mean), rtol=stats_rtol)
    np.testing.assert_allclose(np.asarray(fused.moving_variance), np.asarray(ref.moving_variance), rtol=stats_rtol)
    expected = 0.9 * (0.9 * 1.0 + 0.1 * np.var(np.asarray(x), axis=(0, 1, 2))) + 0.1 * np.var(np.asarray(x), axis=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(fused.moving_variance), expected, rtol=stats_rtol)


def test_everything_else_is_keras_own_path() -> None:
    _, fused = _pair("float32")
    x4 = tf.zeros(SHAPE)
    assert fused._fusable(x4, True, None)
    assert not fused._fusable(x4, False, None)  # inference
    assert not fused._fusable(tf.zeros((4, 5)), True, None)  # dense features
    fused.synchronized = True  # keras_inst.training.distribute under > 1 replica
    assert not fused._fusable(x4, True, None)
    fused.synchronized = False
    fused.trainable = False
    assert not fused._fusable(x4, True, None)
    dense = FusedBatchNormalization()
    y = dense(tf.ones((3, 2)), training=True)  # Keras' path: a constant feature normalises to 0
    np.testing.assert_allclose(np.asarray(y), 0.0, atol=1e-6)


def test_saved_and_loaded_with_its_weights(tmp_path) -> None:
    from keras_inst.models.short_chunk import load_model

    inputs = keras.Input(SHAPE[1:])
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.get_layer("bn").moving_mean.assign(np.arange(SHAPE[-1], dtype=np.float32))
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
    np.testing.assert_array_equal(np.asarray(loaded.get_layer("bn").moving_mean), np.arange(SHAPE[-1]))
