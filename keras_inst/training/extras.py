"""What ``evaluation.*`` adds to a training run's report ([open], beyond the paper): the
real-recording probe (:mod:`keras_inst.training.probe`) and the tagger-alone rows
(:mod:`keras_inst.training.tagger_row`), and their Markdown."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_inst.config.schema import ExperimentConfig


def check_evaluation_inputs(cfg: ExperimentConfig) -> None:
    """Refuse a missing or malformed probe (naming ``evaluation.probe`` and the path) or a tagger
    row the run cannot have, before any training."""
    from keras_inst.training.probe import read_probe_labels
    from keras_inst.training.tagger_row import TAGGER_SAMPLE_RATE

    if cfg.evaluation.probe is not None:
        read_probe_labels(cfg.evaluation.probe)
    if cfg.evaluation.tagger_name(cfg.training.pretrained) and cfg.audio.sample_rate != TAGGER_SAMPLE_RATE:
        raise ValueError(f"config key 'evaluation.tagger_row': the musicnn taggers take {TAGGER_SAMPLE_RATE} Hz audio, "
                         f"the run's audio.sample_rate is {cfg.audio.sample_rate}")


def extra_entries(cfg: ExperimentConfig, model: Any, data: Any, report: dict[str, Any], *, tagger: Any = None) -> dict[str, Any]:
    """``probe`` and ``tagger`` entries of ``report`` (which holds ``test``, ``thresholds``, maybe
    ``held_out`` and the presence rule), as the config asks. ``tagger``: (predict, window,
    no-evidence classes) instead of loading ``evaluation.tagger_row`` (tests)."""
    from keras_inst.runtime.presence import PresenceRule, read_presence_rule
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.probe import probe_report
    from keras_inst.training.tagger_row import load_tagger, tagger_entries

    out: dict[str, Any] = {}
    name = cfg.evaluation.tagger_name(cfg.training.pretrained)
    if name is not None and tagger is None:
        tagger = load_tagger(name, sample_rate=cfg.audio.sample_rate)
    probe = cfg.evaluation.probe
    if probe is not None:
        rule = read_presence_rule(report, CLASSES, where="the run's report") or PresenceRule.default(CLASSES)
        t = np.array([report["thresholds"][c] for c in CLASSES])
        out["probe"] = probe_report(lambda w: np.asarray(model.predict_on_batch(w)), probe, sample_rate=cfg.audio.sample_rate,
                                    window=cfg.audio.chunk_samples, thresholds=t, rule=rule, class_names=CLASSES)
    if tagger is not None:
        predict, window, no_evidence = tagger
        splits = {"test": (data.test, report["test"])}
        if data.held_out is not None:
            splits["held_out"] = (data.held_out.dataset, report["held_out"])
        out["tagger"] = tagger_entries(name or "tagger", predict, window=window, splits=splits, no_evidence=no_evidence)
        if probe is not None:  # the tagger's own thresholds are 0.5 and the default presence rule
            out["tagger"]["probe"] = probe_report(predict, probe, sample_rate=cfg.audio.sample_rate, window=window,
                                                  thresholds=np.full(len(CLASSES), 0.5), rule=PresenceRule.default(CLASSES),
                                                  class_names=CLASSES)
    return out


def extra_markdown(report: dict[str, Any]) -> str:
    """report.md's probe section (one row for this model, one for the tagger when there is one)."""
    from keras_inst.training.probe import probe_markdown

    if "probe" not in report:
        return ""
    rows = {"this model": report["probe"]}
    if "probe" in report.get("tagger", {}):
        rows[f"the tagger alone ({report['tagger']['name']})"] = report["tagger"]["probe"]
    return probe_markdown(rows)
