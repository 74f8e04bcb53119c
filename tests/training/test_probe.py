"""The real-recording probe (evaluation.probe, evaluate --probe): scores equal to
../shared/tools/score_clips.py's on the same predict JSON, clips run as predict runs files, and a
missing labels file refused before any training with the key and the path named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.config.io import load_config
from keras_inst.runtime.presence import PresenceRule
from keras_inst.taxonomy import CLASSES
from keras_inst.training.probe import (
    probe_files,
    probe_markdown,
    probe_report,
    read_probe_labels,
    score_clips,
)

SCORER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "score_clips.py"

LABELS = {  # clip -> labels as real_dev writes them (class names with spaces)
    "a": {"file": "audio/a.flac", "positive": ["piano", "key"], "negative": ["violin", "drums"], "undecided": []},
    "b": {"file": "audio/b.flac", "positive": ["violin", "bowed string"], "negative": ["piano", "key", "drums"], "undecided": []},
    "c": {"file": "audio/c.flac", "positive": ["drums"], "negative": ["piano", "violin", "key", "bowed string"], "undecided": []},
    "d": {"file": "audio/d.flac", "positive": [], "negative": ["piano", "violin", "drums"], "undecided": ["key"]},
    "e": {"file": "audio/e.flac", "positive": ["piano"], "negative": ["violin"], "undecided": []},  # not predicted
}


def _toy_prediction() -> dict:
    rng = np.random.default_rng(3)
    files = []
    for k in "abcd":
        probs = {c: round(float(rng.uniform()), 6) for c in CLASSES}
        probs["piano"] = probs["drums"] = 0.25  # ties count one half
        files.append({"path": f"/x/audio/{k}.flac", "probabilities": probs,
                      "classes": [c for c, p in probs.items() if p >= 0.5]})
    files[1]["probabilities"] = list(files[1]["probabilities"].values())  # the list form, too
    return {"class_names": list(CLASSES), "files": files}


@pytest.mark.skipif(not SCORER.is_file(), reason="../shared/tools/score_clips.py not present")
def test_scores_equal_score_clips_tool(tmp_path):
    pred = _toy_prediction()
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    out = subprocess.run([sys.executable, str(SCORER), str(tmp_path / "pred.json"), str(tmp_path / "labels.json")],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    tool = json.loads(out[-1])
    ours = score_clips(pred["files"], LABELS, class_names=CLASSES)
    assert {k: ours[k] for k in tool} == tool
    assert tool["clips_missing"] == ["e"] and len(tool["per_class_roc_auc"]) >= 4
    # each clip's decisions are the lines the tool prints
    for line in out[:-1]:
        clip = line.split()[0]
        assert f"said {ours['clips'][clip]['said']}" in line
        assert ("MISSED" in line) == bool(ours["clips"][clip]["missed"])
        assert ("FALSE" in line) == bool(ours["clips"][clip]["false"])


def test_score_by_hand():
    files = [{"path": "a.wav", "probabilities": {"piano": 0.9, "violin": 0.2}, "classes": ["piano"]},
             {"path": "b.wav", "probabilities": {"piano": 0.9, "violin": 0.7}, "classes": ["piano", "violin"]},
             {"path": "c.wav", "probabilities": {"piano": 0.1, "violin": 0.2}, "classes": []}]
    labels = {"a": {"positive": ["piano"], "negative": ["violin"]}, "b": {"positive": ["violin"], "negative": ["piano"]},
              "c": {"positive": [], "negative": ["piano", "violin"]}}
    s = score_clips(files, labels)
    # piano: positive a (0.9) vs negatives b (0.9, a tie), c (0.1) -> (0.5 + 1) / 2; violin: b (0.7) vs a, c (0.2, 0.2) -> 1
    assert s["per_class_roc_auc"] == {"piano": 0.75, "violin": 1.0} and s["macro_roc_auc"] == 0.875
    assert s["clips"]["b"] == {"said": ["piano", "violin"], "missed": [], "false": ["piano"]}


def _write_probe(root: Path, clips: dict[str, float], sr: int = 8000) -> Path:
    """Clips of a sine at each frequency (amplitude 0.5), 1.5 s, stereo at 8 kHz: decoded,
    downmixed and resampled as predict would."""
    (root / "audio").mkdir(parents=True)
    labels = {}
    t = np.arange(int(1.5 * sr)) / sr
    for name, amp in clips.items():
        x = amp * np.sin(2 * np.pi * 440 * t)
        sf.write(root / "audio" / f"{name}.flac", np.stack([x, x], axis=1), sr)
        labels[name] = {"file": f"audio/{name}.flac", "positive": ["piano"] if amp > 0.3 else [],
                        "negative": [] if amp > 0.3 else ["piano"], "undecided": []}
    (root / "labels.json").write_text(json.dumps(labels))
    return root / "labels.json"


def _loudness_model(w: np.ndarray) -> np.ndarray:
    """A toy model: every class's probability is the window's peak."""
    return np.repeat(np.abs(w).max(axis=1, keepdims=True), len(CLASSES), axis=1)


def test_probe_clips_run_as_predict_runs_files(tmp_path):
    labels = _write_probe(tmp_path, {"loud": 0.8, "quiet": 0.1, "mid": 0.4})
    files = probe_files(_loudness_model, labels, sample_rate=16000, window=16000, thresholds=np.full(len(CLASSES), 0.5),
                        rule=PresenceRule.default(CLASSES), class_names=CLASSES)
    by = {Path(f["path"]).stem: f for f in files}
    # 1.5 s at 16 kHz in 1-s windows every 0.5 s: 2 windows, both full of the sine
    assert by["loud"]["probabilities"]["piano"] == pytest.approx(0.8, abs=0.01)
    assert by["quiet"]["probabilities"]["piano"] == pytest.approx(0.1, abs=0.01)
    assert "piano" in by["loud"]["classes"] and by["quiet"]["classes"] == []
    rep = probe_report(_loudness_model, labels, sample_rate=16000, window=16000, thresholds=np.full(len(CLASSES), 0.5),
                       rule=PresenceRule.default(CLASSES), class_names=CLASSES)
    assert rep["per_class_roc_auc"] == {"piano": 1.0} and rep["clips_scored"] == 3
    md = probe_markdown({"this model": rep, "the tagger alone (t)": rep})
    assert "| this model | 1.000 | 1.000 |" in md and "| the tagger alone (t) | 1.000 | 1.000 |" in md
    assert "| quiet | - | - | - |" in md


def test_missing_probe_is_refused_before_training(tmp_path):
    from keras_inst.training.train import train

    missing = tmp_path / "nowhere" / "labels.json"
    cfg = load_config("paper", [f"evaluation.probe={missing}"])
    with pytest.raises(ValueError, match=f"config key 'evaluation.probe': probe labels file {missing} not found"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory was made
    labels = _write_probe(tmp_path / "p", {"x": 0.5})
    (tmp_path / "p" / "audio" / "x.flac").unlink()
    with pytest.raises(ValueError, match="evaluation.probe.*clip 'x': audio file .*x.flac not found"):
        read_probe_labels(labels)
    with pytest.raises(ValueError, match="config key 'evaluation.tagger_row': unknown"):
        load_config("paper", ["evaluation.tagger_row=vggish"])
