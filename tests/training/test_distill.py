"""Learning without forgetting (keras_inst.training.distill) on the vendored MSD_vgg checkpoint."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_inst.config.io import load_config
from keras_inst.models.short_chunk import load_model
from keras_inst.models.tagger import TAGGER_SAMPLES, build_tagger
from keras_inst.taxonomy import CLASSES
from keras_inst.training import distill as D
from keras_inst.training.train import build_compiled_model

MUSICNN = Path(__file__).resolve().parents[1] / "assets" / "musicnn"


def _cfg(*overrides: str):
    # model.dropout 0 and (below) the backbone's dropout off: a training step is deterministic.
    return load_config("musicnn_finetune", [f"training.pretrained_path={MUSICNN}", "model.dropout=0.0",
                                            "training.batch_size=2", *overrides])


def _no_dropout(model: keras.Model) -> keras.Model:
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(64000) / 16000.0
    tones = np.sin(2 * np.pi * rng.uniform(100, 2000, (2, 1)) * t)  # different content per example
    x = (0.3 * tones + 0.05 * rng.standard_normal((2, 64000))).astype(np.float32)
    return x, (rng.random((2, len(CLASSES))) < 0.4).astype(np.float32)


def _bce(logits: np.ndarray, targets: np.ndarray) -> float:
    z = logits.astype(np.float64)
    return float(np.mean(np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z)))))


def test_student_before_training_is_the_teacher(batch):
    """Same weights, inference mode: the student branch reproduces build_tagger on the crop."""
    cfg = _cfg("training.distill_weight=0.5")
    model = build_compiled_model(cfg)
    d = D.build_distillation(model, cfg)
    x = batch[0]
    start = (64000 - TAGGER_SAMPLES) // 2
    want = np.asarray(build_tagger("musicnn_msd_vgg", path=MUSICNN)(x[:, start:start + TAGGER_SAMPLES]))
    student = 1 / (1 + np.exp(-np.asarray(d.student_logits(x, training=False))))
    np.testing.assert_allclose(np.asarray(d.teacher_tags(x)), want, atol=1e-6)
    np.testing.assert_allclose(student, want, atol=1e-5)
    assert want.shape == (2, 50) and want.max() - want.min() > 0.05


def test_step_loss_adds_weight_times_bce_and_only_the_model_learns(batch, tmp_path):
    x, y = batch
    plain = _no_dropout(build_compiled_model(_cfg()))
    assert D.prepare_distillation(plain, _cfg()) is None and "compute_loss" not in vars(plain)  # today's step
    cfg = _cfg("training.distill_weight=0.5")
    model = _no_dropout(build_compiled_model(cfg))
    model.set_weights(plain.get_weights())
    d = D.prepare_distillation(model, cfg)
    _no_dropout(d.teacher)
    # By hand, before the step (training-mode batch norm, as in the step).
    bce = _bce(np.asarray(d.student_logits(x, training=True)), np.asarray(d.teacher_tags(x)))
    teacher_before = [w.copy() for w in d.teacher.get_weights()]
    backbone_before = model.get_layer("backbone").get_weights()[1].copy()
    with_term = model.train_on_batch(x, y, return_dict=True)["loss"]
    without = plain.train_on_batch(x, y, return_dict=True)["loss"]
    assert bce > 0.01
    np.testing.assert_allclose(with_term - without, 0.5 * bce, rtol=1e-4, atol=1e-6)
    model.train_on_batch(x, y)
    for a, b in zip(teacher_before, d.teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the teacher and its (shared) tag layer never move
    assert not np.allclose(backbone_before, model.get_layer("backbone").get_weights()[1])
    # Validation loss is the plain BCE: evaluate gives the same with and without the term.
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0, return_dict=True)["loss"],
                               _evaluate_copy(model, x, y), rtol=1e-6)
    _check_saved_is_plain(model, plain, tmp_path)


def _evaluate_copy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    other = build_compiled_model(_cfg())
    other.set_weights(model.get_weights())
    return other.evaluate(x, y, verbose=0, return_dict=True)["loss"]


def _check_saved_is_plain(model: keras.Model, plain: keras.Model, tmp_path: Path) -> None:
    model.save(tmp_path / "distilled.keras")
    plain.save(tmp_path / "plain.keras")
    a, b = load_model(tmp_path / "distilled.keras"), load_model(tmp_path / "plain.keras")
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    assert a.input.shape == b.input.shape and a.output.shape == b.output.shape == (None, len(CLASSES))
    assert not getattr(a, "_keras_inst_distilled", False) and "compute_loss" not in vars(a)
    np.testing.assert_allclose(np.asarray(a(np.zeros((1, 64000), np.float32))),
                               np.asarray(model(np.zeros((1, 64000), np.float32))), atol=1e-6)


def test_mixed_bfloat16_step_is_finite(batch):
    cfg = _cfg("training.distill_weight=1.0", "training.mixed_precision=mixed_bfloat16")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_compiled_model(cfg)
        d = D.prepare_distillation(model, cfg)
        loss = model.train_on_batch(*batch, return_dict=True)["loss"]
        assert np.isfinite(loss) and d.loss(batch[0], training=True).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="training.distill_weight"):
        _cfg("training.distill_weight=-1")
    with pytest.raises(ValueError, match="training.distill_teacher.*musicnn_foo"):
        _cfg("training.distill_teacher=musicnn_foo")
    with pytest.raises(ValueError, match="'training.distill_teacher'.*needs a musicnn tagger.*short_chunk_cnn"):
        D.teacher_name(_cfg("training.distill_weight=1", "training.distill_teacher=short_chunk_cnn"))
    with pytest.raises(ValueError, match="'training.distill_teacher'.*musicnn tagger.*model.architecture"):
        D.teacher_name(_cfg("training.distill_weight=1", "training.distill_teacher=musicnn_mtt_musicnn"))
    assert D.teacher_name(_cfg("training.distill_weight=1")) == "musicnn_msd_vgg"
    with pytest.raises(ValueError, match="audio.chunk_seconds"):
        D.build_distillation(None, _cfg("training.distill_weight=1", "audio.chunk_seconds=2.0"))
