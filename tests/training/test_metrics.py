"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from keras_inst.taxonomy import CLASSES, NUM_CLASSES
from keras_inst.training.metrics import (
    binary_cross_entropy,
    evaluate_predictions,
    f1_scores,
    tune_thresholds,
)


def test_perfect_and_inverted_scores():
    rng = np.random.default_rng(0)
    y = (rng.random((40, NUM_CLASSES)) < 0.4).astype(float)
    y[0], y[1] = 1, 0  # every class has positives and negatives
    r = evaluate_predictions(y, y * 0.8 + 0.1)
    assert r["roc_auc"] == pytest.approx(1.0) and r["pr_auc"] == pytest.approx(1.0)
    assert r["f1@0.5"] == pytest.approx(1.0)
    r = evaluate_predictions(y, 1 - (y * 0.8 + 0.1))
    assert r["roc_auc"] == pytest.approx(0.0)


def test_hand_computed_auc_f1_and_loss():
    y = np.zeros((4, NUM_CLASSES))
    p = np.full((4, NUM_CLASSES), 0.5)
    y[:, 0] = [1, 0, 1, 0]
    p[:, 0] = [0.9, 0.8, 0.3, 0.1]
    r = evaluate_predictions(y, p)
    # pairs (pos, neg): (0.9>0.8) (0.9>0.1) (0.3<0.8) (0.3>0.1) -> 3/4
    assert r["per_class"]["voice"]["roc_auc"] == pytest.approx(0.75)
    # AP: ranks 0.9(pos) 0.8(neg) 0.3(pos) 0.1(neg): precision at recalls 0.5, 1.0 = 1, 2/3
    assert r["per_class"]["voice"]["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    # F1 at 0.5 for voice: predicted {0,1}, tp=1 fp=1 fn=1 -> 0.5
    assert r["per_class"]["voice"]["f1@0.5"] == pytest.approx(0.5)
    # other classes have no positives: undefined AUC, named
    assert r["undefined_classes"] == list(CLASSES[1:])
    assert r["roc_auc"] == pytest.approx(0.75)
    assert binary_cross_entropy(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])) == pytest.approx(np.log(2))


def test_tuned_thresholds_maximise_f1_and_default_without_positives():
    y = np.zeros((6, NUM_CLASSES))
    p = np.zeros((6, NUM_CLASSES))
    y[:, 2] = [1, 1, 1, 0, 0, 0]
    p[:, 2] = [0.3, 0.25, 0.2, 0.1, 0.05, 0.0]  # separable at 0.15, but all below 0.5
    t = tune_thresholds(y, p)
    assert 0.1 < t[2] < 0.2
    assert t[0] == 0.5
    assert f1_scores(y, p, t)[2] == pytest.approx(1.0)
    assert f1_scores(y, p, 0.5)[2] == 0.0


def test_ties_are_not_split():
    y = np.zeros((4, NUM_CLASSES))
    p = np.zeros((4, NUM_CLASSES))
    y[:, 0] = [1, 0, 1, 0]
    p[:, 0] = [0.7, 0.7, 0.7, 0.1]
    t = tune_thresholds(y, p)
    assert 0.1 < t[0] < 0.7  # the three 0.7s are predicted together


def test_bad_shapes_and_nan():
    with pytest.raises(ValueError, match="shape"):
        evaluate_predictions(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_predictions(np.zeros((2, NUM_CLASSES)), np.full((2, NUM_CLASSES), np.nan))


def test_keras_streaming_auc_ignores_classes_without_positives():
    # keras.metrics.AUC would average a 0 in for every class without positives.
    from keras_inst.training.metrics import keras_metrics

    y = np.zeros((4, NUM_CLASSES), dtype="float32")
    p = np.full((4, NUM_CLASSES), 0.5, dtype="float32")
    y[:, 0] = [1, 0, 1, 0]
    p[:, 0] = [0.9, 0.8, 0.3, 0.1]
    y[:, 1] = [1, 1, 0, 0]
    p[:, 1] = [0.9, 0.7, 0.2, 0.1]  # perfect
    roc, pr = keras_metrics()
    roc.update_state(y, p)
    pr.update_state(y, p)
    exact = evaluate_predictions(y, p)
    assert exact["roc_auc"] == pytest.approx((0.75 + 1.0) / 2)
    assert float(roc.result()) == pytest.approx(exact["roc_auc"], abs=0.01)
    assert float(pr.result()) == pytest.approx(exact["pr_auc"], abs=0.06)  # interpolated PR vs AP
