"""BatchNormalization whose training step is one fused TensorFlow kernel.

Keras 3's BatchNormalization computes training-mode statistics and the normalisation from
separate elementwise ops, with every bfloat16/float16 activation cast to float32 and back. On
this project's CPU that was ~3/4 of the paper model's training step (docs/benchmarks.md,
"Training throughput": 11.7 examples/s with it, 56 with BN removed). TensorFlow's
``FusedBatchNormV3`` does the same arithmetic in one oneDNN kernel, reading bfloat16 activations
directly: 32.5 examples/s in ``mixed_bfloat16``, 11.8 vs 8.2 in float32.

Same layer otherwise: weights, config, inference path, moving-statistics update (the biased
batch variance, as Keras keeps it) and gradients equal Keras' within float rounding (tested).
Anything the fused kernel does not cover (inference, masks, renorm, synchronized statistics
under a multi-replica strategy, other ranks or axes, other backends) runs Keras' own code.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="keras_inst")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` with a fused training path on TensorFlow."""

    def _fusable(self, inputs: Any, training: Any, mask: Any) -> bool:
        return (bool(training) and self.trainable and mask is None and not self.renorm
                and not self.synchronized and keras.backend.backend() == "tensorflow"
                and len(inputs.shape) == 4 and self.axis in (-1, 3) and inputs.shape[-1] is not None)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        c = int(inputs.shape[-1])
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16, tf.float16) else tf.cast(inputs, tf.float32)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([c], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([c], tf.float32)
        # x [B, H, W, C] -> y [B, H, W, C] (x's dtype); batch mean / variance [C] in float32
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, is_training=True, data_format="NHWC")
        n = tf.cast(tf.size(x, out_type=tf.int64) // c, tf.float32)
        variance = variance * (n - 1.0) / tf.maximum(n, 2.0)  # the op's is unbiased; Keras keeps the biased one
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return tf.cast(y, self.compute_dtype)
