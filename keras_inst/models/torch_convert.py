"""PyTorch ``state_dict`` of Won et al.'s ShortChunkCNN(_Res) -> weights of a keras_inst model.

The reference models (minzwon/sota-music-tagging-models, ``training/model.py``) name their
modules ``spec_bn``, ``layer1`` .. ``layer7`` (``.conv``/``.bn``, or ``.conv_1`` .. ``.bn_3`` in
the residual variant), ``dense1``, ``bn``, ``dense2``. :mod:`keras_inst.models.short_chunk` names its layers
the same way with ``.`` -> ``_`` inside the backbone (``layer3.conv_1`` -> ``layer3_conv_1``), so
the map from PyTorch keys to Keras variables is derived from the Keras model itself.

Layouts: Conv2d weight ``[O, I, H, W]`` -> Conv2D kernel ``[H, W, I, O]`` (H = mel, W = time in
both); Linear weight ``[out, in]`` -> Dense kernel ``[in, out]``; BatchNorm weight, bias,
running_mean, running_var -> gamma, beta, moving_mean, moving_variance. The torchaudio
front-end buffers (``spec.*``, ``to_db.*``) and ``num_batches_tracked`` are ignored: keras_inst
computes the same log-mel in its own ``frontend``.

NumPy only: PyTorch is never imported here (the CLI ``scripts/convert_torch_short_chunk.py``
loads the ``.pth`` file).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import keras
import numpy as np

from keras_inst.config.schema import ExperimentConfig
from keras_inst.models.short_chunk import build_model, sub_model

log = logging.getLogger(__name__)

HEAD_MODES = ("auto", "all", "hidden", "none")
_IGNORED = re.compile(r"^(spec|to_db)\.|(^|\.)num_batches_tracked$")
_BLOCK_LAYER = re.compile(r"^(layer\d+)_(.+)$")


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`load_state_dict` did: keys loaded, keys ignored, and the head's fate."""

    loaded: tuple[str, ...]
    ignored: tuple[str, ...]  # front-end buffers, num_batches_tracked, skipped head keys
    head_loaded: tuple[str, ...]  # head layers taken from the state dict (dense1, bn, dense2)
    head_message: str  # human-readable account of the head

    @property
    def head_newly_initialised(self) -> bool:
        return "dense2" not in self.head_loaded


@dataclass(frozen=True)
class _Target:
    variable: keras.Variable
    transform: Callable[[np.ndarray], np.ndarray]
    layer: str  # Keras layer name, e.g. "layer3_conv" or "dense2"


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _conv_kernel(a: np.ndarray) -> np.ndarray:
    if a.ndim != 4:
        raise ValueError(f"expected a 4-d Conv2d weight [O, I, H, W], got shape {a.shape}")
    return np.transpose(a, (2, 3, 1, 0))  # OIHW -> HWIO


def _dense_kernel(a: np.ndarray) -> np.ndarray:
    if a.ndim != 2:
        raise ValueError(f"expected a 2-d Linear weight [out, in], got shape {a.shape}")
    return a.T  # [out, in] -> [in, out]


def torch_prefix(layer_name: str) -> str:
    """Keras layer name -> PyTorch module path (``layer3_conv_1`` -> ``layer3.conv_1``)."""
    m = _BLOCK_LAYER.match(layer_name)
    return f"{m.group(1)}.{m.group(2)}" if m else layer_name


def _targets(sub_model: keras.Model) -> dict[str, _Target]:
    """PyTorch key -> Keras variable (and layout transform) for every weight of ``sub_model``."""
    out: dict[str, _Target] = {}
    for layer in sub_model.layers:
        if not layer.weights:
            continue
        p = torch_prefix(layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):
            if not (layer.center and layer.scale):
                raise ValueError(
                    f"layer {layer.name}: batch norm without center/scale has no PyTorch twin"
                )
            pairs = [
                ("weight", layer.gamma, _identity),
                ("bias", layer.beta, _identity),
                ("running_mean", layer.moving_mean, _identity),
                ("running_var", layer.moving_variance, _identity),
            ]
        elif isinstance(layer, keras.layers.Conv2D):
            pairs = [("weight", layer.kernel, _conv_kernel), ("bias", layer.bias, _identity)]
        elif isinstance(layer, keras.layers.Dense):
            pairs = [("weight", layer.kernel, _dense_kernel), ("bias", layer.bias, _identity)]
        else:
            raise ValueError(
                f"layer {layer.name} ({type(layer).__name__}) has weights but no PyTorch mapping"
            )
        for suffix, var, fn in pairs:
            if var is None:
                raise ValueError(f"layer {layer.name}: missing {suffix} variable (use_bias=False?)")
            out[f"{p}.{suffix}"] = _Target(var, fn, layer.name)
    return out


def _strip_module_prefix(state_dict: Mapping[str, object]) -> dict[str, object]:
    """``nn.DataParallel`` saves every key with ``module.``; drop it when all keys have it."""
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _convert(key: str, value: object, target: _Target) -> np.ndarray:
    arr = target.transform(np.asarray(value, dtype=np.float32))
    want = tuple(target.variable.shape)
    if arr.shape != want:
        raise ValueError(
            f"state_dict key {key!r}: shape {np.asarray(value).shape} converts to {arr.shape}, "
            f"but Keras layer {target.layer!r} expects {want}"
        )
    return arr


