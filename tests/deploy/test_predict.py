"""predict CLI: any format/rate/channels/length, failures reported, outputs parse, TF-free TFLite path.

Uses the toy classifier of tests/test_export.py (1-second windows; tones -> piano/key, white
noise -> drums/percussion), so the predicted classes are checked, not only the plumbing.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
from toy_models import TOY_THRESHOLDS, run_without_tf, toy_audio, write_toy_run

from keras_inst.deploy import export as E
from keras_inst.deploy import predict as P
from keras_inst.taxonomy import CLASSES, FAMILY_OF

TONE, NOISE = ["key", "piano"], ["percussion", "drums"]
# name -> (sample rate, channels, seconds, content, expected classes at threshold 0.5)
FILES = {
    "tone_8k_mono.wav": (8000, 1, 3.0, "tone", TONE),
    "noise_22k_stereo.flac": (22050, 2, 2.5, "noise", NOISE),
    "sub/tone_44k_stereo.ogg": (44100, 2, 4.0, "tone", TONE),
    "sub/noise_48k_mono.mp3": (48000, 1, 2.0, "noise", NOISE),
    "sub/deeper/short_tone.wav": (16000, 1, 0.5, "tone", TONE),
    "long_tone_then_noise.flac": (44100, 1, 30.0, "tone+noise", None),
}


def expected_windows(seconds: float, window: float = 1.0, hop: float = 0.5) -> int:
    return 1 if seconds <= window else 1 + int(np.ceil((seconds - window) / hop - 1e-9))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy")
    write_toy_run(base / "run")
    manifest = E.export_model(
        keras.saving.load_model(base / "run" / "model.keras", compile=False), base / "export",
        formats=["saved_model", "tflite", "tflite_int8"], thresholds=TOY_THRESHOLDS,
    )
    assert manifest["all_checks_passed"]
    return base / "run", base / "export"


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(7)
    for name, (sr, ch, seconds, content, _) in FILES.items():
        n = int(round(sr * seconds))
        if content == "tone+noise":
            x = np.concatenate([toy_audio(rng, "tone", n // 2, sr), toy_audio(rng, "noise", n - n // 2, sr)])
        else:
            x = toy_audio(rng, content, n, sr)
        data = np.stack([x, 0.8 * x], axis=1)[:, :ch]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, data, sr)
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt truncated")
    (root / "readme.txt").write_text("not audio")
    return root


@pytest.fixture(scope="module")
def keras_json(toy, audio_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "keras.json"
    rc = P.main([str(audio_dir), "--model", str(toy[0]), "--format", "json", "--timeline", "--threshold", "0.5", "--output", str(out), "--no-progress"])
    assert rc == 0
    return json.loads(out.read_text())


def by_name(doc: dict) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in doc["files"]}


def assert_hierarchy_consistent(classes: list[str]) -> None:
    for c in classes:
        if c in FAMILY_OF:
            assert FAMILY_OF[c] in classes, classes
    assert classes == [c for c in CLASSES if c in classes]  # taxonomy order


def test_json_handles_every_format_rate_and_length(keras_json, audio_dir):
    doc = keras_json
    assert (doc["model_kind"], doc["sample_rate"], doc["window_seconds"], doc["hop_seconds"]) == ("keras", 16000, 1.0, 0.5)
    assert doc["threshold_source"] == "fixed 0.5" and set(doc["thresholds"].values()) == {0.5}
    assert (doc["interrupted"], doc["files_found"]) == (False, 7)
    assert [Path(e["path"]).name for e in doc["errors"]] == ["corrupt.wav"]
    assert doc["errors"][0]["error"].startswith("not a readable audio file (")
    assert [(Path(s["path"]).name, s["reason"]) for s in doc["skipped"]] == [("readme.txt", "not an audio file extension (.txt)")]
    results = by_name(doc)
    assert set(results) == {Path(n).name for n in FILES}
    for name, (sr, ch, seconds, _, want) in FILES.items():
        r = results[Path(name).name]
        assert (r["source_sample_rate"], r["source_channels"]) == (sr, ch), name
        assert r["duration_seconds"] == pytest.approx(seconds, abs=2e-3), name
        assert r["windows"] == expected_windows(seconds) == len(r["timeline"]), name
        if want is not None:
            assert r["classes"] == want, (name, r["probabilities"])
        assert_hierarchy_consistent(r["classes"])
        for w in r["timeline"]:
            assert_hierarchy_consistent(w["classes"])
            assert 0 <= w["start"] < w["end"] <= r["duration_seconds"] + 1e-9
    assert "zero-padded by 0.50 s" in results["short_tone.wav"]["note"]
    assert "note" not in results["tone_8k_mono.wav"]


def test_timeline_follows_the_content(keras_json):
    long = by_name(keras_json)["long_tone_then_noise.flac"]
    assert long["windows"] == 59  # 1 + ceil((30 - 1) / 0.5)
    starts = [w["start"] for w in long["timeline"]]
    assert starts == pytest.approx(np.arange(59) * 0.5)
    assert long["timeline"][-1]["end"] == pytest.approx(30.0)
    for w in long["timeline"]:
        if w["end"] <= 15.0:
            assert w["classes"] == TONE, w
        elif w["start"] >= 15.0:
            assert w["classes"] == NOISE, w


def test_csv_and_table_formats(toy, audio_dir, tmp_path, capsys):
    out = tmp_path / "o.csv"
    assert P.main([str(audio_dir), "--model", str(toy[1]), "--format", "csv", "--timeline", "--threshold", "0.5", "--aggregate", "mean",
                   "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "row", "start", "end", *CLASSES, "classes"]
    files = [r for r in rows if r["row"] == "file"]
    assert len(files) == 6 and len(rows) - 6 == sum(expected_windows(f[2]) for f in FILES.values())
    tone = next(r for r in files if r["path"].endswith("tone_8k_mono.wav"))
    assert tone["classes"].split(";") == TONE and float(tone["piano"]) > 0.5 > float(tone["drums"])
    assert float(tone["end"]) == pytest.approx(3.0, abs=2e-3)
    capsys.readouterr()
    assert P.main([str(audio_dir / "sub"), "--model", str(toy[1]), "--threshold", "0.5", "--hop", "1", "--aggregate", "mean"]) == 0
    cap = capsys.readouterr()
    assert "thresholds: fixed 0.5, windows 1 s every 1 s, aggregate mean" in cap.out
    assert "short_tone.wav  [0.5 s, 1 window]  key " in cap.out and "note: shorter than one 1-second window" in cap.out
    assert "tone_44k_stereo.ogg  [4.0 s, 4 windows]" in cap.out
    assert "analysed 3 of 3 files" in cap.err


def test_the_output_suffix_picks_the_format_unless_format_is_given(toy, audio_dir, tmp_path):
    sub = str(audio_dir / "sub")
    common = ["--model", str(toy[1]), "--threshold", "0.5", "--no-progress"]
    assert P.main([sub, *common, "--output", str(tmp_path / "o.JSON")]) == 0
    assert len(json.loads((tmp_path / "o.JSON").read_text())["files"]) == 3
    assert P.main([sub, *common, "--output", str(tmp_path / "o.csv")]) == 0
    assert next(csv.reader((tmp_path / "o.csv").open()))[:2] == ["path", "row"]
    for name in ("o.txt", "o"):  # any other suffix, or none: the table
        assert P.main([sub, *common, "--output", str(tmp_path / name)]) == 0
        assert "short_tone.wav  [0.5 s, 1 window]" in (tmp_path / name).read_text()
    assert P.main([sub, *common, "--format", "table", "--output", str(tmp_path / "t.json")]) == 0  # --format wins
    assert "short_tone.wav  [0.5 s, 1 window]" in (tmp_path / "t.json").read_text()
    assert [P.output_format(f, o) for f, o in ((None, None), (None, "a.b/x"), ("csv", "x.json"))] == ["table", "table", "csv"]


def test_tflite_path_runs_without_tensorflow_or_keras(toy, audio_dir, keras_json, tmp_path):
    _, export_dir = toy
    code = f"""
