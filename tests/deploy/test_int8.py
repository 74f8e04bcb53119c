"""int8 export of every shipped architecture, and the range equalisation it relies on.

Each model is trained for seconds on the toy task of tests/toy_models.py (tones are piano/key,
noise is drums/percussion), then exported to int8 with labelled check data: the export's own
checks (max|dp| guard, decision agreement, ROC-AUC change) must pass. musicnn's VGG starts from
the real MSD_vgg weights (tests/assets/musicnn): its batch norms after the ReLU are what broke
int8 (max|dp| 0.47 on this toy model before equalisation, docs/benchmarks.md "int8").
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from toy_models import toy_batch  # noqa: E402  (tests/ is on sys.path under pytest)

from keras_inst.config.io import load_config
from keras_inst.deploy import export as E
from keras_inst.deploy.equalize import equalisable_blocks, equalised_copy, input_stage
from keras_inst.training.train import build_compiled_model

MUSICNN = Path(__file__).resolve().parents[1] / "assets" / "musicnn"
# The smallest settings that keep each architecture whole: musicnn's MSD pools need >= 64
# frames (1.1 s at hop 256); the short-chunk CNN's 7 blocks of 2x2 pooling need >= 128 mels
# and frames (2.1 s).
ARCHITECTURES = {
    "musicnn_vgg": ("demo", ["audio.chunk_seconds=1.1", f"training.pretrained_path={MUSICNN}"]),
    "short_chunk_quarter": ("paper", ["audio.chunk_seconds=2.1", "model.width_multiplier=0.25", "model.head_units=64",
                                      "training.transfer=scratch", "training.pretrained=null"]),
    "short_chunk_full": ("paper", ["audio.chunk_seconds=2.1", "training.transfer=scratch", "training.pretrained=null"]),
}
# From scratch at the paper's 0.01 the short-chunk CNN jumps to logits of +-300 on this toy task
# in a few steps (an int8 step of the logits is then 3, and the noise examples' ~0 logits all
# round to 0.5); 1e-3 trains it to a usable model in the same steps.
SCRATCH_LR = "optimizer.head_learning_rate=0.001"


def _toy(seed: int, n: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Toy waveforms (1 s, repeated to ``samples``) and labels."""
    x, y = toy_batch(seed, n)
    return np.stack([np.resize(w, samples) for w in x]).astype(np.float32), y


def _trained(name: str, *, examples: int = 128) -> keras.Model:
    config, overrides = ARCHITECTURES[name]
    cfg = load_config(config, overrides + ["model.dropout=0.0"] + ([SCRATCH_LR] if config == "paper" else []))
    keras.utils.set_random_seed(0)
    model = build_compiled_model(cfg)
    x, y = _toy(0, examples, cfg.audio.chunk_samples)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def musicnn_model() -> keras.Model:
    return _trained("musicnn_vgg")


def _export_int8(model: keras.Model, out: Path) -> dict:
    samples = int(model.input.shape[-1])
    cal, _ = _toy(4, 32, samples)
    x, y = _toy(5, 64, samples)
    return E.export_model(model, out, formats=["tflite_int8"], representative=cal, check_inputs=x, check_labels=y)


def test_musicnn_vgg_int8_passes_the_export_checks(musicnn_model, tmp_path):
    manifest = _export_int8(musicnn_model, tmp_path / "m")
    a = manifest["artifacts"]["tflite_int8"]
    assert a["passed"], a["failed"]
    assert a["roc_auc_keras"] > 0.95 and abs(a["roc_auc_change"]) <= E.MAX_ROC_AUC_CHANGE["tflite_int8"]
    # Measured on this model: 0.465 without equalisation, ~0.08 with it.
    assert a["probabilities_max_abs_diff"] < E.TOLERANCES["tflite_int8"]
    int8 = manifest["int8"]
    assert int8["equalised"] == ["bn1", "bn2", "bn3", "bn4"]
    assert int8["float_layers"] == ["to_time_mel", "add_channel", "input_bn"]
    assert int8["equalised_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("name", ["short_chunk_quarter", pytest.param("short_chunk_full", marks=pytest.mark.slow)])
def test_short_chunk_cnn_int8_passes_the_export_checks(name, tmp_path):
    model = _trained(name)
    a = _export_int8(model, tmp_path / name)["artifacts"]["tflite_int8"]
    assert a["passed"], (name, a["failed"])
    assert abs(a["roc_auc_change"]) <= E.MAX_ROC_AUC_CHANGE["tflite_int8"]


def test_equalised_copy_is_the_same_function_with_equal_channel_ranges(musicnn_model):
    samples = int(musicnn_model.input.shape[-1])
    cal, _ = _toy(4, 16, samples)
    x, _ = _toy(6, 16, samples)
    eq, names = equalised_copy(musicnn_model, cal)
    assert names == ["bn1", "bn2", "bn3", "bn4"] and eq is not musicnn_model
    np.testing.assert_allclose(eq.predict(x, verbose=0), musicnn_model.predict(x, verbose=0), atol=1e-5)
    # On the calibration data every channel of conv1's ReLU output now peaks at 1, and bn1's
    # channel peaks p (between ~1e-7 and 63 in the original) become p ** 0.25: a spread of
    # 1.7e7 shrinks to ~60 (channels above the 1e-3 floor).
    def peaks(model):
        bb = model.get_layer("backbone")
        mel = model.get_layer("frontend").predict(cal, verbose=0)
        r, y = keras.Model(bb.input, [bb.get_layer("conv1").output, bb.get_layer("bn1").output]).predict(mel, verbose=0)
        return [np.abs(t).reshape(-1, t.shape[-1]).max(axis=0) for t in (r, y)]  # [C] each

    (r0, y0), (r1, y1) = peaks(musicnn_model), peaks(eq)
    live = r0 > 1e-3 * r0.max()
    assert live.sum() > 32
    np.testing.assert_allclose(r1[live], 1.0, rtol=1e-4)
    live = y0 > 1e-3 * y0.max()
    np.testing.assert_allclose(y1[live], y0[live] ** 0.25, rtol=1e-3)
    # The original model is untouched.
    assert musicnn_model.get_layer("backbone").get_layer("bn1").get_weights()[2].any()


def test_short_chunk_cnn_has_nothing_to_equalise():
    cfg = load_config("paper", ["audio.chunk_seconds=1.0", "features.n_mels=64", "model.channels=[8,16,16,32]",
                                "model.head_units=16", "training.transfer=scratch", "training.pretrained=null"])
    from keras_inst.models.short_chunk import build_model

    model = build_model(cfg)
    backbone = model.get_layer("backbone")
    assert equalisable_blocks(backbone) == []  # conv -> BN -> ReLU: the BN folds into the conv
    assert equalised_copy(model, np.zeros((2, cfg.audio.chunk_samples), np.float32)) == (model, [])
    assert input_stage(backbone) == ["expand", "spec_bn"]
