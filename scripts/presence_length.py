"""Does the per-file presence rule hold on long songs? Scores a run's per-file answers on a
rendered corpus of long songs; prints JSON (and writes it with ``--out``).

    python -m keras_inst.data render --out data/long_songs --songs 24 --seed 2 --max-seconds 240 \
        --modern --styles pop,rock,electronic,funk,jazz,electropop --generated-share 1
    python scripts/presence_length.py RUN_DIR --root data/long_songs --out runs/x/presence_length.json

The rule is calibrated on the run's ~30-second validation songs (k active windows per class).
On a 3-minute song, k windows are a small share of it, so stray windows add up to a false
alarm more easily. Answers compared, each scored as ``evaluate`` scores songs (song-level
precision / recall / F1 of the classes present, micro and macro):

- ``rule``: the run's presence rule as ``predict`` applies it;
- ``mean`` / ``max``: the mean / max of the windows at the thresholds (``--aggregate``);
- ``rule_and_share_S``: the rule, and also active in at least the share S of the windows.

``per_class``: per class the rule's false alarms and misses, and the active shares of the songs
where it plays and where it does not, the separation a share rule relies on. Window probabilities are saved beside ``--out``
(``.npz``) so other rules can be scored without predicting again.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from keras_inst.atomic import write_json
from keras_inst.config.io import load_config
from keras_inst.data.cache.store import ensure_cache
from keras_inst.data.datasets import read_dataset
from keras_inst.runtime.artifacts import RUN_CONFIG
from keras_inst.runtime.loader import load_artifact
from keras_inst.runtime.presence import (
    PresenceRule,
    active_windows,
    closed_order,
    song_level_scores,
)
from keras_inst.training.evaluate import song_level_report, song_predictions

SHARES = (0.05, 0.1, 0.15, 0.2, 0.3)


def _rule_and_share(active: np.ndarray, rule: PresenceRule, names: list[str], share: float) -> list[str]:
    """Present, of window decisions ``active [n, C]``: active in the rule's windows *and* in at
    least ``share`` of the file's windows."""
    n = active.shape[0]
    need = np.maximum(rule.required_windows(n, names), math.ceil(share * n - 1e-9))
    return closed_order([c for c, a, r in zip(names, active.sum(axis=0), need, strict=True) if a >= r], names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a training run's directory, or a shipped model folder")
    ap.add_argument("--root", required=True, help="a rendered corpus of long songs (Slakh layout)")
    ap.add_argument("--cache-dir", default=None, help="stem cache for the corpus (default: <root>_cache; not the run's: "
                    "rendered corpora all name their songs Track00001...)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    art = load_artifact(a.run_dir)
    if art.presence_rule is None or art.threshold_vector() is None:
        raise SystemExit(f"error: {a.run_dir}: no tuned thresholds or presence rule (a finished training run is needed)")
    cache_dir = a.cache_dir or f"{a.root.rstrip('/')}_cache"
    run_config = Path(a.run_dir) / RUN_CONFIG  # a run's own; a shipped folder's audio settings are the main job's
    cfg = load_config(str(run_config) if run_config.is_file() else "demo", [f"data.cache_dir={cache_dir}"])
    songs, _ = read_dataset("rendered", a.root)
    preds = song_predictions(art, ensure_cache(cfg, songs), songs, peak_normalize=cfg.mixing.peak_normalize,
                             window=art.input_samples)
    names, t, rule = art.class_names, art.threshold_vector(), art.presence_rule
    truth = [p.classes for p in preds]
    report = song_level_report(preds, t, rule, names)  # the rule per class; mean and max micro / macro
    answers = {"rule": {k: report["presence"][k] for k in ("micro", "macro")}, "mean": report["mean"], "max": report["max"]}
    actives = [active_windows(p.probabilities, t, names) for p in preds]  # per song [n, C]
    for s in SHARES:
        scores = song_level_scores([_rule_and_share(a, rule, names, s) for a in actives], truth, names)
        answers[f"rule_and_share_{s:g}"] = {"micro": scores["micro"], "macro": scores["macro"]}
    shares = np.stack([a.mean(axis=0) for a in actives])  # [S, C]
    is_true = np.array([[c in p.classes for c in names] for p in preds])  # [S, C]
    per_class = {c: {"songs_playing": int(is_true[:, j].sum()),
                     "rule_false_alarms": report["presence"]["per_class"][c]["fp"],
                     "rule_missed": report["presence"]["per_class"][c]["fn"],
                     "share_playing": np.round(np.sort(shares[is_true[:, j], j]), 3).tolist(),
                     "share_not_playing": np.round(np.sort(shares[~is_true[:, j], j]), 3).tolist()}
                 for j, c in enumerate(names)}
    out = {"run": a.run_dir, "corpus": a.root, "songs": len(preds),
           "windows_per_song": [int(len(p.probabilities)) for p in preds],
           "rule": rule.to_json(), "answers": answers,
           "per_class": per_class}
    if a.out:
        write_json(a.out, out)
        np.savez_compressed(Path(a.out).with_suffix(".npz"), songs=[p.song for p in preds],
                            classes=[",".join(sorted(p.classes)) for p in preds],
                            **{f"p{i}": p.probabilities for i, p in enumerate(preds)})
    print(json.dumps({"songs": out["songs"], "windows": [min(out["windows_per_song"]), max(out["windows_per_song"])],
                      "micro_p_r_f1": {k: [round(v["micro"][m], 3) for m in ("precision", "recall", "f1")]
                                       for k, v in answers.items()}}, indent=1))


if __name__ == "__main__":
    main()
