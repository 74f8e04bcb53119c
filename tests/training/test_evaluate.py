"""evaluate --model accepts every form load_artifact does and keeps the run's tuned thresholds.

The data side is replaced by the toy task (tones are piano, noise is drums), so only the model
loading, config choice and threshold handling of evaluate_model are exercised here; the real
data path is tests/training/test_train.py::test_evaluate_cli_reproduces_the_runs_test_numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from toy_models import TOY_THRESHOLDS, toy_audio, toy_batch, write_toy_run

import keras_inst.data.cache.store
import keras_inst.data.datasets
import keras_inst.data.pipeline
import keras_inst.data.songs
from keras_inst.data.songs import SongMix
from keras_inst.taxonomy import CLASSES, close
from keras_inst.training import evaluate as EV


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ev") / "run"
    write_toy_run(run_dir)
    return run_dir


def toy_song_mixes() -> list[SongMix]:
    """Whole songs of the toy task (1-second windows every 0.5 s): 10 s of tone (piano); 10 s of
    noise (drums); 12 s of tone with noise from 5 to 7 s (both: the noise is 3 of 23 windows)."""
    rng = np.random.default_rng(5)
    tone_part = np.concatenate([toy_audio(rng, "tone", 80000), toy_audio(rng, "noise", 32000), toy_audio(rng, "tone", 80000)])
    return [SongMix("rendered", "tone", toy_audio(rng, "tone", 160000), 16000, close(["piano"]), ()),
            SongMix("rendered", "noise", toy_audio(rng, "noise", 160000), 16000, close(["drums"]), ("noise/S1",)),
            SongMix("rendered", "both", tone_part, 16000, close(["piano", "drums"]), ())]


@pytest.fixture
def toy_data(monkeypatch):
    x, y = toy_batch(9, 48)
    monkeypatch.setattr(keras_inst.data.datasets, "read_dataset", lambda *a, **k: (["s1", "s2"], SimpleNamespace(counts={})))
    monkeypatch.setattr(keras_inst.data.cache.store, "ensure_cache", lambda *a, **k: None)
    monkeypatch.setattr(keras_inst.data.pipeline, "musical_eval_dataset",
                        lambda *a, **k: [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)])
    mixes = toy_song_mixes()
    monkeypatch.setattr(keras_inst.data.songs, "song_mixes", lambda *a, **k: iter(mixes))
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


def test_a_bare_keras_file_has_no_tuned_thresholds(toy_run, toy_data, tmp_path, capsys):
    import shutil

    bare = tmp_path / "m.keras"
    shutil.copy(toy_run / "model.keras", bare)
    r = EV.evaluate_model(bare, dataset="rendered", root="x", split="all", config=str(toy_run / "config.yaml"))
    assert r["test"].get("f1@tuned") is None and r["meta"]["thresholds"] == "none tuned (F1 at 0.5 only)"
    assert r["meta"]["config_source"] == str(toy_run / "config.yaml")
    assert capsys.readouterr().err == ""  # an explicit --config: nothing to say
    with pytest.raises(ValueError, match=r"takes 16000 samples at 16000 Hz but the audio of config paper \(fallback: the model "
                       r"carries no run config\) gives 64000 at 16000 Hz; pass the model's --config"):
        EV.evaluate_model(bare, dataset="rendered", root="x", split="all")  # paper config: 4-second input
    assert f"note: {bare} carries no run config (config.yaml); using the 'paper' config" in capsys.readouterr().err


def test_predict_dataset_takes_a_model_or_an_artifact(toy_run, toy_data):
    from keras_inst.runtime.loader import load_artifact

    art = load_artifact(toy_run)
    batches = toy_data
    ds = [(batches[0][:16], batches[1][:16])]
    y1, p1 = EV.predict_dataset(art.model, ds)
    y2, p2 = EV.predict_dataset(art, ds)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(p1, p2, atol=1e-6)


def test_an_export_uses_the_config_of_its_run_and_says_so(toy_run, toy_data, tmp_path, capsys):
    """Before: an export folder quietly fell back to the paper config (here: a wrong input length)."""
    import keras

    from keras_inst.deploy.export import export_model

    export_dir = tmp_path / "export"
    export_model(keras.saving.load_model(toy_run / "model.keras", compile=False), export_dir, formats=["tflite"],
                 thresholds=TOY_THRESHOLDS, source=str(toy_run / "model.keras"))
    capsys.readouterr()
    r = EV.evaluate_model(export_dir, dataset="rendered", root="x", split="all")
    assert r["meta"]["config_source"] == str(toy_run / "config.yaml") and r["meta"]["model_kind"] == "tflite"
    assert f"note: {export_dir / 'model_float32.tflite'} is an export; using the config of the run it was made from: " \
           f"{toy_run / 'config.yaml'}" in capsys.readouterr().err
    assert r["test"]["f1@tuned"] is not None
    # Moved away from its run: the paper fallback is named, and the mismatch says what to pass.
    meta = json.loads((export_dir / "export.json").read_text())
    (export_dir / "export.json").write_text(json.dumps(meta | {"source": str(tmp_path / "gone" / "model.keras")}))
    with pytest.raises(ValueError, match="audio of config paper .* pass the model's --config"):
        EV.evaluate_model(export_dir, dataset="rendered", root="x", split="all")
    assert "carries no run config (config.yaml); using the 'paper' config" in capsys.readouterr().err


def test_song_level_scores_of_whole_songs(toy_run, toy_data, tmp_path, capsys):
    """Presence at the run's thresholds (piano's 0.999999 is never reached, drums' is 0.3) finds
    key in both tone songs and drums in the song where they play 2 of 12 s; the mean misses those."""
    import shutil

    from keras_inst.runtime.presence import DEFAULT_SOURCE, PresenceRule

    r = EV.evaluate_model(toy_run, dataset="rendered", root="x", split="all")
    songs = r["songs"]
    assert (songs["songs"], songs["rule"], songs["window_seconds"], songs["hop_seconds"]) == (3, DEFAULT_SOURCE, 1.0, 0.5)
    per = songs["presence"]["per_class"]
    assert {c: (e["tp"], e["fp"], e["fn"]) for c, e in per.items() if e["positives"] or e["fp"]} == {
        "percussion": (2, 0, 0), "key": (2, 0, 0), "drums": (2, 0, 0), "piano": (0, 0, 2)}
    assert per["piano"]["precision"] is None and per["piano"]["recall"] == 0.0 and per["piano"]["f1"] == 0.0
    assert songs["presence"]["micro"] == pytest.approx({"precision": 1.0, "recall": 6 / 8, "f1": 6 / 7})
    assert songs["presence"]["macro"] == pytest.approx({"precision": 1.0, "recall": 0.75, "f1": 0.75})
    assert songs["mean"]["micro"]["recall"] == pytest.approx(4 / 8)  # drums and percussion lost in "both"
    assert songs["max"]["micro"]["recall"] == pytest.approx(6 / 8)
    # The run's calibrated rule is used and named: drums need 6 windows, more than "both" has (3 to 5).
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    rule = PresenceRule({c: 2 for c in CLASSES} | {"drums": 6, "percussion": 6}, {c: 1.0 for c in CLASSES}, "calibrated on 3 songs")
    report = json.loads((run / "report.json").read_text())
    (run / "report.json").write_text(json.dumps(report | {"presence_rule": rule.to_json()}))
    capsys.readouterr()
    assert EV.main(["--model", str(run), "--dataset", "rendered", "--root", "x", "--split", "all", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "## Song level (3 whole songs; presence rule: calibrated on 3 songs)" in out and "| presence | 1.000 | 0.500 |" in out
    got = json.loads((tmp_path / "r.json").read_text())["songs"]["presence"]["per_class"]
    assert (got["drums"]["tp"], got["drums"]["fn"]) == (1, 1)
    assert "songs" not in EV.evaluate_model(toy_run, dataset="rendered", root="x", split="all", song_level=False)


def test_presence_entries_calibrate_on_validation_songs_and_load_back(toy_run, toy_data, tmp_path):
    """What training adds to report.json (presence_rule beside the thresholds), read back by the loader."""
    import shutil

    from keras_inst.runtime.loader import load_artifact
    from keras_inst.runtime.presence import DEFAULT_MIN_WINDOWS, present_classes

    art = load_artifact(toy_run)
    thresholds = art.threshold_vector()
    entries = EV.presence_entries(art.model, art.config, None, validation=["v"], test=["t"], thresholds=thresholds)
    assert set(entries) == {"presence_rule", "presence_calibration", "songs"}
    cal = entries["presence_calibration"]
    # piano's tuned threshold is never reached: no k finds it, the default stays; voice has no song.
    assert cal["piano"] == {"positives": 2, "negatives": 1, "k": DEFAULT_MIN_WINDOWS, "calibrated": False, "f1": None}
    assert cal["voice"]["calibrated"] is False and cal["voice"]["positives"] == 0
    for c in ("drums", "percussion", "key"):
        assert cal[c]["calibrated"] is True and cal[c]["f1"] == 1.0, c
    assert entries["presence_rule"]["source"] == "calibrated on 3 validation songs (song-level F1, k in 2..10)"
    assert entries["songs"]["presence"]["micro"]["recall"] == pytest.approx(6 / 8)
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    report = json.loads((run / "report.json").read_text())
    (run / "report.json").write_text(json.dumps(report | entries))
    loaded = load_artifact(run)
    assert loaded.presence_rule.to_json() == entries["presence_rule"] and loaded.presence_rule_source == str(run / "report.json")
    # On the songs it was calibrated on, the rule gives back their labels (piano aside).
    for mix in toy_song_mixes():
        probs = art.predict(np.stack([mix.audio[i: i + 16000] for i in range(0, len(mix.audio) - 15999, 8000)]))
        assert set(present_classes(probs, thresholds, loaded.presence_rule, CLASSES)) == set(mix.classes) - {"piano"}


def test_another_corpus_is_cached_apart_from_the_runs(toy_run, toy_data, tmp_path, monkeypatch, capsys):
    """Rendered corpora all name their songs Track00001...: evaluating another one through the
    run's cache would overwrite the run's own entries (and whoever read them meanwhile)."""
    seen = []
    monkeypatch.setattr(keras_inst.data.cache.store, "ensure_cache", lambda cfg, songs, **k: seen.append(cfg.data.cache_dir))
    run_cache = Path(EV.load_artifact(toy_run).config.data.cache_dir).expanduser()
    rc = EV.main(["--model", str(toy_run), "--dataset", "rendered", "--root", str(tmp_path / "eval_songs"), "--split", "all",
                  "--no-songs", "--json", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr().err
    assert len(seen) == 1 and seen[0].startswith(str(run_cache)) and "/roots/eval_songs-" in seen[0]


def test_overrides_keep_the_runs_recorded_data_locations(toy_run, tmp_path, monkeypatch):
    """Before: with ``--set`` the run's config.yaml was re-read raw, so from another folder its
    relative data roots and cache pointed under the working directory (a new cache, a missing
    corpus); now the recorded absolute locations stay and only the overridden key changes."""
    import shutil

    from keras_inst.runtime.artifacts import RUN_DATA_LOCATIONS
    from keras_inst.runtime.loader import load_artifact

    run = tmp_path / "started_here" / "runs" / "toy"
    shutil.copytree(toy_run, run)
    from keras_inst.config.io import dump_config, load_config

    relative = load_config(run / "config.yaml", ["data.roots.rendered=data/rendered", "data.cache_dir=data/cache"])
    (run / "config.yaml").write_text(dump_config(relative), encoding="utf-8")  # as a run started in started_here
    started = tmp_path / "started_here"
    (run / RUN_DATA_LOCATIONS).write_text(json.dumps({
        "working_directory": str(started), "roots": {"rendered": str(started / "data" / "rendered")},
        "cache_dir": str(started / "data" / "cache"), "held_out_root": None, "soundfont": None}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    art = load_artifact(run)
    cfg, source = EV.choose_config(art, None, ["mixing.p_musical=0.25"])
    assert source == str(run / "config.yaml")
    assert cfg.mixing.p_musical == 0.25
    assert cfg.data.roots["rendered"] == str(started / "data" / "rendered")
    assert cfg.data.cache_dir == str(started / "data" / "cache")
    # Without overrides: the same locations (one path for both).
    assert EV.choose_config(art, None, [])[0].data == cfg.data
    # A data path given in --set is the user's, kept as given.
    cfg2, _ = EV.choose_config(art, None, ["data.cache_dir=my_cache"])
    assert cfg2.data.cache_dir == "my_cache" and cfg2.data.roots == cfg.data.roots
