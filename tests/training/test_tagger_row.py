"""The tagger-alone row (evaluation.tagger_row): the tagger's windows over each example, its
metrics on the same splits as the model (no-evidence classes left out of its macro), and the
rows report.md shows; the heavy musicnn model is replaced by a toy function."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from keras_inst.config.io import load_config
from keras_inst.taxonomy import CLASSES
from keras_inst.training.extras import extra_entries, extra_markdown
from keras_inst.training.metrics import evaluate_predictions
from keras_inst.training.report import comparison_table, markdown_report
from keras_inst.training.tagger_row import macro_over, windowed

WINDOW = 4


def _mean_tagger(w: np.ndarray) -> np.ndarray:
    """Toy tagger ``[b, 4]`` -> ``[b, 15]``: every class the window mean; 'brass' has no evidence (0)."""
    p = np.repeat(w.mean(axis=1, keepdims=True), len(CLASSES), axis=1)
    p[:, CLASSES.index("brass")] = 0.0
    return p


def test_windowed_averages_the_windows_of_each_example():
    x = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], np.float32)  # [2, 6]: windows at 0 and 2
    got = windowed(_mean_tagger, WINDOW)(x)
    assert got[:, 0] == pytest.approx([(0.5 + 1.0) / 2, (1.0 + 0.5) / 2])
    assert windowed(_mean_tagger, 6)(x)[:, 0] == pytest.approx([4 / 6, 4 / 6])  # the tagger's own length: as is


def _splits(seed: int, n: int = 24):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, len(CLASSES))) < 0.5).astype(np.float32)
    x = (0.3 * y[:, :1] + 0.7 * rng.uniform(size=(n, 6))).astype(np.float32)  # [n, 6]: louder with class 0
    return x, y


def test_tagger_row_numbers_and_tables():
    (xt, yt), (xh, yh) = _splits(0), _splits(1)
    ds = lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(5)  # noqa: E731
    model = SimpleNamespace(predict_on_batch=lambda w: np.clip(w[:, :1].repeat(len(CLASSES), 1), 0, 1))
    data = SimpleNamespace(test=ds(xt, yt), held_out=SimpleNamespace(dataset=ds(xh, yh)))
    report = {"test": evaluate_predictions(yt, model.predict_on_batch(xt)),
              "held_out": {**evaluate_predictions(yh, model.predict_on_batch(xh)), "songs": 3, "sources": [],
                           "engines": [], "styles": ["electronic"], "render_seed": 1, "corpus": "x"}}
    cfg = load_config("paper", ["evaluation.tagger_row=musicnn_mtt_musicnn"])
    report |= extra_entries(cfg, model, data, report, tagger=(_mean_tagger, WINDOW, ("brass",)))
    g = report["tagger"]
    assert g["name"] == "musicnn_mtt_musicnn" and g["no_evidence_classes"] == ["brass"] and "probe" not in g
    expected = evaluate_predictions(yt, windowed(_mean_tagger, WINDOW)(xt))
    evidence = [c for c in CLASSES if c != "brass"]
    assert g["test"]["per_class"] == expected["per_class"]
    assert g["test"]["roc_auc"] == pytest.approx(np.mean([expected["per_class"][c]["roc_auc"] for c in evidence]))
    assert g["test"]["model_same_classes"] == macro_over(report["test"], evidence)
    assert g["held_out"]["examples"] == 24

    def f(v):
        return f"{v:.4f}"

    md = markdown_report(report)
    assert f"| the tagger alone (musicnn_mtt_musicnn, 14 classes) | {f(g['test']['roc_auc'])} | {f(g['test']['pr_auc'])} |" in md
    assert f"| this model | {f(report['test']['roc_auc'])} |" in md
    table = comparison_table(report)
    assert table.startswith("## In-domain vs held-out (styles electronic)")
    assert (f"| macro, the tagger alone (musicnn_mtt_musicnn) | {f(g['test']['roc_auc'])} | {f(g['held_out']['roc_auc'])} | "
            f"{f(g['test']['pr_auc'])} | {f(g['held_out']['pr_auc'])} | |") in table
    assert extra_markdown(report) == ""  # no probe asked for
    # without the key the tables are what they were
    plain = {k: report[k] for k in ("test", "held_out")}
    assert "| model |" not in markdown_report(plain) and "tagger" not in comparison_table(plain)


def test_tagger_row_config():
    cfg = load_config("demo", ["evaluation.tagger_row=pretrained"])
    assert cfg.evaluation.tagger_name(cfg.training.pretrained) == "musicnn_msd_vgg"
    with pytest.raises(ValueError, match="config key 'evaluation.tagger_row': 'pretrained' needs training.pretrained"):
        load_config("paper", ["evaluation.tagger_row=pretrained", "training.transfer=scratch", "training.pretrained=null"]).evaluation.tagger_name(None)
    assert load_config("demo").evaluation.tagger_row is None and load_config("demo").evaluation.probe is None
