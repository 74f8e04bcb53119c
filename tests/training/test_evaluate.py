"""evaluate --model accepts every form load_artifact does and keeps the run's tuned thresholds.

The data side is replaced by the toy task (tones are piano, noise is drums), so only the model
loading, config choice and threshold handling of evaluate_model are exercised here; the real
data path is tests/training/test_train.py::test_evaluate_cli_reproduces_the_runs_test_numbers.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from toy_models import TOY_THRESHOLDS, toy_batch, write_toy_run

import keras_inst.data.cache.store
import keras_inst.data.datasets
import keras_inst.data.pipeline
from keras_inst.taxonomy import CLASSES
from keras_inst.training import evaluate as EV


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ev") / "run"
    write_toy_run(run_dir)
    return run_dir


@pytest.fixture
def toy_data(monkeypatch):
    x, y = toy_batch(9, 48)
    monkeypatch.setattr(keras_inst.data.datasets, "read_dataset", lambda *a, **k: (["s1", "s2"], SimpleNamespace(counts={})))
    monkeypatch.setattr(keras_inst.data.cache.store, "ensure_cache", lambda *a, **k: None)
    monkeypatch.setattr(keras_inst.data.pipeline, "musical_eval_dataset",
                        lambda *a, **k: [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)])
    return x, y


def test_a_keras_file_in_a_run_dir_uses_its_thresholds_and_config(toy_run, toy_data, tmp_path, capsys):
    """Before: --model RUN/model.keras fell back to the paper config (4-second input: an error
    for this 1-second model) and, given --config, reported 'F1@tuned n/a'."""
    reports = {}
    for form, extra in (("keras_file", []), ("keras_file_config", ["--config", str(toy_run / "config.yaml")]), ("run_dir", [])):
        model = toy_run if form == "run_dir" else toy_run / "model.keras"
        out = tmp_path / f"{form}.json"
        rc = EV.main(["--model", str(model), "--dataset", "rendered", "--root", "x", "--split", "all", "--json", str(out), *extra])
        assert rc == 0, capsys.readouterr().err
        assert "| n/a |" not in capsys.readouterr().out.split("| class |")[0]  # F1@tuned is reported
        reports[form] = json.loads(out.read_text())
    for form, r in reports.items():
        assert r["meta"]["thresholds"] == str(toy_run / "report.json"), form
        assert r["test"]["f1@tuned"] is not None, form
        per_class = r["test"]["per_class"]
        assert {c: per_class[c]["threshold"] for c in CLASSES} == pytest.approx(TOY_THRESHOLDS), form
        for key in ("roc_auc", "loss", "f1@0.5", "f1@tuned"):
            assert r["test"][key] == reports["run_dir"]["test"][key], (form, key)


def test_a_bare_keras_file_has_no_tuned_thresholds(toy_run, toy_data, tmp_path):
    import shutil

    bare = tmp_path / "m.keras"
    shutil.copy(toy_run / "model.keras", bare)
    r = EV.evaluate_model(bare, dataset="rendered", root="x", split="all", config=str(toy_run / "config.yaml"))
    assert r["test"].get("f1@tuned") is None and r["meta"]["thresholds"] == "none tuned (F1 at 0.5 only)"
    with pytest.raises(ValueError, match="takes 16000 samples at 16000 Hz but the config's audio gives 64000"):
        EV.evaluate_model(bare, dataset="rendered", root="x", split="all")  # paper config: 4-second input


def test_predict_dataset_takes_a_model_or_an_artifact(toy_run, toy_data):
    from keras_inst.runtime.loader import load_artifact

    art = load_artifact(toy_run)
    batches = toy_data
    ds = [(batches[0][:16], batches[1][:16])]
    y1, p1 = EV.predict_dataset(art.model, ds)
    y2, p2 = EV.predict_dataset(art, ds)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(p1, p2, atol=1e-6)
