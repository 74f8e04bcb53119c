"""Backbone blocks, for partly frozen fine-tuning (``training.trainable_blocks``, issue J, [open]).

Fine-tuning a pre-trained tagger on rendered audio overwrites what it learnt from real music;
freezing it whole (``training.transfer: frozen``) keeps that but cannot adapt. The classic
middle ground keeps the early, low-level (timbre) blocks fixed and fine-tunes the later ones:
with ``transfer: finetune`` and ``trainable_blocks: n`` only the *last* ``n`` blocks of the
backbone (and the head) are trained.

A block is one stage of a backbone in depth order, written as the stems of its layer names (a
layer is in a block when its name is a stem or starts with ``stem + "_"``):

* ``short_chunk_cnn`` / ``short_chunk_res``: one block per ``model.channels`` row, ``layerN_*``
  (conv and batch norm; the residual blocks' two convs and shortcut): 7 for the paper.
* ``musicnn_vgg``: its 5 conv blocks, ``convN`` + ``bnN``.
* ``musicnn``: 5 -- the front end (the five timbral / temporal branches), the three mid-end
  convs one block each, and the back end (``pooled_bn``, ``penultimate_dense``,
  ``penultimate``: the embedding).

The input batch norm (``spec_bn`` / ``input_bn``) goes with the first block: it normalises what
that block hears. A frozen layer gets ``trainable = False``: its variables leave the trainable
list (so :class:`~keras_inst.models.optimizers.GroupedOptimizer` never sees them) and Keras 3
runs its batch norm in inference mode, fused path included
(:class:`~keras_inst.models.batch_norm.FusedBatchNormalization`), so the moving statistics
learnt on real music are not re-estimated on rendered audio. The flags are saved in the
``.keras`` file, so checkpoints resume with the same split.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from keras_inst.config.schema import ExperimentConfig
from keras_inst.models.musicnn_cnn import MUSICNN_FRONTEND
from keras_inst.models.pretrained import MUSICNN_POOLS, musicnn_variant
from keras_inst.models.short_chunk import block_specs

KEY = "training.trainable_blocks"
Blocks = tuple[tuple[str, ...], ...]  # per block, in depth order: the stems of its layer names


def _short_chunk_blocks(cfg: ExperimentConfig) -> Blocks:
    names = [s.name for s in block_specs(cfg.model)]
    return (("spec_bn", names[0]), *((n,) for n in names[1:]))


def _musicnn_vgg_blocks(cfg: ExperimentConfig) -> Blocks:
    n = len(MUSICNN_POOLS[musicnn_variant(cfg)])
    return (("input_bn", "conv1", "bn1"), *((f"conv{i}", f"bn{i}") for i in range(2, n + 1)))


def _musicnn_blocks(cfg: ExperimentConfig) -> Blocks:
    front = ("input_bn", *(f.name for f in MUSICNN_FRONTEND))
    return (front, ("midend1",), ("midend2",), ("midend3",), ("pooled", "penultimate"))


# model.architecture -> its blocks (keras_inst.config.registry.BACKBONES names).
BACKBONE_BLOCKS: dict[str, Callable[[ExperimentConfig], Blocks]] = {
    "short_chunk_cnn": _short_chunk_blocks,
    "short_chunk_res": _short_chunk_blocks,
    "musicnn_vgg": _musicnn_vgg_blocks,
    "musicnn": _musicnn_blocks,
}


def backbone_blocks(cfg: ExperimentConfig) -> Blocks:
    """The blocks of ``model.architecture``'s backbone, first to last (module doc)."""
    arch = cfg.model.architecture
    if arch not in BACKBONE_BLOCKS:
        raise ValueError(f"config key '{KEY}': model.architecture {arch!r} has no block table "
                         f"(keras_inst.models.blocks.BACKBONE_BLOCKS: {', '.join(BACKBONE_BLOCKS)})")
    return BACKBONE_BLOCKS[arch](cfg)


def check_trainable_blocks(cfg: ExperimentConfig) -> None:
    """ValueError naming ``training.trainable_blocks`` when it exceeds the backbone's blocks
    (the config checks the rest: >= 1, only with ``transfer: finetune``)."""
    n = cfg.training.trainable_blocks
    if n is None:
        return
    count = len(backbone_blocks(cfg))
    if n > count:
        raise ValueError(f"config key '{KEY}': {n} is more than the {count} blocks of the "
                         f"{cfg.model.architecture!r} backbone (null or {count}: fine-tune all of it)")


def _block_of(name: str, blocks: Blocks) -> int | None:
    for i, stems in enumerate(blocks):
        if any(name == s or name.startswith(s + "_") for s in stems):
            return i
    return None


def freeze_leading_blocks(backbone: keras.Model, cfg: ExperimentConfig) -> tuple[str, ...]:
    """Set ``trainable = False`` on every layer with weights of all but the last
    ``training.trainable_blocks`` blocks of ``backbone``; returns their names (empty for null).

    Every layer with weights must be in a block: one that is not raises (a backbone changed
    without its table), never a silent choice.
    """
    check_trainable_blocks(cfg)
    n = cfg.training.trainable_blocks
    if n is None:
        return ()
    blocks = backbone_blocks(cfg)
    first_trained = len(blocks) - n
    frozen = []
    for layer in backbone.layers:
        if not layer.weights:  # pools, activations, dropout: nothing to freeze
            continue
        i = _block_of(layer.name, blocks)
        if i is None:
            raise ValueError(f"config key '{KEY}': backbone layer {layer.name!r} is in no block of "
                             f"{cfg.model.architecture!r} (keras_inst.models.blocks)")
        if i < first_trained:
            layer.trainable = False
            frozen.append(layer.name)
    return tuple(frozen)
