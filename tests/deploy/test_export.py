"""Export: export.json, TFLite float32/float16/int8 run without TensorFlow, checks on run data,
atomicity (the SavedModel itself: test_serving.py).

The exported model is a small classifier (1-second windows, 4 conv blocks) trained for a few
seconds on a toy task: harmonic tones are "piano" (hence "key"), white noise is "drums" (hence
"percussion"); it separates them almost perfectly, so differences between artifacts show up
in meaningful probabilities rather than in the ~0.5 outputs of an untrained net.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_models import (  # noqa: E402  (tests/ is on sys.path under pytest)
    TOY_OVERRIDES,
    TOY_THRESHOLDS,
    run_without_tf,
    toy_batch,
    write_toy_run,
)

from keras_inst.config.io import dump_config, load_config
from keras_inst.deploy import export as E
from keras_inst.models.short_chunk import build_model
from keras_inst.taxonomy import CLASS_INDEX, CLASSES


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "toy"
    model, cfg = write_toy_run(run_dir)
    return run_dir, model, cfg


@pytest.fixture(scope="module")
def exported(toy_run, tmp_path_factory):
    run_dir, model, _ = toy_run
    out = tmp_path_factory.mktemp("export") / "toy_export"
    rc = E.main([str(run_dir), "--out", str(out), "--check-examples", "32", "--calibration-examples", "32"])
    assert rc == 0
    return out, json.loads((out / "export.json").read_text())


def test_toy_model_learned_the_task(toy_run):
    _, model, _ = toy_run
    x, y = toy_batch(1, 32)
    p = model.predict(x, verbose=0)
    for c in ("piano", "key", "drums", "percussion"):
        i = CLASS_INDEX[c]
        assert p[y[:, i] > 0, i].min() > 0.7 and p[y[:, i] == 0, i].max() < 0.3, c


def test_export_json_records_everything(exported, toy_run):
    out, manifest = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "export.json", "labels.txt", "model_float16.tflite", "model_float32.tflite",
        "model_int8.tflite", "saved_model",
    ]
    assert manifest["class_names"] == list(CLASSES)
    assert (out / "labels.txt").read_text().split() == list(CLASSES)
    assert (manifest["sample_rate"], manifest["input_samples"], manifest["input_seconds"]) == (16000, 16000, 1.0)
    assert manifest["embedding_dim"] == 32
    assert manifest["thresholds"] == TOY_THRESHOLDS  # carried from the run's report.json
    import tensorflow as tf

    meta = tf.saved_model.load(str(out / "saved_model")).signatures["metadata"](request=tf.constant(0))
    np.testing.assert_allclose(meta["thresholds"].numpy(), [TOY_THRESHOLDS[c] for c in CLASSES], rtol=1e-6)
    assert manifest["source"] == str(toy_run[0] / "model.keras")
    assert "synthetic" in manifest["check_data"]["check"] and "data root" in manifest["check_data"]["check"]
    assert (manifest["check_data"]["examples"], manifest["check_data"]["labelled"]) == (32, False)
    assert manifest["check_data"]["calibration"].startswith("32 waveforms: synthetic tone/noise mixes (data root")
    assert {"tensorflow", "keras", "numpy", "ai-edge-litert", "keras_inst"} <= set(manifest["versions"])
    assert manifest["all_checks_passed"] is True
    arts = manifest["artifacts"]
    assert list(arts) == list(E.FORMATS)
    for fmt, a in arts.items():
        assert a["passed"] and a["probabilities_max_abs_diff"] <= E.TOLERANCES[fmt], fmt
        assert a["bytes"] > 0
    # Measured: SavedModel identical, float32 ~1e-6, fp16 and int8 a few 1e-3.
    assert arts["saved_model"]["probabilities_max_abs_diff"] < 1e-6
    assert arts["tflite"]["probabilities_max_abs_diff"] < 1e-4
    assert arts["tflite_int8"]["decision_agreement"] >= 0.98


def test_tflite_variants_run_without_tensorflow(exported, toy_run, tmp_path):
    out, _ = exported
    _, model, _ = toy_run
    x, _ = toy_batch(3, 10)
    # Digital silence and a zero-padded last window: the float16 model keeps the front end's
    # log floor (1e-10) in float32; in float16 it is 0 and these windows came out 0.98 off.
    x[1, 8000:] = 0.0
    x[2] = 0.0
    np.save(tmp_path / "x.npy", x)
    code = f"""
