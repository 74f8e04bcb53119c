"""Partly frozen backbones (training.trainable_blocks): which layers train, what a step moves,
resume from a .keras checkpoint, and the errors naming the key."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from tiny import TINY_MODEL

from keras_inst.config.io import load_config
from keras_inst.models.blocks import (
    BACKBONE_BLOCKS,
    backbone_blocks,
    check_trainable_blocks,
    freeze_leading_blocks,
)
from keras_inst.models.optimizers import build_optimizer
from keras_inst.models.pretrained import build_musicnn_backbone
from keras_inst.models.short_chunk import build_backbone, build_model

# The tiny short-chunk CNN (4 blocks: channels 8, 16, 16, 32), fine-tuned from "pre-trained" weights.
FINETUNE = [s for s in TINY_MODEL if not s.startswith(("training.transfer", "training.pretrained"))] + [
    "training.transfer=finetune", "training.pretrained=short_chunk_cnn", "model.dropout=0.0"]
HEAD = {"dense1", "bn", "dense2"}


def tiny_cfg(n: int | None, *extra: str):
    return load_config("paper", [*FINETUNE, f"training.trainable_blocks={'null' if n is None else n}", *extra])


def compiled(cfg, seed: int = 0) -> keras.Model:
    """As keras_inst.training.train.build_compiled_model, less the weight loading."""
    keras.utils.set_random_seed(seed)
    model = build_model(cfg)
    freeze_leading_blocks(model.get_layer("backbone"), cfg)
    model.compile(optimizer=build_optimizer(cfg, model), loss="binary_crossentropy")
    return model


def trained_layers(model: keras.Model) -> set[str]:
    return {v.path.split("/")[0] for v in model.trainable_variables}


def batch(seed: int = 0, n: int = 8):
    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal((n, 16000))).astype("float32")
    y = (rng.random((n, 15)) < 0.3).astype("float32")
    return x, y


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """Every backbone layer's weights (batch-norm moving statistics included), by layer name."""
    return {la.name: [np.array(w) for w in la.weights] for la in model.get_layer("backbone").layers if la.weights}


@pytest.mark.parametrize(("n", "trained"), [
    (1, {"layer4_conv", "layer4_bn"}),
    (2, {"layer3_conv", "layer3_bn", "layer4_conv", "layer4_bn"}),
    (3, {"layer2_conv", "layer2_bn", "layer3_conv", "layer3_bn", "layer4_conv", "layer4_bn"}),
])
def test_exactly_the_last_blocks_and_the_head_train(n, trained):
    m = compiled(tiny_cfg(n))
    assert trained_layers(m) == trained | HEAD
    assert set(m.optimizer.assignment.values()) == {"backbone", "head"}
    assert {p.split("/")[0] for p, g in m.optimizer.assignment.items() if g == "backbone"} == trained


def test_all_blocks_train_as_plain_finetune_does():
    every = compiled(tiny_cfg(4))
    plain = compiled(tiny_cfg(None))
    assert [v.path for v in every.trainable_variables] == [v.path for v in plain.trainable_variables]
    assert every.optimizer.assignment == plain.optimizer.assignment
    assert "spec_bn" in trained_layers(plain)  # the input batch norm goes with block 1


@pytest.mark.parametrize("precision", [None, "mixed_float16"])
def test_a_step_keeps_frozen_blocks_and_their_statistics_bit_identical(precision):
    previous = keras.config.dtype_policy()
    try:
        if precision:
            keras.mixed_precision.set_global_policy(precision)
        m = compiled(tiny_cfg(2))
        before = layer_weights(m)
        m.train_on_batch(*batch())
        after = layer_weights(m)
    finally:
        keras.config.set_dtype_policy(previous)
    frozen = {"spec_bn", "layer1_conv", "layer1_bn", "layer2_conv", "layer2_bn"}
    assert set(before) == frozen | {"layer3_conv", "layer3_bn", "layer4_conv", "layer4_bn"}
    for name in frozen:  # kernels, gamma/beta and moving mean/variance: not one bit moves
        for a, b in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(a, b)
    for name in ("layer3_conv", "layer4_conv"):
        assert np.abs(after[name][0] - before[name][0]).max() > 0  # kernel
    bn = m.get_layer("backbone").get_layer("layer3_bn")
    i_mean = [w.path for w in bn.weights].index(bn.moving_mean.path)
    assert np.abs(after["layer3_bn"][i_mean] - before["layer3_bn"][i_mean]).max() > 0  # trained BN re-estimates


