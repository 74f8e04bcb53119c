"""Fusion with the zero-shot tagger at inference (``model.fusion_tagger``, beyond the paper, opt-in).

A classifier fine-tuned on rendered mixes and musicnn's tagger read zero-shot fail differently
on real recordings: the classifier hears rendered timbres, the tagger what real music taught it
(it never saw an instrument label, and has no evidence for some classes). :func:`fuse_with_tagger`
wraps a trained classifier into one model that averages the two where the tagger has evidence::

    p[c] = (1 - w) * p_model[c] + w * p_tagger[c]   for classes some tag names
    p[c] = p_model[c]                               for the others (e.g. brass with MTT tags)

``w`` is ``model.fusion_weight`` (0.5 by default: an even average, chosen before any
measurement, not tuned on real recordings), or ``model.fusion_partial_weight`` for classes whose
tags name only some of their instruments (:func:`partial_mask`; e.g. MTT's woodwind, 'flute'
only). ``model.fusion_space: logit`` averages the two logits instead
(:class:`~keras_inst.models.fusion_layers.TagFusion`). The tagger
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

from keras_inst.config.schema import DEFAULT_FUSION_SPACE, ExperimentConfig
from keras_inst.models.fusion_layers import (
    CROP_LAYER,
    FUSION_LAYER,
    TAGGER_LAYER,
    CentreCrop,
    FrameCrop,
    TagFusion,
    is_fused,
)
from keras_inst.taxonomy import CLASSES


def evidence_mask(tagger: str) -> list[bool]:
    """Per class (CLASSES order): does some tag of ``tagger`` name it?"""
    from keras_inst.models.tagger import no_evidence_classes

    missing = set(no_evidence_classes(tagger))
    return [c not in missing for c in CLASSES]


def partial_mask(tagger: str) -> list[bool]:
    """Per class (CLASSES order): do ``tagger``'s tags name only some of its instruments?"""
    from keras_inst.models.tagger import partial_evidence_classes

    partial = set(partial_evidence_classes(tagger))
    return [c in partial for c in CLASSES]


def fuse_with_tagger(model: keras.Model, tagger: str, *, weight: float = 0.5, space: str = DEFAULT_FUSION_SPACE,
                     partial_weight: float | None = None, path: str | Path | None = None,
                     share_frontend: bool = False) -> keras.Model:
    """``model`` (waveform ``[B, N]`` -> 15 probabilities) fused with the zero-shot ``tagger``.

    ``space``: average probabilities or logits (:class:`TagFusion`).
    ``partial_weight``: the tagger's weight for :func:`partial_mask` classes (None: ``weight``).
    ``path``: where musicnn's checkpoints are (default: the cache, else PyPI).
    ``share_frontend``: the model's front end is musicnn's (:func:`frontend_is_taggers`), so the
    tagger reads the centre 187 frames of the model's own log-mel instead of computing its own
    on the centre 3 s of audio: one STFT per window, and one mel matrix in an export. Raises
    ValueError for a model that is already fused, has other classes, or windows shorter than
    the tagger's input.
    """
    from keras_inst.models.tagger import (
        TAGGER_FRAMES,
        TAGGER_SAMPLES,
        tagger_config,
        zero_shot_classifier,
    )

    if is_fused(model):
        raise ValueError(f"model {model.name!r} is already fused with a tagger")
    n = int(model.input.shape[-1])
    if n < TAGGER_SAMPLES:
        raise ValueError(f"model.fusion_tagger: the model's window ({n} samples) is shorter than the "
                         f"tagger's input ({TAGGER_SAMPLES} samples, 3 s at 16 kHz)")
    if int(model.output.shape[-1]) != len(CLASSES):
        raise ValueError(f"model.fusion_tagger: the model has {model.output.shape[-1]} outputs, fusion needs the {len(CLASSES)} classes")
    zero_shot = zero_shot_classifier(tagger, path=path)
    wav = keras.Input((n,), name="waveform", dtype="float32")  # as build_model names it
    mel = model.get_layer("frontend")(wav)  # [B, M, T]
    logits = model.get_layer("head")(model.get_layer("backbone")(mel))  # [B, C]
    if share_frontend:
        # Centred frames every 256 samples: the crop's first frame is the one centred where
        # the centre 3 s start (8192 samples = 32 hops into a 4-s window).
        start = (n - TAGGER_SAMPLES) // 2 // tagger_config(tagger).features.hop_length
        body_in = keras.Input(tuple(zero_shot.get_layer("frontend").output.shape[1:]), name="log_mel")
        body = keras.Model(body_in, zero_shot.get_layer("probabilities")(
            zero_shot.get_layer("head")(zero_shot.get_layer("backbone")(body_in))), name=TAGGER_LAYER)
        crop, crop_in = FrameCrop(start, TAGGER_FRAMES, name=CROP_LAYER), mel
    else:
        body, crop, crop_in = zero_shot, CentreCrop(TAGGER_SAMPLES, name=CROP_LAYER), wav
        body.name = TAGGER_LAYER  # a nested model is a layer found by its name
    body.trainable = False
    fusion = TagFusion(weight, evidence_mask(tagger), space, partial=partial_mask(tagger), partial_weight=partial_weight,
                       name=FUSION_LAYER)
    fused = fusion([logits, body(crop(crop_in))])  # [B, C]
    return keras.Model(wav, model.get_layer("probabilities")(fused), name=model.name)


def frontend_is_taggers(cfg: ExperimentConfig, tagger: str) -> bool:
    """Does ``cfg``'s log-mel equal the one ``tagger`` was trained on (rate, STFT, mels, log)?"""
    from keras_inst.models.tagger import tagger_config

    own = tagger_config(tagger)
    return cfg.audio.sample_rate == own.audio.sample_rate and cfg.features == own.features
