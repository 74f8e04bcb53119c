"""load_artifact: every form of the toy classifier gives one record with the same outputs,
class names, rate, length and tuned thresholds; the TFLite form never imports TensorFlow;
thresholds are validated in one place; runtime/ imports neither training/ nor deploy/."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from toy_models import TOY_THRESHOLDS, run_without_tf, toy_batch, write_toy_run

from keras_inst.runtime import artifacts as A
from keras_inst.runtime.loader import (
    check_thresholds,
    default_class_names,
    load_artifact,
    locate,
    read_thresholds,
)
from keras_inst.taxonomy import CLASSES

RUNTIME = Path(__file__).resolve().parents[2] / "keras_inst" / "runtime"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(run dir, export dir with saved_model and float32 TFLite) of the toy classifier."""
    from keras_inst.deploy.export import export_model

    base = tmp_path_factory.mktemp("toy")
    model, _ = write_toy_run(base / "run")
    manifest = export_model(model, base / "export", formats=["saved_model", "tflite"], thresholds=TOY_THRESHOLDS)
    assert manifest["all_checks_passed"]
    return base / "run", base / "export"


def test_every_form_is_one_record(toy):
    run_dir, export_dir = toy
    x, _ = toy_batch(2, 6)
    forms = {
        "run_dir": (run_dir, "keras"),
        "keras_file_in_run_dir": (run_dir / A.RUN_MODEL, "keras"),
        "export_dir": (export_dir, "tflite"),
        "export_dir_saved_model": (export_dir, "saved_model"),
        "saved_model_dir": (export_dir / A.VARIANT_FILES["saved_model"], "saved_model"),
        "tflite_file": (export_dir / A.VARIANT_FILES["tflite"], "tflite"),
    }
    ref = None
    for form, (path, kind) in forms.items():
        art = load_artifact(path, variant="saved_model" if form == "export_dir_saved_model" else None)
        assert art.kind == kind, form
        assert (art.sample_rate, art.input_samples, art.class_names) == (16000, 16000, list(CLASSES)), form
        # Tuned thresholds travel with every form (report.json, export.json, metadata signature).
        assert art.thresholds == pytest.approx(TOY_THRESHOLDS), form
        out = art(x)
        assert out["probabilities"].shape == (6, len(CLASSES)) and out["embeddings"].shape == (6, 32), form
        np.testing.assert_allclose(art.predict(x), out["probabilities"], atol=1e-6)
        if ref is None:
            ref = out
        for n in A.OUTPUT_NAMES:
            # float32 TFLite: probabilities within 1e-4, embeddings (values up to ~7) within 0.03 %.
            np.testing.assert_allclose(out[n], ref[n], rtol=3e-4, atol=1e-4, err_msg=f"{form} {n}")
    keras_art = load_artifact(run_dir / A.RUN_MODEL)
    assert keras_art.run_dir == run_dir and keras_art.config.audio.chunk_seconds == 1.0
    assert keras_art.thresholds_source == str(run_dir / A.RUN_REPORT)
    np.testing.assert_array_equal(keras_art.threshold_vector(), [TOY_THRESHOLDS[c] for c in CLASSES])
    tfl = load_artifact(export_dir)
    assert tfl.metadata["class_names"] == list(CLASSES) and tfl.run_dir is None and tfl.model is None


def test_a_keras_file_alone_has_no_thresholds_or_config(toy, tmp_path):
    shutil.copy(toy[0] / A.RUN_MODEL, tmp_path / "m.keras")
    art = load_artifact(tmp_path / "m.keras")
    assert (art.thresholds, art.config, art.run_dir) == (None, None, None)


def test_tflite_path_never_imports_tensorflow(toy, tmp_path):
    _, export_dir = toy
    x, _ = toy_batch(2, 4)
    np.save(tmp_path / "x.npy", x)
    code = f"""
import json, numpy as np
from keras_inst.runtime.loader import load_artifact
art = load_artifact({str(export_dir)!r}, num_threads=1)
out = art(np.load({str(tmp_path / "x.npy")!r}))
print(json.dumps({{"kind": art.kind, "thresholds": art.thresholds, "shape": list(out["probabilities"].shape),
                  "tf": any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)}}))
"""
    proc = run_without_tf(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res == {"kind": "tflite", "thresholds": TOY_THRESHOLDS, "shape": [4, len(CLASSES)], "tf": False}


def test_thresholds_are_checked_in_one_place(tmp_path):
    names = ["a", "b"]
    assert read_thresholds(tmp_path / "missing.json", names) is None
    (tmp_path / "r.json").write_text(json.dumps({"thresholds": {"a": 0.25, "b": 1}}))
    assert read_thresholds(tmp_path / "r.json", names) == {"a": 0.25, "b": 1.0}
    (tmp_path / "none.json").write_text(json.dumps({"test": {}}))
    assert read_thresholds(tmp_path / "none.json", names) is None
    for bad in ({"a": 0.5}, {"a": 0.5, "b": 1.5}, {"a": "x", "b": 0.5}, [0.5, 0.5]):
        with pytest.raises(ValueError, match=r"bad\.json: 'thresholds' must map every class \(a, b\)"):
            (tmp_path / "bad.json").write_text(json.dumps({"thresholds": bad}))
            read_thresholds(tmp_path / "bad.json", names)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="list.json: expected a JSON object"):
        read_thresholds(tmp_path / "list.json", names)
    assert check_thresholds(None, names, where="x") is None
    assert default_class_names(len(CLASSES)) == list(CLASSES) and default_class_names(2) == ["class_0", "class_1"]


