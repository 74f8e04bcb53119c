"""The paper's classifier (§2.1): log-mel front end -> short-chunk CNN backbone -> FC head.

The model is assembled from three named sub-models, keras-hub style, so training code can
freeze, re-initialise or give different learning rates to each part (paper §2.4):

* ``frontend``: waveform ``[B, samples]`` -> log-mel ``[B, n_mels, frames]`` (no weights).
* ``backbone``: log-mel -> embedding ``[B, C_last]`` (512 for the paper). Architectures are
  looked up in :data:`keras_inst.config.registry.BACKBONES` (add one with
  :func:`keras_inst.config.registry.register_backbone`); ``short_chunk_cnn`` (the paper's, Won
  et al. 2020) and ``short_chunk_res`` (its residual variant) live here, ``musicnn_vgg`` in
  :mod:`keras_inst.models.pretrained`.
* ``head``: embedding -> ``dense1`` -> ``bn`` -> ReLU -> dropout -> ``dense2`` -> logits.

Layer names mirror the PyTorch reference (minzwon/sota-music-tagging-models,
``training/model.py``) with ``.`` replaced by ``_`` (``layer3.bn`` -> ``layer3_bn``), which is
what :mod:`keras_inst.models.torch_convert` relies on. Initialisers and batch-norm constants follow
PyTorch's defaults (uniform +-1/sqrt(fan_in), eps 1e-5, momentum 0.1) so that training from
scratch behaves like the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from keras_inst.config.registry import BACKBONES
from keras_inst.config.schema import AudioConfig, ExperimentConfig, FeaturesConfig, ModelConfig
from keras_inst.models.batch_norm import FusedBatchNormalization
from keras_inst.models.frontend import log_mel_from_config
from keras_inst.taxonomy import NUM_CLASSES

# PyTorch BatchNorm defaults: eps 1e-5; running = 0.9 * running + 0.1 * batch (Keras momentum 0.9).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# The paper's channel plan (model.channels in configs/paper.yaml): n, n, 2n, 2n, 2n, 2n, 4n, n=128.
SHORT_CHUNK_CHANNELS: tuple[int, ...] = (128, 128, 256, 256, 256, 256, 512)


@dataclass(frozen=True)
class BlockSpec:
    """One backbone block: ``name`` (``layerN``), output ``channels``, ``kernel`` size and
    ``pool``, the downsampling factor (max-pool size in ``short_chunk_cnn``, conv stride in
    ``short_chunk_res``)."""

    name: str
    channels: int
    kernel: tuple[int, int] = (3, 3)
    pool: tuple[int, int] = (2, 2)


def scaled_channels(channels: int, width_multiplier: float) -> int:
    """``channels * width_multiplier`` rounded half up, at least 1."""
    return max(1, int(math.floor(channels * width_multiplier + 0.5)))


def block_specs(model_cfg: ModelConfig) -> tuple[BlockSpec, ...]:
    """The backbone as a data table (like YAMNet's ``_YAMNET_LAYER_DEFS``), scaled by width."""
    return tuple(
        BlockSpec(f"layer{i + 1}", scaled_channels(c, model_cfg.width_multiplier))
        for i, c in enumerate(model_cfg.channels)
    )


# The paper's table: 7 blocks of 3x3 conv + 2x2 pooling.
SHORT_CHUNK_LAYER_DEFS: tuple[BlockSpec, ...] = block_specs(
    ModelConfig(channels=SHORT_CHUNK_CHANNELS)
)


def _torch_init(fan_in: int) -> dict[str, keras.initializers.Initializer]:
    """PyTorch's default Conv/Linear init: kernel and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    # kaiming_uniform(a=sqrt(5)) == VarianceScaling(1/3, fan_in, uniform): limit sqrt(1/fan_in).
    limit = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        "bias_initializer": keras.initializers.RandomUniform(-limit, limit),
    }


def _conv(
    filters: int,
    in_channels: int,
    kernel: tuple[int, int],
    name: str,
    *,
    strides: tuple[int, int] = (1, 1),
    padding: str = "same",
) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        name=name,
        **_torch_init(in_channels * kernel[0] * kernel[1]),
    )


def _bn(name: str, axis: int = -1) -> layers.BatchNormalization:
    return FusedBatchNormalization(axis=axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _check_input_size(
    n_mels: int, frames: int, specs: tuple[BlockSpec, ...], *, ceil: bool
) -> None:
    """Every pooling stage must leave at least one bin on both axes."""
    f, t = n_mels, frames
    for spec in specs:
        if ceil:  # stride-2 conv with padding 1: ceil(n / 2)
            f, t = -(-f // spec.pool[0]), -(-t // spec.pool[1])
        else:  # max pooling, floor
            f, t = f // spec.pool[0], t // spec.pool[1]
        if f < 1 or t < 1:
            raise ValueError(
                f"backbone input [{n_mels} mels, {frames} frames] is too small for "
                f"{len(specs)} blocks of 2x2 downsampling: nothing is left after {spec.name}; "
                "raise features.n_mels / audio.chunk_seconds or use fewer model.channels"
            )


def _backbone_input(n_mels: int, frames: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Input ``[B, n_mels, frames]`` and its channels-last image ``[B, n_mels, frames, 1]``
    after ``spec_bn`` (the reference's ``BatchNorm2d(1)`` on ``[B, 1, F, T]``)."""
    mel = keras.Input((n_mels, frames), name="log_mel")
    x = layers.Reshape((n_mels, frames, 1), name="expand")(mel)  # [B, F, T, 1]
    x = _bn("spec_bn")(x)
    return mel, x


def _stack(cfg: ExperimentConfig, frames: int, block: Callable[..., keras.KerasTensor], *,
           ceil: bool) -> keras.Model:
    """The backbone: log-mel input -> ``block`` per :func:`block_specs` row -> global max [B, C]."""
    specs = block_specs(cfg.model)
    n_mels = cfg.features.n_mels
    _check_input_size(n_mels, frames, specs, ceil=ceil)
    mel, x = _backbone_input(n_mels, frames)
    in_ch = 1
    for s in specs:
        x = block(x, s, in_ch)
        in_ch = s.channels
    # [B, F', T', C] -> [B, C]. With 128 mels F' == 1 and this is the reference's MaxPool1d
    # over the remaining time steps; with more mels it also takes the max over frequency.
    emb = layers.GlobalMaxPooling2D(name="global_max")(x)
    return keras.Model(mel, emb, name="backbone")


def _conv_block(x: keras.KerasTensor, spec: BlockSpec, in_ch: int) -> keras.KerasTensor:
    """minzwon's Conv_2d: conv3x3 -> BN -> ReLU -> maxpool."""
    # torch padding=1 on a stride-1 3x3 conv is exactly Keras 'same'.
    x = _conv(spec.channels, in_ch, spec.kernel, f"{spec.name}_conv")(x)
    x = _bn(f"{spec.name}_bn")(x)
    x = layers.ReLU(name=f"{spec.name}_relu")(x)
    return layers.MaxPooling2D(spec.pool, name=f"{spec.name}_pool")(x)  # valid: floor like torch


def build_short_chunk_cnn(cfg: ExperimentConfig, *, frames: int) -> keras.Model:
    """Won et al.'s ShortChunkCNN: 7 x [conv3x3 -> BN -> ReLU -> maxpool 2x2] -> global max."""
    return _stack(cfg, frames, _conv_block, ceil=False)


def _res_block(x: keras.KerasTensor, spec: BlockSpec, in_ch: int) -> keras.KerasTensor:
    """minzwon's Res_2d: conv3x3/s -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU."""
    n, c = spec.name, spec.channels
    # torch pads 1 on every side before a stride-2 conv; Keras 'same' would pad only at the
    # end for even sizes, so pad explicitly and convolve 'valid' (out = ceil(in / 2)).
    out = layers.ZeroPadding2D(1, name=f"{n}_pad_1")(x)
    out = _conv(c, in_ch, spec.kernel, f"{n}_conv_1", strides=spec.pool, padding="valid")(out)
    out = _bn(f"{n}_bn_1")(out)
    out = layers.ReLU(name=f"{n}_relu_1")(out)
    out = _conv(c, c, spec.kernel, f"{n}_conv_2")(out)
    out = _bn(f"{n}_bn_2")(out)
    shortcut = x
    if spec.pool != (1, 1) or in_ch != c:
        shortcut = layers.ZeroPadding2D(1, name=f"{n}_pad_3")(x)
        shortcut = _conv(c, in_ch, spec.kernel, f"{n}_conv_3", strides=spec.pool, padding="valid")(
            shortcut
        )
        shortcut = _bn(f"{n}_bn_3")(shortcut)
    out = layers.Add(name=f"{n}_add")([shortcut, out])
    return layers.ReLU(name=f"{n}_relu")(out)


def build_short_chunk_res(cfg: ExperimentConfig, *, frames: int) -> keras.Model:
    """Won et al.'s ShortChunkCNN_Res: 7 stride-2 residual blocks -> global max."""
    return _stack(cfg, frames, _res_block, ceil=True)


BackboneBuilder = Callable[..., keras.Model]
"""``builder(cfg, *, frames) -> keras.Model`` named ``backbone``: ``[B, n_mels, frames]`` ->
``[B, C]``; registered in :data:`keras_inst.config.registry.BACKBONES`."""


def build_frontend(audio: AudioConfig, features: FeaturesConfig) -> keras.Model:
    """``frontend``: waveform ``[B, chunk_samples]`` -> log-mel ``[B, n_mels, frames]``, float32."""
    wav = keras.Input((audio.chunk_samples,), name="waveform", dtype="float32")
    mel = log_mel_from_config(features, audio, name="log_mel")(wav)
    return keras.Model(wav, mel, name="frontend")


def num_frames(cfg: ExperimentConfig) -> int:
    """Time frames of the log-mel of one chunk (251 for the paper: 1 + 64000 // 256)."""
    return int(build_frontend(cfg.audio, cfg.features).output.shape[-1])


def build_backbone(cfg: ExperimentConfig, *, frames: int | None = None) -> keras.Model:
    """``backbone`` for ``cfg.model.architecture``: log-mel ``[B, n_mels, frames]`` -> ``[B, C]``.

    ``frames`` defaults to the front end's output length for ``cfg.audio.chunk_samples``.
    """
    builder: BackboneBuilder = BACKBONES.get(cfg.model.architecture)
    model = builder(cfg, frames=num_frames(cfg) if frames is None else int(frames))
    if model.name != "backbone" or len(model.output.shape) != 2:
        raise ValueError(
            f"backbone builder for {cfg.model.architecture!r} must return a model named "
            f"'backbone' with output [B, C]; got {model.name!r} with {model.output.shape}"
        )
    return model


def build_head(
    model_cfg: ModelConfig, embedding_dim: int, *, n_classes: int = NUM_CLASSES
) -> keras.Model:
    """``head``: embedding ``[B, D]`` -> dense1 -> bn -> ReLU -> dropout -> dense2 -> logits.

    Logits are ``[B, n_classes]``; ``dense1`` has ``model.head_units`` units (not scaled by
    ``model.width_multiplier``).
    """
    if embedding_dim < 1 or n_classes < 1:
        raise ValueError(
            f"head needs embedding_dim >= 1 and n_classes >= 1, got {embedding_dim}, {n_classes}"
        )
    units = model_cfg.head_units
    emb = keras.Input((embedding_dim,), name="embedding")
    x = layers.Dense(units, name="dense1", **_torch_init(embedding_dim))(emb)
    x = _bn("bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.Dropout(model_cfg.dropout, name="dropout")(x)
    logits = layers.Dense(n_classes, name="dense2", **_torch_init(units))(x)
    return keras.Model(emb, logits, name="head")


def build_model(cfg: ExperimentConfig, *, n_classes: int = NUM_CLASSES) -> keras.Model:
    """The classifier: waveform ``[B, chunk_samples]`` -> probabilities ``[B, n_classes]``.

    The final sigmoid runs in float32 under any mixed-precision policy. Keras's binary
    cross-entropy (TensorFlow backend) reads the logits the sigmoid keeps on its output, so
    training on probabilities is as stable as training on logits. ``n_classes`` other than 15
    is for pre-training heads (e.g. MTG-Jamendo's 50 tags).
    """
    frontend = build_frontend(cfg.audio, cfg.features)
    backbone = build_backbone(cfg, frames=int(frontend.output.shape[-1]))
    head = build_head(cfg.model, int(backbone.output.shape[-1]), n_classes=n_classes)
    wav = keras.Input((cfg.audio.chunk_samples,), name="waveform", dtype="float32")
    logits = head(backbone(frontend(wav)))  # [B, n_classes]
    probs = layers.Activation("sigmoid", dtype="float32", name="probabilities")(logits)
    return keras.Model(wav, probs, name="keras_inst")


def sub_model(model: keras.Model, name: str) -> keras.Model:
    """``model.get_layer(name)``; a ValueError that says how to build a model that has it."""
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no sub-model {name!r}; "
            "build it with keras_inst.models.short_chunk.build_model"
        ) from None


def logits_model(model: keras.Model) -> keras.Model:
    """waveform -> logits ``[B, n_classes]``, sharing ``model``'s weights."""
    logits = sub_model(model, "probabilities").input  # the head's output in model's graph
    return keras.Model(model.input, logits, name=f"{model.name}_logits")


def embedding_model(model: keras.Model) -> keras.Model:
    """waveform -> backbone embedding ``[B, C]``, sharing ``model``'s weights."""
    # A nested model's .output is its own inner tensor, so call the sub-models again on
    # model.input: this adds a graph node, no weights.
    emb = sub_model(model, "backbone")(sub_model(model, "frontend")(model.input))
    return keras.Model(model.input, emb, name=f"{model.name}_embedding")


def backbone_and_head_variables(model: keras.Model) -> tuple[list, list]:
    """Trainable variables of the ``backbone`` and of the ``head`` (for per-group learning rates).

    Raises ValueError if the model has trainable variables outside the two groups (they would
    silently never be updated by a per-group optimizer).
    """
    backbone = list(sub_model(model, "backbone").trainable_variables)
    head = list(sub_model(model, "head").trainable_variables)
    grouped = {id(v) for v in backbone + head}
    stray = [v.path for v in model.trainable_variables if id(v) not in grouped]
    if stray:
        raise ValueError(f"trainable variables outside backbone and head: {stray}")
    return backbone, head


def load_model(path: str | Path, *, compile: bool = True) -> keras.Model:
    """Load a keras_inst ``.keras`` model or checkpoint in any process.

    Registers every custom object a keras_inst model may carry (the log-mel layer, the grouped
    optimizer, the masked AUC metric, the tagger-fusion layers) before deserialising, so a fresh process can load it.
    """
    import keras_inst.models.fusion_layers  # noqa: F401  (a model fused with the tagger)
    import keras_inst.models.optimizers  # noqa: F401  (registers keras_inst>GroupedOptimizer)
    from keras_inst.models.auc import defined_auc_class

    defined_auc_class()  # registers keras_inst>DefinedClassesAUC
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"model file {str(p)!r} does not exist")
    return keras.saving.load_model(p, compile=compile)
