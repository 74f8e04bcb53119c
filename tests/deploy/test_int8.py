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
from keras_inst.deploy.fold_norms import FOLDED, float_equivalent_copy
from keras_inst.deploy.int8_select import greedy_float_layers
from keras_inst.training.train import build_compiled_model

MUSICNN = Path(__file__).resolve().parents[1] / "assets" / "musicnn"
# The smallest settings that keep each architecture whole: musicnn's MSD pools need >= 64
# frames (1.1 s at hop 256); the short-chunk CNN's 7 blocks of 2x2 pooling need >= 128 mels
# and frames (2.1 s).
ARCHITECTURES = {
    # The whole backbone trains here, as in the main job until 2026-12-07: with its blocks 1-2
    # frozen (the main job's trainable_blocks: 3) their batch norms keep real-music statistics
    # that the toy task's tones and noise sit far outside, and export rightly refuses that toy
    # model (max|dp| 0.27). The main job's real partly frozen model passes (max|dp| 0.054,
    # docs/benchmarks.md "int8 of the musicnn VGG").
    "musicnn_vgg": ("demo", ["audio.chunk_seconds=1.1", f"training.pretrained_path={MUSICNN}",
                             "training.trainable_blocks=null"]),
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


@pytest.fixture(scope="module")
def musicnn_export(musicnn_model, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("musicnn_int8") / "m"
    return out, _export_int8(musicnn_model, out)


def test_musicnn_vgg_int8_passes_the_export_checks(musicnn_export):
    _, manifest = musicnn_export
    a = manifest["artifacts"]["tflite_int8"]
    assert a["passed"], a["failed"]
    assert a["roc_auc_keras"] > 0.95 and abs(a["roc_auc_change"]) <= E.MAX_ROC_AUC_CHANGE["tflite_int8"]
    # Measured on this model: 0.465 full-integer without equalisation, ~0.08 with it.
    assert a["probabilities_max_abs_diff"] < E.TOLERANCES["tflite_int8"]
    int8 = manifest["int8"]
    assert int8["activations"] == E.DYNAMIC_INT8
    assert int8["equalised"] == ["bn1", "bn2", "bn3", "bn4", "bn5"]  # folded: keras_inst.deploy.fold_norms
    assert int8["copy"] == FOLDED
    chosen = int8["float_selection"]["chosen"]
    assert int8["float_layers"] == ["to_time_mel", "add_channel", "input_bn", *chosen]
    assert int8["equalised_max_abs_diff"] < 1e-4


def test_musicnn_vgg_float_layers_follow_the_greedy_rule(musicnn_model, musicnn_export):
    """The recorded selection is the rule applied to the recorded calibration errors, and those
    errors are real: rebuilding the int8 model with the chosen layers float from the same
    float-equivalent (folded) copy gives the recorded calibration max|dp|."""
    from keras_inst.deploy.lite import convert_tflite
    from keras_inst.deploy.serving import save_serving_model
    from keras_inst.runtime.keras_model import dual_output_model
    from keras_inst.runtime.lite import LiteClassifier
    from keras_inst.taxonomy import CLASSES

    out, manifest = musicnn_export
    sel = manifest["int8"]["float_selection"]
    assert sel["candidates"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert sel["target_max_abs_diff"] == E.INT8_SELECTION_TARGET == E.TOLERANCES["tflite_int8"] / 1.4
    steps, errs = sel["steps"], [s["calibration_max_abs_diff"] for s in sel["steps"]]
    assert steps[0]["float"] == [] and len(sel["chosen"]) <= E.INT8_MAX_FLOAT_LAYERS
    for prev, step in zip(steps[:-1], steps[1:], strict=True):
        tried = step["tried"]
        assert set(tried) == set(sel["candidates"]) - set(prev["float"])
        assert prev["calibration_max_abs_diff"] > sel["target_max_abs_diff"]  # only steps while over target
        if step["added"] is not None:  # the best candidate, and it lowered the error
            assert step["added"] == min(tried, key=tried.get)
            assert tried[step["added"]] == step["calibration_max_abs_diff"] < prev["calibration_max_abs_diff"]
    assert sel["calibration_max_abs_diff"] == errs[-1]
    assert sel["reached_target"] == (errs[-1] <= sel["target_max_abs_diff"])
    if not sel["reached_target"]:  # stopped at the cap or because nothing helped
        assert len(sel["chosen"]) == E.INT8_MAX_FLOAT_LAYERS or steps[-1]["added"] is None

    cal, _ = _toy(4, 32, int(musicnn_model.input.shape[-1]))
    eq, _, _, _ = float_equivalent_copy(musicnn_model, cal)
    sm, labels = out.parent / "sm_check", out.parent / "labels_check.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    save_serving_model(dual_output_model(eq), sm, class_names=CLASSES, sample_rate=16000, thresholds=None, labels_file=labels)
    path = out.parent / "rebuilt.tflite"
    path.write_bytes(convert_tflite(sm, "tflite_int8", dynamic=True, keep_float=manifest["int8"]["float_layers"]))
    got = LiteClassifier(path).run(cal)["probabilities"]
    err = np.abs(got.astype(np.float64) - musicnn_model.predict(cal, verbose=0)).max()
    np.testing.assert_allclose(err, sel["calibration_max_abs_diff"], atol=2e-4)
    assert path.read_bytes() == (out / "model_int8.tflite").read_bytes()


def _table_error(table: dict[frozenset, float], calls: list) -> object:
    def error(kept: tuple[str, ...]) -> float:
        calls.append(kept)
        return table[frozenset(kept)]
    return error


def test_greedy_keeps_the_best_layer_each_step_until_under_target():
    table = {frozenset(): 0.16, frozenset({"a"}): 0.17, frozenset({"b"}): 0.12, frozenset({"c"}): 0.09,
             frozenset({"a", "c"}): 0.10, frozenset({"b", "c"}): 0.04}
    calls: list = []
    sel = greedy_float_layers(_table_error(table, calls), ["a", "b", "c"], target=0.05, max_layers=2)
    assert sel["chosen"] == ["c", "b"] and sel["reached_target"] and sel["calibration_max_abs_diff"] == 0.04
    assert [s["calibration_max_abs_diff"] for s in sel["steps"]] == [0.16, 0.09, 0.04]
    assert sel["steps"][1]["tried"] == {"a": 0.17, "b": 0.12, "c": 0.09}
    assert len(calls) == 1 + 3 + 2  # no step after the target is met
    # Already under the target: nothing is tried, nothing kept.
    sel = greedy_float_layers(_table_error(table, []), ["a", "b", "c"], target=0.2, max_layers=2)
    assert sel["chosen"] == [] and sel["reached_target"] and len(sel["steps"]) == 1


def test_greedy_stops_at_the_cap_or_when_nothing_helps():
    table = {frozenset(): 0.16, frozenset({"a"}): 0.17, frozenset({"b"}): 0.12, frozenset({"c"}): 0.09,
             frozenset({"a", "c"}): 0.10, frozenset({"b", "c"}): 0.095}
    sel = greedy_float_layers(_table_error(table, []), ["a", "b", "c"], target=0.05, max_layers=1)
    assert sel["chosen"] == ["c"] and not sel["reached_target"] and len(sel["steps"]) == 2
    table[frozenset({"b", "c"})] = 0.2  # no second layer lowers the error: stop, keep one
    sel = greedy_float_layers(_table_error(table, []), ["a", "b", "c"], target=0.05, max_layers=2)
    assert sel["chosen"] == ["c"] and sel["steps"][-1]["added"] is None and sel["calibration_max_abs_diff"] == 0.09
    with pytest.raises(ValueError, match="target > 0"):
        greedy_float_layers(_table_error(table, []), ["a"], target=0.0, max_layers=2)


@pytest.mark.parametrize("name", ["short_chunk_quarter", pytest.param("short_chunk_full", marks=pytest.mark.slow)])
def test_short_chunk_cnn_int8_passes_the_export_checks(name, tmp_path):
    model = _trained(name)
    manifest = _export_int8(model, tmp_path / name)
    a = manifest["artifacts"]["tflite_int8"]
    assert a["passed"], (name, a["failed"])
    assert manifest["int8"]["activations"] == E.FULL_INT8
    assert abs(a["roc_auc_change"]) <= E.MAX_ROC_AUC_CHANGE["tflite_int8"]


def test_equalised_copy_is_the_same_function_with_equal_channel_ranges(musicnn_model):
    samples = int(musicnn_model.input.shape[-1])
    cal, _ = _toy(4, 16, samples)
    x, _ = _toy(6, 16, samples)
    eq, names = equalised_copy(musicnn_model, cal)
    assert names == ["bn1", "bn2", "bn3", "bn4"] and eq is not musicnn_model
    np.testing.assert_allclose(eq.predict(x, verbose=0), musicnn_model.predict(x, verbose=0), atol=1e-5)
    # On the calibration data every channel of conv1's ReLU output now peaks at 1, and bn1's
    # channel peaks p (between ~1e-7 and 63 in the original) become p ** 0.5: a spread of
    # 1.7e7 shrinks to ~4e3 (channels above the 1e-3 floor).
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
    np.testing.assert_allclose(y1[live], y0[live] ** 0.5, rtol=1e-3)
    # The original model is untouched.
    assert musicnn_model.get_layer("backbone").get_layer("bn1").get_weights()[2].any()


def test_folded_copy_is_the_same_function_without_batch_norms_after_the_relu(musicnn_model):
    """keras_inst.deploy.fold_norms: the batch norms move into the next conv (and after the
    global max-pool), each conv's output channels are scaled to a typical window peak of 1."""
    from keras_inst.deploy.fold_norms import folded_copy
    from keras_inst.runtime.keras_model import dual_output_model

    samples = int(musicnn_model.input.shape[-1])
    cal, _ = _toy(4, 20, samples)
    x, _ = _toy(6, 16, samples)
    folded, names, how, note = float_equivalent_copy(musicnn_model, cal)
    assert names == ["bn1", "bn2", "bn3", "bn4", "bn5"] and how == FOLDED and note == {}  # not fused
    ref, got = (dual_output_model(m).predict(x, verbose=0) for m in (musicnn_model, folded))
    np.testing.assert_allclose(got["probabilities"], ref["probabilities"], atol=1e-5)
    np.testing.assert_allclose(got["embeddings"], ref["embeddings"], atol=1e-4 * np.abs(ref["embeddings"]).max())
    bb = folded.get_layer("backbone")
    bns = [lay.name for lay in bb.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert bns == ["input_bn"]  # only the one-channel input stage is left
    # Each border term is stored as three [M, C] time frames (first, inner, last), not [T, M, C].
    for i in range(2, 6):
        t, m, c = bb.get_layer(f"conv{i}").output.shape[1:]
        assert t >= 3 and [tuple(w.shape) for w in bb.get_layer(f"conv{i}_border").weights] == [(m, c)] * 3
    # conv2..conv5 read the pooled ReLU output; the 90th percentile over the calibration
    # windows of each window's channel peak is 1 for every channel above the floor (1e-3 of
    # the largest, in the original model), below 1 for the floored ones.
    def q90(model, names):
        b = model.get_layer("backbone")
        out = keras.Model(b.input, [b.get_layer(n).output for n in names]).predict(mel, verbose=0)
        return [np.percentile(np.abs(t).reshape(len(t), -1, t.shape[-1]).max(axis=1), 90, axis=0) for t in out]  # [C]

    mel = folded.get_layer("frontend").predict(cal, verbose=0)
    before = q90(musicnn_model, [f"conv{i}" for i in range(1, 6)])
    after = q90(folded, ["conv1"] + [f"conv{i}_relu" for i in range(2, 6)])
    for q0, q in zip(before, after, strict=True):
        live = q0 >= 1e-3 * q0.max()
        assert live.sum() > 8
        np.testing.assert_allclose(q[live], 1.0, rtol=1e-3)
        assert (q[~live] < 1.0).all()
    assert musicnn_model.get_layer("backbone").get_layer("bn1").get_weights()[2].any()  # original untouched
    # A short-chunk CNN is no such chain: the equalised (here: unchanged) model is used.
    cfg = load_config("paper", ["audio.chunk_seconds=1.0", "features.n_mels=64", "model.channels=[8,16,16,32]",
                                "model.head_units=16", "training.transfer=scratch", "training.pretrained=null"])
    from keras_inst.models.short_chunk import build_model

    short = build_model(cfg)
    zeros = np.zeros((2, cfg.audio.chunk_samples), np.float32)
    assert folded_copy(short, zeros) is None and float_equivalent_copy(short, zeros) == (short, [], None, {})


def test_short_chunk_cnn_has_nothing_to_equalise():
    cfg = load_config("paper", ["audio.chunk_seconds=1.0", "features.n_mels=64", "model.channels=[8,16,16,32]",
                                "model.head_units=16", "training.transfer=scratch", "training.pretrained=null"])
    from keras_inst.models.short_chunk import build_model

    model = build_model(cfg)
    backbone = model.get_layer("backbone")
    assert equalisable_blocks(backbone) == []  # conv -> BN -> ReLU: the BN folds into the conv
    assert equalised_copy(model, np.zeros((2, cfg.audio.chunk_samples), np.float32)) == (model, [])
    assert input_stage(backbone) == ["expand", "spec_bn"]


def _tensor_types(flat: bytes) -> dict[str, np.dtype]:
    from ai_edge_litert.interpreter import Interpreter

    return {d["name"]: d["dtype"] for d in Interpreter(model_content=flat).get_tensor_details()}


def test_dynamic_range_int8_keeps_front_end_and_named_layers_float(musicnn_model, tmp_path):
    from keras_inst.deploy.lite import convert_tflite
    from keras_inst.deploy.serving import save_serving_model
    from keras_inst.runtime.keras_model import dual_output_model
    from keras_inst.runtime.lite import LiteClassifier
    from keras_inst.taxonomy import CLASSES

    sm, labels = tmp_path / "sm", tmp_path / "labels.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    save_serving_model(dual_output_model(musicnn_model), sm, class_names=CLASSES, sample_rate=16000,
                       thresholds=None, labels_file=labels)
    flat = convert_tflite(sm, "tflite_int8", dynamic=True, keep_float=["conv3"])
    types = _tensor_types(flat)
    int8 = {n for n, t in types.items() if t == np.int8}
    # Only weights are int8: the convs' kernels and the head's dense matrices, never the mel
    # matrix (front end) nor the kernel of the layer named in keep_float; activations are float.
    assert any("conv1" in n for n in int8) and any("head" in n for n in int8)
    assert not any("frontend" in n or "conv3" in n for n in int8)
    assert len(int8) == 6  # conv1, conv2, conv4, conv5 kernels; 2 dense matrices
    path = tmp_path / "m.tflite"
    path.write_bytes(flat)
    x, _ = _toy(7, 8, int(musicnn_model.input.shape[-1]))
    got = LiteClassifier(path).run(x)["probabilities"]
    np.testing.assert_allclose(got, musicnn_model.predict(x, verbose=0), atol=0.1)
    with pytest.raises(ValueError, match="unknown TFLite variant"):
        convert_tflite(sm, "tflite_int4", dynamic=True)
