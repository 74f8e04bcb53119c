"""A classifier fused with the zero-shot tagger: the averaging rule, the crop, the fused graph
against its two parts, saving and loading, and the runtime's dual-output rebuild.

The tagger is musicnn's MSD VGG on the vendored checkpoint (tests/assets/musicnn): its tags
name voice, singer and plucked string only, so the other 12 classes must stay the classifier's.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_inst.config.schema import AudioConfig, ExperimentConfig, ModelConfig, TrainingConfig
from keras_inst.models import fusion as F
from keras_inst.models.fusion_layers import CentreCrop, TagFusion, fused_logits, is_fused
from keras_inst.models.short_chunk import build_model, load_model
from keras_inst.models.tagger import (
    TAGGER_FRAMES,
    TAGGER_SAMPLES,
    tagger_config,
    zero_shot_classifier,
)
from keras_inst.runtime.keras_model import dual_output_model
from keras_inst.taxonomy import CLASSES

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "musicnn"
TAGGER = "musicnn_msd_vgg"
EVIDENCE = {"voice", "plucked_string", "singer"}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_tag_fusion_averages_where_the_tagger_has_evidence():
    evidence = [True, False, True]
    layer = TagFusion(0.25, evidence)
    logits = np.array([[0.0, 2.0, -3.0]], np.float32)  # p = 0.5, 0.8808, 0.0474
    tags = np.array([[1.0, 0.0, 0.6]], np.float32)
    got = _sigmoid(np.asarray(layer([logits, tags])))
    want = [0.75 * 0.5 + 0.25 * 1.0, _sigmoid(2.0), 0.75 * _sigmoid(-3.0) + 0.25 * 0.6]
    np.testing.assert_allclose(got[0], want, atol=2e-6)  # p=1.0 from the tagger is clipped to 1 - 1e-6
    assert np.isfinite(np.asarray(layer([logits, np.ones_like(tags)]))).all()
    with pytest.raises(ValueError, match="weight must be in"):
        TagFusion(1.5, evidence)


def _logit(p: float | np.ndarray) -> float | np.ndarray:
    return np.log(p) - np.log1p(-p)


def test_tag_fusion_in_logit_space_averages_log_odds():
    layer = TagFusion(0.25, [True, False, True], "logit")
    logits = np.array([[-4.0, 2.0, 1.0]], np.float32)
    tags = np.array([[0.9, 0.0, 0.2]], np.float32)
    got = np.asarray(layer([logits, tags]))[0]
    want = [0.75 * -4.0 + 0.25 * _logit(0.9), 2.0, 0.75 * 1.0 + 0.25 * _logit(0.2)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Where probability averaging lets the tagger's scale decide, log-odds keep a confident
    # classifier's order: classifier 0.009 vs 0.0001, tagger 0.075 vs 0.35 (issue K's piano clip
    # and trumpet).
    pair = np.array([[_logit(0.009)], [_logit(0.0001)]], np.float32), np.array([[0.075], [0.35]], np.float32)
    for space, first_wins in (("probability", False), ("logit", True)):
        z = np.asarray(TagFusion(0.5, [True], space)(list(pair)))[:, 0]
        assert bool(z[0] > z[1]) == first_wins, space
    assert np.isfinite(np.asarray(layer([logits, np.ones_like(tags)]))).all()
    assert TagFusion.from_config(layer.get_config()).space == "logit"
    assert TagFusion.from_config({"weight": 0.5, "evidence": [True]}).space == "probability"  # saved before the key
    with pytest.raises(ValueError, match="space must be one of probability, logit"):
        TagFusion(0.5, [True], "odds")


def test_partial_classes_get_their_own_weight():
    """evidence / partial per class: full weight, partial weight, and none without evidence."""
    layer = TagFusion(0.5, [True, True, False], "logit", partial=[False, True, True], partial_weight=0.25)
    np.testing.assert_array_equal(layer.class_weights(), np.array([0.5, 0.25, 0.0], np.float32))
    logits = np.array([[-2.0, -2.0, 3.0]], np.float32)
    tags = np.array([[0.8, 0.8, 0.9]], np.float32)
    want = [0.5 * -2.0 + 0.5 * _logit(0.8), 0.75 * -2.0 + 0.25 * _logit(0.8), 3.0]
    np.testing.assert_allclose(np.asarray(layer([logits, tags]))[0], want, atol=1e-5)
    again = TagFusion.from_config(layer.get_config())
    np.testing.assert_array_equal(again.class_weights(), layer.class_weights())
    old = TagFusion.from_config({"weight": 0.5, "evidence": [True, True]})  # saved before the option
    np.testing.assert_array_equal(old.class_weights(), np.array([0.5, 0.5], np.float32))
    with pytest.raises(ValueError, match="partial_weight must be in"):
        TagFusion(0.5, [True], partial=[True], partial_weight=1.5)
    with pytest.raises(ValueError, match="partial has 1 entries, evidence 2"):
        TagFusion(0.5, [True, True], partial=[True])


def test_partial_mask_follows_the_tag_map():
    assert {c for c, p in zip(CLASSES, F.partial_mask(TAGGER), strict=True) if p} == {"plucked_string"}
    assert {c for c, p in zip(CLASSES, F.partial_mask("musicnn_mtt_musicnn"), strict=True) if p} == {
        "woodwind", "key", "percussion", "plucked_string"}


def test_centre_crop_takes_the_middle():
    x = np.arange(20, dtype=np.float32)[None]
    np.testing.assert_array_equal(np.asarray(CentreCrop(6)(x))[0], np.arange(7, 13))


def test_evidence_mask_follows_the_tag_map():
    assert {c for c, e in zip(CLASSES, F.evidence_mask(TAGGER), strict=True) if e} == EVIDENCE


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    keras.utils.set_random_seed(3)
    cfg = ExperimentConfig(model=ModelConfig(width_multiplier=0.125, head_units=16), training=TrainingConfig(transfer="scratch"))  # 4-s windows
    return build_model(cfg)


def test_fused_model_is_the_average_of_its_parts(classifier, tmp_path):
    fused = F.fuse_with_tagger(classifier, TAGGER, weight=0.5, path=ASSETS)
    assert is_fused(fused) and not is_fused(classifier)
    assert not fused.get_layer(F.TAGGER_LAYER).trainable
    rng = np.random.default_rng(0)
    t = np.arange(classifier.input.shape[-1]) / 16000.0
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.1 * rng.standard_normal(t.size)]).astype(np.float32)  # [2, 64000]
    p_model = np.asarray(classifier(x, training=False))
    start = (x.shape[1] - TAGGER_SAMPLES) // 2
    p_tag = np.asarray(zero_shot_classifier(TAGGER, path=ASSETS)(x[:, start:start + TAGGER_SAMPLES], training=False))
    mask = np.array([c in EVIDENCE for c in CLASSES])
    want = np.where(mask, 0.5 * p_model + 0.5 * p_tag, p_model)
    got = np.asarray(fused(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(got - p_model)[:, mask].max() > 1e-3  # the tagger did change the evidence classes
    # Saved and loaded in a fresh deserialisation; the runtime's dual-output model rebuilds the fusion.
    fused.save(tmp_path / "fused.keras")
    loaded = load_model(tmp_path / "fused.keras", compile=False)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), got, atol=1e-6)
    dual = dual_output_model(loaded)
    out = dual(x, training=False)
    np.testing.assert_allclose(np.asarray(out["probabilities"]), got, atol=1e-6)
    assert out["embeddings"].shape == (2, classifier.get_layer("backbone").output.shape[-1])
    with pytest.raises(ValueError, match="already fused"):
        F.fuse_with_tagger(fused, TAGGER, path=ASSETS)


def test_fused_logits_leave_a_plain_classifier_alone(classifier):
    logits = keras.ops.zeros((1, len(CLASSES)))
    assert fused_logits(classifier, None, None, logits) is logits


def test_short_windows_are_refused():
    cfg = ExperimentConfig(audio=AudioConfig(chunk_seconds=2.0), model=ModelConfig(channels=(16, 16, 16), head_units=16),
                           training=TrainingConfig(transfer="scratch"))
    with pytest.raises(ValueError, match="shorter than the tagger's input"):
        F.fuse_with_tagger(build_model(cfg), TAGGER, path=ASSETS)


def test_a_logit_space_fusion_saves_and_loads(classifier, tmp_path):
    """Logit space, and plucked string (MSD's 'guitar' alone: partial) at its own weight 0.2."""
    fused = F.fuse_with_tagger(classifier, TAGGER, weight=0.5, space="logit", partial_weight=0.2, path=ASSETS)
    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((2, classifier.input.shape[-1]))).astype(np.float32)
    p_model = np.asarray(classifier(x, training=False))
    start = (x.shape[1] - TAGGER_SAMPLES) // 2
    p_tag = np.asarray(zero_shot_classifier(TAGGER, path=ASSETS)(x[:, start:start + TAGGER_SAMPLES], training=False))
    mask = np.array([c in EVIDENCE for c in CLASSES])
    w = np.where(np.array(CLASSES) == "plucked_string", 0.2, 0.5)  # [C]
    want = np.where(mask, _sigmoid((1 - w) * _logit(p_model) + w * _logit(np.clip(p_tag, 1e-6, 1 - 1e-6))), p_model)
    got = np.asarray(fused(x, training=False))
    np.testing.assert_allclose(got, want, atol=1e-5)
    fused.save(tmp_path / "fused.keras")
    np.testing.assert_allclose(np.asarray(load_model(tmp_path / "fused.keras", compile=False)(x, training=False)), got, atol=1e-6)


