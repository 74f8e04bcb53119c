"""int8 export of a classifier fused with musicnn's zero-shot tagger (keras_inst.models.fusion).

The classifier is a narrow musicnn VGG trained for seconds on the toy task of
tests/toy_models.py, with musicnn's front end so the tagger reads the classifier's own log-mel
(the shared-front-end path); the tagger is the vendored MSD VGG checkpoint (tests/assets/musicnn).
Both backbones run conv -> ReLU -> batch norm -> max-pool, so both must be folded
(keras_inst.deploy.fold_norms) and their layers, which share names (conv1..conv5), must be told
apart in the int8 file.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from toy_models import toy_batch  # noqa: E402  (tests/ is on sys.path under pytest)

from keras_inst.config.io import load_config
from keras_inst.deploy import export as E
from keras_inst.deploy.fold_norms import FOLDED, TAGGER_NOT_FOLDED, foldable_chain, folded_copy
from keras_inst.deploy.lite import _backbone_nodes
from keras_inst.models import fusion as F
from keras_inst.runtime.keras_model import dual_output_model
from keras_inst.training.train import build_compiled_model

MUSICNN = Path(__file__).resolve().parents[1] / "assets" / "musicnn"
BNS = ["bn1", "bn2", "bn3", "bn4", "bn5"]
STAGE = ["to_time_mel", "add_channel", "input_bn"]


def _toy(seed: int, n: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = toy_batch(seed, n)
    return np.stack([np.resize(w, samples) for w in x]).astype(np.float32), y


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    """A 16-filter musicnn VGG on 3.5-s windows with musicnn's front end, trained 2 epochs."""
    cfg = load_config("demo", ["audio.chunk_seconds=3.5", "model.width_multiplier=0.125", "model.head_units=16",
                               "model.dropout=0.0", "model.fusion_tagger=null", "training.transfer=scratch",
                               "training.pretrained=null", "training.trainable_blocks=null"])
    assert F.frontend_is_taggers(cfg, "musicnn_msd_vgg")
    keras.utils.set_random_seed(0)
    model = build_compiled_model(cfg)
    x, y = _toy(0, 64, cfg.audio.chunk_samples)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    return model


def _fused(classifier: keras.Model, tagger: str) -> keras.Model:
    return F.fuse_with_tagger(classifier, tagger, weight=0.5, path=MUSICNN, share_frontend=True)


def test_backbone_names_tell_the_tagger_from_the_classifier():
    nodes = _backbone_nodes(["input_bn", "conv2", "tagger/conv1"])
    own, tag = "keras_inst_serving_1/backbone_1/{}_1/Relu", "keras_inst_serving_1/tagger_1/backbone_1/{}_1/Relu"
    assert nodes.search(own.format("conv2")) and not nodes.search(tag.format("conv2"))
    assert nodes.search(tag.format("conv1")) and not nodes.search(own.format("conv1"))
    assert nodes.search(own.format("input_bn")) and not nodes.search(tag.format("input_bn"))
    assert not nodes.search("keras_inst_serving_1/backbone_1/conv2_border_1/add")  # the fold's own layers
    assert _backbone_nodes([]) is None


def test_folded_copy_of_a_fused_model_folds_both_backbones(classifier):
    fused = _fused(classifier, "musicnn_msd_vgg")
    samples = int(fused.input.shape[-1])
    cal, _ = _toy(4, 16, samples)
    x, _ = _toy(6, 8, samples)
    copy, names, note = folded_copy(fused, cal)
    assert names == BNS + [f"tagger/{b}" for b in BNS] and note == {"tagger": FOLDED}
    ref, got = (dual_output_model(m).predict(x, verbose=0) for m in (fused, copy))
    np.testing.assert_allclose(got["probabilities"], ref["probabilities"], atol=1e-4)
    np.testing.assert_allclose(got["embeddings"], ref["embeddings"], rtol=1e-4, atol=1e-5)
    tagger_bb = copy.get_layer("tagger").get_layer("backbone")
    assert not any(isinstance(lay, keras.layers.BatchNormalization) and lay.name != "input_bn" for lay in tagger_bb.layers)
    assert tagger_bb.layers[-1].name == "pool5_flat"  # the tagger's flatten end kept


