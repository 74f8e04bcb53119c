"""Score musicnn's taggers as zero-shot 15-class classifiers on labelled clips; prints JSON.

    python scripts/score_tagger.py [--clips ../shared/real_dev] [--taggers musicnn_mtt_musicnn musicnn_mtt_vgg]
                                   [--out-dir DIR] [--musicnn-path PATH]

``--clips``: a folder with ``labels.json`` (clip -> ``file``, ``positive``, ``negative`` class
names, spaces or underscores), as ``../shared/real_dev``. Each clip is cut like musicnn's own
extractor does: consecutive non-overlapping windows of the tagger's input (47616 samples,
2.98 s at 16 kHz; a shorter tail is dropped), a clip shorter than one window zero-padded to
one; the windows' class probabilities are averaged. Per class: ROC-AUC over the clips where it
is certainly present vs certainly absent (as ``../shared/tools/score_clips.py``), for classes
with >= 1 of each and with evidence (classes no tag names are listed under ``no_evidence``,
not scored: the model's constant 0 would read 0.5). ``--out-dir``: also write each tagger's
``predict --format json``-style file there (``score_clips.py`` reads it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from keras_inst.deploy.audio_io import load_audio
from keras_inst.models.tagger import (
    TAGGER_SAMPLES,
    no_evidence_classes,
    tagger_config,
    zero_shot_classifier,
)
from keras_inst.taxonomy import CLASSES


def clip_windows(samples: np.ndarray, window: int = TAGGER_SAMPLES) -> np.ndarray:
    """musicnn's batching: ``[n, window]`` non-overlapping windows, the tail dropped; a signal
    shorter than a window is zero-padded to one."""
    if len(samples) < window:
        return np.pad(samples, (0, window - len(samples)))[None].astype(np.float32)
    n = len(samples) // window
    return samples[: n * window].reshape(n, window).astype(np.float32)


def roc_auc(pos: list[float], neg: list[float]) -> float:
    """P(positive > negative), ties counted half (score_clips.py's formula)."""
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def score(probs: dict[str, np.ndarray], labels: dict, skip: tuple[str, ...]) -> dict:
    """Per-class and macro ROC-AUC of clip probabilities ``{clip: [15]}`` against ``labels``."""
    def norm(c: str) -> str:
        return c.replace(" ", "_")

    per: dict[str, float] = {}
    for i, c in enumerate(CLASSES):
        pos = [float(probs[k][i]) for k, v in labels.items() if c in map(norm, v["positive"])]
        neg = [float(probs[k][i]) for k, v in labels.items() if c in map(norm, v["negative"])]
        if pos and neg and c not in skip:
            per[c] = round(roc_auc(pos, neg), 3)
    unscored = [c for c in skip if any(c in map(norm, v["positive"]) for v in labels.values())]
    return {"per_class_roc_auc": per, "macro_roc_auc": round(float(np.mean(list(per.values()))), 3),
            "classes_scored": len(per), "no_evidence": list(skip), "no_evidence_with_positives": unscored}


def run_tagger(name: str, clips: Path, labels: dict, *, path: str | None) -> tuple[dict[str, np.ndarray], dict]:
    """Clip probabilities ``{clip: [15]}`` and the predict-style JSON of one zero-shot tagger."""
    model = zero_shot_classifier(name, path=path)
    rate = tagger_config(name).audio.sample_rate
    probs, files = {}, []
    for clip, entry in sorted(labels.items()):
        windows = clip_windows(load_audio(clips / entry["file"], sample_rate=rate).samples)
        probs[clip] = np.asarray(model.predict(windows, verbose=0), np.float64).mean(axis=0)  # [15]
        files.append({"path": entry["file"], "windows": len(windows),
                      "probabilities": {c: round(float(p), 6) for c, p in zip(CLASSES, probs[clip], strict=True)},
                      "classes": [c for c, p in zip(CLASSES, probs[clip], strict=True) if p >= 0.5]})
    return probs, {"model": name, "class_names": list(CLASSES), "threshold_source": "fixed 0.5", "files": files}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real_dev")
    ap.add_argument("--taggers", nargs="+", default=["musicnn_mtt_musicnn", "musicnn_mtt_vgg"])
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--musicnn-path", default=None, help="musicnn checkpoints (default: the cache, else PyPI)")
    args = ap.parse_args(argv)
    labels_file = args.clips / "labels.json"
    if not labels_file.is_file():
        raise SystemExit(f"{labels_file}: not found (--clips must hold labels.json)")
    labels = json.loads(labels_file.read_text())
    out = {"clips": str(args.clips), "num_clips": len(labels), "window_samples": TAGGER_SAMPLES, "taggers": {}}
    for name in args.taggers:
        probs, doc = run_tagger(name, args.clips, labels, path=args.musicnn_path)
        out["taggers"][name] = score(probs, labels, no_evidence_classes(name))
        if args.out_dir is not None:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            (args.out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1))
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
