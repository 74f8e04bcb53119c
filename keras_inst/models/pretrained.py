"""Pre-trained backbones: musicnn's VGG taggers ported to Keras, and saved short-chunk CNNs.

musicnn 0.1.0 (Pons & Serra, ISC licence, on PyPI) ships TF1 checkpoints of a 5-layer VGG
trained for 50-tag music tagging on the Million Song Dataset (``MSD_vgg``) and MagnaTagATune
(``MTT_vgg``). Its graph (``musicnn/models.py: vgg``) on a log-mel patch ``[B, 187 frames, 96
mels]`` is: input batch norm; then 5 x (3x3 conv, 128 filters, 'same', ReLU -> batch norm ->
max pool 'valid') with dropout 0.25 after pools 1-4; then flatten pool5 ``[B, 2, 1, 128]`` ->
dropout 0.5 -> dense 50. The pools differ between the two checkpoints (read from their .meta
graphs; musicnn's models.py only shows MTT's): MTT (4,1)/(2,2), (2,2)/(2,2) x 3, (4,4)/(4,4);
MSD (4,1)/(4,1), (1,4)/(1,4), (2,2)/(2,2) x 2, (4,4)/(4,4), as (time, mel) size/stride.

:func:`build_musicnn_backbone` reproduces that graph up to pool5 and then takes the maximum
over pool5's remaining time steps: a 128-d embedding for any chunk of >= 64 (MSD) or 66 (MTT)
frames, where musicnn's own dense layer needs exactly 187. The 50-tag dense layer is not part
of the backbone: the paper (§2.4) replaces the fully connected layers with new ones.

Front end (``musicnn/extractor.py``): ``librosa.feature.melspectrogram(y, sr=16000,
hop_length=256, n_fft=512, n_mels=96)`` i.e. Hann window, centred frames (reflect padding in
the librosa 0.7 it was trained with), power 2, Slaney mel scale with Slaney area norm, 0 Hz to
Nyquist; then ``log10(10000 x + 1)``. :data:`MUSICNN_REQUIRED` lists the matching config keys.

Fetching, reading and writing musicnn's checkpoint files and running its original graph (the
parity reference) are in :mod:`keras_inst.models.musicnn`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras

from keras_inst.config.registry import PRETRAINED
from keras_inst.config.schema import ExperimentConfig
from keras_inst.models.batch_norm import FusedBatchNormalization
from keras_inst.models.musicnn import (
    DEFAULT_CACHE,
    MUSICNN_MODELS,
    check_musicnn_model,
    read_musicnn_variables,
)

MUSICNN_FILTERS = 128
# (time, mel) pool size and strides after each conv, as in each checkpoint's .meta graph.
MUSICNN_POOLS: dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = {
    "msd": (((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
    "mtt": (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
}
MUSICNN_MIN_FRAMES = {"msd": 64, "mtt": 66}  # shortest input whose pool5 has >= 1 time step

# Config values the musicnn weights need, as "section.key": allowed values.
MUSICNN_REQUIRED: dict[str, tuple[object, ...]] = {
    "model.architecture": ("musicnn_vgg",),
    "model.width_multiplier": (1.0,),
    "audio.sample_rate": (16000,),
    "features.n_fft": (512,),
    "features.win_length": (None, 512),
    "features.hop_length": (256,),
    "features.n_mels": (96,),
    "features.f_min": (0.0,),
    "features.f_max": (None, 8000.0),
    "features.mel_scale": ("slaney",),
    "features.mel_norm": ("slaney",),
    "features.center": (True,),
    "features.pad_mode": ("reflect",),
    "features.power": (2.0,),
    "features.compression": ("log10",),
    "features.log_c": (10000.0,),
}
SHORT_CHUNK_REQUIRED: dict[str, tuple[object, ...]] = {"model.architecture": ("short_chunk_cnn",)}


def musicnn_variant(cfg: ExperimentConfig) -> str:
    """'mtt' for ``training.pretrained: musicnn_mtt_vgg``, else 'msd' (the pools to build)."""
    return "mtt" if cfg.training.pretrained == "musicnn_mtt_vgg" else "msd"


def _pooled_size(size: int, pools: tuple[tuple[int, int], ...], axis: int) -> int:
    """Length of one axis (0: time, 1: mel) after musicnn's 'valid' max pools."""
    for pool, strides in pools:
        size = (size - pool[axis]) // strides[axis] + 1 if size >= pool[axis] else 0
    return size


