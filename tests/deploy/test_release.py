"""keras-inst release: a tiny version of the release recipe end to end, the shipped folder it
writes (hashes, metadata, size limit, refusals), loading it (predict / evaluate without --model,
TF-free, hash checks), fine-tuning from it on the dataset fixtures, and its model card.

The tiny recipe is configs/release.yaml with the tiny model of tests/tiny.py (1-s windows, a
narrow short-chunk CNN from scratch), 2 epochs x 3 steps, on 12 five-second songs rendered as the
recipe renders (modern sources, every style). Its outputs are compared with
tests/assets/release_tiny.json (tolerance RECORD_ATOL below on the kind of CPU it was recorded
on, CROSS_CPU_ATOL on another). That file also records a
fingerprint of the tiny render, so a change of the renderer or the sample sets is told apart from
a change of training or export: after an intended change, re-record with
``KERAS_INST_RECORD_RELEASE=1 python -m pytest tests/deploy/test_release.py -k recorded``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny import TINY_MODEL
from toy_models import run_without_tf

import keras_inst.deploy.export as E
from keras_inst.deploy import release as R
from keras_inst.runtime.shipped import (
    MAX_SHIPPED_BYTES,
    RELEASE_ENV,
    SHIPPED_FILES,
    SHIPPED_METADATA,
    read_shipped,
    sha256_file,
)
from keras_inst.taxonomy import CLASSES

ASSETS = Path(__file__).resolve().parents[1] / "assets"
RECORDED = ASSETS / "release_tiny.json"
# A seeded CPU run repeats bit for bit on one machine and to ~1e-6 on CPUs of the same kind: 1e-3
# leaves room for that and still catches any change of recipe, data or code path. Across kinds
# (AVX2 vs AVX-512) oneDNN / XNNPACK round differently and 6 training steps amplify it: an AVX2
# EPYC's probabilities differ from an AVX-512 Xeon's recording by up to 0.022, so there the
# outputs are held to CROSS_CPU_ATOL.
RECORD_ATOL = 1e-3
CROSS_CPU_ATOL = 0.05


def cpu_kind() -> str:
    """The CPU kind that decides TensorFlow's float kernels here: "avx512", "avx2" (Linux /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"


STYLES = ("pop", "rock", "electronic", "funk", "jazz")


def tiny_sets(base: Path) -> list[str]:
    # 8 chunks per song: 16 test mixes to check the int8 model's ROC-AUC change on (4 made it jumpy)
    # no fusion with the tagger: its 3-s input does not fit the tiny model's 1-s windows
    # no ambience beds (the recipe's are on): 6 steps on bed-covered mixes leave the tiny model's
    # int8 ROC-AUC change on its 16 check mixes at ~0.009, over export's 0.005 (a release refused);
    # off, the stream is bit-identical to the one the recorded outputs were made with
    return [*TINY_MODEL, "model.fusion_tagger=null", "effects.ambience.probability=0", "effects.ambience.negative_probability=0",
            "training.steps_per_epoch=3", "training.epochs=2", "mixing.eval_chunks_per_song=8",
            "data.render_songs=0", f"data.roots.rendered={base / 'rendered'}", f"data.cache_dir={base / 'cache'}"]


