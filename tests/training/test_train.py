"""Training runs end to end: run directory contents, resume after SIGKILL, NaN stop, protection
of run directories, and the evaluate CLI reproducing a run's test numbers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny import tiny_overrides

from keras_inst.config.io import load_config
from keras_inst.corpus.render import render_corpus

TINY = tiny_overrides(steps=4, epochs=2, eval_chunks=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rendered")
    render_corpus(root, songs=16, seed=0, max_seconds=6.0, workers=2, progress=False)
    return root


def tiny_sets(corpus: Path, cache: Path, *extra: str) -> list[str]:
    return [*TINY, f"data.roots.rendered={corpus}", f"data.cache_dir={cache}", *extra]


def test_run_directory_holds_everything(corpus, tmp_path):
    from keras_inst.training.train import train

    cfg = load_config("demo", tiny_sets(corpus, tmp_path / "cache"))
    report = train(cfg, tmp_path / "run", verbose=0)
    run = tmp_path / "run"
    for name in ("config.yaml", "split.json", "history.csv", "model.keras", "report.json", "report.md",
                 "f1_per_class.png", "learning_curves.png", "checkpoints/last.keras", "checkpoints/best.keras"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))
    assert (run / "config.yaml").read_text() == (run / "config.yaml").read_text()
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    state = json.loads((run / "state.json").read_text())
    assert state["complete"] and state["epochs_done"] == 2
    t = report["test"]
    assert t["examples"] > 0 and 0.0 <= t["roc_auc"] <= 1.0 and math.isfinite(t["loss"])
    assert set(report["thresholds"]) == set(t["per_class"])
    # a finished run is not retrained: the same call returns the saved report
    again = train(cfg, run, verbose=0)
    assert again["test"]["roc_auc"] == t["roc_auc"]


def test_a_run_directory_of_another_config_is_never_overwritten(corpus, tmp_path):
    from keras_inst.training.train import TrainingError, prepare_run_dir

    run = tmp_path / "run"
    a = load_config("demo", tiny_sets(corpus, tmp_path / "cache"))
    b = load_config("demo", tiny_sets(corpus, tmp_path / "cache", "mixing.p_musical=0.9"))
    assert prepare_run_dir(a, run) == "new"
    assert prepare_run_dir(a, run) == "resume"
    with pytest.raises(TrainingError, match="different config"):
        prepare_run_dir(b, run)
    assert prepare_run_dir(b, run, overwrite=True) == "new"


def test_a_failed_start_does_not_claim_the_run_directory(corpus, tmp_path):
    """A dataset root that does not exist stops the run before training; the corrected command
    then runs in the same directory (it is not refused as "a different config")."""
    from keras_inst.training.train import train

    run = tmp_path / "run"
    bad = load_config("demo", [*TINY, f"data.roots.rendered={tmp_path / 'missing'}", "data.render_songs=0",
                               f"data.cache_dir={tmp_path / 'cache'}", "training.epochs=1"])
    with pytest.raises(ValueError, match="data.roots.rendered.*does not exist"):
        train(bad, run, verbose=0)
    good = load_config("demo", tiny_sets(corpus, tmp_path / "cache", "training.epochs=1"))
    report = train(good, run, verbose=0)
    assert report["test"]["examples"] > 0
    assert json.loads((run / "state.json").read_text())["complete"]


def test_nan_loss_stops_with_a_clear_message(corpus, tmp_path):
    from keras_inst.training.train import TrainingError, train

    # Adam moves every weight by ~lr per step: 1e30 overflows float32 within a few steps.
    cfg = load_config("demo", tiny_sets(corpus, tmp_path / "cache", "optimizer.head_learning_rate=1e30", "optimizer.backbone_learning_rate=1e30"))
    with pytest.raises(TrainingError, match="loss became .* stopping. Lower the learning rate"):
        train(cfg, tmp_path / "run", verbose=0)


@pytest.mark.slow  # 52-56 s in CI; resume stays covered by test_run_dir's killed-run and test_optimizers' resumed==uninterrupted
def test_sigkilled_run_resumes_from_its_last_epoch(corpus, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "keras_inst.train", "--config", "demo", "--run-dir", str(run)]
    for s in tiny_sets(corpus, tmp_path / "cache", "training.epochs=4", "training.steps_per_epoch=6"):
        cmd += ["--set", s]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = run / "state.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if state.is_file() and json.loads(state.read_text()).get("epochs_done", 0) >= 1:
                break
            if proc.poll() is not None:
                pytest.fail(f"training exited early with code {proc.returncode}")
            time.sleep(0.2)
        else:
            pytest.fail("no epoch finished in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = json.loads(state.read_text())["epochs_done"]
    assert 1 <= done_before < 4 and not (run / "model.keras").exists()

    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"Resuming {run} after epoch {done_before}" in out.stdout
    epochs = [r.split(",")[0] for r in (run / "history.csv").read_text().strip().splitlines()[1:]]
    assert sorted(set(epochs)) == ["0", "1", "2", "3"]
    assert json.loads(state.read_text())["complete"]


def test_evaluate_cli_reproduces_the_runs_test_numbers(corpus, tmp_path):
    from keras_inst.training.evaluate import main as evaluate_main
    from keras_inst.training.train import train

    cfg = load_config("demo", tiny_sets(corpus, tmp_path / "cache"))
    report = train(cfg, tmp_path / "run", verbose=0)
    out_json = tmp_path / "eval.json"
    rc = evaluate_main(["--model", str(tmp_path / "run"), "--dataset", "rendered", "--root", str(corpus), "--json", str(out_json)])
    assert rc == 0
    ev = json.loads(out_json.read_text())
    assert ev["meta"]["songs"] == len(json.loads((tmp_path / "run" / "split.json").read_text())["splits"]["test"]["rendered"])
    assert ev["test"]["roc_auc"] == pytest.approx(report["test"]["roc_auc"], abs=1e-6)
    assert ev["test"]["loss"] == pytest.approx(report["test"]["loss"], abs=1e-5)
    # The run calibrated its presence rule on the validation songs; evaluate uses it (read by the
    # loader from report.json) and scores the same whole test songs the same way.
    assert set(report["presence_rule"]["min_windows"]) == set(report["thresholds"])
    assert report["presence_rule"]["source"].startswith("calibrated on ") and "validation songs" in report["presence_rule"]["source"]
    assert ev["songs"]["rule"] == report["presence_rule"]["source"]
    assert ev["songs"]["presence"] == report["songs"]["presence"] and ev["songs"]["mean"] == report["songs"]["mean"]
    assert "## Song level (" in (tmp_path / "run" / "report.md").read_text()
    rc = evaluate_main(["--model", str(tmp_path / "run"), "--dataset", "rendered", "--root", str(corpus), "--split", "all", "--json", str(out_json)])
    assert rc == 0 and json.loads(out_json.read_text())["meta"]["songs"] == 16
    assert evaluate_main(["--model", str(tmp_path / "nope"), "--dataset", "rendered", "--root", str(corpus)]) == 2


def _partly_frozen_cfg(tmp_path: Path, n: int):
    """The tiny model fine-tuned (4 blocks) from a short-chunk weights file, last ``n`` blocks trained."""
    from tiny import TINY_MODEL

    from keras_inst.models.short_chunk import build_backbone

    weights = tmp_path / "pretrained.weights.h5"
    sets = [s for s in TINY_MODEL if not s.startswith(("training.transfer", "training.pretrained"))] + [
        "training.transfer=finetune", "training.pretrained=short_chunk_cnn", f"training.pretrained_path={weights}",
        f"training.trainable_blocks={n}"]
    cfg = load_config("demo", sets)
    if not weights.exists():
        build_backbone(cfg).save_weights(weights)
    return cfg, weights


def test_partly_frozen_finetune_loads_then_freezes_the_first_blocks(tmp_path):
    import keras
    import numpy as np

    from keras_inst.models.short_chunk import build_backbone
    from keras_inst.training.train import build_compiled_model

    cfg, weights = _partly_frozen_cfg(tmp_path, 1)
    keras.utils.set_random_seed(7)  # the model's own init differs from the file's
    model = build_compiled_model(cfg)
    backbone = model.get_layer("backbone")
    source = build_backbone(cfg)
    source.load_weights(weights)
    for a, b in zip(source.weights, backbone.weights, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))  # loaded, frozen ones included
    assert {v.path.split("/")[0] for v in model.trainable_variables} == {"layer4_conv", "layer4_bn", "dense1", "bn", "dense2"}


def test_more_trainable_blocks_than_the_backbone_has_fail_before_the_run(tmp_path):
    from keras_inst.training.train import train

    cfg, _ = _partly_frozen_cfg(tmp_path, 5)
    with pytest.raises(ValueError, match=r"training\.trainable_blocks.*more than the 4 blocks"):
        train(cfg, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()