import json, numpy as np
from pathlib import Path
from keras_inst.runtime.lite import LiteClassifier
x = np.load({str(tmp_path / "x.npy")!r})
res = {{}}
for name in ("model_float32.tflite", "model_float16.tflite", "model_int8.tflite"):
    lite = LiteClassifier(Path({str(out)!r}) / name, num_threads=1, batch_size=4)
    o = lite.run(x)
    np.save(Path({str(tmp_path)!r}) / (name + ".npy"), o["probabilities"])
    details = lite._interpreter.get_tensor_details()
    res[name] = {{"ops": sorted(lite.op_names()), "int8_tensors": sum(d["dtype"] == np.int8 for d in details),
                 "emb_shape": list(o["embeddings"].shape)}}
res["tf_imported"] = any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
print(json.dumps(res))
"""
    proc = run_without_tf(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res.pop("tf_imported") is False
    want = model.predict(x, verbose=0)
    # (file, tolerance, measured max |dp| on this model)
    for name, tol in (("model_float32.tflite", 1e-4), ("model_float16.tflite", 1e-2), ("model_int8.tflite", 2e-2)):
        got = np.load(tmp_path / (name + ".npy"))
        assert np.abs(got - want).max() <= tol, (name, np.abs(got - want).max())
        ops = set(res[name]["ops"])
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
        assert {"RFFT2D", "LOG", "CONV_2D", "LOGISTIC"} <= ops
        assert res[name]["emb_shape"] == [10, 32]
    assert res["model_float32.tflite"]["int8_tensors"] == 0
    assert res["model_int8.tflite"]["int8_tensors"] > 10
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(res["model_int8.tflite"]["ops"])


def test_int8_roc_auc_change_on_the_runs_held_out_split(toy_run, tmp_path, monkeypatch):
    """With the run's data readable, export calibrates on validation and checks on test."""
    import shutil
    from types import SimpleNamespace

    import tensorflow as tf

    import keras_inst.data.pipeline

    run_src, _, _ = toy_run
    data_root = tmp_path / "rendered"
    data_root.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(run_src / "model.keras", run_dir / "model.keras")
    cfg = load_config("paper", TOY_OVERRIDES + ("data.datasets=[rendered]", f"data.roots.rendered={data_root}"))
    (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
    splits = {"validation": toy_batch(4, 40), "test": toy_batch(5, 48)}
    calls = []

    def fake_build_data(cfg_arg, *, run_dir=None, **_):
        calls.append((cfg_arg.data.datasets, run_dir))
        ds = {k: tf.data.Dataset.from_tensor_slices(v).batch(16) for k, v in splits.items()}
        return SimpleNamespace(validation=ds["validation"], test=ds["test"])

    monkeypatch.setattr(keras_inst.data.pipeline, "build_data", fake_build_data)
    out = tmp_path / "int8"
    rc = E.main([str(run_dir), "--out", str(out), "--formats", "tflite_int8", "--calibration-examples", "32", "--check-examples", "40"])
    assert rc == 0 and calls == [(("rendered",), run_dir)]
    manifest = json.loads((out / "export.json").read_text())
    check = manifest["check_data"]
    assert (check["examples"], check["labelled"]) == (40, True)
    assert "calibration on the validation split, checks on the test split" in check["check"]
    assert check["calibration"].startswith("32 waveforms: run data of")
    assert manifest["thresholds"] is None  # this run has no report.json
    a = manifest["artifacts"]["tflite_int8"]
    assert a["roc_auc_keras"] > 0.99  # piano, key, drums, percussion have positives and negatives
    assert abs(a["roc_auc_change"]) <= 0.01
    assert a["probabilities_max_abs_diff"] <= 2e-2 and a["passed"]
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "labels.txt", "model_int8.tflite"]