def _head_plan(
    state: Mapping[str, object], head: Mapping[str, _Target], mode: str
) -> tuple[list[str], str]:
    """Which head layers to load, and why, for ``mode`` in :data:`HEAD_MODES`."""
    layers_ = sorted({t.layer for t in head.values()})  # bn, dense1, dense2
    hidden = [name for name in layers_ if name != "dense2"]

    def problem(names: list[str]) -> str | None:
        for key, t in head.items():
            if t.layer not in names:
                continue
            if key not in state:
                return f"{key} is missing"
            try:
                _convert(key, state[key], t)
            except ValueError as e:
                return str(e)
        return None

    if mode == "none":
        return [], "head newly initialised (head='none')"
    if mode in ("all", "hidden"):
        names = layers_ if mode == "all" else hidden
        why = problem(names)
        if why is not None:
            raise ValueError(f"cannot load the head (head={mode!r}): {why}")
        if mode == "all":
            return names, "head loaded from the state dict"
        return names, "dense1/bn loaded; dense2 (classifier) newly initialised (head='hidden')"
    why = problem(layers_)  # auto
    if why is None:
        return layers_, "head loaded from the state dict"
    n_out = np.asarray(state["dense2.weight"]).shape[0] if "dense2.weight" in state else None
    n_cls = head["dense2.bias"].variable.shape[0]
    if n_out is not None and n_out != n_cls:
        why = f"the state dict's classifier has {n_out} outputs, the model {n_cls}"
    # Paper §2.4: all fully connected layers of the pre-trained model are replaced.
    return [], f"backbone only; the {n_cls}-class head is newly initialised ({why})"


def load_state_dict(
    state_dict: Mapping[str, object], model: keras.Model, *, head: str = "auto"
) -> ConversionReport:
    """Copy a ShortChunkCNN(_Res) ``state_dict`` into ``model`` (a :func:`build_model` model).

    ``head``: ``auto`` loads dense1/bn/dense2 if they all match, else only the backbone (e.g.
    an MTG-Jamendo top-50 classifier into the 15-class model); ``all`` requires the full head;
    ``hidden`` loads dense1/bn and leaves dense2 new; ``none`` loads only the backbone. Every
    backbone variable must be present with a matching shape, and no unknown key is accepted.
    Nothing is assigned unless the whole state dict checks out.
    """
    if head not in HEAD_MODES:
        raise ValueError(f"head must be one of {', '.join(HEAD_MODES)}, got {head!r}")
    backbone, head_model = sub_model(model, "backbone"), sub_model(model, "head")
    state = _strip_module_prefix(state_dict)
    ignored = sorted(k for k in state if _IGNORED.search(k))
    state = {k: v for k, v in state.items() if not _IGNORED.search(k)}
    body, head_targets = _targets(backbone), _targets(head_model)
    clash = sorted(set(body) & set(head_targets))
    if clash:
        raise ValueError(f"backbone and head both claim PyTorch keys {clash}")

    missing = sorted(set(body) - set(state))
    unexpected = sorted(set(state) - set(body) - set(head_targets))
    if missing or unexpected:
        raise ValueError(
            f"state_dict does not fit the {model.name!r} backbone "
            f"({len(body)} backbone tensors expected): missing keys {missing or 'none'}; "
            f"unexpected keys {unexpected or 'none'}. Check model.architecture "
            "(--res for ShortChunkCNN_Res) and model.channels / width_multiplier."
        )
    head_layers, message = _head_plan(state, head_targets, head)
    plan = dict(body)
    plan.update({k: t for k, t in head_targets.items() if t.layer in head_layers})
    ignored += sorted(k for k in state if k not in plan)
    values = {k: _convert(k, state[k], t) for k, t in plan.items()}  # check everything first
    for k, t in plan.items():
        t.variable.assign(values[k].astype(t.variable.dtype))
    return ConversionReport(
        loaded=tuple(sorted(plan)),
        ignored=tuple(ignored),
        head_loaded=tuple(head_layers),
        head_message=message,
    )


def convert_state_dict(
    state_dict: Mapping[str, object],
    model_or_cfg: keras.Model | ExperimentConfig,
    *,
    head: str = "auto",
) -> keras.Model:
    """A keras_inst model (built from a config, or the one given) holding ``state_dict``'s weights.

    See :func:`load_state_dict` for ``head``; the outcome for the head is logged at INFO level
    (WARNING when the classifier is newly initialised).
    """
    if isinstance(model_or_cfg, ExperimentConfig):
        if model_or_cfg.model.architecture not in ("short_chunk_cnn", "short_chunk_res"):
            raise ValueError(
                "config key 'model.architecture': PyTorch conversion supports short_chunk_cnn "
                f"and short_chunk_res, got {model_or_cfg.model.architecture!r}"
            )
        model = build_model(model_or_cfg)
    elif isinstance(model_or_cfg, keras.Model):
        model = model_or_cfg
    else:
        raise ValueError(
            "model_or_cfg must be a keras.Model or an ExperimentConfig, "
            f"got {type(model_or_cfg).__name__}"
        )
    report = load_state_dict(state_dict, model, head=head)
    level = logging.WARNING if report.head_newly_initialised else logging.INFO
    log.log(level, "converted %d tensors: %s", len(report.loaded), report.head_message)
    return model
