"""The serving form of a trained classifier: one dual-output model and its SavedModel.

:func:`dual_output_model` wraps a model built by :func:`keras_inst.models.short_chunk.build_model` as
waveform ``[batch, samples]`` -> ``probabilities [batch, C]`` and ``embeddings [batch, D]``
(front end and backbone run once, weights shared); :func:`save_serving_model` writes it as a
SavedModel with the ``serving_default`` signature and a ``metadata`` signature (class names,
sample rate, input length, tuned thresholds) plus ``labels.txt`` as an asset;
:func:`model_info` reads sample rate, input length and output sizes off such a model.
:mod:`keras_inst.deploy.export` converts and checks the exported artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keras_inst.deploy.lite import INPUT_NAME, SIGNATURE


def model_info(model: Any) -> dict[str, Any]:
    """Sample rate, input length and output sizes of a model built by ``build_model``."""
    try:
        frontend = model.get_layer("frontend")
        log_mel = frontend.get_layer("log_mel")
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no 'frontend' sub-model with a 'log_mel' layer; "
            "export models built by keras_inst.models.short_chunk.build_model"
        ) from None
    emb = model.get_layer("backbone").output.shape[-1]
    return {
        "sample_rate": int(log_mel.sample_rate),
        "input_samples": int(model.input.shape[-1]),
        "num_classes": int(model.output.shape[-1]),
        "embedding_dim": int(emb),
    }


def dual_output_model(model: Any) -> Any:
    """waveform ``[B, S]`` -> ``{"probabilities": [B, C], "embeddings": [B, D]}``, sharing weights.

    The front end and backbone run once for both outputs.
    """
    import keras

    wav = keras.Input(tuple(model.input.shape[1:]), name=INPUT_NAME, dtype="float32")
    emb = model.get_layer("backbone")(model.get_layer("frontend")(wav))  # [B, D]
    probs = model.get_layer("probabilities")(model.get_layer("head")(emb))  # [B, C]
    return keras.Model(wav, {"probabilities": probs, "embeddings": emb}, name="keras_inst_serving")


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
    tf.saved_model.save(root, str(path), signatures={SIGNATURE: root.serve, "metadata": root.metadata})
