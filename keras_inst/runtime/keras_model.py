"""A trained Keras classifier as the runtime sees it: its sizes, and its two-output form.

:func:`model_info` reads sample rate, input length and output sizes off a model built by
:func:`keras_inst.models.short_chunk.build_model`; :func:`dual_output_model` wraps it as
waveform ``[batch, samples]`` -> ``probabilities [batch, C]`` and ``embeddings [batch, D]``
(front end and backbone run once, weights shared), the form every export serves.
Keras is imported only when :func:`dual_output_model` is called.
"""

from __future__ import annotations

from typing import Any

from keras_inst.runtime.artifacts import INPUT_NAME


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

    from keras_inst.models.fusion_layers import fused_logits

    wav = keras.Input(tuple(model.input.shape[1:]), name=INPUT_NAME, dtype="float32")
    mel = model.get_layer("frontend")(wav)
    emb = model.get_layer("backbone")(mel)  # [B, D]
    logits = fused_logits(model, wav, mel, model.get_layer("head")(emb))  # [B, C]; + the tagger when fused
    probs = model.get_layer("probabilities")(logits)  # [B, C]
    return keras.Model(wav, {"probabilities": probs, "embeddings": emb}, name="keras_inst_serving")
