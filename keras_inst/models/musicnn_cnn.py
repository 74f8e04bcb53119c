"""musicnn's musically motivated CNN (``MTT_musicnn``, ``MSD_musicnn``) ported to Keras.

musicnn 0.1.0 (Pons & Serra, ISC licence) ``models.py: build_musicnn`` with
``num_filt_frontend=1.6, num_filt_midend=64, num_units_backend=200``, read from the wheel's
source and checked against both checkpoints' ``.meta`` graphs. On a log-mel ``[B, T, 96]``:

* front end: input batch norm, then five parallel filters (:data:`MUSICNN_FRONTEND`): two
  *timbral* ones, (7 frames x 38 or 67 mels) 'valid' convs with 204 filters on the input
  zero-padded by 3 frames each side, and three *temporal* ones, (128 | 64 | 32 frames x 1 mel)
  'same' convs with 51 filters; each ReLU -> batch norm -> max over all mels; concatenated
  -> ``[B, T, 561]``.
* mid end: three 7-frame 1-D convs of 64 filters ('same', ReLU -> batch norm), the 2nd and 3rd
  with a residual connection; the front end's and the three outputs concatenated (dense
  connectivity) -> ``[B, T, 753]``.
* back end: max and mean over time, interleaved per channel as musicnn's ``concat(axis=2)`` +
  ``flatten`` lay them out -> ``[B, 1506]`` -> batch norm -> dropout 0.5 -> dense 200 ReLU ->
  batch norm: the *penultimate* features ``[B, 200]`` (this backbone's embedding) -> dropout
  0.5 -> dense 50 (the tags; not part of the backbone, see :mod:`keras_inst.models.tagger`).

musicnn writes its mid-end convs as 2-D convs over ``[B, T + 6, C, 1]`` with kernels
``[7, C, 1, 64]``; here they are 1-D convs with the kernel squeezed to ``[7, C, 64]`` (the same
sums). Every length ``T >= 1`` works (musicnn's own input length is 187 frames, 3 s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from keras_inst.config.schema import ExperimentConfig
from keras_inst.models.batch_norm import FusedBatchNormalization
from keras_inst.models.musicnn import read_checkpoint_variables
from keras_inst.models.pretrained import MUSICNN_REQUIRED, PretrainedSpec


@dataclass(frozen=True)
class FrontEndFilter:
    """One front-end branch: ``filters`` convs of ``kernel`` (frames, mels); timbral ones are
    'valid' on the input padded by ``kernel[0] // 2`` frames, temporal ones 'same'."""

    name: str
    filters: int
    kernel: tuple[int, int]
    timbral: bool


# musicnn's '7774timbraltemporal' front end, in its concatenation (and checkpoint) order:
# filters int(1.6 * 128) and int(1.6 * 32); mel widths int(0.4 * 96) and int(0.7 * 96).
MUSICNN_FRONTEND: tuple[FrontEndFilter, ...] = (
    FrontEndFilter("timbral_74", 204, (7, 38), True),
    FrontEndFilter("timbral_77", 204, (7, 67), True),
    FrontEndFilter("temporal_128", 51, (128, 1), False),
    FrontEndFilter("temporal_64", 51, (64, 1), False),
    FrontEndFilter("temporal_32", 51, (32, 1), False),
)
MIDEND_FILTERS = 64
MIDEND_KERNEL = 7
BACKEND_UNITS = 200
MUSICNN_CNN_CHECKPOINTS = {"musicnn_mtt_musicnn": "MTT_musicnn", "musicnn_msd_musicnn": "MSD_musicnn"}

# musicnn's front end plus this architecture (the features are the VGG ports').
MUSICNN_CNN_REQUIRED: dict[str, tuple[object, ...]] = dict(MUSICNN_REQUIRED, **{"model.architecture": ("musicnn",)})


def _scaled(n: int, width_multiplier: float) -> int:
    return max(1, int(round(n * width_multiplier)))


def _bn(name: str) -> FusedBatchNormalization:
    return FusedBatchNormalization(momentum=0.99, epsilon=1e-3, name=name)  # TF1 defaults


