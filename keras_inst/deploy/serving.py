"""The SavedModel of a trained classifier, as TF Serving and the TFLite converter read it.

:func:`save_serving_model` writes the two-output model of
:func:`keras_inst.runtime.keras_model.dual_output_model` as a SavedModel with the
``serving_default`` signature and a ``metadata`` signature (class names, sample rate, input
length, tuned thresholds) plus ``labels.txt`` as an asset. :mod:`keras_inst.deploy.export`
converts and checks the exported artifacts; :mod:`keras_inst.runtime.loader` loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_inst.runtime.artifacts import INPUT_NAME, METADATA_SIGNATURE, SIGNATURE


def save_serving_model(dual: Any, path: str | Path, *, class_names: Sequence[str], sample_rate: int,
                       thresholds: dict[str, float] | None, labels_file: Path) -> None:
    """Write the SavedModel with the ``serving_default`` and ``metadata`` signatures."""
    import tensorflow as tf

    samples = int(dual.input.shape[-1])
    root = tf.Module()

    def serve(waveform):
        out = dual(waveform, training=False)
        return {"probabilities": out["probabilities"], "embeddings": out["embeddings"]}

    root.serve = tf.function(
        serve, input_signature=[tf.TensorSpec([None, samples], tf.float32, name=INPUT_NAME)], autograph=False
    )
    # Track the tf.Variables the function captures (not the Keras wrappers): otherwise the
    # TFLite converter cannot freeze them and emits READ_VARIABLE ops that yield NaN.
    root.model_variables = list(root.serve.get_concrete_function().variables)
    root.labels = tf.saved_model.Asset(str(labels_file))
    meta = {
        "class_names": tf.constant(list(class_names)),
        "sample_rate": tf.constant(int(sample_rate), tf.int32),
        "input_samples": tf.constant(samples, tf.int32),
    }
    if thresholds is not None:
        meta["thresholds"] = tf.constant([thresholds[c] for c in class_names], tf.float64)

    def metadata(request):
        del request  # TF Serving needs an input; its value is unused
        return dict(meta)

    root.metadata = tf.function(metadata, input_signature=[tf.TensorSpec([], tf.int32, name="request")])
    tf.saved_model.save(root, str(path), signatures={SIGNATURE: root.serve, METADATA_SIGNATURE: root.metadata})
