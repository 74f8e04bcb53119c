"""A run's model fused with the zero-shot tagger (``model.fusion_tagger`` [open]; the layers and
why: :mod:`keras_inst.models.fusion`).

At the end of a run the best classifier is wrapped with the tagger *before* thresholds are
tuned, so the tuned thresholds, the presence rule, every reported figure, ``model.keras`` and
the exports are the fused model's. What fusion bought is kept beside them: the plain
classifier's macro figures on the same splits (thresholds tuned on the same validation split)
go into report.json as ``without_fusion``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_inst.config.schema import DEFAULT_FUSION_SPACE, ExperimentConfig
from keras_inst.runtime.artifacts import RUN_MODEL


def plain_figures(cfg: ExperimentConfig, model: Any, data: Any) -> dict[str, Any]:
    """Macro ROC-AUC / PR-AUC of ``model`` on test (and held-out), and its probe score when
    ``evaluation.probe`` is set (thresholds tuned on validation, the default presence rule)."""
    from keras_inst.runtime.presence import PresenceRule
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.evaluate import predict_dataset
    from keras_inst.training.metrics import evaluate_predictions, tune_thresholds
    from keras_inst.training.probe import probe_report

    yv, pv = predict_dataset(model, data.validation)
    thresholds = tune_thresholds(yv, pv)
    splits = {"test": data.test} | ({"held_out": data.held_out.dataset} if data.held_out is not None else {})
    out: dict[str, Any] = {}
    for name, ds in splits.items():
        r = evaluate_predictions(*predict_dataset(model, ds), thresholds=thresholds)
        out[name] = {"roc_auc": r["roc_auc"], "pr_auc": r["pr_auc"]}
    if cfg.evaluation.probe is not None:
        probe = probe_report(lambda w: np.asarray(model.predict_on_batch(w)), cfg.evaluation.probe,
                             sample_rate=cfg.audio.sample_rate, window=cfg.audio.chunk_samples,
                             thresholds=np.asarray(thresholds), rule=PresenceRule.default(CLASSES), class_names=CLASSES)
        out["probe"] = {"macro_roc_auc": probe["macro_roc_auc"], "per_class_roc_auc": probe["per_class_roc_auc"]}
    return out


def fuse_run_model(cfg: ExperimentConfig, model: Any, data: Any, rd: Any) -> tuple[Any, dict[str, Any]]:
    """(the fused model, report.json's ``without_fusion`` entry); the fused model replaces the
    run's model.keras (atomically) so that predict, evaluate and export load it."""
    from keras_inst.models.fusion import frontend_is_taggers, fuse_with_tagger

    plain = plain_figures(cfg, model, data)
    tagger = cfg.model.fusion_tagger
    fused = fuse_with_tagger(model, tagger, weight=cfg.model.fusion_weight, space=cfg.model.fusion_space,
                             partial_weight=cfg.model.fusion_partial_weight, path=cfg.training.pretrained_path,
                             share_frontend=frontend_is_taggers(cfg, tagger))
    rd.save_model(RUN_MODEL, fused)
    return fused, {"tagger": cfg.model.fusion_tagger, "weight": cfg.model.fusion_weight, "space": cfg.model.fusion_space,
                   "partial_weight": cfg.model.fusion_partial_weight, **plain}


def fusion_markdown(report: dict[str, Any]) -> str:
    """report.md's lines comparing the fused model with the plain classifier."""
    plain = report.get("without_fusion")
    if not plain:
        return ""
    partial = f" ({plain['partial_weight']} where its tags name only some instruments)" if plain.get("partial_weight") is not None else ""
    rows = ["", f"## Fusion with the tagger ({plain['tagger']}, weight {plain['weight']}{partial}, "
            f"{plain.get('space', DEFAULT_FUSION_SPACE)} space)", "",
            "| split | fused | classifier alone |", "|---|---|---|"]
    for split in ("test", "held_out"):
        if split in plain and split in report:
            rows.append(f"| {split} ROC-AUC | {report[split]['roc_auc']:.4f} | {plain[split]['roc_auc']:.4f} |")
    if "probe" in plain and "probe" in report:
        rows.append(f"| real-recording probe | {report['probe']['macro_roc_auc']:.3f} | {plain['probe']['macro_roc_auc']:.3f} |")
    return "\n".join(rows) + "\n"

