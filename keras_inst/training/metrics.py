"""Evaluation metrics of the paper (Table 1: ROC-AUC, PR-AUC, test loss; Fig. 3: per-class F1).

Training-time metrics are Keras' streaming AUCs (approximate, 200 thresholds). Reports use the
exact scikit-learn values: macro averages over the classes that have both positives and
negatives in the evaluated set (a class without positives has no defined ROC-AUC; it is listed
as ``null`` and named in ``undefined_classes`` rather than silently counted).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from keras_inst.taxonomy import CLASSES, NUM_CLASSES


def _defined_auc_class():
    """Build (once) the Keras metric class; keeps ``import keras`` out of module import."""
    global _DefinedClassesAUC
    if _DefinedClassesAUC is not None:
        return _DefinedClassesAUC
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="keras_inst")
    class DefinedClassesAUC(keras.metrics.AUC):
        """Multi-label macro AUC over the labels that have both positives and negatives.

        keras.metrics.AUC scores a label without positives as 0 and still averages it in
        (a set where one class is absent reads 0.375 instead of 0.75); this mask keeps the
        validation ROC-AUC -- which picks the best checkpoint and is the tuner's objective -- equal
        to the exact macro average of :func:`evaluate_predictions` up to threshold binning.
        """

        def result(self):
            if not self.multi_label:
                return super().result()
            # At thresholds[0] (just below 0) every example is predicted positive, so
            # tp+fn counts the positives and fp+tn the negatives of each label.
            pos = self.true_positives[0] + self.false_negatives[0]
            neg = self.false_positives[0] + self.true_negatives[0]
            mask = ops.cast(ops.logical_and(pos > 0, neg > 0), self.dtype)
            saved = self.label_weights
            self.label_weights = mask if saved is None else mask * saved
            try:
                return super().result()
            finally:
                self.label_weights = saved

    _DefinedClassesAUC = DefinedClassesAUC
    return DefinedClassesAUC


_DefinedClassesAUC = None


def keras_metrics(num_labels: int = NUM_CLASSES) -> list:
    """Streaming macro ROC-AUC and PR-AUC for ``model.compile`` (logged as roc_auc, pr_auc)."""
    auc = _defined_auc_class()
    return [
        auc(curve="ROC", multi_label=True, num_labels=num_labels, name="roc_auc"),
        auc(curve="PR", multi_label=True, num_labels=num_labels, name="pr_auc"),
    ]


def _check(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_prob.shape or y_true.shape[1] != NUM_CLASSES:
        raise ValueError(f"expected labels and probabilities of shape [n, {NUM_CLASSES}], got {y_true.shape} and {y_prob.shape}")
    if y_true.shape[0] == 0:
        raise ValueError("cannot evaluate on zero examples")
    if not np.all(np.isfinite(y_prob)):
        raise ValueError("probabilities contain NaN or inf")
    return y_true, y_prob


def binary_cross_entropy(y_true: np.ndarray, y_prob: np.ndarray, *, eps: float = 1e-7) -> float:
    """Mean BCE over examples and classes (Keras' clipping epsilon)."""
    p = np.clip(y_prob, eps, 1 - eps)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))


def f1_scores(y_true: np.ndarray, y_prob: np.ndarray, thresholds: float | Sequence[float] | np.ndarray = 0.5) -> np.ndarray:
    """Per-class F1 [15] at the given threshold(s); 0 where a class has no positives and none predicted."""
    y_true, y_prob = _check(y_true, y_prob)
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (NUM_CLASSES,))
    pred = y_prob >= t
    pos = y_true > 0.5
    tp = np.sum(pred & pos, axis=0)
    fp = np.sum(pred & ~pos, axis=0)
    fn = np.sum(~pred & pos, axis=0)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_thresholds(y_true: np.ndarray, y_prob: np.ndarray, *, default: float = 0.5) -> np.ndarray:
    """Per-class threshold maximising F1 on (validation) data; ``default`` for classes without positives.

    Candidates are the midpoints between sorted distinct scores, so the result does not sit
    exactly on a validation score.
    """
    y_true, y_prob = _check(y_true, y_prob)
    out = np.full(NUM_CLASSES, default, dtype=np.float64)
    for c in range(NUM_CLASSES):
        pos = y_true[:, c] > 0.5
        if not pos.any():
            continue
        order = np.argsort(-y_prob[:, c], kind="stable")
        s = y_prob[order, c]
        p = pos[order]
        tp = np.cumsum(p)
        fp = np.cumsum(~p)
        fn = pos.sum() - tp
        f1 = 2 * tp / (2 * tp + fp + fn)
        # Only cut after the last of a run of equal scores (a threshold cannot split ties).
        last_of_run = np.r_[s[1:] != s[:-1], True]
        f1 = np.where(last_of_run, f1, -1.0)
        k = int(np.argmax(f1))
        out[c] = (s[k] + s[k + 1]) / 2 if k + 1 < len(s) else s[k] - 1e-6
    return out


def label_aucs(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[float | None, float | None]:
    """(ROC-AUC, PR-AUC as average precision) of one label; (None, None) when the label has no
    positives or no negatives, where neither is defined."""
    pos = int(np.sum(y_true > 0.5))
    if 0 < pos < len(y_true):
        return float(roc_auc_score(y_true, y_prob)), float(average_precision_score(y_true, y_prob))
    return None, None


def evaluate_predictions(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> dict:
    """Macro and per-class ROC-AUC, PR-AUC, BCE loss, F1 at 0.5 and at ``thresholds``."""
    y_true, y_prob = _check(y_true, y_prob)
    per_class: dict[str, dict] = {}
    roc, pr, undefined = [], [], []
    f1_half = f1_scores(y_true, y_prob, 0.5)
    f1_tuned = f1_scores(y_true, y_prob, thresholds) if thresholds is not None else None
    for c, name in enumerate(CLASSES):
        pos = int(np.sum(y_true[:, c] > 0.5))
        entry: dict = {"positives": pos, "negatives": int(len(y_true) - pos), "f1@0.5": float(f1_half[c])}
        entry["roc_auc"], entry["pr_auc"] = label_aucs(y_true[:, c], y_prob[:, c])
        if entry["roc_auc"] is None:
            undefined.append(name)
        else:
            roc.append(entry["roc_auc"])
            pr.append(entry["pr_auc"])
        if f1_tuned is not None:
            entry["threshold"] = float(np.asarray(thresholds)[c])
            entry["f1@tuned"] = float(f1_tuned[c])
        per_class[name] = entry
    out = {
        "examples": int(len(y_true)),
        "roc_auc": float(np.mean(roc)) if roc else None,
        "pr_auc": float(np.mean(pr)) if pr else None,
        "loss": binary_cross_entropy(y_true, y_prob),
        "f1@0.5": float(np.mean(f1_half)),
        "undefined_classes": undefined,
        "per_class": per_class,
    }
    if f1_tuned is not None:
        out["f1@tuned"] = float(np.mean(f1_tuned))
    return out