def test_a_resumed_checkpoint_keeps_the_split_and_the_frozen_weights(tmp_path):
    m = compiled(tiny_cfg(1))
    m.train_on_batch(*batch(0))
    m.save(tmp_path / "ckpt.keras")
    r = keras.saving.load_model(tmp_path / "ckpt.keras")
    assert trained_layers(r) == trained_layers(m) == {"layer4_conv", "layer4_bn"} | HEAD
    assert r.optimizer.assignment == m.optimizer.assignment
    before = layer_weights(r)
    r.train_on_batch(*batch(1))
    after = layer_weights(r)
    for name in ("spec_bn", "layer1_bn", "layer3_conv", "layer3_bn"):
        for a, b in zip(before[name], after[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert np.abs(after["layer4_conv"][0] - before["layer4_conv"][0]).max() > 0


def _musicnn_cfg(architecture: str, n: int):
    return load_config("musicnn_finetune", [f"model.architecture={architecture}", f"training.trainable_blocks={n}"])


def _trainable_layers(backbone: keras.Model) -> set[str]:
    return {la.name for la in backbone.layers if la.trainable_weights}


def test_musicnn_vgg_blocks_are_its_five_conv_blocks():
    cfg = _musicnn_cfg("musicnn_vgg", 2)
    assert len(backbone_blocks(cfg)) == 5
    backbone = build_musicnn_backbone(cfg, frames=187)
    frozen = freeze_leading_blocks(backbone, cfg)
    assert _trainable_layers(backbone) == {"conv4", "bn4", "conv5", "bn5"}
    assert frozen == ("input_bn", "conv1", "bn1", "conv2", "bn2", "conv3", "bn3")


@pytest.mark.parametrize(("n", "trained"), [
    (1, {"pooled_bn", "penultimate_dense", "penultimate"}),
    (3, {"midend2", "midend2_bn", "midend3", "midend3_bn", "pooled_bn", "penultimate_dense", "penultimate"}),
])
def test_musicnn_blocks_are_front_end_three_mid_end_convs_and_back_end(n, trained):
    cfg = _musicnn_cfg("musicnn", n)
    assert len(backbone_blocks(cfg)) == 5
    backbone = build_backbone(cfg, frames=187)
    freeze_leading_blocks(backbone, cfg)
    assert _trainable_layers(backbone) == trained


def test_residual_blocks_freeze_with_their_shortcuts():
    cfg = tiny_cfg(1, "model.architecture=short_chunk_res")
    backbone = build_backbone(cfg)
    freeze_leading_blocks(backbone, cfg)
    assert _trainable_layers(backbone) == {f"layer4_{p}_{i}" for p in ("conv", "bn") for i in (1, 2, 3)}


def test_more_blocks_than_the_backbone_has_names_the_key():
    with pytest.raises(ValueError, match=r"training\.trainable_blocks.*5 is more than the 4 blocks"):
        check_trainable_blocks(tiny_cfg(5))
    with pytest.raises(ValueError, match=r"training\.trainable_blocks.*6 is more than the 5 blocks"):
        freeze_leading_blocks(build_musicnn_backbone(_musicnn_cfg("musicnn_vgg", 6)), _musicnn_cfg("musicnn_vgg", 6))
    check_trainable_blocks(tiny_cfg(None))  # null: nothing to check


def test_a_backbone_without_a_table_or_with_an_unknown_layer_is_an_error(monkeypatch):
    cfg = tiny_cfg(1)
    i = keras.Input((4,))
    stray = keras.Model(i, keras.layers.Dense(2, name="extra_dense")(i), name="backbone")
    with pytest.raises(ValueError, match=r"training\.trainable_blocks.*'extra_dense' is in no block"):
        freeze_leading_blocks(stray, cfg)
    monkeypatch.delitem(BACKBONE_BLOCKS, "short_chunk_cnn")
    with pytest.raises(ValueError, match=r"training\.trainable_blocks.*'short_chunk_cnn' has no block table"):
        check_trainable_blocks(cfg)