def test_config_checks_the_fusion_keys():
    with pytest.raises(ValueError, match="model.fusion_space"):
        ModelConfig(fusion_tagger=TAGGER, fusion_space="odds")
    with pytest.raises(ValueError, match="model.fusion_weight"):
        ModelConfig(fusion_tagger=TAGGER, fusion_weight=0.0)
    with pytest.raises(ValueError, match="model.fusion_tagger"):
        ModelConfig(fusion_tagger="no_such_tagger")
    with pytest.raises(ValueError, match="model.fusion_partial_weight"):
        ModelConfig(fusion_tagger=TAGGER, fusion_partial_weight=-0.1)
    assert ModelConfig(fusion_tagger=TAGGER, fusion_partial_weight=0.0).fusion_partial_weight == 0.0


def test_a_musicnn_front_end_is_shared_with_the_tagger(tmp_path):
    """The tagger reads the centre 187 frames of the model's own log-mel: the same frames its
    own front end gives on the centre 3 s (but the edges, where it pads and the window has signal)."""
    keras.utils.set_random_seed(4)
    cfg = ExperimentConfig(features=tagger_config(TAGGER).features, model=ModelConfig(channels=(8, 8, 8), head_units=16),
                           training=TrainingConfig(transfer="scratch"))
    assert F.frontend_is_taggers(cfg, TAGGER)
    assert not F.frontend_is_taggers(ExperimentConfig(training=TrainingConfig(transfer="scratch")), TAGGER)
    clf = build_model(cfg)
    fused = F.fuse_with_tagger(clf, TAGGER, weight=0.5, path=ASSETS, share_frontend=True)
    assert isinstance(fused.get_layer(F.CROP_LAYER), F.FrameCrop)
    rng = np.random.default_rng(1)
    t = np.arange(64000) / 16000.0
    x = (0.3 * np.sin(2 * np.pi * 330 * t * (1 + 0.2 * t)) + 0.05 * rng.standard_normal(t.size))[None].astype(np.float32)
    mel = np.asarray(clf.get_layer("frontend")(x))  # [1, 96, T]
    crop = mel[:, :, 32:32 + TAGGER_FRAMES]  # 8192 samples = 32 hops into the window
    start = (64000 - TAGGER_SAMPLES) // 2
    zero_shot = zero_shot_classifier(TAGGER, path=ASSETS)
    own = np.asarray(zero_shot.get_layer("frontend")(x[:, start:start + TAGGER_SAMPLES]))  # [1, 96, 187]
    np.testing.assert_allclose(crop[:, :, 2:-2], own[:, :, 2:-2], atol=1e-3)
    body = zero_shot.get_layer("head")(zero_shot.get_layer("backbone")(crop))
    p_tag = np.asarray(zero_shot.get_layer("probabilities")(body))
    p_model = np.asarray(clf(x, training=False))
    mask = np.array([c in EVIDENCE for c in CLASSES])
    got = np.asarray(fused(x, training=False))
    np.testing.assert_allclose(got, np.where(mask, 0.5 * p_model + 0.5 * p_tag, p_model), atol=1e-5)
    fused.save(tmp_path / "shared.keras")
    dual = dual_output_model(load_model(tmp_path / "shared.keras", compile=False))
    np.testing.assert_allclose(np.asarray(dual(x)["probabilities"]), got, atol=1e-6)
