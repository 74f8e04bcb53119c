"""The paper's model (keras_inst.models.short_chunk): shapes, parameter counts, sub-models, serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_inst.config.io import load_config
from keras_inst.config.registry import BACKBONES, register_backbone
from keras_inst.models import short_chunk as M
from keras_inst.taxonomy import NUM_CLASSES

PAPER_PARAMS = 3_674_003  # 3.67 M: Won et al.'s ShortChunkCNN with a 15-class classifier


def _cfg(*overrides: str):
    return load_config("paper", list(overrides))


def _small(*overrides: str):
    return _cfg("model.width_multiplier=0.25", *overrides)


def _expected_params(
    channels: list[int], head_units: int, n_classes: int, *, res: bool = False
) -> int:
    """Independent count: conv (k*k*in*out + out), BN (4 per channel), dense layers."""
    total, in_ch = 4, 1  # spec_bn: gamma, beta, mean, var of the single channel
    for c in channels:
        conv = 9 * in_ch * c + c
        if res:  # conv_1 + conv_2 + shortcut conv_3, three BNs
            total += conv + (9 * c * c + c) + conv + 3 * 4 * c
        else:
            total += conv + 4 * c
        in_ch = c
    total += in_ch * head_units + head_units + 4 * head_units  # dense1 + bn
    total += head_units * n_classes + n_classes  # dense2
    return total


def _randomise_bn(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial moving statistics, so inference-mode comparisons exercise them."""
    rng = np.random.default_rng(seed)
    for sub in ("backbone", "head"):
        for layer in model.get_layer(sub).layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                n = layer.moving_mean.shape[0]
                layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))


@pytest.fixture(scope="module")
def paper_model() -> keras.Model:
    return M.build_model(_cfg())


@pytest.fixture(scope="module")
def small_model() -> keras.Model:
    model = M.build_model(_small())
    _randomise_bn(model)
    return model


@pytest.fixture(scope="module")
def waveforms() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (0.1 * rng.standard_normal((2, 64000))).astype("float32")


def test_paper_parameter_count_and_split(paper_model):
    assert paper_model.name == "keras_inst"
    assert paper_model.count_params() == PAPER_PARAMS
    assert abs(PAPER_PARAMS - 3.67e6) / 3.67e6 < 0.005
    assert _expected_params([128, 128, 256, 256, 256, 256, 512], 512, 15) == PAPER_PARAMS
    split = {n: paper_model.get_layer(n).count_params() for n in ("frontend", "backbone", "head")}
    # backbone: 7 conv blocks + spec_bn; head: dense1 262,656 + bn 2,048 + dense2 7,695.
    assert split == {"frontend": 0, "backbone": 3_401_604, "head": 272_399}


def test_paper_shapes(paper_model, waveforms):
    assert tuple(paper_model.input.shape) == (None, 64000)
    frontend, backbone = paper_model.get_layer("frontend"), paper_model.get_layer("backbone")
    assert tuple(frontend.output.shape) == (None, 128, 251)
    assert tuple(backbone.input.shape) == (None, 128, 251)
    # Seven 2x2 pools: 128 mels -> 1 bin, 251 frames -> 1 frame, 512 channels (paper §2.1).
    assert tuple(backbone.get_layer("layer7_pool").output.shape) == (None, 1, 1, 512)
    assert tuple(backbone.output.shape) == (None, 512)
    assert tuple(paper_model.get_layer("head").output.shape) == (None, NUM_CLASSES)
    probs = paper_model.predict(waveforms, verbose=0)
    assert probs.shape == (2, 15) and probs.dtype == np.float32
    assert M.num_frames(_cfg()) == 251


def test_block_table():
    assert [s.channels for s in M.SHORT_CHUNK_LAYER_DEFS] == [128, 128, 256, 256, 256, 256, 512]
    assert [s.name for s in M.SHORT_CHUNK_LAYER_DEFS] == [f"layer{i}" for i in range(1, 8)]
    assert all(s.kernel == (3, 3) and s.pool == (2, 2) for s in M.SHORT_CHUNK_LAYER_DEFS)
    assert M.scaled_channels(128, 0.3) == 38  # 38.4
    assert M.scaled_channels(5, 0.5) == 3  # 2.5 rounds half up
    assert M.scaled_channels(128, 0.001) == 1


def test_width_multiplier_shrinks(small_model):
    backbone = small_model.get_layer("backbone")
    assert [backbone.get_layer(f"layer{i}_conv").filters for i in range(1, 8)] == [
        32,
        32,
        64,
        64,
        64,
        64,
        128,
    ]
    assert small_model.count_params() == _expected_params([32, 32, 64, 64, 64, 64, 128], 512, 15)
    assert small_model.count_params() == 290_291
    assert small_model.count_params() < PAPER_PARAMS / 12


