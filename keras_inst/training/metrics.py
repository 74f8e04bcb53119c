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

from keras_inst.models.auc import defined_auc_class
from keras_inst.taxonomy import CLASSES, NUM_CLASSES


def keras_metrics(num_labels: int = NUM_CLASSES) -> list:
    """Streaming macro ROC-AUC and PR-AUC for ``model.compile`` (logged as roc_auc, pr_auc)."""
    auc = defined_auc_class()
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


def macro_aucs(y_true: np.ndarray, y_prob: np.ndarray, names: Sequence[str]
               ) -> tuple[dict[str, dict], float | None, float | None, list[str]]:
    """Per-label ``{name: {"positives", "roc_auc", "pr_auc"}}`` for labels ``[n, len(names)]``,
    the macro ROC-AUC and PR-AUC over the labels where they are defined (None if none is), and
    the names of the labels without positives or negatives."""
    per: dict[str, dict] = {}
    roc, pr, undefined = [], [], []
    for c, name in enumerate(names):
        entry: dict = {"positives": int(np.sum(y_true[:, c] > 0.5))}
        entry["roc_auc"], entry["pr_auc"] = label_aucs(y_true[:, c], y_prob[:, c])
        if entry["roc_auc"] is None:
            undefined.append(name)
        else:
            roc.append(entry["roc_auc"])
            pr.append(entry["pr_auc"])
        per[name] = entry
    return per, float(np.mean(roc)) if roc else None, float(np.mean(pr)) if pr else None, undefined


def evaluate_predictions(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    *,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> dict:
    """Macro and per-class ROC-AUC, PR-AUC, BCE loss, F1 at 0.5 and at ``thresholds``."""
    y_true, y_prob = _check(y_true, y_prob)
    per, roc, pr, undefined = macro_aucs(y_true, y_prob, CLASSES)
    f1_half = f1_scores(y_true, y_prob, 0.5)
    f1_tuned = f1_scores(y_true, y_prob, thresholds) if thresholds is not None else None
    per_class: dict[str, dict] = {}
    for c, name in enumerate(CLASSES):
        e = per[name]  # report key order: positives, negatives, f1@0.5, roc_auc, pr_auc, ...
        entry: dict = {"positives": e["positives"], "negatives": int(len(y_true) - e["positives"]),
                       "f1@0.5": float(f1_half[c]), "roc_auc": e["roc_auc"], "pr_auc": e["pr_auc"]}
        if f1_tuned is not None:
            entry["threshold"] = float(np.asarray(thresholds)[c])
            entry["f1@tuned"] = float(f1_tuned[c])
        per_class[name] = entry
    out = {
        "examples": int(len(y_true)),
        "roc_auc": roc,
        "pr_auc": pr,
        "loss": binary_cross_entropy(y_true, y_prob),
        "f1@0.5": float(np.mean(f1_half)),
        "undefined_classes": undefined,
        "per_class": per_class,
    }
    if f1_tuned is not None:
        out["f1@tuned"] = float(np.mean(f1_tuned))
    return out