from keras_inst.deploy.predict import main
rcs = [
    main([{str(audio_dir)!r}, "--model", {str(export_dir / "model_float32.tflite")!r}, "--format", "json",
          "--timeline", "--threshold", "0.5", "--output", {str(tmp_path / "f32.json")!r}, "--threads", "1"]),
    main([{str(audio_dir)!r}, "--model", {str(export_dir)!r}, "--variant", "tflite_int8", "--format", "json",
          "--threshold", "tuned", "--output", {str(tmp_path / "int8.json")!r}]),
]
print("RC", rcs, any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules))
"""
    proc = run_without_tf(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "RC [0, 0] False"
    f32, int8 = (by_name(json.loads((tmp_path / n).read_text())) for n in ("f32.json", "int8.json"))
    ref = by_name(keras_json)
    for name, r in ref.items():
        diff = max(abs(f32[name]["probabilities"][c] - r["probabilities"][c]) for c in CLASSES)
        assert diff <= 1e-4, (name, diff)
        assert f32[name]["classes"] == r["classes"]
        for wa, wb in zip(f32[name]["timeline"], r["timeline"], strict=True):
            assert max(abs(wa["probabilities"][c] - wb["probabilities"][c]) for c in CLASSES) <= 1e-4
        diff8 = max(abs(int8[name]["probabilities"][c] - r["probabilities"][c]) for c in CLASSES)
        assert diff8 <= 2e-2, (name, diff8)
        assert f32[name]["segments"] == r["segments"] and f32[name]["active_share"] == r["active_share"]  # presence, TF-free
    # Tuned thresholds from export.json: piano's (0.999999) is never reached, key's 0.5 is.
    assert int8["tone_8k_mono.wav"]["classes"] == ["key"]
    assert int8["noise_22k_stereo.flac"]["classes"] == NOISE


def test_every_model_form_gives_the_same_probabilities(toy, audio_dir, keras_json, tmp_path):
    run_dir, export_dir = toy
    files = [str(audio_dir / "tone_8k_mono.wav"), str(audio_dir / "noise_22k_stereo.flac")]
    ref = by_name(keras_json)
    forms = {
        "keras_file": run_dir / "model.keras",
        "saved_model": export_dir / "saved_model",
        "export_dir": export_dir,
    }
    for form, model in forms.items():
        out = tmp_path / f"{form}.json"
        assert P.main([*files, "--model", str(model), "--format", "json", "--output", str(out)]) == 0
        doc = json.loads(out.read_text())
        # Threshold "auto": every form carries the run's tuned thresholds.
        assert doc["threshold_source"] == "tuned on validation" and doc["thresholds"] == TOY_THRESHOLDS, form
        for name, r in by_name(doc).items():
            diff = max(abs(r["probabilities"][c] - ref[name]["probabilities"][c]) for c in CLASSES)
            assert diff <= 1e-4, (form, name, diff)
        assert doc["model_kind"] == {"keras_file": "keras", "saved_model": "saved_model", "export_dir": "tflite"}[form]


def test_threshold_options(toy, audio_dir, tmp_path, capsys):
    run_dir, export_dir = toy
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "model.keras", bare / "model.keras")
    wav = str(audio_dir / "tone_8k_mono.wav")
    assert P.main([wav, "--model", str(bare / "model.keras"), "--threshold", "tuned"]) == 2
    assert "carries no tuned thresholds" in capsys.readouterr().err
    assert P.main([wav, "--model", str(export_dir), "--threshold", "1.5"]) == 2
    assert "--threshold must be in (0, 1)" in capsys.readouterr().err
    assert P.main([wav, "--model", str(export_dir), "--threshold", "high"]) == 2
    out = tmp_path / "t.json"
    assert P.main([wav, "--model", str(export_dir), "--threshold", "0.999", "--format", "json", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    r = doc["files"][0]
    assert doc["threshold_source"] == "fixed 0.999"
    chosen = {c for c in CLASSES if r["probabilities"][c] >= 0.999}
    chosen |= {FAMILY_OF[c] for c in chosen if c in FAMILY_OF}
    assert r["classes"] == [c for c in CLASSES if c in chosen]
    # A bare .tflite without export.json: rate from --sample-rate, taxonomy class names, 0.5.
    shutil.copy(export_dir / "model_float32.tflite", bare / "m.tflite")
    assert P.main([wav, "--model", str(bare / "m.tflite"), "--sample-rate", "16000", "--format", "json", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["threshold_source"] == "fixed 0.5" and doc["class_names"] == list(CLASSES)
    assert doc["files"][0]["classes"] == TONE


def test_aggregate_max_is_at_least_mean(toy, audio_dir, tmp_path):
    long = str(audio_dir / "long_tone_then_noise.flac")
    docs = {}
    for agg in ("mean", "max"):
        out = tmp_path / f"{agg}.json"
        assert P.main([long, "--model", str(toy[1]), "--aggregate", agg, "--threshold", "0.5", "--format", "json", "--output", str(out)]) == 0
        docs[agg] = json.loads(out.read_text())["files"][0]
    for c in CLASSES:
        assert docs["max"]["probabilities"][c] >= docs["mean"]["probabilities"][c] - 1e-9
    assert docs["max"]["classes"] == ["percussion", "key", "drums", "piano"]  # both halves count


def test_exit_codes(toy, audio_dir, tmp_path, capsys):
    export_dir = str(toy[1])
    assert P.main([str(audio_dir / "corrupt.wav"), "--model", export_dir]) == 1  # nothing analysed
    err = capsys.readouterr().err
    assert "corrupt.wav" in err and "analysed 0 of 1 file (" in err
    assert P.main([str(audio_dir), "--model", str(tmp_path / "nope.tflite")]) == 2
    assert "expected a .keras or .tflite file" in capsys.readouterr().err
    assert P.main([str(audio_dir), "--model", export_dir, "--hop", "0"]) == 2
    assert P.main([str(audio_dir), "--model", export_dir, "--variant", "tflite_fp16"]) == 2
    assert "has no model_float16.tflite" in capsys.readouterr().err


def test_run_directory_loads_in_a_fresh_process(toy, audio_dir):
    """A run's model.keras carries train.py's GroupedOptimizer; predict loads it without
    importing keras_inst.models.optimizers (compile=False)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "keras_inst.predict", str(audio_dir / "tone_8k_mono.wav"), "--model", str(toy[0]), "--format", "json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["model_kind"] == "keras" and doc["threshold_source"] == "tuned on validation"
    assert doc["files"][0]["classes"] == ["key"]  # tuned: piano's threshold is never reached


