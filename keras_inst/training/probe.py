"""A real-recording probe in every report (beyond the paper, [open]): ``evaluation.probe``.

The probe is a labels file (``../shared/real_dev/labels.json``: clip name -> ``positive``
classes, certainly heard, ``negative`` ones, certainly not, ``undecided``, and the clip's
``file`` relative to the labels file). Each clip is run as ``predict`` runs a file: decoded to
mono at the model's rate, cut into windows of the model's input every half window
(:mod:`keras_inst.runtime.windows`), its ``probabilities`` the window mean and its ``classes``
the present ones (:mod:`keras_inst.runtime.presence`, the model's thresholds and rule). The
scores are exactly those of ``../shared/tools/score_clips.py`` on predict's JSON
(:func:`score_clips`, tested against the tool): per class, the ROC-AUC over the clips where the
class is certainly present vs certainly absent (classes with at least one of each, rounded to
3 decimals), their mean (rounded), and every clip's decisions with the misses and false alarms.
Too few clips to rank models finely; it shows *how* a model fails on real recordings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROBE_KEY = "evaluation.probe"


def read_probe_labels(path: str | Path, *, key: str = PROBE_KEY) -> dict[str, dict[str, Any]]:
    """The labels file at ``path``: ValueError naming ``key`` and the path when it or a clip's
    audio file is missing, or an entry lacks its ``file`` / ``positive`` / ``negative``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"config key '{key}': probe labels file {path} not found (from {Path.cwd()})")
    try:
        labels = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"config key '{key}': {p} is not a readable JSON file ({e})") from None
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"config key '{key}': {p} must map clip names to their labels")
    for name, entry in labels.items():
        if not isinstance(entry, dict) or not {"file", "positive", "negative"} <= set(entry):
            raise ValueError(f"config key '{key}': {p} clip {name!r} needs 'file', 'positive' and 'negative'")
        if not (p.parent / entry["file"]).is_file():
            raise ValueError(f"config key '{key}': {p} clip {name!r}: audio file {p.parent / entry['file']} not found")
    return labels


def _norm(c: str) -> str:
    return c.replace("_", " ")


def _auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Mann-Whitney ROC-AUC, ties counting one half (score_clips.py's formula)."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def score_clips(files: Sequence[Mapping[str, Any]], labels: Mapping[str, Mapping[str, Any]], *,
                class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """score_clips.py's scores of predict-style ``files`` (``path``, ``probabilities`` as a dict or a
    list in ``class_names`` order, ``classes``): per-class ROC-AUC, macro, clips scored / missing,
    and each clip's ``said`` / ``missed`` / ``false`` classes (names with spaces)."""
    got: dict[str, tuple[dict[str, float], set[str]]] = {}
    for f in files:
        probs = f.get("probabilities", {})
        if isinstance(probs, list):
            probs = dict(zip(class_names or [], probs, strict=True))
        got[Path(f["path"]).stem] = ({_norm(k): float(v) for k, v in probs.items()}, {_norm(c) for c in f.get("classes", [])})
    classes = sorted({_norm(c) for v in labels.values() for c in [*v["positive"], *v["negative"]]})
    per: dict[str, float] = {}
    for c in classes:
        pos = [got[k][0][c] for k, v in labels.items() if k in got and c in map(_norm, v["positive"])]
        neg = [got[k][0][c] for k, v in labels.items() if k in got and c in map(_norm, v["negative"])]
        if pos and neg:
            per[c] = round(_auc(pos, neg), 3)
    clips = {}
    for k, v in sorted(labels.items()):
        if k in got:
            said = got[k][1]
            clips[k] = {"said": sorted(said), "missed": sorted(set(map(_norm, v["positive"])) - said),
                        "false": sorted(said & set(map(_norm, v["negative"])))}
    return {"per_class_roc_auc": per, "macro_roc_auc": round(sum(per.values()) / len(per), 3) if per else None,
            "clips_scored": len(set(labels) & set(got)), "clips_missing": sorted(set(labels) - set(got)), "clips": clips}


def probe_files(predict: Callable[[np.ndarray], np.ndarray], labels_path: str | Path, *, sample_rate: int, window: int,
                thresholds: np.ndarray, rule: Any, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Predict-style results (``path``, ``probabilities``: window mean, ``classes``: present) of every
    clip of the probe, ``predict``: float32 windows ``[b, window]`` -> ``[b, C]``."""
    from keras_inst.data.cache.build import decode_mono
    from keras_inst.runtime.presence import present_classes
    from keras_inst.runtime.windows import window_probabilities

    path = Path(labels_path).expanduser()
    out = []
    for entry in read_probe_labels(path).values():
        audio = decode_mono(path.parent / entry["file"], sample_rate=sample_rate)  # [n] float32
        _, probs = window_probabilities(predict, audio, window=window, hop=window // 2)  # [w, C]
        out.append({"path": str(path.parent / entry["file"]),
                    "probabilities": {c: round(float(p), 6) for c, p in zip(class_names, probs.mean(axis=0), strict=True)},
                    "classes": present_classes(probs, thresholds, rule, class_names)})
    return out


def probe_report(predict: Callable[[np.ndarray], np.ndarray], labels_path: str | Path, *, sample_rate: int, window: int,
                 thresholds: np.ndarray, rule: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """The ``probe`` entry of a report: :func:`score_clips` of :func:`probe_files`, and the labels' path."""
    files = probe_files(predict, labels_path, sample_rate=sample_rate, window=window, thresholds=thresholds,
                        rule=rule, class_names=class_names)
    return {"labels": str(labels_path), **score_clips(files, read_probe_labels(labels_path), class_names=class_names),
            "probabilities": {Path(f["path"]).stem: f["probabilities"] for f in files}}


def probe_markdown(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The probe's section of report.md: one row per model (``rows``: name -> :func:`probe_report`),
    macro and per-class ROC-AUC over clips, then the first model's decisions per clip."""
    first = next(iter(rows.values()))
    classes = list(first["per_class_roc_auc"])
    f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["", f"## Real-recording probe ({first['clips_scored']} clips of {first['labels']})", "",
             "ROC-AUC over clips per class (clips where the class is certainly present vs certainly absent).", "",
             "| model | macro | " + " | ".join(classes) + " |", "|---" * (len(classes) + 2) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {f(r['macro_roc_auc'])} | " + " | ".join(f(r["per_class_roc_auc"].get(c)) for c in classes) + " |")
    lines += ["", "| clip | said | missed | false alarms |", "|---|---|---|---|"]
    for clip, d in first["clips"].items():
        lines.append(f"| {clip} | {', '.join(d['said']) or '-'} | {', '.join(d['missed']) or '-'} | {', '.join(d['false']) or '-'} |")
    return "\n".join(lines) + "\n"