def test_sub_models_and_layer_names(small_model):
    names = [layer.name for layer in small_model.layers]
    assert names == ["waveform", "frontend", "backbone", "head", "probabilities"]
    for n in ("frontend", "backbone", "head"):
        assert isinstance(small_model.get_layer(n), keras.Model)
    head = small_model.get_layer("head")
    assert [layer.name for layer in head.layers] == [
        "embedding",
        "dense1",
        "bn",
        "relu",
        "dropout",
        "dense2",
    ]
    assert head.get_layer("dropout").rate == 0.5
    bn = small_model.get_layer("backbone").get_layer("spec_bn")
    assert (bn.axis, bn.epsilon, bn.momentum) == (-1, 1e-5, 0.9)  # PyTorch BatchNorm defaults
    assert small_model.get_layer("frontend").count_params() == 0


def test_probabilities_are_sigmoid_of_logits(small_model, waveforms):
    probs = small_model.predict(waveforms, verbose=0)
    logits = M.logits_model(small_model).predict(waveforms, verbose=0)
    assert logits.shape == (2, 15)
    assert np.all((probs > 0) & (probs < 1))
    np.testing.assert_allclose(probs, 1.0 / (1.0 + np.exp(-logits)), atol=1e-6)
    assert np.ptp(logits) > 0.1  # not a constant output


def test_embedding_model_shares_weights(small_model, waveforms):
    emb_model = M.embedding_model(small_model)
    emb = emb_model.predict(waveforms, verbose=0)
    assert emb.shape == (2, 128)
    frontend, backbone = small_model.get_layer("frontend"), small_model.get_layer("backbone")
    direct = backbone(frontend(waveforms), training=False)
    np.testing.assert_allclose(emb, keras.ops.convert_to_numpy(direct), rtol=1e-5, atol=1e-5)
    bias = backbone.get_layer("layer7_bn").beta
    old = bias.numpy()
    try:
        bias.assign(old + 5.0)  # after ReLU and max: every embedding entry grows
        assert np.all(emb_model.predict(waveforms, verbose=0) > emb)
    finally:
        bias.assign(old)


def test_keras_save_load_round_trip_is_bit_exact(small_model, waveforms, tmp_path):
    path = tmp_path / "model.keras"
    small_model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in small_model.layers]
    np.testing.assert_array_equal(
        loaded.predict(waveforms, verbose=0), small_model.predict(waveforms, verbose=0)
    )
    np.testing.assert_array_equal(
        M.logits_model(loaded).predict(waveforms, verbose=0),
        M.logits_model(small_model).predict(waveforms, verbose=0),
    )


def test_sub_model_configs_round_trip(small_model, waveforms):
    """Every layer is a stock Keras layer or a registered keras_inst layer; configs rebuild."""
    for sub_name in ("frontend", "backbone", "head"):
        sub = small_model.get_layer(sub_name)
        for layer in sub.layers:
            registered = keras.saving.get_registered_name(type(layer))
            assert type(layer).__module__.startswith("keras.") or registered.startswith(
                "keras_inst>"
            ), layer
            if registered.startswith("keras_inst>"):
                clone = type(layer).from_config(layer.get_config())
                assert clone.get_config() == layer.get_config()
        rebuilt = keras.Model.from_config(sub.get_config())
        assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in sub.layers]
        rebuilt.set_weights(sub.get_weights())
    mel = small_model.get_layer("frontend")(waveforms)
    backbone = small_model.get_layer("backbone")
    clone = keras.Model.from_config(backbone.get_config())
    clone.set_weights(backbone.get_weights())
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(clone(mel, training=False)),
        keras.ops.convert_to_numpy(backbone(mel, training=False)),
    )


def test_backbone_and_head_variables(small_model):
    backbone_vars, head_vars = M.backbone_and_head_variables(small_model)
    assert len(backbone_vars) == 2 + 7 * 4  # spec_bn gamma/beta + (kernel, bias, gamma, beta) x 7
    assert len(head_vars) == 6
    paths = [v.path for v in backbone_vars + head_vars]
    assert len(set(paths)) == len(paths)
    assert {id(v) for v in backbone_vars + head_vars} == {
        id(v) for v in small_model.trainable_variables
    }
    backbone = small_model.get_layer("backbone")
    backbone.trainable = False
    try:
        frozen, head_only = M.backbone_and_head_variables(small_model)
        assert frozen == [] and len(head_only) == 6
    finally:
        backbone.trainable = True


def test_short_chunk_res_builds(waveforms):
    cfg = _small("model.architecture=short_chunk_res")
    model = M.build_model(cfg)
    backbone = model.get_layer("backbone")
    # Stride-2 convs with padding 1: ceil halving, 128 x 251 -> 1 x 2 after 7 blocks.
    assert tuple(backbone.get_layer("layer1_conv_1").output.shape) == (None, 64, 126, 32)
    assert tuple(backbone.get_layer("layer7_relu").output.shape) == (None, 1, 2, 128)
    assert tuple(backbone.output.shape) == (None, 128)
    assert model.count_params() == _expected_params(
        [32, 32, 64, 64, 64, 64, 128], 512, 15, res=True
    )
    probs = model.predict(waveforms, verbose=0)
    assert probs.shape == (2, 15) and np.all((probs > 0) & (probs < 1))