def test_plot_draws_each_files_timeline(toy, audio_dir, tmp_path, monkeypatch, capsys):
    """--plot: one panel per file in one PNG; what is drawn is the JSON timeline; the JSON
    output is as without --plot (no timeline unless --timeline)."""
    import keras_inst.deploy.plot as PL

    drawn = []
    real = PL.plot_timelines
    monkeypatch.setattr(PL, "plot_timelines", lambda *a, **k: drawn.extend(real(*a, **k)) or drawn)
    files = [str(audio_dir / "tone_8k_mono.wav"), str(audio_dir / "long_tone_then_noise.flac")]
    png, out = tmp_path / "plots" / "timeline.png", tmp_path / "p.json"
    assert P.main([*files, "--model", str(toy[1]), "--threshold", "0.5", "--format", "json", "--output", str(out), "--plot", str(png)]) == 0
    assert "plotted 2 timelines into" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert all("timeline" not in r for r in doc["files"])
    assert sorted(p.name for p in png.parent.iterdir()) == ["timeline.png"]
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") == 1200
    assert int.from_bytes(head[20:24], "big") == round(2 * PL.panel_height(len(CLASSES)) * PL.DPI)
    with_timeline = tmp_path / "t.json"
    assert P.main([*files, "--model", str(toy[1]), "--threshold", "0.5", "--format", "json", "--timeline", "--output", str(with_timeline)]) == 0
    for d, r in zip(drawn, json.loads(with_timeline.read_text())["files"], strict=True):
        assert d["path"] == r["path"]
        want = np.array([[w["probabilities"][c] for w in r["timeline"]] for c in CLASSES])  # [C, windows]
        np.testing.assert_allclose(d["probabilities"], want, atol=1e-6)
        np.testing.assert_array_equal(d["above"], want >= 0.5)
        assert [c for c, p in zip(CLASSES, d["present"], strict=True) if p] == r["classes"]  # labels marked present
    assert drawn[1]["probabilities"].shape == (len(CLASSES), 59)
    assert P.main([files[0], "--model", str(toy[1]), "--plot", str(tmp_path / "x.pdf")]) == 2
    assert "--plot must name a .png file" in capsys.readouterr().err


