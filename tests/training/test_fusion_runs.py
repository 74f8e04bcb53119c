"""A run with ``model.fusion_tagger``: the fused model is the run's model (thresholds, report,
model.keras), the plain classifier's figures are kept beside it, and a complete run can be fused
after the fact with the same result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny import tiny_overrides

from keras_inst.config.io import load_config
from keras_inst.corpus.render import render_corpus
from keras_inst.taxonomy import CLASSES

MUSICNN = Path(__file__).resolve().parents[1] / "assets" / "musicnn"  # the vendored MSD VGG checkpoint
# 3-s chunks: the tagger reads 47616 samples (2.98 s) from the centre of each window.
TINY = [*tiny_overrides(steps=3, epochs=1, eval_chunks=3), "audio.chunk_seconds=3.0", f"training.pretrained_path={MUSICNN}"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rendered")
    render_corpus(root, songs=12, seed=0, max_seconds=8.0, workers=2, progress=False)
    return root


def _cfg(corpus: Path, cache: Path, *extra: str):
    return load_config("demo", [*TINY, f"data.roots.rendered={corpus}", f"data.cache_dir={cache}", *extra])


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
def test_fused_run_and_fusing_a_finished_run_agree(corpus, tmp_path):
    from keras_inst.models.fusion_layers import is_fused
    from keras_inst.models.short_chunk import load_model
    from keras_inst.training.fusion_runs import fuse_existing_run
    from keras_inst.training.train import train

    cache = tmp_path / "cache"
    fused_report = train(_cfg(corpus, cache, "model.fusion_tagger=musicnn_msd_vgg"), tmp_path / "fused", verbose=0)
    plain_report = train(_cfg(corpus, cache), tmp_path / "plain", verbose=0)
    # Same seed and data: the plain run trained the same classifier as the fused run's inner one.
    wf = fused_report["without_fusion"]
    assert wf["tagger"] == "musicnn_msd_vgg" and wf["weight"] == 0.5
    assert wf["test"]["roc_auc"] == pytest.approx(plain_report["test"]["roc_auc"], abs=1e-6)
    assert is_fused(load_model(tmp_path / "fused" / "model.keras", compile=False))
    assert not is_fused(load_model(tmp_path / "plain" / "model.keras", compile=False))
    assert "## Fusion with the tagger (musicnn_msd_vgg, weight 0.5, logit space)" in (tmp_path / "fused" / "report.md").read_text()
    # Fusing the plain run afterwards gives the fused run's figures and thresholds.
    after = fuse_existing_run(str(tmp_path / "plain"), str(tmp_path / "after"), tagger="musicnn_msd_vgg")
    assert after["test"]["roc_auc"] == pytest.approx(fused_report["test"]["roc_auc"], abs=1e-6)
    np.testing.assert_allclose([after["thresholds"][c] for c in after["thresholds"]],
                               [fused_report["thresholds"][c] for c in after["thresholds"]], atol=1e-6)
    saved = json.loads((tmp_path / "after" / "report.json").read_text())
    assert saved["without_fusion"]["test"]["roc_auc"] == pytest.approx(plain_report["test"]["roc_auc"], abs=1e-6)
    assert "fusion_tagger: musicnn_msd_vgg" in (tmp_path / "after" / "config.yaml").read_text()
    with pytest.raises(ValueError, match="exists"):
        fuse_existing_run(str(tmp_path / "plain"), str(tmp_path / "after"), tagger="musicnn_msd_vgg")
    # A fused run's model.keras is refused; its plain classifier (best checkpoint) fuses in probability space too.
    with pytest.raises(ValueError, match="fused already"):
        fuse_existing_run(str(tmp_path / "fused"), str(tmp_path / "again"), tagger="musicnn_msd_vgg")
    # ... with plucked string (MSD's 'guitar' alone) at its own weight.
    prob = fuse_existing_run(str(tmp_path / "fused"), str(tmp_path / "prob"), tagger="musicnn_msd_vgg", space="probability",
                             model_file="checkpoints/best.keras", partial_weight=0.2)
    assert prob["without_fusion"]["space"] == "probability" and prob["without_fusion"]["partial_weight"] == 0.2
    assert "fusion_space: probability" in (tmp_path / "prob" / "config.yaml").read_text()
    assert "fusion_partial_weight: 0.2" in (tmp_path / "prob" / "config.yaml").read_text()
    assert "weight 0.5 (0.2 where its tags name only some instruments), probability space" in (
        tmp_path / "prob" / "report.md").read_text()
    assert prob["without_fusion"]["test"]["roc_auc"] == pytest.approx(plain_report["test"]["roc_auc"], abs=1e-6)
    models = [load_model(tmp_path / r / "model.keras", compile=False) for r in ("fused", "prob")]
    assert [m.get_layer("fusion").space for m in models] == ["logit", "probability"]
    weights = dict(zip(CLASSES, models[1].get_layer("fusion").class_weights(), strict=True))
    assert weights["plucked_string"] == pytest.approx(0.2) and weights["voice"] == 0.5 and weights["piano"] == 0.0
    x = (0.1 * np.random.default_rng(0).standard_normal((2, models[0].input.shape[-1]))).astype(np.float32)
    assert np.abs(np.asarray(models[0](x)) - np.asarray(models[1](x))).max() > 1e-4  # the same classifier, fused otherwise


def _finished_run(tmp_path: Path) -> Path:
    """A complete run started in ``tmp_path / "project"`` with relative data roots (as demo.yaml
    writes them), whose model is a tiny plain classifier."""
    import keras

    from keras_inst.config.io import save_config
    from keras_inst.runtime.data_locations import record_data_locations

    project = tmp_path / "project"
    run = project / "runs" / "demo"
    run.mkdir(parents=True)
    cfg = load_config("demo", ["data.roots.rendered=data/rendered_x", "data.cache_dir=data/cache_x"])
    save_config(cfg, run / "config.yaml")
    record_data_locations(cfg, run, base=project)
    (run / "report.json").write_text("{}")
    wav = keras.Input((16,), name="waveform")
    keras.Model(wav, keras.layers.Dense(15, activation="sigmoid")(wav)).save(run / "model.keras")
    return run


def test_fusing_a_finished_run_finds_its_data_from_anywhere_and_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    from keras_inst.data import held_out, pipeline
    from keras_inst.models import fusion
    from keras_inst.training import train
    from keras_inst.training.fusion_runs import fuse_existing_run

    run = _finished_run(tmp_path)
    seen = {}

    def build_data(cfg, **kw):
        seen["roots"], seen["cache"] = dict(cfg.data.roots), cfg.data.cache_dir
        raise ValueError("no usable songs")  # as a missing corpus fails

    monkeypatch.setattr(pipeline, "build_data", build_data)
    monkeypatch.setattr(held_out, "held_out_split", lambda cfg: None)
    monkeypatch.setattr(fusion, "fuse_with_tagger", lambda *a, **k: pytest.fail("never reached"))
    monkeypatch.setattr(train, "evaluate_run", lambda *a, **k: pytest.fail("never reached"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the folder the run was started from
    with pytest.raises(ValueError, match="no usable songs"):
        fuse_existing_run(str(run), str(tmp_path / "fused"), tagger="musicnn_mtt_vgg")
    project = (tmp_path / "project").resolve()
    assert seen == {"roots": {"rendered": str(project / "data" / "rendered_x")}, "cache": str(project / "data" / "cache_x")}
    assert not (tmp_path / "fused").exists()  # a retry is not refused with "exists"
