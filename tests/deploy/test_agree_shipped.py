"""scripts/agree_shipped.py: the agreement of the shipped int8 model (TF-free) with the Keras model.

The comparison is checked on small hand-made predict documents with known disagreements (exact
fractions), the script end to end on a toy shipped folder (the toy model of tests/toy_models.py
with its int8 export and a metadata.json: seconds, where the release recipe's tiny run of
tests/deploy/test_release.py takes minutes), and its argument errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from script_module import load_script
from toy_models import SR, TOY_THRESHOLDS, toy_audio, toy_batch, write_toy_run

from keras_inst.runtime.shipped import SHIPPED_FILES, SHIPPED_FORMAT, SHIPPED_METADATA, file_record
from keras_inst.runtime.windows import window_starts
from keras_inst.taxonomy import CLASSES

NAMES = ["a", "b", "c", "d"]
RULE = {"min_windows": dict.fromkeys(NAMES, 2), "min_share": dict.fromkeys(NAMES, 1.0), "source": "test"}


@pytest.fixture(scope="module")
def agree():
    return load_script("agree_shipped")


def document(files: dict[str, tuple[list[str], list[list[str]], list[dict[str, float]]]]) -> dict:
    """A predict --format json --timeline document: path -> (present, classes per window, probabilities per window)."""
    out = []
    for path, (present, windows, probs) in files.items():
        timeline = [{"start": 2.0 * i, "end": 2.0 * i + 4, "classes": w, "probabilities": dict.fromkeys(NAMES, 0.5) | p}
                    for i, (w, p) in enumerate(zip(windows, probs, strict=True))]
        out.append({"path": path, "windows": len(windows), "classes": present, "timeline": timeline})
    return {"aggregate": "presence", "class_names": NAMES, "presence_rule": RULE, "files": out, "errors": []}


# f1: b present in the reference (2 active windows), absent in the candidate (1); f2: d absent
# in the reference, present in the candidate (active in both windows): 2 of 8 pairs and 3 of
# 5 x 4 window decisions differ; the largest window probability change is d's 0.5 -> 0.8.
REFERENCE = document({"f1": (["a", "b"], [["a", "b"], ["a", "b"], ["a"]], [{"b": 0.6}, {"b": 0.6}, {}]),
                      "f2": (["c"], [["c"], ["c"]], [{}, {}])})
CANDIDATE = document({"f1": (["a"], [["a", "b"], ["a"], ["a"]], [{"b": 0.6}, {"b": 0.45}, {}]),
                      "f2": (["c", "d"], [["c", "d"], ["c", "d"]], [{"d": 0.7}, {"d": 0.8}])})


def test_agreement_counts_file_class_pairs_and_windows(agree):
    r = agree.compare(REFERENCE, CANDIDATE, target=0.75)
    assert (r["files"], r["classes"], r["pairs"], r["agreeing_pairs"]) == (2, 4, 8, 6)
    assert r["agreement"] == 0.75 and r["met"] is True and r["target"] == 0.75
    assert r["per_class"] == {"a": 1.0, "b": 0.5, "c": 1.0, "d": 0.5}
    assert r["windows"] == 5 and r["window_decision_agreement"] == pytest.approx(17 / 20)
    assert r["max_abs_dp"] == pytest.approx(0.3)
    assert r["disagreements"] == [
        {"file": "f1", "class": "b", "windows": 3, "required_windows": 2,
         "reference": {"present": True, "active_windows": 2}, "candidate": {"present": False, "active_windows": 1}},
        {"file": "f2", "class": "d", "windows": 2, "required_windows": 2,
         "reference": {"present": False, "active_windows": 0}, "candidate": {"present": True, "active_windows": 2}},
    ]
    assert agree.compare(REFERENCE, CANDIDATE)["met"] is False  # 0.75 < the 0.95
    same = agree.compare(REFERENCE, REFERENCE)
    assert same["agreement"] == 1.0 and same["disagreements"] == [] and same["max_abs_dp"] == 0.0


def test_answers_that_cannot_be_compared_are_refused(agree):
    other_files = document({"f1": (["a", "b"], [["a", "b"], ["a", "b"], ["a"]], [{}, {}, {}])})
    with pytest.raises(ValueError, match=r"different files: only in the reference \['f2'\]"):
        agree.compare(REFERENCE, other_files)
    fewer_windows = document({"f1": (["a"], [["a"]], [{}]), "f2": (["c"], [["c"]], [{}])})
    with pytest.raises(ValueError, match="different windows from f1, f2"):
        agree.compare(REFERENCE, fewer_windows)
    with pytest.raises(ValueError, match="different classes"):
        agree.compare(REFERENCE, REFERENCE | {"class_names": NAMES[::-1]})
    no_timeline = json.loads(json.dumps(CANDIDATE))
    del no_timeline["files"][1]["timeline"]
    with pytest.raises(ValueError, match="candidate: file f2 has no timeline"):
        agree.compare(REFERENCE, no_timeline)
    with pytest.raises(ValueError, match="reference: expected predict's presence answer"):
        agree.compare(REFERENCE | {"aggregate": "mean"}, CANDIDATE)


def test_default_files_are_the_real_clips_and_the_held_out_mixes(agree, tmp_path):
    real, repo = tmp_path / "real_dev", tmp_path / "repo"
    real.mkdir()
    for name in ("b.wav", "a.flac", "notes.txt"):
        (real / name).write_bytes(b"")
    song = repo / "data" / "rendered_heldout_x_seed1" / "Track00001"
    song.mkdir(parents=True)
    (song / "mix.flac").write_bytes(b"")
    (song.parent / "README.txt").write_text("")
    assert agree.default_files(real_dev=real, repo=repo) == [real / "a.flac", real / "b.wav", song / "mix.flac"]
    assert agree.default_files(real_dev=tmp_path / "none", repo=tmp_path / "none") == []


def test_missing_files_and_models_exit_2_with_a_message(agree, tmp_path, capsys):
    assert agree.main(["--model", str(tmp_path), "--files", str(tmp_path / "nope.wav")]) == 2
    assert f"{tmp_path / 'nope.wav'} not found" in capsys.readouterr().err
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(SR, np.float32), SR)
    assert agree.main(["--model", str(tmp_path), "--files", str(wav)]) == 2
    assert f"--model {tmp_path}: not a shipped folder" in capsys.readouterr().err
    meta = {"format": SHIPPED_FORMAT, "recipe": "x", "config_sha256": "0", "class_names": list(CLASSES), "sample_rate": SR,
            "input_samples": SR, "thresholds": None, "files": {"model.keras": {"sha256": "0", "bytes": 1}}}
    (tmp_path / SHIPPED_METADATA).write_text(json.dumps(meta), encoding="utf-8")
    assert agree.main(["--model", str(tmp_path), "--files", str(wav)]) == 2
    assert f"shipped folder {tmp_path} lacks model.keras, model_int8.tflite" in capsys.readouterr().err


@pytest.fixture(scope="module")
def toy_shipped(tmp_path_factory) -> Path:
    """A shipped folder of the toy model: model.keras, its int8 TFLite model, metadata.json."""
    import keras

    from keras_inst.deploy.export import export_model

    base = tmp_path_factory.mktemp("agree")
    write_toy_run(base / "run")
    model = keras.saving.load_model(base / "run" / "model.keras", compile=False)
    cal, _ = toy_batch(4, 32)
    x, y = toy_batch(5, 64)
    manifest = export_model(model, base / "export", formats=["tflite_int8"], thresholds=TOY_THRESHOLDS,
                            representative=cal, check_inputs=x, check_labels=y)
    assert manifest["artifacts"]["tflite_int8"]["passed"], manifest["artifacts"]["tflite_int8"]
    folder = base / "shipped"
    folder.mkdir()
    model.save(folder / SHIPPED_FILES["keras"])
    (folder / SHIPPED_FILES["tflite_int8"]).write_bytes((base / "export" / SHIPPED_FILES["tflite_int8"]).read_bytes())
    meta = {"format": SHIPPED_FORMAT, "recipe": "toy", "config_sha256": "0" * 64, "class_names": list(CLASSES),
            "sample_rate": SR, "input_samples": SR, "thresholds": TOY_THRESHOLDS,
            "files": {f.name: file_record(f) for f in sorted(folder.iterdir())}}
    (folder / SHIPPED_METADATA).write_text(json.dumps(meta), encoding="utf-8")
    return folder


def test_the_script_compares_what_predict_gives_end_to_end(agree, toy_shipped, tmp_path, capsys):
    rng = np.random.default_rng(7)
    files = []
    for i, kind in enumerate(("tone", "noise", "tone")):
        files.append(tmp_path / f"clip{i}.wav")
        sf.write(files[-1], toy_audio(rng, kind, 3 * SR), SR)
    assert agree.main(["--model", str(toy_shipped), "--files", *map(str, files)]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["files"] == 3 and r["classes"] == len(CLASSES) and r["pairs"] == 3 * len(CLASSES)
    assert 0.0 <= r["agreement"] <= 1.0 and math.isclose(r["agreement"], r["agreeing_pairs"] / r["pairs"])
    assert r["pairs"] - r["agreeing_pairs"] == len(r["disagreements"])
    assert set(r["per_class"]) == set(CLASSES) and r["met"] == (r["agreement"] >= r["target"] == 0.95)
    assert r["windows"] == 3 * len(window_starts(3 * SR, window=SR, hop=SR // 2)) and 0.0 <= r["window_decision_agreement"] <= 1.0 and 0.0 <= r["max_abs_dp"] < 0.5
    assert r["inputs"] == sorted(map(str, files)) and r["unreadable"] == []
    assert r["reference"].startswith("keras (") and r["candidate"].startswith("tflite_int8 without TensorFlow")
    (tmp_path / "notes.txt").write_text("not audio")
    assert agree.main(["--model", str(toy_shipped), "--files", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert f"predict --model {toy_shipped / 'model.keras'} --format json --timeline failed (exit 1)" in err
    assert "1 unreadable: notes.txt" in err
