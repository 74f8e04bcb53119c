"""``training.pretrained: keras_inst_release``: fine-tune the shipped model (backbone AND head).

The shipped folder (:mod:`keras_inst.runtime.shipped`; ``training.pretrained_path``, else
``$KERAS_INST_RELEASE``, else the package's ``keras_inst/release/``) holds ``model.keras`` and the
resolved config it was trained with (``metadata.json`` ``"config"``). A fine-tuning run builds
its model from its own config, so the config must describe the same network: every key of the
``audio`` and ``features`` sections and the ``model`` keys that shape weights are compared with the
shipped ones (:func:`check_release_config`; a difference is a ValueError naming the key and both
values). Then every weight of the classifier's sub-models (front end, backbone and the 15-way
head; a shipped model fused with the zero-shot tagger keeps them, and the fine-tuned run fuses
again at its end when its config says so) is copied in order (layers and shapes checked), and
the run fine-tunes with its own learning rates (configs/finetune_release.yaml).

The entry of :data:`keras_inst.config.registry.PRETRAINED` is :data:`KERAS_INST_RELEASE`. It lives
in runtime/, not models/, because it reads the shipped folder (a runtime fact).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_inst.config.io import from_dict, to_dict
from keras_inst.config.schema import ExperimentConfig
from keras_inst.models.pretrained import PretrainedSpec
from keras_inst.runtime.shipped import SHIPPED_FILES, SHIPPED_METADATA, read_shipped, shipped_dir

# model.* keys that do not change the classifier's weights (may differ when fine-tuning; fusion
# with the zero-shot tagger is applied at the end of a run, keras_inst.training.fusion)
MODEL_KEYS_FREE = ("dropout", "fusion_tagger", "fusion_weight", "fusion_space", "fusion_partial_weight")
# The classifier's sub-models (keras_inst.models.short_chunk.build_model), also inside a model
# fused with the tagger (keras_inst.models.fusion): what is copied, in this order.
PARTS = ("frontend", "backbone", "head")


def release_folder(cfg: ExperimentConfig) -> Path:
    """``training.pretrained_path`` (a shipped folder), else :func:`~keras_inst.runtime.shipped.shipped_dir`."""
    raw = cfg.training.pretrained_path
    return Path(raw).expanduser() if raw else shipped_dir()


def check_release_config(cfg: ExperimentConfig, shipped: dict[str, Any], *, where: Path) -> None:
    """ValueError naming every ``audio.*``, ``features.*`` and weight-shaping ``model.*`` key
    whose value differs from the shipped model's config (``where``: its metadata.json)."""
    raw = shipped.get("config")
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: no 'config' (the resolved config of the shipped model)")
    try:  # through the schema: keys added since the release was made read as their defaults
        theirs = to_dict(from_dict(raw))
    except ValueError as e:
        raise ValueError(f"{where}: its 'config' does not fit this version of keras_inst ({e})") from None
    ours = to_dict(cfg)
    wrong = []
    for section in ("audio", "features", "model"):
        for key, value in ours[section].items():
            if section == "model" and key in MODEL_KEYS_FREE:
                continue
            other = theirs[section][key]
            if other != value:
                wrong.append(f"'{section}.{key}' is {value!r} here but {other!r} in the shipped model")
    if wrong:
        raise ValueError(f"training.pretrained='keras_inst_release' ({where}) does not fit this config: config key "
                         + "; config key ".join(wrong) + " (start from configs/finetune_release.yaml)")


def load_release_weights(model: Any, cfg: ExperimentConfig) -> Any:
    """Copy the shipped model's weights (backbone and head) into ``model``; returns it."""
    from keras_inst.models.short_chunk import load_model

    folder = release_folder(cfg)
    shipped = read_shipped(folder)  # every file's sha256 checked
    check_release_config(cfg, shipped, where=folder / SHIPPED_METADATA)
    source = load_model(folder / SHIPPED_FILES["keras"], compile=False)
    for part in PARTS:
        _copy_part(source, model, part, where=folder / SHIPPED_FILES["keras"])
    return model


def _copy_part(source: Any, model: Any, part: str, *, where: Path) -> None:
    """Copy sub-model ``part``'s weights from ``source`` into ``model`` after checking that its
    layers (same weight shapes can hide another pooling: musicnn's MSD and MTT VGGs) and shapes agree."""
    try:
        theirs_part, ours_part = source.get_layer(part), model.get_layer(part)
    except ValueError as e:
        raise ValueError(f"{where}: no sub-model {part!r} in the shipped or the configured model ({e})") from None
    layout = [_layer_layout(m) for m in (theirs_part, ours_part)]
    if layout[0] != layout[1]:
        diff = [(a, b) for a, b in zip(*layout, strict=False) if a != b][:2]
        raise ValueError(f"{where}: the layers of its {part!r} differ from the configured model's "
                         f"(shipped vs here: {diff or 'a different number of layers'})")
    theirs, ours = theirs_part.get_weights(), ours_part.get_weights()
    shapes = [(tuple(a.shape), tuple(b.shape)) for a, b in zip(theirs, ours, strict=False)]
    if len(theirs) != len(ours) or any(a != b for a, b in shapes):
        raise ValueError(f"{where}: the {len(theirs)} weights of its {part!r} do not fit the configured model's "
                         f"{len(ours)} (first shapes that differ: {[s for s in shapes if s[0] != s[1]][:3]})")
    ours_part.set_weights(theirs)


def _layer_layout(model: Any) -> list[tuple]:
    """(name, class, pool size, strides) of every layer, nested models' layers included."""
    out = []
    for layer in model.layers:
        out.append((layer.name, type(layer).__name__, getattr(layer, "pool_size", None), getattr(layer, "strides", None)))
        if hasattr(layer, "layers"):
            out += _layer_layout(layer)
    return out


KERAS_INST_RELEASE = PretrainedSpec({}, load_release_weights, whole_model=True)