def _front_end(x: keras.KerasTensor, n_mels: int, wm: float) -> keras.KerasTensor:
    """``[B, T, M, 1]`` (normalised) -> ``[B, T, 561]``: the five branches, max over mels."""
    branches = []
    for f in MUSICNN_FRONTEND:
        if f.kernel[1] > n_mels:
            raise ValueError(f"config key 'features.n_mels': {n_mels} mel bands are too few for musicnn (96 expected)")
        y = x
        if f.timbral:  # pad time only: an efficient 'same' when all mels are pooled afterwards
            y = keras.layers.ZeroPadding2D(((f.kernel[0] // 2,) * 2, (0, 0)), name=f"{f.name}_pad")(y)
        y = keras.layers.Conv2D(_scaled(f.filters, wm), f.kernel, padding="valid" if f.timbral else "same",
                                activation="relu", name=f.name)(y)
        y = _bn(f"{f.name}_bn")(y)  # [B, T, M', F]
        y = keras.layers.MaxPooling2D((1, int(y.shape[2])), name=f"{f.name}_pool")(y)  # [B, T, 1, F]
        branches.append(keras.layers.Reshape((-1, int(y.shape[-1])), name=f"{f.name}_squeeze")(y))
    return keras.layers.Concatenate(axis=-1, name="frontend_features")(branches)


def _mid_end(x: keras.KerasTensor, wm: float) -> keras.KerasTensor:
    """``[B, T, 561]`` -> ``[B, T, 561 + 3 x 64]``: three 1-D convs, residual from the 2nd."""
    outs = [x]
    for i in range(1, 4):
        y = keras.layers.Conv1D(_scaled(MIDEND_FILTERS, wm), MIDEND_KERNEL, padding="same", activation="relu",
                                name=f"midend{i}")(outs[-1])
        y = _bn(f"midend{i}_bn")(y)
        outs.append(y if i == 1 else keras.layers.Add(name=f"midend{i}_res")([y, outs[-1]]))
    return keras.layers.Concatenate(axis=-1, name="midend_features")(outs)


def _back_end(x: keras.KerasTensor, wm: float) -> keras.KerasTensor:
    """``[B, T, C]`` -> penultimate ``[B, 200]``."""
    c = int(x.shape[-1])
    mx = keras.layers.Reshape((c, 1), name="max_pool")(keras.layers.GlobalMaxPooling1D(name="time_max")(x))
    mean = keras.layers.Reshape((c, 1), name="mean_pool")(keras.layers.GlobalAveragePooling1D(name="time_mean")(x))
    # [B, C, 2] flattened: max and mean of channel 0, of channel 1, ... as musicnn's weights expect.
    x = keras.layers.Flatten(name="pooled")(keras.layers.Concatenate(axis=-1, name="max_mean")([mx, mean]))
    x = _bn("pooled_bn")(x)
    x = keras.layers.Dropout(0.5, name="pooled_dropout")(x)
    x = keras.layers.Dense(_scaled(BACKEND_UNITS, wm), activation="relu", name="penultimate_dense")(x)
    return _bn("penultimate")(x)


def build_musicnn_cnn_backbone(cfg: ExperimentConfig, *, frames: int | None = None) -> keras.Model:
    """``model.architecture: musicnn``: log-mel ``[B, n_mels, frames]`` -> penultimate ``[B, 200]``.

    ``frames`` None: any length. ``model.width_multiplier`` scales every width (from-scratch
    runs only; the checkpoints need 1). ``model.channels`` is not used.
    """
    n_mels, wm = cfg.features.n_mels, cfg.model.width_multiplier
    inputs = keras.Input(shape=(n_mels, frames), name="log_mel")  # [B, M, T]
    x = keras.layers.Permute((2, 1), name="to_time_mel")(inputs)  # [B, T, M]: musicnn's layout
    x = keras.layers.Reshape((-1, n_mels, 1), name="add_channel")(x)  # [B, T, M, 1]
    x = _bn("input_bn")(x)
    x = _mid_end(_front_end(x, n_mels, wm), wm)
    return keras.Model(inputs, _back_end(x, wm), name="backbone")


Transform = Callable[[np.ndarray], np.ndarray]


def musicnn_cnn_weight_map(backbone: keras.Model) -> dict[str, tuple[keras.Variable, str, Transform]]:
    """checkpoint variable name -> (Keras variable, description, checkpoint -> Keras array)."""
    same: Transform = np.asarray
    out: dict[str, tuple[keras.Variable, str, Transform]] = {}
    bns = ["input_bn"] + [f"{f.name}_bn" for f in MUSICNN_FRONTEND] + [f"midend{i}_bn" for i in (1, 2, 3)]
    for i, name in enumerate(bns + ["pooled_bn", "penultimate"]):
        layer = backbone.get_layer(name)
        for attr in ("gamma", "beta", "moving_mean", "moving_variance"):
            out[f"batch_normalization{f'_{i}' if i else ''}/{attr}"] = (getattr(layer, attr), f"{name}.{attr}", same)
    convs = [f.name for f in MUSICNN_FRONTEND] + [f"midend{i}" for i in (1, 2, 3)]
    for i, name in enumerate(convs):
        layer = backbone.get_layer(name)
        # musicnn's mid-end kernels [7, C, 1, 64] -> Conv1D [7, C, 64]
        kernel_fn: Transform = (lambda v: np.squeeze(v, axis=2)) if name.startswith("midend") else same
        out[f"conv2d{f'_{i}' if i else ''}/kernel"] = (layer.kernel, f"{name}.kernel", kernel_fn)
        out[f"conv2d{f'_{i}' if i else ''}/bias"] = (layer.bias, f"{name}.bias", same)
    dense = backbone.get_layer("penultimate_dense")
    out["dense/kernel"] = (dense.kernel, "penultimate_dense.kernel", same)
    out["dense/bias"] = (dense.bias, "penultimate_dense.bias", same)
    return out


def assign_checkpoint(mapping: dict[str, tuple[keras.Variable, str, Transform]], values: dict[str, np.ndarray],
                      *, checkpoint: str, ignore: tuple[str, ...] = ()) -> None:
    """Copy ``values`` into ``mapping``'s variables after checking names and shapes (nothing is
    assigned if one does not fit); checkpoint names starting with ``ignore`` are left out."""
    unmapped = sorted(n for n in values if n not in mapping and not n.startswith(ignore))
    missing = sorted(n for n in mapping if n not in values)
    if unmapped or missing:
        raise ValueError(f"musicnn {checkpoint} checkpoint does not match the Keras port: unmapped checkpoint "
                         f"variables {unmapped}, missing variables {missing}")
    arrays = {n: fn(values[n]) for n, (_var, _desc, fn) in mapping.items()}
    wrong = [f"{n!r} has shape {arrays[n].shape} but Keras {desc} has {tuple(var.shape)}"
             for n, (var, desc, _fn) in mapping.items() if tuple(var.shape) != arrays[n].shape]
    if wrong:
        raise ValueError(f"musicnn {checkpoint} does not fit the model (build it with model.width_multiplier=1): "
                         + "; ".join(wrong))
    for n, (var, _desc, _fn) in mapping.items():
        var.assign(arrays[n].astype(var.dtype))


def load_musicnn_cnn_weights(backbone: keras.Model, checkpoint: str = "MTT_musicnn", *,
                             path: str | Path | None = None, tags: keras.layers.Dense | None = None) -> keras.Model:
    """Copy musicnn's ``MTT_musicnn``/``MSD_musicnn`` weights into ``backbone`` (and its 50-tag
    layer ``dense_1`` into ``tags`` if given; else that layer is left out on purpose)."""
    if checkpoint not in MUSICNN_CNN_CHECKPOINTS.values():
        raise ValueError(f"musicnn CNN checkpoint must be one of {', '.join(MUSICNN_CNN_CHECKPOINTS.values())}, got {checkpoint!r}")
    try:
        mapping = musicnn_cnn_weight_map(backbone)
    except ValueError as e:
        raise ValueError(f"backbone {backbone.name!r} is not a musicnn backbone: {e}") from None
    if tags is not None:
        mapping["dense_1/kernel"] = (tags.kernel, f"{tags.name}.kernel", np.asarray)
        mapping["dense_1/bias"] = (tags.bias, f"{tags.name}.bias", np.asarray)
    values = read_checkpoint_variables(checkpoint, path=path)
    assign_checkpoint(mapping, values, checkpoint=checkpoint, ignore=("dense_1/",))
    return backbone


def _loader(checkpoint: str) -> Callable[[keras.Model, ExperimentConfig], keras.Model]:
    def load(backbone: keras.Model, cfg: ExperimentConfig) -> keras.Model:
        return load_musicnn_cnn_weights(backbone, checkpoint, path=cfg.training.pretrained_path)

    return load


# The entries of keras_inst.config.registry.PRETRAINED.
MUSICNN_MTT_MUSICNN = PretrainedSpec(MUSICNN_CNN_REQUIRED, _loader("MTT_musicnn"))
MUSICNN_MSD_MUSICNN = PretrainedSpec(MUSICNN_CNN_REQUIRED, _loader("MSD_musicnn"))