def test_unreadable_run_data_falls_back_to_synthetic_mixes(toy_run, tmp_path, monkeypatch, capsys):
    import shutil

    import keras_inst.data.pipeline

    run_src, _, _ = toy_run
    (tmp_path / "rendered").mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(run_src / "model.keras", run_dir / "model.keras")
    cfg = load_config("paper", TOY_OVERRIDES + ("data.datasets=[rendered]", f"data.roots.rendered={tmp_path / 'rendered'}"))
    (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")

    def broken_build_data(*_args, **_kw):
        raise ValueError("rendered at /x: no usable songs")

    monkeypatch.setattr(keras_inst.data.pipeline, "build_data", broken_build_data)
    out = tmp_path / "exp"
    assert E.main([str(run_dir), "--out", str(out), "--formats", "saved_model", "--check-examples", "8"]) == 0
    assert "reading the run's data failed: rendered at /x: no usable songs; using synthetic mixes" in capsys.readouterr().err
    check = json.loads((out / "export.json").read_text())["check_data"]
    assert check["check"].startswith("synthetic tone/noise mixes (reading the run's data failed")
    assert (check["examples"], check["labelled"]) == (8, False)


def test_failed_export_leaves_nothing_in_place(toy_run, tmp_path, monkeypatch):
    _, model, _ = toy_run
    out = tmp_path / "exp"
    seen = {}

    def failing_convert(saved_model, variant, *, representative=None, keep_float=()):
        # Mid-export: the work happens in a hidden temporary sibling, never in --out.
        seen["out_exists"] = out.exists()
        seen["tmp"] = [p.name for p in tmp_path.iterdir()]
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(E, "convert_tflite", failing_convert)
    with pytest.raises(RuntimeError, match="converter crashed"):
        E.export_model(model, out, formats=["saved_model", "tflite"])
    assert seen["out_exists"] is False and any(n.startswith(".exp.tmp-") for n in seen["tmp"])
    assert list(tmp_path.iterdir()) == []


def test_out_dir_is_protected_and_overwritable(toy_run, tmp_path, capsys):
    run_dir, _, _ = toy_run
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    assert E.main([str(run_dir), "--out", str(out), "--formats", "saved_model"]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (out / "keep.txt").is_file()
    assert E.main([str(run_dir), "--out", str(out), "--formats", "saved_model", "--overwrite", "--check-examples", "4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "labels.txt", "saved_model"]
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temporary or old folders left


def test_bad_arguments(toy_run, tmp_path, capsys):
    run_dir, _, _ = toy_run
    assert E.main([str(run_dir), "--out", str(tmp_path / "x"), "--formats", "onnx"]) == 2
    assert "unknown export formats ['onnx']" in capsys.readouterr().err
    assert E.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 2
    assert "expected a run directory or an existing .keras file" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_paper_size_export(tmp_path):
    """The paper's model (random init): every format passes its check on synthetic mixes."""
    model = build_model(load_config("paper"))
    manifest = E.export_model(model, tmp_path / "paper")
    assert manifest["input_samples"] == 64000 and manifest["embedding_dim"] == 512
    for fmt, a in manifest["artifacts"].items():
        assert a["passed"], (fmt, a["probabilities_max_abs_diff"])


def _synthetic_outputs(seed: int, n: int = 400) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Keras-like outputs: probabilities [n, 15] well away from 0.5 (a trained model), labels."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(CLASSES))) < 0.3).astype(np.float32)
    probs = np.clip(np.where(labels > 0, rng.uniform(0.6, 0.99, labels.shape), rng.uniform(0.01, 0.4, labels.shape)), 0, 1)
    return {"probabilities": probs, "embeddings": rng.standard_normal((n, 8))}, labels


def test_int8_check_judges_decisions_and_ranking_not_single_probabilities():
    """The main job's int8 model moved single probabilities by 0.0275 with 99.95 % of decisions
    and the ROC-AUC (-0.0019) unchanged, and failed a 0.02 max|dp| bound. Now: decisions at the
    thresholds (pairs clear of them) and the ROC-AUC change decide; max|dp| is recorded (and
    guards at 0.1)."""
    ref, labels = _synthetic_outputs(0)
    t = np.full(len(CLASSES), 0.5)
    # Every probability moves by 0.04 towards 0.5: max|dp| 0.04, no decision changes.
    moved = dict(ref, probabilities=ref["probabilities"] + np.where(ref["probabilities"] > 0.5, -0.04, 0.04))
    res = E.check_outputs("tflite_int8", moved, ref, thresholds=t, labels=labels)
    assert res["probabilities_max_abs_diff"] == pytest.approx(0.04)
    assert (res["decision_agreement"], res["roc_auc_change"], res["passed"], res["failed"]) == (1.0, 0.0, True, [])
    assert (res["min_decision_agreement"], res["max_roc_auc_change"], res["decision_margin"]) == (0.99, 0.005, 0.02)
    # The same 0.04 is a failure for the float formats, which must reproduce Keras.
    assert E.check_outputs("tflite_fp16", moved, ref, thresholds=t, labels=labels)["failed"] == ["max|dp| 0.04 > 0.01"]
    # 2 % of the (example, class) decisions flip: Keras 0.53 / 0.47 (clear of 0.5), int8 0.49 / 0.51.
    rows = np.isin(np.arange(400), np.arange(0, 400, 50))[:, None]  # 8 examples x 15 classes = 120 of 6000 pairs
    keras_p = dict(ref, probabilities=np.where(rows, np.where(labels > 0, 0.53, 0.47), ref["probabilities"]))
    int8_p = dict(ref, probabilities=np.where(rows, np.where(labels > 0, 0.49, 0.51), ref["probabilities"]))
    res = E.check_outputs("tflite_int8", int8_p, keras_p, thresholds=t, labels=labels)
    assert res["probabilities_max_abs_diff"] == pytest.approx(0.04)
    assert res["decision_agreement"] == res["decision_agreement_clear"] == pytest.approx(1 - 120 / 6000)
    assert not res["passed"] and res["failed"] == ["decision agreement 0.9800 < 0.99 (pairs more than 0.02 from the threshold)"]
    # The same flips at the threshold (Keras 0.505 / 0.495, as an untrained model's outputs) are
    # rounding, not a changed decision: they do not count.
    keras_p = dict(ref, probabilities=np.where(rows, np.where(labels > 0, 0.505, 0.495), ref["probabilities"]))
    res = E.check_outputs("tflite_int8", int8_p, keras_p, thresholds=t, labels=labels)
    assert res["decision_agreement"] == pytest.approx(0.98) and res["decision_agreement_clear"] == 1.0
    assert res["clear_pairs"] == 6000 - 120 and res["passed"]
    # Ranking damage without decision flips (judged at thresholds 0): 60 examples swap scores.
    shuffled = ref["probabilities"].copy()
    idx = np.random.default_rng(1).choice(400, 60, replace=False)
    shuffled[idx] = shuffled[idx[::-1]]
    res = E.check_outputs("tflite_int8", dict(ref, probabilities=shuffled), ref, thresholds=np.zeros(len(CLASSES)), labels=labels)
    assert res["decision_agreement"] == 1.0 and res["roc_auc_change"] < -0.005
    assert res["failed"] == [f"max|dp| {res['probabilities_max_abs_diff']:.3g} > 0.1", f"|ROC-AUC change| {abs(res['roc_auc_change']):.4f} > 0.005"]
    # Unlabelled check data (synthetic mixes): decisions alone.
    res = E.check_outputs("tflite_int8", moved, ref, thresholds=t, labels=None)
    assert "roc_auc_change" not in res and res["passed"]


def test_a_failed_artifact_is_kept_under_a_failed_name(toy_run, tmp_path, monkeypatch, capsys):
    """predict --variant X must not run an artifact whose export check failed: export keeps it
    as *.FAILED.* (named in export.json) and the loader refuses the variant."""
    from keras_inst.runtime.loader import load_artifact

    run_dir, _, _ = toy_run
    monkeypatch.setitem(E.TOLERANCES, "tflite", 0.0)  # float32 TFLite differs by ~1e-6: now a failure
    out = tmp_path / "exp"
    assert E.main([str(run_dir), "--out", str(out), "--formats", "tflite,tflite_fp16", "--check-examples", "8"]) == 1
    captured = capsys.readouterr()
    assert "model_float32.FAILED.tflite" in captured.out and "FAILED (max|dp|" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "labels.txt", "model_float16.tflite", "model_float32.FAILED.tflite"]
    arts = json.loads((out / "export.json").read_text())["artifacts"]
    assert arts["tflite"]["path"] == "model_float32.FAILED.tflite" and not arts["tflite"]["passed"]
    assert arts["tflite_fp16"]["path"] == "model_float16.tflite" and arts["tflite_fp16"]["passed"]
    with pytest.raises(ValueError, match="variant 'tflite' failed its export check"):
        load_artifact(out, variant="tflite")
    assert load_artifact(out).path.name == "model_float16.tflite"


def test_arguments_are_checked_before_the_model_is_loaded(tmp_path, monkeypatch, capsys):
    """A bad --formats or an existing --out is reported at once, not after loading the model."""

    def no_loading(*_a, **_k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(E, "load_artifact", no_loading)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "f").write_text("x")
    assert E.main([str(tmp_path / "run"), "--out", str(taken)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert E.main([str(tmp_path / "run"), "--out", str(tmp_path / "new"), "--formats", "tflite,onnx"]) == 2
    assert "unknown export formats ['onnx']" in capsys.readouterr().err
