"""Embedded corpus renderer: Slakh tables and layout, normalised stems, determinism, resume, drum
parts and range fitting of arranged parts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from test_ensembles import plan_classes

from keras_inst.corpus.plans import plan_corpus
from keras_inst.corpus.render import (
    TARGET_LUFS,
    TARGET_PEAK_DB,
    render_corpus,
    slakh_inst_class,
    slakh_program_name,
)
from keras_inst.corpus.synth import integrated_loudness

SR = 16000
SECONDS = 4.0  # keeps the rendered songs (and the tests) short


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rendered") / "c"
    rep = render_corpus(out, songs=3, seed=0, workers=1, progress=False, max_seconds=SECONDS)
    assert (rep.songs, rep.rendered, rep.reused) == (3, 3, 0)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ pure parts


def test_slakh_tables_match_fixture(fixtures_dir):
    table = json.loads((fixtures_dir / "slakh/metadata/midi_inst_values/general_midi_inst_0based.json").read_text())
    assert len(table) == 129
    for key, entry in table.items():
        assert slakh_inst_class(int(key)) == entry["class"], key
        assert slakh_program_name(int(key)) == entry["name"], key
    with pytest.raises(ValueError, match="0..128"):
        slakh_inst_class(129)


# ------------------------------------------------------------------ the rendered corpus


def test_layout_matches_slakh(corpus, fixtures_dir):
    real = yaml.safe_load((fixtures_dir / "slakh/slakh2100_flac_redux/train/Track00001/metadata.yaml").read_text())
    real_stem_keys = set(real["stems"]["S00"])
    desc = json.loads((corpus / "corpus.json").read_text())
    assert desc["complete"] is True and desc["songs"] == 3 and desc["seed"] == 0 and desc["sample_rate"] == SR
    assert (corpus / "README.txt").is_file()
    assert sorted(p.name for p in corpus.iterdir() if p.is_dir()) == ["Track00001", "Track00002", "Track00003"]
    for track in sorted(corpus.glob("Track*")):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        assert set(meta) == set(real) | {"keras_inst"}
        assert (meta["audio_dir"], meta["midi_dir"], meta["normalized"]) == ("stems", "MIDI", True)
        assert len(meta["UUID"]) == 32 and int(meta["UUID"], 16) >= 0
        assert (track / "all_src.mid").is_file() and (track / "mix.flac").is_file()
        assert sorted(p.stem for p in (track / "stems").iterdir()) == sorted(meta["stems"])
        assert sorted(p.stem for p in (track / "MIDI").iterdir()) == sorted(meta["stems"])
        for sid, st in meta["stems"].items():
            assert set(st) == real_stem_keys
            assert st["audio_rendered"] is True
            assert st["inst_class"] == slakh_inst_class(st["program_num"])
            assert st["midi_program_name"] == slakh_program_name(st["program_num"])
            assert st["is_drum"] == (st["program_num"] == 128)
            info = sf.info(str(track / "stems" / f"{sid}.flac"))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (SR, 1, "FLAC", "PCM_16")


def test_mix_is_sum_of_stems_and_stems_are_normalised(corpus):
    for track in sorted(corpus.glob("Track*")):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        mix, sr = sf.read(str(track / "mix.flac"), dtype="int16")
        stems = {s: sf.read(str(track / "stems" / f"{s}.flac"), dtype="int16")[0] for s in meta["stems"]}
        assert np.array_equal(mix.astype(np.int32), np.sum([x.astype(np.int32) for x in stems.values()], axis=0))
        peak = 10 ** (TARGET_PEAK_DB / 20) + 1e-3
        assert np.max(np.abs(mix)) / 32768 <= peak and 0 < meta["overall_gain"] <= 1.0
        gain_db = 20 * np.log10(meta["overall_gain"])
        for sid, x in stems.items():
            st = meta["stems"][sid]
            level = meta["keras_inst"]["stems"][sid]["level_db"]
            assert st["integrated_loudness"] == pytest.approx(TARGET_LUFS + level, abs=0.05)
            y = x.astype(np.float64) / 32768
            assert integrated_loudness(y, sr) == pytest.approx(st["integrated_loudness"] + gain_db, abs=0.3)
            assert 20 * np.log10(np.sqrt(np.mean(y**2))) > -40.0, f"{track.name}/{sid} inaudible"
            assert np.max(np.abs(y)) <= peak


def test_drums_stem_and_reader_classes(corpus):
    from keras_inst.data.datasets import read_dataset

    plans = plan_corpus(3, 0)
    metas = [yaml.safe_load((corpus / p.name / "metadata.yaml").read_text()) for p in plans]
    drums = [st for m in metas for st in m["stems"].values() if st["is_drum"]]
    assert drums and all(st["program_num"] == 128 and st["inst_class"] == "Drums" for st in drums)
    songs, report = read_dataset("rendered", corpus)
    assert report.counts == {}
    assert [s.song_id for s in songs] == [p.name for p in plans]
    for song, plan, meta in zip(songs, plans, metas, strict=True):
        assert song.dataset == "rendered" and song.mix_path is not None
        assert song.classes == plan_classes(plan)  # every planned stem made it into the audio
        assert song.artist == f"midi:{meta['UUID']}"


def test_render_is_deterministic_across_workers_and_seeds(corpus, tmp_path):
    again = tmp_path / "again"
    render_corpus(again, songs=3, seed=0, workers=2, progress=False, max_seconds=SECONDS)
    assert _files(again) == _files(corpus)
    other = tmp_path / "other"
    render_corpus(other, songs=1, seed=1, workers=1, progress=False, max_seconds=SECONDS)
    assert (other / "Track00001/mix.flac").read_bytes() != (corpus / "Track00001/mix.flac").read_bytes()


def test_resume_after_a_killed_render_and_idempotence(corpus, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(corpus, out)
    shutil.rmtree(out / "Track00002")  # as if killed while rendering track 2
    (out / ".tmp-Track00002-123").mkdir()  # its half-written temp folder
    desc = json.loads((out / "corpus.json").read_text())
    (out / "corpus.json").write_text(json.dumps({**desc, "complete": False}))
    rep = render_corpus(out, songs=3, seed=0, workers=1, progress=False, max_seconds=SECONDS)
    assert (rep.rendered, rep.reused) == (1, 2)
    assert _files(out) == _files(corpus)
    rep = render_corpus(out, songs=3, seed=0, workers=1, progress=False, max_seconds=SECONDS)
    assert (rep.rendered, rep.reused) == (0, 3) and rep.seconds < 5.0


def test_parameter_mismatch_is_refused(corpus, tmp_path):
    with pytest.raises(ValueError, match="seed"):
        render_corpus(corpus, songs=3, seed=1, workers=1, progress=False, max_seconds=SECONDS)
    with pytest.raises(ValueError, match="max_seconds"):
        render_corpus(corpus, songs=3, seed=0, workers=1, progress=False, max_seconds=SECONDS + 1)
    with pytest.raises(ValueError, match="holds 3 songs"):
        render_corpus(corpus, songs=2, seed=0, workers=1, progress=False, max_seconds=SECONDS)
    (tmp_path / "slakh" / "Track00001").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a rendered corpus"):
        render_corpus(tmp_path / "slakh", songs=1, seed=0, progress=False, max_seconds=SECONDS)
    with pytest.raises(ValueError, match="soundfont"):
        render_corpus(tmp_path / "x", songs=1, seed=0, soundfont=str(tmp_path / "none.sf2"), progress=False)


def test_cli_reports_errors(corpus, capsys):
    from keras_inst.data.cli import main

    assert main(["render", "--out", str(corpus), "--songs", "3", "--seed", "5"]) == 2
    assert "other parameters" in capsys.readouterr().err


# ------------------------------------------------------------------ partial sample sets


def test_parts_no_selected_source_plays_are_left_out_and_reported(tmp_path, monkeypatch):
    # A partial General-MIDI set (freepats lacks e.g. viola, program 41) rendering alone: a part
    # it cannot play is left out, listed in metadata.yaml and counted in the report; a song left
    # with no part is a clear error naming the programs.
    import dataclasses

    from keras_inst.corpus import render as R
    from keras_inst.corpus import sources as S

    piano_and_drums = dataclasses.replace(S.get("timgm6mb"), programs=frozenset({0, S.DRUMS}))
    found = S.discover(registry=(piano_and_drums,), complete=False)
    monkeypatch.setattr(R, "_discover", lambda *a: found)
    rep = render_corpus(tmp_path / "c", songs=4, seed=0, workers=1, progress=False, max_seconds=SECONDS)
    assert rep.unplayable and all(p not in (0, S.DRUMS) for p in rep.unplayable)
    # Track00001 (a string trio, 40/42/1 with no piano part here) has nothing playable: left out
    assert rep.failed == ("Track00001: no audible stem from mozart/k80/movement3.mxl (GM programs [40, 42, 1]: no selected source plays them)",)
    assert not (tmp_path / "c" / "Track00001").exists() and rep.rendered == 3
    assert json.loads((tmp_path / "c" / "corpus.json").read_text())["failed_tracks"] == list(rep.failed)
    left_out = []
    for meta_file in sorted((tmp_path / "c").glob("Track*/metadata.yaml")):
        meta = yaml.safe_load(meta_file.read_text())
        assert all(s["program_num"] == 0 or s["is_drum"] for s in meta["stems"].values())
        left_out += meta["keras_inst"].get("unplayable_programs", [])
    assert sorted(left_out) == sorted(p for p, n in rep.unplayable.items() for _ in range(n))

    from keras_inst.corpus.track import render_track

    nothing = S.discover(registry=(dataclasses.replace(piano_and_drums, programs=frozenset({127})),), complete=False)
    plan = plan_corpus(1, 0)[0]
    with pytest.raises(ValueError, match=r"Track00001: no audible stem .*GM programs \[.*\]: no selected source plays them"):
        render_track(plan, tmp_path, {"sample_rate": SR, "max_seconds": SECONDS, "seed": 0}, nothing)