def build_musicnn_backbone(
    cfg: ExperimentConfig, *, variant: str | None = None, frames: int | None = None
) -> keras.Model:
    """musicnn's VGG as a Keras model ``log-mel [B, n_mels, frames] -> embedding [B, 128]``.

    ``variant`` ('msd' | 'mtt', default from :func:`musicnn_variant`) picks the pooling of that
    checkpoint. ``frames`` fixes the input length (None: any length >= MUSICNN_MIN_FRAMES).
    ``model.channels`` is not used (the checkpoints fix 5 x 128 filters);
    ``model.width_multiplier`` scales the filters for from-scratch runs only.
    """
    variant = musicnn_variant(cfg) if variant is None else variant
    if variant not in MUSICNN_POOLS:
        raise ValueError(f"musicnn variant must be one of {', '.join(MUSICNN_POOLS)}, got {variant!r}")
    pools = MUSICNN_POOLS[variant]
    if _pooled_size(cfg.features.n_mels, pools, 1) < 1:
        raise ValueError(f"config key 'features.n_mels': {cfg.features.n_mels} mel bands are too few for musicnn_vgg (96 expected)")
    if frames is not None and _pooled_size(frames, pools, 0) < 1:
        raise ValueError(
            f"config key 'audio.chunk_seconds': {frames} frames are too few for musicnn_vgg "
            f"({variant}), which needs >= {MUSICNN_MIN_FRAMES[variant]}"
        )
    n_mels = cfg.features.n_mels
    filters = max(1, int(round(MUSICNN_FILTERS * cfg.model.width_multiplier)))
    inputs = keras.Input(shape=(n_mels, frames), name="log_mel")  # [B, M, T]
    # musicnn convolves [B, T, M, 1] (time = height); its pools are not square, so the
    # layout must match for its kernels to mean the same thing.
    x = keras.layers.Permute((2, 1), name="to_time_mel")(inputs)  # [B, T, M]
    x = keras.layers.Reshape((-1, n_mels, 1), name="add_channel")(x)  # [B, T, M, 1]
    x = FusedBatchNormalization(momentum=0.99, epsilon=1e-3, name="input_bn")(x)
    for i, (pool, strides) in enumerate(pools, start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        # musicnn normalises after the ReLU; TF1 batch-norm defaults = Keras defaults.
        x = FusedBatchNormalization(momentum=0.99, epsilon=1e-3, name=f"bn{i}")(x)
        x = keras.layers.MaxPooling2D(pool, strides=strides, padding="valid", name=f"pool{i}")(x)
        if i < len(pools):
            x = keras.layers.Dropout(0.25, name=f"dropout{i}")(x)
    # pool5: [B, T5, M5, C] with M5 = 1 for 96 mels; max over what is left -> [B, C].
    embedding = keras.layers.GlobalMaxPooling2D(name="embedding")(x)
    return keras.Model(inputs, embedding, name="backbone")


def build_musicnn_vgg_backbone(cfg: ExperimentConfig, *, frames: int | None = None) -> keras.Model:
    """``model.architecture: musicnn_vgg`` for :func:`keras_inst.models.short_chunk.build_backbone`."""
    return build_musicnn_backbone(cfg, frames=frames)


def _musicnn_weight_map(backbone: keras.Model) -> dict[str, tuple[keras.Variable, str]]:
    """checkpoint variable name -> (Keras variable, description)."""
    out: dict[str, tuple[keras.Variable, str]] = {}
    bns = ["input_bn"] + [f"bn{i}" for i in range(1, 6)]
    for i, layer_name in enumerate(bns):
        layer = backbone.get_layer(layer_name)
        prefix = "batch_normalization" + (f"_{i}" if i else "")
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            out[f"{prefix}/{attr}"] = (getattr(layer, attr), f"{layer_name}.{attr}")
    for i in range(1, 6):
        layer = backbone.get_layer(f"conv{i}")
        out[f"{i}CNN/kernel"] = (layer.kernel, f"conv{i}.kernel")
        out[f"{i}CNN/bias"] = (layer.bias, f"conv{i}.bias")
    return out


def load_musicnn_weights(backbone: keras.Model, which: str = "msd", *, path: str | Path | None = None) -> keras.Model:
    """Copy musicnn's ``MSD_vgg`` (``which="msd"``) or ``MTT_vgg`` weights into ``backbone``.

    ``backbone`` comes from :func:`build_musicnn_backbone`. Every shape is checked; the
    50-tag output layer (``dense/*``) is left out on purpose, any other checkpoint variable
    without a Keras counterpart raises.
    """
    check_musicnn_model(which)
    try:
        mapping = _musicnn_weight_map(backbone)
    except ValueError as e:
        raise ValueError(f"backbone {backbone.name!r} is not a musicnn_vgg backbone: {e}") from None
    # Both checkpoints have the same variable shapes but different pools: check the latter.
    pools = tuple(
        (tuple(backbone.get_layer(f"pool{i}").pool_size), tuple(backbone.get_layer(f"pool{i}").strides))
        for i in range(1, 6)
    )
    if pools != MUSICNN_POOLS[which]:
        other = [v for v, p in MUSICNN_POOLS.items() if p == pools]
        raise ValueError(
            f"backbone pools {pools} are not those of {MUSICNN_MODELS[which]}"
            + (f" (they are {other[0]!r}'s): build it with variant={which!r}" if other else "")
        )
    values = read_musicnn_variables(which, path=path)
    unmapped = sorted(n for n in values if n not in mapping and not n.startswith("dense/"))
    missing = sorted(n for n in mapping if n not in values)
    if unmapped or missing:
        raise ValueError(
            f"musicnn {MUSICNN_MODELS[which]} checkpoint does not match the Keras port: "
            f"unmapped checkpoint variables {unmapped}, missing variables {missing}"
        )
    wrong = [
        f"{name!r} has shape {values[name].shape} but Keras {desc} has {tuple(var.shape)}"
        for name, (var, desc) in mapping.items()
        if tuple(var.shape) != values[name].shape
    ]
    if wrong:
        raise ValueError(
            f"musicnn {MUSICNN_MODELS[which]} does not fit the backbone (build it with "
            f"model.width_multiplier=1): {'; '.join(wrong)}"
        )
    for name, (var, _desc) in mapping.items():
        var.assign(values[name].astype(var.dtype))
    return backbone


@dataclass(frozen=True)
class PretrainedSpec:
    """One ``training.pretrained`` entry of :data:`keras_inst.config.registry.PRETRAINED`.

    ``requires``: config values the weights need (``"section.key"`` -> allowed values);
    ``load(backbone, cfg) -> backbone`` copies the weights in (``training.pretrained_path`` or
    the default location). ``whole_model``: ``load`` gets the whole classifier instead of its
    backbone, for weights that bring their own head (the shipped model, same 15 classes).
    """

    requires: Mapping[str, tuple[object, ...]]
    load: Callable[[keras.Model, ExperimentConfig], keras.Model]
    whole_model: bool = False


def _cfg_value(cfg: ExperimentConfig, key: str) -> object:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def check_pretrained_config(cfg: ExperimentConfig) -> None:
    """Raise ValueError naming every config key that does not fit ``training.pretrained``."""
    which = cfg.training.pretrained
    if which is None:
        return
    spec: PretrainedSpec = PRETRAINED.get(which)
    wrong = [
        f"'{key}' must be {' or '.join(repr(v) for v in allowed)} (got {_cfg_value(cfg, key)!r})"
        for key, allowed in spec.requires.items()
        if _cfg_value(cfg, key) not in allowed
    ]
    if wrong:
        raise ValueError(f"training.pretrained={which!r} does not fit this config: config key " + "; config key ".join(wrong))


def find_backbone(model: keras.Model) -> keras.Model:
    """``model`` itself if it is named 'backbone', else its sub-model layer 'backbone'."""
    if model.name == "backbone":
        return model
    try:
        layer = model.get_layer("backbone")
    except ValueError:
        layer = None
    if not isinstance(layer, keras.Model):
        raise ValueError(f"model {model.name!r} has no sub-model named 'backbone'")
    return layer


def short_chunk_weights_path(cfg: ExperimentConfig) -> Path:
    """``training.pretrained_path`` or the default short-chunk CNN weights file."""
    raw = cfg.training.pretrained_path or f"{DEFAULT_CACHE}/short_chunk_cnn.weights.h5"
    return Path(raw).expanduser()


def load_pretrained_backbone(model_or_backbone: keras.Model, cfg: ExperimentConfig) -> keras.Model | None:
    """Load ``training.pretrained`` weights into the backbone; return it (None: nothing loaded).

    Nothing is loaded for ``training.transfer: scratch`` (paper §2.4, method 3) or
    ``training.pretrained: null``. Freezing is the training code's job.
    """
    if cfg.training.transfer == "scratch" or cfg.training.pretrained is None:
        return None
    check_pretrained_config(cfg)
    spec: PretrainedSpec = PRETRAINED.get(cfg.training.pretrained)
    if spec.whole_model:
        if model_or_backbone.name == "backbone":
            raise ValueError(f"training.pretrained={cfg.training.pretrained!r} loads a whole classifier (backbone and "
                             "head); pass the model, not its backbone")
        return spec.load(model_or_backbone, cfg)
    return spec.load(find_backbone(model_or_backbone), cfg)


def _load_short_chunk(backbone: keras.Model, cfg: ExperimentConfig) -> keras.Model:
    weights = short_chunk_weights_path(cfg)
    if not weights.is_file():
        raise FileNotFoundError(
            f"short-chunk CNN weights {str(weights)!r} not found (training.pretrained_path). "
            f"Create it from a PyTorch ShortChunkCNN state_dict with `python "
            f"scripts/convert_torch_short_chunk.py MODEL.pth --out {weights}`, or by pre-training "
            "on MTG-Jamendo (keras-inst-pretrain), or set training.pretrained_path to an existing "
            ".weights.h5 file."
        )
    try:
        backbone.load_weights(weights)
    except ValueError as e:
        raise ValueError(f"{weights}: does not fit the configured backbone ({e})") from None
    return backbone


def _musicnn_loader(which: str) -> Callable[[keras.Model, ExperimentConfig], keras.Model]:
    def load(backbone: keras.Model, cfg: ExperimentConfig) -> keras.Model:
        return load_musicnn_weights(backbone, which, path=cfg.training.pretrained_path)

    return load


# The entries of keras_inst.config.registry.PRETRAINED.
SHORT_CHUNK_CNN = PretrainedSpec(SHORT_CHUNK_REQUIRED, _load_short_chunk)
MUSICNN_MSD_VGG = PretrainedSpec(MUSICNN_REQUIRED, _musicnn_loader("msd"))
MUSICNN_MTT_VGG = PretrainedSpec(MUSICNN_REQUIRED, _musicnn_loader("mtt"))