def test_embedding_dim_is_reported_for_every_model_form(toy, audio_dir, tmp_path):
    """The JSON states the length of the model's embeddings output (export.json records it)."""
    run_dir, export_dir = toy
    want = json.loads((export_dir / "export.json").read_text())["embedding_dim"]
    assert want == 32  # the toy backbone's last block (model.channels=[8,16,16,32])
    bare = tmp_path / "bare.tflite"  # no export.json: found by running one window
    shutil.copy(export_dir / "model_float32.tflite", bare)
    wav = str(audio_dir / "tone_8k_mono.wav")
    for model in (run_dir, export_dir, export_dir / "saved_model", bare):
        out = tmp_path / "e.json"
        assert P.main([wav, "--model", str(model), "--format", "json", "--output", str(out)]) == 0
        assert json.loads(out.read_text())["embedding_dim"] == want, model


def test_output_locations_are_checked_before_any_work(toy, audio_dir, tmp_path, monkeypatch, capsys):
    """Before: --output in a missing folder (or naming a folder) crashed after analysing everything."""
    wav = str(audio_dir / "tone_8k_mono.wav")
    out = tmp_path / "missing" / "dir" / "out.csv"
    assert P.main([wav, "--model", str(toy[1]), "--format", "csv", "--output", str(out)]) == 0
    assert out.read_text().startswith("path,row,start,end,")
    assert [p.name for p in out.parent.iterdir()] == ["out.csv"]  # written atomically: no temporary left
    assert "analysed 1 of 1 file (" in capsys.readouterr().err
    analysed = []
    monkeypatch.setattr(P, "analyse_file", lambda *a, **k: analysed.append(a) or pytest.fail("analysed"))
    folder = tmp_path / "results"
    folder.mkdir()
    assert P.main([wav, "--model", str(toy[1]), "--output", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --output {folder}: is a directory; name a file in it, e.g. {folder / 'predictions.txt'}\n"
    png_dir = tmp_path / "timeline.png"
    png_dir.mkdir()
    assert P.main([wav, "--model", str(toy[1]), "--plot", str(png_dir)]) == 2
    assert f"--plot {png_dir}: is a directory" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert P.main([wav, "--model", str(toy[1]), "--output", str(blocker / "out.json")]) == 2
    assert "cannot create its folder" in capsys.readouterr().err
    assert analysed == []


def test_a_long_hop_adds_no_window_that_is_mostly_padding(toy, tmp_path):
    """1.6 s of noise, 1-second windows every 1.5 s: a window at 1.5 s would hold 0.1 s of noise
    and 0.9 s of silence, which this model calls piano -- it flipped the file's answer."""
    run_dir, _ = toy
    wav = tmp_path / "noise.wav"
    x = toy_audio(np.random.default_rng(3), "noise", 25600)  # 1.6 s at 16 kHz
    sf.write(wav, x, 16000)
    out = tmp_path / "hop.json"
    assert P.main([str(wav), "--model", str(run_dir), "--hop", "1.5", "--aggregate", "max", "--threshold", "0.5",
                   "--format", "json", "--timeline", "--output", str(out)]) == 0
    r = json.loads(out.read_text())["files"][0]
    assert r["windows"] == 1 and [w["start"] for w in r["timeline"]] == [0.0]
    assert r["classes"] == NOISE, r["probabilities"]
    # The window the old rule added really would flip the answer (max over windows adds piano).
    from keras_inst.runtime.loader import load_artifact

    tail = np.zeros((1, 16000), np.float32)
    tail[0, :1600] = x[24000:]
    assert load_artifact(run_dir).predict(tail)[0][CLASSES.index("piano")] > 0.5
    # A tail of at least half a window is still analysed: 2.1 s -> windows at 0 and 1.5 s.
    sf.write(wav, toy_audio(np.random.default_rng(4), "noise", 33600), 16000)
    assert P.main([str(wav), "--model", str(run_dir), "--hop", "1.5", "--format", "json", "--output", str(out)]) == 0
    assert json.loads(out.read_text())["files"][0]["windows"] == 2


def test_options_the_model_form_would_ignore_are_refused(toy, audio_dir, tmp_path, capsys):
    run_dir, export_dir = toy
    wav = str(audio_dir / "tone_8k_mono.wav")
    for model in (run_dir, run_dir / "model.keras", export_dir / "model_float32.tflite", export_dir / "saved_model"):
        assert P.main([wav, "--model", str(model), "--variant", "tflite_int8"]) == 2, model
        err = capsys.readouterr().err
        assert f"--variant tflite_int8 picks an artifact of an export directory (a folder with export.json); {model} is not one" in err
    assert P.main([wav, "--model", str(export_dir), "--sample-rate", "22050"]) == 2
    assert "--sample-rate applies to a bare .tflite file" in capsys.readouterr().err


def test_ctrl_c_keeps_what_was_analysed(toy, audio_dir, tmp_path, monkeypatch, capsys):
    """KeyboardInterrupt during the second file: exit 130, no traceback, the first file's result
    written and marked as partial."""
    real = P.analyse_file
    calls = []

    def interrupted_on_second(*a, **k):
        calls.append(a[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(P, "analyse_file", interrupted_on_second)
    files = [str(audio_dir / n) for n in ("tone_8k_mono.wav", "noise_22k_stereo.flac", "sub/noise_48k_mono.mp3")]
    out = tmp_path / "partial.json"
    assert P.main([*files, "--model", str(toy[1]), "--format", "json", "--output", str(out), "--no-progress"]) == 130
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True and doc["files_found"] == 3
    assert [Path(r["path"]).name for r in doc["files"]] == ["tone_8k_mono.wav"]
    err = capsys.readouterr().err
    assert "interrupted after 1 of 3 files" in err and "Traceback" not in err
    calls.clear()
    assert P.main([*files, "--model", str(toy[1]), "--plot", str(tmp_path / "p.png")]) == 130
    cap = capsys.readouterr()
    assert "interrupted: partial results, 1 of 3 files" in cap.out and "no plot was drawn" in cap.err
    assert not (tmp_path / "p.png").exists()


def test_bad_inputs_exit_2_with_the_reason(toy, audio_dir, tmp_path, capsys):
    export_dir = str(toy[1])
    missing = tmp_path / "missing.wav"
    assert P.main([str(audio_dir), str(missing), "--model", export_dir]) == 2
    assert capsys.readouterr().err == f"error: {missing} does not exist\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert P.main([str(empty), "--model", export_dir]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no audio files found in {empty} (looked for .aif, .aifc, .aiff, .au, .caf, .flac, .mp3,")
    assert "the folders hold no files" in err
    (empty / "notes.txt").write_text("x")
    (empty / "cover.jpg").write_bytes(b"x")
    assert P.main([str(empty), "--model", export_dir]) == 2
    err = capsys.readouterr().err
    assert f"no audio files found in {empty}" in err and "2 other files skipped: cover.jpg (not an audio file extension (.jpg))" in err
    # An empty folder beside real input is a note, not an error.
    assert P.main([str(empty), str(audio_dir / "tone_8k_mono.wav"), "--model", export_dir]) == 0
    err = capsys.readouterr().err
    assert f"note: no audio files found in {empty}" in err and "analysed 1 of 1 file (" in err


def test_a_text_file_named_mp3_is_reported_as_unreadable(toy, audio_dir, tmp_path, capsys):
    fake = tmp_path / "song.mp3"
    fake.write_text("this is not audio\n" * 50)
    assert P.main([str(fake), str(audio_dir / "tone_8k_mono.wav"), "--model", str(toy[1])]) == 0
    err = capsys.readouterr().err
    assert f"error: {fake}: not a readable audio file (" in err and "does not exist" not in err
    assert "analysed 1 of 2 files" in err and "1 unreadable: song.mp3" in err


def test_plot_and_table_say_1_window_and_1_timeline(toy, audio_dir, tmp_path, capsys):
    assert P.main([str(audio_dir / "sub" / "deeper" / "short_tone.wav"), "--model", str(toy[1]),
                   "--plot", str(tmp_path / "new" / "t.png")]) == 0
    cap = capsys.readouterr()
    assert "[0.5 s, 1 window]" in cap.out and "plotted 1 timeline into" in cap.err and "analysed 1 of 1 file (" in cap.err
    assert (tmp_path / "new" / "t.png").is_file()


# ------------------------------------------------------------------------------------------------
# The default answer: presence (which classes play, and when)


@pytest.fixture(scope="module")
def part_time(tmp_path_factory):
    """30 s: tone, noise from 10 to 14 s, tone again. Windows of 1 s every 0.5 s: 59; 7 lie in
    the noise entirely (starts 10.0 .. 13.0), a few more straddle its edges."""
    path = tmp_path_factory.mktemp("part") / "part_time.wav"
    rng = np.random.default_rng(11)
    x = np.concatenate([toy_audio(rng, "tone", 160000), toy_audio(rng, "noise", 64000), toy_audio(rng, "tone", 256000)])
    sf.write(path, x, 16000)
    return path


def expected_segments(timeline: list[dict], cls: str, threshold: float = 0.5) -> list[list[float]]:
    """Runs of consecutive windows with ``cls`` >= threshold, window start to window end."""
    out, last = [], -2
    for i, w in enumerate(timeline):
        if w["probabilities"][cls] >= threshold:
            if i == last + 1:
                out[-1][1] = w["end"]
            else:
                out.append([w["start"], w["end"]])
            last = i
    return out


def test_presence_finds_the_part_time_class_the_mean_misses(toy, part_time, tmp_path):
    from keras_inst.runtime.presence import DEFAULT_SOURCE

    docs = {}
    for agg in ("mean", "presence"):
        out = tmp_path / f"{agg}.json"
        assert P.main([str(part_time), "--model", str(toy[0]), "--aggregate", agg, "--threshold", "0.5", "--format", "json",
                       "--timeline", "--output", str(out)]) == 0
        docs[agg] = json.loads(out.read_text())
    mean, pres = docs["mean"]["files"][0], docs["presence"]["files"][0]
    assert "drums" not in mean["classes"] and mean["probabilities"]["drums"] < 0.5  # averaged away
    assert pres["classes"] == ["percussion", "key", "drums", "piano"]
    assert pres["probabilities"] == mean["probabilities"]  # the window mean, as before
    drums = pres["segments"]["drums"]
    assert drums == expected_segments(pres["timeline"], "drums") and len(drums) == 1
    assert 9.0 <= drums[0][0] <= 10.0 and 14.0 <= drums[0][1] <= 15.0  # the noise: 10-14 s
    active = sum(w["probabilities"]["drums"] >= 0.5 for w in pres["timeline"])
    assert 7 <= active <= 11 and pres["active_share"]["drums"] == round(active / 59, 4)
    assert pres["segments"]["percussion"] == drums  # the family follows its instrument per window
    assert pres["active_share"]["violin"] == 0.0 and pres["segments"]["violin"] == []
    doc = docs["presence"]
    assert doc["aggregate"] == "presence" and doc["presence_source"] == DEFAULT_SOURCE
    assert doc["presence_rule"]["min_windows"]["drums"] == 2 and "presence_rule" not in docs["mean"]


def with_rule(run_dir: Path, dest: Path, rule: object) -> Path:
    """A copy of the toy run whose report.json also holds ``rule`` as its presence rule."""
    shutil.copytree(run_dir, dest)
    report = json.loads((dest / "report.json").read_text())
    (dest / "report.json").write_text(json.dumps(report | {"presence_rule": rule}))
    return dest


def test_the_runs_calibrated_rule_decides(toy, part_time, tmp_path, capsys):
    from keras_inst.runtime.presence import PresenceRule

    base = {c: 2 for c in CLASSES}
    out = tmp_path / "r.json"
    for k, want in ((12, ["key", "piano"]), (3, ["percussion", "key", "drums", "piano"])):
        rule = PresenceRule(base | {"drums": k, "percussion": k}, {c: 1.0 for c in CLASSES}, f"calibrated, k={k}")
        run = with_rule(toy[0], tmp_path / f"run_k{k}", rule.to_json())
        assert P.main([str(part_time), "--model", str(run), "--threshold", "0.5", "--format", "json", "--output", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["files"][0]["classes"] == want, k  # 7..11 active drum windows: below 12, above 3
        assert doc["presence_source"] == f"calibrated, k={k} ({run / 'report.json'})"
    bad = with_rule(toy[0], tmp_path / "run_bad", {"min_windows": {"drums": 2}, "min_share": {"drums": 1.0}})
    assert P.main([str(part_time), "--model", str(bad)]) == 2
    assert f"error: {bad / 'report.json'}: 'presence_rule' must be an object" in capsys.readouterr().err


def test_presence_table_and_csv(toy, part_time, audio_dir, tmp_path, capsys):
    files = [str(part_time), str(audio_dir / "tone_8k_mono.wav")]
    assert P.main([*files, "--model", str(toy[0]), "--threshold", "0.5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("aggregate presence") and out[1].startswith("presence rule: default: active in >= 2 windows")
    assert out[2].startswith(f"{part_time}  [30.0 s, 59 windows]  percussion ") and ", drums " in out[2]
    assert [line.split(":")[0] for line in out[3:7]] == ["    percussion", "    key", "    drums", "    piano"]
    assert out[7] == f"{audio_dir / 'tone_8k_mono.wav'}  [3.0 s, 5 windows]  key 100%, piano 100%"
    assert out[8:] == ["    key: 0.0-3.0", "    piano: 0.0-3.0"]
    csv_out = tmp_path / "p.csv"
    assert P.main([*files, "--model", str(toy[0]), "--threshold", "0.5", "--format", "csv", "--output", str(csv_out)]) == 0
    rows = list(csv.DictReader(csv_out.open()))
    assert list(rows[0])[-5:] == ["classes", "class", "present", "active_share", "segments"]
    json_out = tmp_path / "p.json"
    assert P.main([*files, "--model", str(toy[0]), "--threshold", "0.5", "--format", "json", "--output", str(json_out)]) == 0
    doc = by_name(json.loads(json_out.read_text()))
    for r in (r for r in rows if r["row"] == "class"):
        res = doc[Path(r["path"]).name]
        segs = res["segments"][r["class"]]
        assert r["segments"] == ";".join(f"{a:.1f}-{b:.1f}" for a, b in segs) and segs
        assert (float(r["start"]), float(r["end"])) == (segs[0][0], segs[-1][1])
        assert float(r["active_share"]) == res["active_share"][r["class"]] and r["present"] == str(int(r["class"] in res["classes"]))
    named = {(Path(r["path"]).name, r["class"]) for r in rows if r["row"] == "class"}
    assert named == {(n, c) for n, res in doc.items() for c in CLASSES if res["segments"][c]}
    assert [r["classes"] for r in rows if r["row"] == "file"] == ["percussion;key;drums;piano", "key;piano"]
