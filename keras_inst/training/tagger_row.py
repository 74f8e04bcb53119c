"""The tagger alone (beyond the paper, [open]): ``evaluation.tagger_row``.

A zero-shot musicnn tagger (:func:`keras_inst.models.tagger.zero_shot_classifier`: its real-music
tags mapped to the 15 classes by hand, no training) is scored on the same data as the trained
model, so every results table of report.md shows what training added to the tags alone. Its
input is 47616 samples (2.98 s at 16 kHz), not the model's chunk, so each evaluation example
``[T]`` is cut into tagger windows every half window (:mod:`keras_inst.runtime.windows`, as
predict cuts a file) and the window probabilities are averaged (:func:`windowed`); probe clips
are run like any file. Classes no tag names get probability 0 ("no evidence",
:func:`keras_inst.models.tagger.no_evidence_classes`): the tagger's macro figures leave them out,
and ``model_same_classes`` gives the trained model's macro over the same classes beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

TAGGER_SAMPLE_RATE = 16000  # musicnn's rate


def windowed(predict: Callable[[np.ndarray], np.ndarray], window: int) -> Callable[[np.ndarray], np.ndarray]:
    """``predict`` (``[b, window]`` -> ``[b, C]``) as a function of examples of any length ``[B, T]``
    -> ``[B, C]``: the mean over each example's windows, cut as predict cuts a file
    (:func:`keras_inst.runtime.windows.frame_windows`, every ``window // 2`` samples)."""
    from keras_inst.runtime.windows import frame_windows

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.shape[1] == window:
            return np.asarray(predict(x), np.float64)
        w = np.stack([frame_windows(row, window=window, hop=window // 2)[0] for row in x])  # [B, k, window]
        p = np.asarray(predict(w.reshape(-1, window)), np.float64)  # [B * k, C]
        return p.reshape(w.shape[0], w.shape[1], -1).mean(axis=1)

    return run


def macro_over(metrics: Mapping[str, Any], classes: Sequence[str]) -> dict[str, float | None]:
    """Macro ROC-AUC and PR-AUC of an :func:`~keras_inst.training.metrics.evaluate_predictions`
    result over ``classes`` (those where the metric is defined)."""
    out: dict[str, float | None] = {}
    for m in ("roc_auc", "pr_auc"):
        v = [metrics["per_class"][c][m] for c in classes if metrics["per_class"][c][m] is not None]
        out[m] = float(np.mean(v)) if v else None
    return out


def tagger_split(y: np.ndarray, p: np.ndarray, model_metrics: Mapping[str, Any], evidence: Sequence[str]) -> dict[str, Any]:
    """The tagger's entry for one split: its metrics at 0.5 (macro over ``evidence`` classes) and
    the trained model's macro over the same classes (``model_same_classes``)."""
    from keras_inst.training.metrics import evaluate_predictions

    m = evaluate_predictions(y, p)
    return {**m, **macro_over(m, evidence), "model_same_classes": macro_over(model_metrics, evidence)}


def tagger_entries(name: str, predict: Callable[[np.ndarray], np.ndarray], *, window: int,
                   splits: Mapping[str, tuple[Any, Mapping[str, Any]]], no_evidence: Sequence[str]) -> dict[str, Any]:
    """``report["tagger"]``: per split (``splits``: name -> (dataset of (waveform, labels), the
    model's metrics on it)) :func:`tagger_split` of the tagger ``predict`` (``[b, window]`` -> ``[b, C]``)."""
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.evaluate import predict_dataset

    run = windowed(predict, window)
    evidence = [c for c in CLASSES if c not in no_evidence]
    out: dict[str, Any] = {"name": name, "no_evidence_classes": list(no_evidence), "window_samples": window}
    for split, (ds, model_metrics) in splits.items():
        y, p = predict_dataset(_Predictor(run), ds)
        out[split] = tagger_split(y, p, model_metrics, evidence)
    return out


class _Predictor:
    """A plain function as the ``predict`` that :func:`predict_dataset` calls."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = fn


def load_tagger(name: str, *, sample_rate: int) -> tuple[Callable[[np.ndarray], np.ndarray], int, tuple[str, ...]]:
    """(predict ``[b, 47616]`` -> ``[b, 15]``, its window, its no-evidence classes) of tagger
    ``name``; ValueError naming ``evaluation.tagger_row`` when the run's rate is not musicnn's."""
    if sample_rate != TAGGER_SAMPLE_RATE:
        raise ValueError(f"config key 'evaluation.tagger_row': the musicnn taggers take {TAGGER_SAMPLE_RATE} Hz audio, "
                         f"the run's audio.sample_rate is {sample_rate}")
    from keras_inst.models.tagger import TAGGER_SAMPLES, no_evidence_classes, zero_shot_classifier

    model = zero_shot_classifier(name)
    return (lambda w: np.asarray(model.predict_on_batch(w))), TAGGER_SAMPLES, tuple(no_evidence_classes(name))