def test_mixed_bfloat16_policy(waveforms):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = M.build_model(_small())
        assert model.get_layer("backbone").get_layer("layer1_conv").compute_dtype == "bfloat16"
        assert model.get_layer("frontend").output.dtype == "float32"
        assert all(v.dtype == "float32" for v in model.weights)
        probs = model(waveforms, training=False)
        assert probs.dtype == "float32"
        probs = keras.ops.convert_to_numpy(probs)
        assert probs.shape == (2, 15) and np.all((probs > 0) & (probs < 1))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_bce_on_probabilities_uses_logits(small_model, waveforms):
    """Saturated outputs: BCE on the probabilities equals BCE on the logits (not clipped at 16)."""
    dense2 = small_model.get_layer("head").get_layer("dense2")
    old = dense2.bias.numpy()
    try:
        dense2.bias.assign(old + 60.0)  # sigmoid(~60) == 1.0 in float32
        target = np.zeros((2, 15), "float32")
        from_probs = keras.losses.binary_crossentropy(
            target, small_model(waveforms, training=False)
        )
        logits = M.logits_model(small_model)(waveforms, training=False)
        from_logits = keras.losses.binary_crossentropy(target, logits, from_logits=True)
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(from_probs),
            keras.ops.convert_to_numpy(from_logits),
            rtol=1e-5,
        )
        assert np.all(keras.ops.convert_to_numpy(from_probs) > 40.0)
    finally:
        dense2.bias.assign(old)


def test_custom_n_classes_head():
    model = M.build_model(_small(), n_classes=50)
    assert tuple(model.output.shape) == (None, 50)
    head = M.build_head(_cfg().model, 512)
    assert tuple(head.output.shape) == (None, 15) and head.count_params() == 272_399


def _tiny(cfg, *, frames, name="backbone"):
    """A plug-in backbone: max over mel bins of the log-mel, [B, n_mels, frames] -> [B, frames]."""
    mel = keras.Input((cfg.features.n_mels, frames))
    return keras.Model(mel, keras.layers.GlobalMaxPooling1D()(mel), name=name)


@pytest.fixture
def registered():
    """Register backbones for one test; they are removed afterwards."""
    names: list[str] = []

    def add(name, builder):
        register_backbone(name, builder)
        names.append(name)

    yield add
    for name in names:
        if name in BACKBONES:
            BACKBONES.unregister(name)


def test_registering_a_backbone_makes_it_a_config_value(registered):
    # Unknown names: a ValueError naming the key and listing every known backbone.
    with pytest.raises(ValueError, match="config key 'model.architecture': unknown backbone 'tiny'; "
                                         "known: short_chunk_cnn, short_chunk_res, musicnn_vgg, musicnn$"):
        _small("model.architecture=tiny")
    registered("tiny", _tiny)
    cfg = _small("model.architecture=tiny")  # ExperimentConfig accepts it now
    model = M.build_model(cfg)
    assert tuple(model.get_layer("backbone").output.shape) == (None, 251)  # 251 frames
    assert tuple(model.get_layer("head").input.shape) == (None, 251)
    assert model.count_params() == 251 * 512 + 512 + 4 * 512 + 512 * 15 + 15  # the head only
    with pytest.raises(ValueError, match="known: short_chunk_cnn, short_chunk_res, musicnn_vgg, musicnn, tiny"):
        _small("model.architecture=nope")
    # A lazily named builder that cannot be imported fails when the model is built.
    registered("gone", "keras_inst.no_such_module:build")
    with pytest.raises(ValueError, match="'keras_inst.no_such_module:build', which is not available"):
        M.build_backbone(_small("model.architecture=gone"))
    registered("misnamed", lambda cfg, *, frames: _tiny(cfg, frames=frames, name="not_backbone"))
    with pytest.raises(ValueError, match="must return a model named 'backbone'"):
        M.build_backbone(_small("model.architecture=misnamed"))
    BACKBONES.unregister("tiny")
    with pytest.raises(ValueError, match="unknown backbone 'tiny'"):
        _small("model.architecture=tiny")


def test_too_small_input_is_rejected():
    with pytest.raises(ValueError, match="too small for 7 blocks"):
        M.build_backbone(_small("features.n_mels=64"))
    with pytest.raises(ValueError, match="too small"):
        M.build_backbone(_small("audio.chunk_seconds=1.0"))  # 63 frames < 2**7
    # Fewer blocks fit fewer mels: 64 mels, 6 blocks -> 1 bin.
    backbone = M.build_backbone(_small("features.n_mels=64", "model.channels=[32,32,64,64,64,128]"))
    assert tuple(backbone.output.shape) == (None, 32)