def test_a_musicnn_architecture_tagger_is_left_unfolded_and_float():
    """musicnn's own architecture (parallel timbral / temporal convs, 1-D mid-end) is not the
    chain fold_norms rewrites: a fused model with it keeps its tagger's backbone float32 whole
    (its int8 convs made the file slower than float32) and offers only the classifier's convs
    to the float selection. The stand-in for the fused model has the layers the export reads
    (backbone, tagger/backbone, fusion), with random weights."""
    from keras_inst.config.schema import ExperimentConfig, ModelConfig, TrainingConfig
    from keras_inst.deploy.int8_source import int8_layers
    from keras_inst.models.musicnn_cnn import build_musicnn_cnn_backbone
    from keras_inst.models.pretrained import build_musicnn_backbone
    from keras_inst.models.tagger import TAGGER_FRAMES, tagger_config

    tagger_bb = build_musicnn_cnn_backbone(tagger_config("musicnn_mtt_musicnn"), frames=TAGGER_FRAMES)
    assert foldable_chain(tagger_bb) is None
    cfg = ExperimentConfig(features=tagger_config("musicnn_mtt_musicnn").features,
                           model=ModelConfig(architecture="musicnn_vgg", width_multiplier=0.125),
                           training=TrainingConfig(transfer="scratch", pretrained=None))
    own_bb = build_musicnn_backbone(cfg, variant="msd", frames=TAGGER_FRAMES)
    mel = keras.Input((96, TAGGER_FRAMES))
    tagger = keras.Model(mel, tagger_bb(mel), name="tagger")
    stand_in = keras.Model(mel, keras.layers.Concatenate(name="fusion")([own_bb(mel), tagger(mel)]))
    always, candidates = int8_layers(stand_in)
    assert candidates == [f"conv{i}" for i in range(1, 6)]
    weighted = {f"tagger/{lay.name}" for lay in tagger_bb.layers if lay.weights}
    assert weighted <= set(always) and {"tagger/timbral_74", "tagger/midend1", "tagger/penultimate_dense"} <= weighted
    assert always[:3] == STAGE
    assert "not folded" in TAGGER_NOT_FOLDED and "float32" in TAGGER_NOT_FOLDED


def test_fused_vgg_int8_passes_the_export_checks_with_its_tagger_folded(classifier, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    fused = _fused(classifier, "musicnn_msd_vgg")
    samples = int(fused.input.shape[-1])
    cal, _ = _toy(4, 32, samples)
    x, y = _toy(5, 64, samples)
    manifest = E.export_model(fused, tmp_path / "m", formats=["tflite_int8"], representative=cal, check_inputs=x, check_labels=y)
    a, int8 = manifest["artifacts"]["tflite_int8"], manifest["int8"]
    assert a["passed"], a["failed"]
    assert a["probabilities_max_abs_diff"] < E.TOLERANCES["tflite_int8"]
    assert int8["activations"] == E.DYNAMIC_INT8 and int8["copy"] == FOLDED and int8["tagger"] == FOLDED
    assert int8["equalised"] == BNS + [f"tagger/{b}" for b in BNS] and int8["equalised_max_abs_diff"] < 1e-4
    sel = int8["float_selection"]
    convs = [f"conv{i}" for i in range(1, 6)]
    assert sel["candidates"] == convs + [f"tagger/{c}" for c in convs]
    assert int8["float_layers"] == STAGE + [f"tagger/{s}" for s in STAGE] + sel["chosen"]
    # In the file, a conv's kernel is int8 unless the selection kept that conv float (the
    # converter leaves weights under 1024 values float: the classifier's conv1, 16 x 3 x 3 x 1):
    # each backbone's layers are found under their own scope.
    details = Interpreter(model_path=str(tmp_path / "m" / a["path"])).get_tensor_details()
    checked = []
    for cand in sel["candidates"]:
        scope = ("tagger_1/backbone_1/" if cand.startswith("tagger/") else "serving_1/backbone_1/") + cand.split("/")[-1] + "_1/"
        kernels = [d for d in details if scope in d["name"] and len(d["shape"]) == 4 and d["shape"][1:3].tolist() == [3, 3]]
        assert kernels, cand
        if np.prod(kernels[0]["shape"]) >= 1024:
            assert {d["dtype"] for d in kernels} == ({np.float32} if cand in sel["chosen"] else {np.int8}), cand
            checked.append(cand)
    assert {f"tagger/conv{i}" for i in range(1, 6)} <= set(checked) and "conv2" in checked
