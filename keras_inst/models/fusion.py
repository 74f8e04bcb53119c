"""Fusion with the zero-shot tagger at inference (``model.fusion_tagger``, beyond the paper, opt-in).

A classifier fine-tuned on rendered mixes and musicnn's tagger read zero-shot fail differently
on real recordings: the classifier hears rendered timbres, the tagger what real music taught it
(it never saw an instrument label, and has no evidence for some classes). :func:`fuse_with_tagger`
wraps a trained classifier into one model that averages the two where the tagger has evidence::

    p[c] = (1 - w) * p_model[c] + w * p_tagger[c]   for classes some tag names
    p[c] = p_model[c]                               for the others (e.g. brass with MTT tags)

``w`` is ``model.fusion_weight`` (0.5 by default: an even average, chosen before any
measurement, not tuned on real recordings). The tagger
(:func:`keras_inst.models.tagger.zero_shot_classifier`, frozen) reads the centre
``TAGGER_SAMPLES`` (3 s) of each window, its own input length. The fused model keeps the
classifier's sub-models (``frontend`` -> ``backbone`` -> ``head``) and its sigmoid
``probabilities`` layer, now reading the fused logits, plus three layers (``tagger_crop``,
``tagger``, ``fusion``), so thresholds, the presence rule, ``.keras`` saving and every export
take it as they take the plain classifier (:func:`fused_logits` is how the runtime rebuilds it).
"""

from __future__ import annotations

from pathlib import Path

import keras

from keras_inst.models.fusion_layers import (
    CROP_LAYER,
    FUSION_LAYER,
    TAGGER_LAYER,
    CentreCrop,
    TagFusion,
    is_fused,
)
from keras_inst.taxonomy import CLASSES


def evidence_mask(tagger: str) -> list[bool]:
    """Per class (CLASSES order): does some tag of ``tagger`` name it?"""
    from keras_inst.models.tagger import no_evidence_classes

    missing = set(no_evidence_classes(tagger))
    return [c not in missing for c in CLASSES]


def fuse_with_tagger(model: keras.Model, tagger: str, *, weight: float = 0.5,
                     path: str | Path | None = None) -> keras.Model:
    """``model`` (waveform ``[B, N]`` -> 15 probabilities) fused with the zero-shot ``tagger``.

    ``path``: where musicnn's checkpoints are (default: the cache, else PyPI). Raises
    ValueError for a model that is already fused, has other classes, or windows shorter than
    the tagger's input.
    """
    from keras_inst.models.tagger import TAGGER_SAMPLES, zero_shot_classifier

    if is_fused(model):
        raise ValueError(f"model {model.name!r} is already fused with a tagger")
    n = int(model.input.shape[-1])
    if n < TAGGER_SAMPLES:
        raise ValueError(f"model.fusion_tagger: the model's window ({n} samples) is shorter than the "
                         f"tagger's input ({TAGGER_SAMPLES} samples, 3 s at 16 kHz)")
    if int(model.output.shape[-1]) != len(CLASSES):
        raise ValueError(f"model.fusion_tagger: the model has {model.output.shape[-1]} outputs, fusion needs the {len(CLASSES)} classes")
    zero_shot = zero_shot_classifier(tagger, path=path)
    zero_shot.name = TAGGER_LAYER  # a nested model is a layer found by its name
    zero_shot.trainable = False
    wav = keras.Input((n,), name="waveform", dtype="float32")  # as build_model names it
    logits = model.get_layer("head")(model.get_layer("backbone")(model.get_layer("frontend")(wav)))  # [B, C]
    fusion = TagFusion(weight, evidence_mask(tagger), name=FUSION_LAYER)
    fused = fusion([logits, zero_shot(CentreCrop(TAGGER_SAMPLES, name=CROP_LAYER)(wav))])  # [B, C]
    probs = model.get_layer("probabilities")(fused)
    return keras.Model(wav, probs, name=model.name)
