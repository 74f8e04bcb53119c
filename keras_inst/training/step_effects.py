"""Effects in the training step (``training.effects_in: train_step``, beyond the paper).

The mixing stream costs ~6-10 ms of CPU per example (docs/benchmarks.md), so a host's cores
make a few thousand mixes per second while a GPU could train on more. With this option the
tf.data stream only draws the recipes and reads the int16 sources (a raw batch,
:func:`keras_inst.data.mixdown.raw_batch`); the effects, the sum and the peak normalisation run
inside the compiled training step, on the device that trains (on every replica, its share of
the batch), through :func:`keras_inst.data.mixdown.mix_raw_batch`. Validation and test data are
waveforms as always, and the saved model is the plain classifier: only ``fit``'s step changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from keras_inst.compat import symbolic_build


def mix_in_train_step(model: Any, mixer: Callable[[dict], tf.Tensor], *, chunk_samples: int,
                      num_classes: int) -> None:
    """Make ``model.fit`` take ``(raw batch, labels)``: its training step first mixes the raw
    batch with ``mixer`` (raw dict -> float32 ``[B, chunk_samples]``), then trains as usual.

    Call it on a compiled model (fresh or loaded from a checkpoint) before ``fit``. It

    * replaces the instance's ``train_step`` (Keras compiles ``self.train_step`` into its
      training function, on the strategy's replicas);
    * builds the compiled loss and metrics from a waveform batch's shapes: Keras would build
      them from the first training batch, which is now a raw batch the model cannot take;
    * turns XLA off for the step: the mixdown selects the used source rows with data-dependent
      shapes, which XLA cannot compile (Keras' ``jit_compile="auto"`` picks XLA on GPUs).
    """
    if getattr(model, "_keras_inst_step_mixer", None) is not None:
        raise ValueError("this model's training step already mixes raw batches (mix_in_train_step called twice)")
    step = model.train_step

    def train_step(data: Any) -> Any:
        raw, labels = data[0], data[1]
        return step((mixer(raw), labels))

    waveforms = tf.TensorSpec((None, chunk_samples), tf.float32)
    labels = tf.TensorSpec((None, num_classes), tf.float32)
    symbolic_build(model, data_batch=(waveforms, labels))  # Keras' own builder, given the shapes
    model.jit_compile = False
    model.train_step = train_step
    model._keras_inst_step_mixer = mixer
    model.train_function = None  # a function compiled before this call would skip the mixing


def prepare_fit(model: Any, cfg: Any) -> None:
    """:func:`mix_in_train_step` when ``cfg`` mixes in the training step
    (:func:`keras_inst.data.pipeline.step_mixer`), else nothing."""
    from keras_inst.data.pipeline import step_mixer
    from keras_inst.taxonomy import CLASSES

    mixer = step_mixer(cfg)
    if mixer is not None:
        mix_in_train_step(model, mixer, chunk_samples=cfg.audio.chunk_samples,
                          num_classes=len(CLASSES))