def set_args(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module", autouse=True)
def loose_int8_gate():
    """6 steps leave a model whose int8 ROC-AUC change on its 16 check mixes is rounding noise that
    depends on the CPU's kernels (0.004 on an AVX-512 Xeon, 0.012 on an AVX2 EPYC): export's gate
    (a release refused over 0.005; tested in test_int8.py, and the refusal path below) is not what
    these tests are about, so the tiny releases here pass it on either CPU."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(E.MAX_ROC_AUC_CHANGE, "tflite_int8", 0.05)
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, loose_int8_gate):
    """(base, run dir, shipped folder, card) of `keras-inst release --install` of the tiny recipe,
    installed into a temporary folder named by $KERAS_INST_RELEASE."""
    from keras_inst.corpus.render import render_corpus

    base = tmp_path_factory.mktemp("release")
    render_corpus(base / "rendered", songs=12, seed=0, max_seconds=5.0, workers=1, progress=False, modern=True, styles=STYLES)
    shipped, card = base / "installed", base / "model_card.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(RELEASE_ENV, str(shipped))
        # --held-out-run: a twin that does not exist, whatever runs/release_heldout holds in the cwd
        rc = R.main([*set_args(tiny_sets(base)), "--run-dir", str(base / "run"), "--install", "--card-file", str(card),
                     "--held-out-run", str(base / "no_twin")])
    assert rc == 0
    return base, base / "run", shipped, card


@pytest.fixture
def installed(tiny, monkeypatch):
    monkeypatch.setenv(RELEASE_ENV, str(tiny[2]))
    return tiny[2]


def test_the_shipped_folder_holds_every_file_with_its_hash(tiny):
    _, run, shipped, _ = tiny
    meta = read_shipped(shipped)  # verifies every file
    names = {SHIPPED_FILES[k] for k in ("tflite_fp16", "tflite_int8", "keras", "labels")}
    assert set(meta["files"]) == names
    assert {p.name for p in shipped.iterdir()} == names | {SHIPPED_METADATA}
    for name, rec in meta["files"].items():
        assert rec == {"sha256": sha256_file(shipped / name), "bytes": (shipped / name).stat().st_size}
    assert sum(p.stat().st_size for p in shipped.iterdir()) <= MAX_SHIPPED_BYTES
    assert (shipped / "labels.txt").read_text().split() == list(CLASSES) == meta["class_names"]
    report = json.loads((run / "report.json").read_text())
    import hashlib

    assert meta["recipe"] == "release"
    assert meta["config_sha256"] == hashlib.sha256((run / "config.yaml").read_bytes()).hexdigest()
    assert meta["thresholds"] == report["thresholds"] and meta["presence_rule"] == report["presence_rule"]
    assert (meta["sample_rate"], meta["input_samples"], meta["window_seconds"], meta["hop_seconds"]) == (16000, 16000, 1.0, 0.5)
    assert meta["figures"]["test"]["roc_auc"] == report["test"]["roc_auc"]
    assert meta["figures"]["held_out"] is None and "keras-inst release --held-out" in meta["figures"]["held_out_note"]
    assert all(a["passed"] for a in meta["export"]["artifacts"].values())
    assert meta["training_data"]["render_modern"] and meta["training_data"]["render_styles"] == list(STYLES)
    assert meta["package_version"] and meta["created"]
    # the shipped .keras carries no optimizer state (the run's does)
    import io
    import zipfile

    import h5py

    def groups(path: Path) -> list[str]:
        with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f:
            return list(h5py.File(io.BytesIO(f.read()), "r").keys())

    assert "optimizer" in groups(run / "model.keras") and "optimizer" not in groups(shipped / "model.keras")


def render_fingerprint(root: Path) -> str:
    """sha256 over the tiny render's mixes (names and bytes)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(root.glob("Track*/mix.flac")):
        h.update(f.parent.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_the_tiny_recipe_reproduces_its_recorded_outputs(tiny):
    """Seeded end to end: the same probabilities on the fixed inputs and the same figures."""
    meta = read_shipped(tiny[2])
    got = {"cpu_kind": cpu_kind(), "render_sha256": render_fingerprint(tiny[0] / "rendered"),
           "probabilities": meta["recorded_outputs"]["probabilities"],
           "test": {k: meta["figures"]["test"][k] for k in ("roc_auc", "pr_auc", "loss")}}
    if os.environ.get("KERAS_INST_RECORD_RELEASE") == "1":  # re-record after an intended change
        RECORDED.write_text(json.dumps(got, indent=1) + "\n")
    want = json.loads(RECORDED.read_text())
    assert got["render_sha256"] == want["render_sha256"], (
        "the tiny render differs from the recorded one: the renderer or the installed sample sets changed, so the "
        "outputs below cannot match; if intended, re-record (module doc)")
    assert set(got["probabilities"]) == set(want["probabilities"]) == {"keras", "tflite_fp16", "tflite_int8"}
    atol = RECORD_ATOL if got["cpu_kind"] == want["cpu_kind"] else CROSS_CPU_ATOL
    for form, rows in want["probabilities"].items():
        np.testing.assert_allclose(got["probabilities"][form], rows, atol=atol, err_msg=f"{form} (recorded on {want['cpu_kind']})")
    for k, v in want["test"].items():
        assert got["test"][k] == pytest.approx(v, abs=atol), k


def test_the_recorded_outputs_are_what_the_shipped_files_give(tiny):
    meta = read_shipped(tiny[2])
    inputs = R.recorded_inputs(meta["input_samples"], meta["sample_rate"])
    assert inputs.shape == (3, 16000) and np.isclose(inputs[0].std(), 0.1, rtol=0.05)
    again = R.shipped_outputs(tiny[2], inputs)
    for form, rows in meta["recorded_outputs"]["probabilities"].items():
        np.testing.assert_allclose(again[form], rows, atol=1e-6, err_msg=form)


def test_a_completed_release_run_is_not_retrained(tiny, tmp_path, capsys):
    base, run, _, _ = tiny
    mtime = (run / "model.keras").stat().st_mtime_ns
    shutil.copytree(tiny[2], tmp_path / "again")  # re-assembled over a copy of the installed folder
    time.sleep(1.1)  # Keras stamps the save time in seconds: a new save would differ from the old file
    rc = R.main([*set_args(tiny_sets(base)), "--run-dir", str(run), "--out", str(tmp_path / "again")])
    assert rc == 0 and (run / "model.keras").stat().st_mtime_ns == mtime
    assert "already complete" in capsys.readouterr().out
    a, b = (read_shipped(p) for p in (tiny[2], tmp_path / "again"))
    assert a["recorded_outputs"] == b["recorded_outputs"] and a["config_sha256"] == b["config_sha256"]
    # the same model: the old model.keras is kept byte for byte (no churn in version control)
    assert (tmp_path / "again" / "model.keras").read_bytes() == (tiny[2] / "model.keras").read_bytes()
    assert (run / "model_card.md").is_file()  # without --install the card goes into the run directory


def test_same_keras_model_ignores_only_the_save_metadata(tmp_path):
    import zipfile

    def write(name, weights, date):
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            z.writestr("metadata.json", date)
            z.writestr("config.json", "{}")
            z.writestr("model.weights.h5", weights)
        return tmp_path / name

    a, b, c = write("a.keras", b"w1", "2026-12-06"), write("b.keras", b"w1", "2026-12-07"), write("c.keras", b"w2", "x")
    assert R.same_keras_model(a, b) and not R.same_keras_model(a, c)
    assert not R.same_keras_model(a, tmp_path / "missing.keras")
    (tmp_path / "bad.keras").write_text("not a zip")
    assert not R.same_keras_model(a, tmp_path / "bad.keras")


def test_the_held_out_twins_figures_go_into_the_metadata_and_card(tiny, tmp_path):
    """A finished twin (its report.json with a held_out split) is what the release's held-out
    column shows; the in-domain column stays the shipped run's own."""
    from keras_inst.atomic import read_json_object, write_json

    base, run, _, _ = tiny
    report = read_json_object(run / "report.json")
    twin = tmp_path / "twin"
    twin.mkdir()
    held = dict(report["test"], songs=40, sources=["fluidr3_gm", "fluidr3mono_gm"], styles=["jazz"], roc_auc=0.8123)
    write_json(twin / "report.json", {"meta": {"config": "release_heldout"}, "test": report["test"], "held_out": held})
    out = tmp_path / "shipped"
    assert R.main([*set_args(tiny_sets(base)), "--run-dir", str(run), "--out", str(out), "--held-out-run", str(twin),
                   "--card-file", str(tmp_path / "card.md")]) == 0
    fig = read_shipped(out)["figures"]
    assert fig["held_out"]["roc_auc"] == 0.8123 and fig["test"]["roc_auc"] == report["test"]["roc_auc"]
    assert fig["held_out"]["styles"] == ["jazz"] and fig["held_out_in_domain"]["roc_auc"] == report["test"]["roc_auc"]
    assert str(twin) in fig["held_out_note"]
    text = (tmp_path / "card.md").read_text()
    assert ("songs made only of what training never met (sources fluidr3_gm, fluidr3mono_gm; styles jazz; 40 songs)"
            in text)
    voice_row = next(line for line in text.splitlines() if line.startswith("| voice |"))
    assert "**0.812**" in text and "n/a" not in voice_row


def test_too_large_or_failed_releases_are_refused_and_nothing_is_written(tiny, tmp_path, monkeypatch):
    base, run, _, _ = tiny
    from keras_inst.atomic import read_json_object
    from keras_inst.config.io import load_config
    from keras_inst.runtime.loader import load_artifact

    cfg = load_config(run / "config.yaml")
    src, manifest = load_artifact(run, kinds=("keras",)), read_json_object(run / R.EXPORT_FOLDER / "export.json")
    (tmp_path / "tmp").mkdir()
    with pytest.raises(R.ReleaseError, match="over the 0.001 MB limit"):
        R.assemble(tmp_path / "tmp", cfg=cfg, src=src, manifest=manifest, report={}, figures={}, max_bytes=1000)
    # an export check that fails: exit 1, the installed folder untouched

    real = E.export_model

    def failing(*args, **kwargs):
        out = real(*args, **kwargs)
        out["artifacts"]["tflite_int8"] |= {"passed": False, "failed": ["decision agreement 0.5 < 0.99"]}
        return out

    monkeypatch.setattr(E, "export_model", failing)
    dest = tmp_path / "never"
    assert R.main([*set_args(tiny_sets(base)), "--run-dir", str(run), "--out", str(dest)]) == 1
    assert not dest.exists() and not list(tmp_path.glob(".never*"))


def test_argument_errors(tmp_path, capsys):
    assert R.main(["--held-out", "--install"]) == 2
    assert "ships nothing" in capsys.readouterr().err
    assert R.main(["--held-out", "--config", "release"]) == 2
    assert R.main(["--install", "--out", str(tmp_path)]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_predict_and_evaluate_without_a_shipped_model_say_how_to_get_one(tmp_path, monkeypatch, capsys):
    from keras_inst.deploy.predict import main as predict
    from keras_inst.training.evaluate import main as evaluate

    monkeypatch.setenv(RELEASE_ENV, str(tmp_path / "none"))
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(16000, np.float32), 16000)
    assert predict([str(wav)]) == 2
    err = capsys.readouterr().err
    assert "no shipped model is installed" in err and "keras-inst release --install" in err and "--model" in err
    assert evaluate(["--dataset", "rendered", "--root", str(tmp_path)]) == 2
    assert "no shipped model is installed" in capsys.readouterr().err


def test_predict_without_model_uses_the_shipped_model(tiny, installed, tmp_path):
    from keras_inst.deploy.predict import main as predict

    wav = tiny[0] / "rendered" / "Track00001" / "mix.flac"
    out = tmp_path / "p.json"
    assert predict([str(wav), "--format", "json", "--output", str(out), "--no-progress"]) == 0
    doc = json.loads(out.read_text())
    assert doc["model"] == str(installed / "model_float16.tflite") and doc["model_kind"] == "tflite"
    assert doc["threshold_source"] == "tuned on validation" and str(installed / "metadata.json") in doc["presence_source"]
    assert predict([str(wav), "--variant", "tflite_int8", "--format", "json", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["model"].endswith("model_int8.tflite")
    assert predict([str(wav), "--variant", "tflite", "--output", str(out)]) == 2  # no float32 model ships


def test_the_tflite_path_runs_without_tensorflow(tiny, installed, tmp_path):
    """The lite extra's install: predict FILE with no --model and TensorFlow / Keras unimportable."""
    wav = tiny[0] / "rendered" / "Track00002" / "mix.flac"
    code = f"""
from keras_inst.deploy.predict import main
rcs = [main([{str(wav)!r}, "--format", "json", "--output", {str(tmp_path / "fp16.json")!r}]),
       main([{str(wav)!r}, "--variant", "tflite_int8", "--format", "json", "--output", {str(tmp_path / "int8.json")!r}])]
print("RC", rcs, any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules))
"""
    proc = run_without_tf(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "RC [0, 0] False"
    from keras_inst.deploy.predict import main as predict

    assert predict([str(wav), "--format", "json", "--output", str(tmp_path / "tf.json")]) == 0
    with_tf, no_tf = (json.loads((tmp_path / n).read_text())["files"][0] for n in ("tf.json", "fp16.json"))
    assert no_tf["probabilities"] == with_tf["probabilities"] and no_tf["classes"] == with_tf["classes"]
    int8 = json.loads((tmp_path / "int8.json").read_text())["files"][0]
    assert max(abs(int8["probabilities"][c] - no_tf["probabilities"][c]) for c in CLASSES) < 0.1


def test_a_changed_shipped_file_is_refused_naming_it(tiny, tmp_path, monkeypatch, capsys):
    from keras_inst.deploy.predict import main as predict
    from keras_inst.runtime.loader import load_artifact

    bad = tmp_path / "shipped"
    shutil.copytree(tiny[2], bad)
    with open(bad / "model_int8.tflite", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="model_int8.tflite does not match .*metadata.json"):
        load_artifact(bad)  # the float16 model is fine, but the folder is checked as a whole
    with pytest.raises(ValueError, match="model_int8.tflite does not match"):
        load_artifact(bad / "model.keras")
    monkeypatch.setenv(RELEASE_ENV, str(bad))
    assert predict([str(tiny[0] / "rendered" / "Track00001" / "mix.flac")]) == 2
    assert "model_int8.tflite does not match" in capsys.readouterr().err


def test_evaluate_without_model_judges_the_shipped_model_like_the_run(tiny, installed):
    """Same test split (config and seed from metadata.json), float16 TFLite vs the run's Keras model."""
    from keras_inst.training.evaluate import evaluate_model

    base, run, _, _ = tiny
    from keras_inst.runtime.shipped import default_model

    report = evaluate_model(default_model(), dataset="rendered", root=base / "rendered", song_level=False)
    assert report["meta"]["config_source"].endswith("(metadata.json 'config')")
    want = json.loads((run / "report.json").read_text())["test"]
    assert report["test"]["examples"] == want["examples"]
    assert report["test"]["roc_auc"] == pytest.approx(want["roc_auc"], abs=2e-3)


def test_fine_tuning_starts_from_the_shipped_weights(tiny, fixtures_dir, tmp_path):
    """configs/finetune_release.yaml on one's own multitracks: here six copies of the BabySlakh
    fixture song, a few steps; the model starts with every shipped weight, head included."""
    from keras_inst.config.io import load_config
    from keras_inst.models.short_chunk import load_model
    from keras_inst.training.train import build_compiled_model, train

    own = tmp_path / "own"
    for i in range(1, 7):
        shutil.copytree(fixtures_dir / "slakh" / "babyslakh_16k" / "Track00001", own / f"Track{i:05d}")
    sets = [*TINY_MODEL, "model.fusion_tagger=null", "training.transfer=finetune", "training.pretrained=keras_inst_release",
            f"training.pretrained_path={tiny[2]}", "data.datasets=[slakh]", f"data.roots.slakh={own}",
            f"data.cache_dir={tmp_path / 'cache'}", "training.epochs=1", "training.steps_per_epoch=2",
            "mixing.eval_chunks_per_song=2"]
    cfg = load_config("finetune_release", sets)
    start = build_compiled_model(cfg).get_weights()  # frontend, backbone, head
    shipped = load_model(tiny[2] / "model.keras", compile=False).get_weights()
    assert len(start) == len(shipped) > 10
    for a, b in zip(start, shipped, strict=True):
        np.testing.assert_array_equal(a, b)
    report = train(cfg, tmp_path / "run", verbose=0)
    assert report["test"]["examples"] > 0
    with pytest.raises(ValueError, match=r"config key 'features.n_mels' is 32 here but 64 in the shipped model"):
        build_compiled_model(load_config("finetune_release", [*sets, "features.n_mels=32"]))


def test_the_model_card_is_written_from_the_metadata(tiny, tmp_path):
    from keras_inst.corpus.sources import REGISTRY

    _, _, shipped, card = tiny
    text = card.read_text()
    meta = read_shipped(shipped)
    for c in CLASSES:
        assert f"| {c} | {meta['thresholds'][c]:.3f} |" in text
    licences = {s.name: s.license for s in REGISTRY}
    assert meta["training_data"]["sources"]  # the rendered corpus's sources, each with its licence
    for s in meta["training_data"]["sources"]:
        assert f"| `{s['name']}` | {licences[s['name']]} |" in text
    for heading in ("## What it recognises", "## Figures", "## Training data", "## Limits", "## Intended use",
                    "## How to reproduce"):
        assert heading in text
    assert "not on real recordings" in text
    assert f"**{meta['figures']['test']['roc_auc']:.3f}**" in text
    assert meta["config_sha256"] in text
    # --card re-writes the same card from the shipped folder alone
    assert R.main(["--card", "--out", str(shipped), "--card-file", str(tmp_path / "card.md")]) == 0
    assert (tmp_path / "card.md").read_text() == text


def test_card_probe_records_real_recording_figures_in_the_metadata(tiny, tmp_path, capsys):
    """--card --probe: the shipped folder scored as predict answers each clip, kept in metadata.json
    (the folder still verifies) and shown in the card; --probe alone is refused."""
    from keras_inst.deploy.predict import main as predict
    from keras_inst.training.probe import score_clips

    folder = tmp_path / "shipped"
    shutil.copytree(tiny[2], folder)
    truth = {"a": (["drums"], ["brass", "synth"]), "b": (["brass"], ["drums"]), "c": ([], ["drums", "brass", "synth"])}
    probe = tmp_path / "probe"  # clips are named by their files' stems, as in ../shared/real_dev
    probe.mkdir()
    rendered = sorted((tiny[0] / "rendered").glob("*/mix.flac"))[:3]
    mixes = [Path(shutil.copy(m, probe / f"{n}.flac")) for n, m in zip(truth, rendered, strict=True)]
    labels = {n: {"file": f"{n}.flac", "positive": pos, "negative": neg} for n, (pos, neg) in truth.items()}
    labels_file = probe / "labels.json"
    labels_file.write_text(json.dumps(labels))
    assert R.main(["--probe", str(labels_file), "--out", str(folder)]) == 2
    assert "use it with --card" in capsys.readouterr().err
    assert R.main(["--card", "--out", str(folder), "--probe", str(labels_file), "--card-file", str(tmp_path / "card.md")]) == 0
    got = read_shipped(folder)["figures"]["probe"]  # hashes still verify: metadata.json is not a hashed file
    out = tmp_path / "p.json"
    assert predict([*map(str, mixes), "--model", str(folder), "--output", str(out), "--no-progress"]) == 0
    want = score_clips(json.loads(out.read_text())["files"], labels)
    assert got["per_class_roc_auc"] == want["per_class_roc_auc"] and got["macro_roc_auc"] == want["macro_roc_auc"]
    assert set(got["per_class_roc_auc"]) == {"drums", "brass"}  # synth: no positive clip, not scored
    assert (got["labels"], got["clips_scored"], got["positives"], got["negatives"]) == ("probe/labels.json", 3, 2, 6)
    assert got["found"] == 2 - sum(len(c["missed"]) for c in want["clips"].values())
    assert got["false_alarms"] == sum(len(c["false"]) for c in want["clips"].values())
    text = (tmp_path / "card.md").read_text()
    assert ("Real recordings (3 labelled clips of `probe/labels.json`; `keras-inst predict`" in text
            and f"clips **{got['macro_roc_auc']:.3f}**; {got['found']} of 2 certain positives found, "
                f"{got['false_alarms']} false alarms in 6 certain negatives" in text)