def test_locate_names_what_is_wrong(toy, tmp_path):
    run_dir, export_dir = toy
    assert locate(export_dir) == ("tflite", export_dir / "model_float32.tflite", export_dir)
    with pytest.raises(ValueError, match="has no model_int8.tflite"):
        locate(export_dir, variant="tflite_int8")
    with pytest.raises(ValueError, match="unknown variant 'onnx'"):
        locate(export_dir, variant="onnx")
    with pytest.raises(ValueError, match=r"expected a \.keras or \.tflite file, a run directory \(model\.keras\)"):
        locate(tmp_path / "nothing")
    unfinished = tmp_path / "run"
    unfinished.mkdir()
    shutil.copy(run_dir / A.RUN_CONFIG, unfinished / A.RUN_CONFIG)
    with pytest.raises(ValueError, match="not a finished run directory"):
        locate(unfinished)
    with pytest.raises(ValueError, match="is a tflite model; expected one of: keras"):
        load_artifact(export_dir / "model_float32.tflite", kinds=("keras", "saved_model"))
    with pytest.raises(ValueError, match="expected a run directory or an existing .keras file"):
        load_artifact(export_dir, kinds=("keras",))


def test_runtime_imports_neither_training_nor_deploy():
    for f in sorted(RUNTIME.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for m in mods:
                assert not m.startswith(("keras_inst.training", "keras_inst.deploy")), (f.name, m)


def _with_failed_float32(export_dir, tmp_path):
    """A copy of ``export_dir`` whose float32 TFLite failed its check, as export now leaves it."""
    out = tmp_path / "failed_export"
    shutil.copytree(export_dir, out)
    failed = A.failed_name(A.VARIANT_FILES["tflite"])
    (out / A.VARIANT_FILES["tflite"]).rename(out / failed)
    meta = json.loads((out / A.EXPORT_JSON).read_text())
    meta["artifacts"]["tflite"].update(passed=False, failed=["max|dp| 0.5 > 0.0001"], path=failed)
    (out / A.EXPORT_JSON).write_text(json.dumps(meta))
    return out, failed


def test_a_failed_artifact_is_refused_by_variant_and_skipped_by_default(toy, tmp_path, capsys):
    _, export_dir = toy
    out, failed = _with_failed_float32(export_dir, tmp_path)
    assert failed == "model_float32.FAILED.tflite"
    with pytest.raises(ValueError, match=r"variant 'tflite' failed its export check \(max\|dp\| 0.5 > 0.0001\); "
                                         r"its file was kept only for inspection as model_float32.FAILED.tflite"):
        load_artifact(out, variant="tflite")
    # No variant asked: the first one that passed (the SavedModel here).
    assert load_artifact(out).kind == "saved_model"
    # The file itself can still be opened for inspection, with a warning naming it.
    art = load_artifact(out / failed)
    assert art.kind == "tflite" and art.class_names == list(CLASSES)
    assert f"{out / failed} is variant 'tflite', which failed its export check (max|dp| 0.5 > 0.0001)" in capsys.readouterr().err


def test_a_run_config_comes_with_absolute_data_paths(toy, tmp_path, monkeypatch):
    """config.yaml says data/rendered (relative to where the run started); loaded from
    elsewhere, the run's config points at the data all the same."""
    from keras_inst.config.io import dump_config, load_config
    from keras_inst.runtime.data_locations import record_data_locations

    run_src, _ = toy
    base = tmp_path / "checkout"
    (base / "data" / "rendered").mkdir(parents=True)
    run_dir = base / "runs" / "r"
    shutil.copytree(run_src, run_dir)
    cfg = load_config("demo", ["data.roots.rendered=data/rendered", "data.cache_dir=data/cache"])
    (run_dir / A.RUN_CONFIG).write_text(dump_config(cfg))
    monkeypatch.chdir(tmp_path)  # not where the run started: data/rendered is not here
    # Without a record (runs made before it existed): found from the run directory's parents.
    art = load_artifact(run_dir, kinds=("keras",))
    assert art.config.data.roots["rendered"] == str(base / "data" / "rendered")
    assert art.config.data.cache_dir == str(base / "data" / "cache")
    # With one: the record decides, wherever the data are.
    record_data_locations(cfg, run_dir, base=tmp_path / "elsewhere")
    art = load_artifact(run_dir, kinds=("keras",))
    assert art.config.data.roots["rendered"] == str(tmp_path / "elsewhere" / "data" / "rendered")
    assert art.config.data.held_out_corpus_dir().parent == tmp_path / "elsewhere" / "data"
