"""The layers of a model fused with the zero-shot tagger (:mod:`keras_inst.models.fusion`).

Apart from :mod:`~keras_inst.models.fusion` (which builds the tagger) so that loading a saved
model (:func:`keras_inst.models.short_chunk.load_model`) registers them without importing the
tagger, and the runtime can rebuild a fused graph (:func:`fused_logits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_inst.config.schema import DEFAULT_FUSION_SPACE, FUSION_SPACES

FUSION_LAYER, TAGGER_LAYER, CROP_LAYER = "fusion", "tagger", "tagger_crop"
_EPS = 1e-6  # probabilities clipped to [eps, 1 - eps] before the logit: finite in float16 too


@keras.saving.register_keras_serializable(package="keras_inst")
class TagFusion(keras.layers.Layer):
    """``[model logits [B, C], tagger probabilities [B, C]]`` -> fused logits ``[B, C]`` (module doc).

    ``space`` "probability": the logit of ``(1 - w) p_model + w p_tagger``; "logit":
    ``(1 - w) logit_model + w logit(p_tagger)``. In probability space the less confident model
    cannot move the ranking of a confident one's near-0 probabilities; in logit space each counts
    by its log-odds (a weighted geometric mean of the odds). ``partial`` (per class) marks classes
    whose tags name only some of their instruments: they get ``partial_weight`` instead of
    ``weight`` (None: ``weight``, as in models saved before the option)."""

    def __init__(self, weight: float, evidence: Sequence[bool], space: str = DEFAULT_FUSION_SPACE,
                 partial: Sequence[bool] | None = None, partial_weight: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, w in (("weight", weight), ("partial_weight", partial_weight)):
            if w is not None and not 0.0 <= float(w) <= 1.0:
                raise ValueError(f"TagFusion: {name} must be in [0, 1], got {w}")
        if space not in FUSION_SPACES:
            raise ValueError(f"TagFusion: space must be one of {', '.join(FUSION_SPACES)}, got {space!r}")
        if partial is not None and len(partial) != len(evidence):
            raise ValueError(f"TagFusion: partial has {len(partial)} entries, evidence {len(evidence)}")
        self.fusion_weight = float(weight)
        self.evidence = [bool(e) for e in evidence]
        self.space = space
        self.partial = None if partial is None else [bool(e) for e in partial]
        self.partial_weight = None if partial_weight is None else float(partial_weight)

    def class_weights(self) -> np.ndarray:
        """The tagger's weight per class ``[C]``: 0 without evidence, ``partial_weight`` where partial."""
        w = np.where(self.evidence, self.fusion_weight, 0.0)
        if self.partial is not None and self.partial_weight is not None:
            w = np.where(np.asarray(self.evidence) & np.asarray(self.partial), self.partial_weight, w)
        return w.astype(np.float32)

    def call(self, inputs: Sequence[Any]) -> Any:
        logits, tag_probs = inputs
        logits, tag_probs = ops.cast(logits, "float32"), ops.cast(tag_probs, "float32")  # [B, C] each
        w = ops.convert_to_tensor(self.class_weights())  # [C]
        if self.space == "logit":
            return (1.0 - w) * logits + w * _logit(tag_probs)
        return _logit((1.0 - w) * ops.sigmoid(logits) + w * tag_probs)  # the logit of the fused probability

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape[0]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weight": self.fusion_weight, "evidence": list(self.evidence), "space": self.space,
                "partial": self.partial, "partial_weight": self.partial_weight}


def _logit(p: Any) -> Any:
    """``log(p / (1 - p))`` of probabilities clipped to [eps, 1 - eps]: finite in float16 too."""
    p = ops.clip(p, _EPS, 1.0 - _EPS)
    return ops.log(p) - ops.log1p(-p)


@keras.saving.register_keras_serializable(package="keras_inst")
class CentreCrop(keras.layers.Layer):
    """waveform ``[B, N]`` -> its centre ``[B, length]`` (the tagger's input length)."""

    def __init__(self, length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, wav: Any) -> Any:
        start = (int(wav.shape[-1]) - self.length) // 2
        return wav[:, start:start + self.length]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.length)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "length": self.length}


@keras.saving.register_keras_serializable(package="keras_inst")
class FrameCrop(keras.layers.Layer):
    """log-mel ``[B, M, T]`` -> frames ``start .. start + frames`` ``[B, M, frames]``."""

    def __init__(self, start: int, frames: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start, self.frames = int(start), int(frames)

    def call(self, mel: Any) -> Any:
        return mel[:, :, self.start:self.start + self.frames]

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*input_shape[:-1], self.frames)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "start": self.start, "frames": self.frames}


def is_fused(model: Any) -> bool:
    """Does ``model`` hold a :class:`TagFusion` layer?"""
    return any(layer.name == FUSION_LAYER for layer in model.layers)


def fused_logits(model: Any, wav: Any, mel: Any, logits: Any) -> Any:
    """The logits a (possibly fused) ``model`` feeds its sigmoid, rebuilt on the input ``wav``
    (and its log-mel ``mel``) from the classifier's ``logits``: unchanged for a plain classifier."""
    if not is_fused(model):
        return logits
    crop = model.get_layer(CROP_LAYER)
    tags = model.get_layer(TAGGER_LAYER)(crop(mel if isinstance(crop, FrameCrop) else wav))  # [B, C]
    return model.get_layer(FUSION_LAYER)([logits, tags])
