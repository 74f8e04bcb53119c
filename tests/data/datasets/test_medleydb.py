"""MedleyDB reader on the real metadata (all 330 songs) and on small trees with real metadata
files and generated audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.base import ReaderReport
from keras_inst.data.datasets.medleydb import read

NIGHT_OWL = "AClassicEducation_NightOwl"
BEETHOVEN = "MusicDelta_Beethoven"
TAKE_ON_ME = "AHa_TakeOnMe"


def _wav(path: Path, seconds: float = 0.05, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), sr)


def _song_tree(
    root: Path,
    fixtures: Path,
    song: str,
    *,
    skip: tuple[int, ...] = (),
    meta_in_song_dir: bool = True,
) -> Path:
    """Audio/<song>/ with the real metadata and a short WAV for every stem except ``skip``."""
    meta = fixtures / "medleydb" / "Metadata" / f"{song}_METADATA.yaml"
    song_dir = root / "Audio" / song
    song_dir.mkdir(parents=True)
    if meta_in_song_dir:
        shutil.copy(meta, song_dir / meta.name)
    else:
        (root / "Metadata").mkdir(exist_ok=True)
        shutil.copy(meta, root / "Metadata" / meta.name)
    stems = yaml.safe_load(meta.read_text())["stems"]
    for sid, s in stems.items():
        if int(sid[1:]) not in skip:
            _wav(song_dir / f"{song}_STEMS" / s["filename"])
    _wav(song_dir / f"{song}_MIX.wav")
    return song_dir


def test_all_fixture_metadata_maps_without_unknown_labels(fixtures_dir: Path) -> None:
    report = ReaderReport("medleydb")
    songs = read(fixtures_dir / "medleydb", report=report, require_audio=False)
    assert len(songs) == 330
    assert sum(len(s.stems) for s in songs) == 2014
    assert report.of_kind("unknown_label") == []
    # No audio in the fixture: one entry for the whole dataset, not one per stem.
    assert report.counts == {"missing_audio_dir": 1}
    by_id = {s.song_id: s for s in songs}
    assert by_id[NIGHT_OWL].classes == {
        "voice",
        "singer",
        "percussion",
        "drums",
        "plucked_string",
        "electric_guitar",
        "electric_bass",
        "synth",
    }
    assert by_id[BEETHOVEN].classes == {"bowed_string", "violin", "woodwind", "brass", "percussion"}
    assert by_id[TAKE_ON_ME].classes == {
        "synth",
        "voice",
        "singer",
        "plucked_string",
        "acoustic_guitar",
        "percussion",
        "drums",
    }
    # List-valued instrument: both labels kept, classes united.
    s02 = by_id[TAKE_ON_ME].stems[1]
    assert s02.stem_id == f"{TAKE_ON_ME}/S02"
    assert s02.labels == ("male singer", "vocalists")
    assert s02.classes == {"voice", "singer"}
    # 'fx/processed sound' names no instrument: an empty class set, not an unknown label.
    assert by_id[NIGHT_OWL].stems[11].labels == ("fx/processed sound",)
    assert by_id[NIGHT_OWL].stems[11].classes == frozenset()
    assert by_id[NIGHT_OWL].artist == "A Classic Education"
    assert by_id[NIGHT_OWL].album == "Shaking Through Volume 2"
    assert by_id[TAKE_ON_ME].album is None  # metadata says 'None'
    assert by_id[BEETHOVEN].album is None  # metadata says ''
    assert all(s.official_split is None and s.mix_path is None for s in songs)


def test_require_audio_without_audio_gives_no_songs(fixtures_dir: Path) -> None:
    songs, report = read_dataset("medleydb", fixtures_dir / "medleydb")
    assert songs == []
    assert report.counts == {"missing_audio_dir": 1}


def test_song_folder_layout_with_audio(tmp_path: Path, fixtures_dir: Path) -> None:
    _song_tree(tmp_path, fixtures_dir, NIGHT_OWL)
    _song_tree(tmp_path, fixtures_dir, BEETHOVEN, skip=(3, 18))
    songs, report = read_dataset("medleydb", tmp_path)
    assert [s.song_id for s in songs] == [NIGHT_OWL, BEETHOVEN]  # sorted
    owl, beet = songs
    assert len(owl.stems) == 13 and len(beet.stems) == 16
    assert beet.classes == {"bowed_string", "violin", "woodwind", "brass"}  # timpani S18 missing
    assert owl.mix_path == tmp_path / "Audio" / NIGHT_OWL / f"{NIGHT_OWL}_MIX.wav"
    assert (
        owl.stems[0].path
        == tmp_path / "Audio" / NIGHT_OWL / f"{NIGHT_OWL}_STEMS" / f"{NIGHT_OWL}_STEM_01.wav"
    )
    missing = report.of_kind("missing_file")
    assert [Path(f).name for f, _ in missing] == [
        f"{BEETHOVEN}_STEM_03.wav",
        f"{BEETHOVEN}_STEM_18.wav",
    ]
    assert "viola" in missing[0][1] and "timpani" in missing[1][1]
    assert report.counts == {"missing_file": 2}


def test_separate_metadata_folder_and_partial_download(tmp_path: Path, fixtures_dir: Path) -> None:
    _song_tree(tmp_path, fixtures_dir, NIGHT_OWL, meta_in_song_dir=False)
    shutil.copy(
        fixtures_dir / "medleydb" / "Metadata" / f"{TAKE_ON_ME}_METADATA.yaml",
        tmp_path / "Metadata",
    )
    report = ReaderReport("medleydb")
    songs = read(tmp_path, report=report)
    assert [s.song_id for s in songs] == [NIGHT_OWL]
    assert report.of_kind("missing_file") == [
        (str(tmp_path / "Audio" / TAKE_ON_ME), f"no audio folder for song {TAKE_ON_ME}")
    ]
    # Inspection mode keeps the song without audio, with its labels.
    report = ReaderReport("medleydb")
    songs = read(tmp_path, report=report, require_audio=False)
    assert [s.song_id for s in songs] == [NIGHT_OWL, TAKE_ON_ME]
    assert len(songs[1].stems) == 6 and songs[1].mix_path is None


def test_empty_files_and_songs_without_stems(tmp_path: Path, fixtures_dir: Path) -> None:
    owl = _song_tree(tmp_path, fixtures_dir, NIGHT_OWL)
    empty = owl / f"{NIGHT_OWL}_STEMS" / f"{NIGHT_OWL}_STEM_09.wav"
    empty.write_bytes(b"")
    _song_tree(tmp_path, fixtures_dir, TAKE_ON_ME, skip=(1, 2, 3, 4, 5, 6))
    report = ReaderReport("medleydb")
    songs = read(tmp_path, report=report)
    assert [s.song_id for s in songs] == [NIGHT_OWL]
    assert "synth" not in songs[0].classes  # the synthesizer stem S09 is empty
    assert report.of_kind("empty_file") == [(str(empty), "stem S09 (synthesizer) audio is empty")]
    assert report.counts == {"empty_file": 1, "missing_file": 6, "empty_song": 1}
    assert report.of_kind("empty_song")[0][0].endswith(f"{TAKE_ON_ME}_METADATA.yaml")


def test_unknown_label_is_reported_and_other_labels_kept(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    song_dir = _song_tree(tmp_path, fixtures_dir, TAKE_ON_ME)
    meta = song_dir / f"{TAKE_ON_ME}_METADATA.yaml"
    text = meta.read_text()
    # S02 is ['male singer', 'vocalists']; S01 becomes a label the taxonomy does not know.
    meta.write_text(text.replace("instrument: synthesizer", "instrument: theremin-ish", 1))
    report = ReaderReport("medleydb")
    songs = read(tmp_path, report=report)
    assert report.of_kind("unknown_label") == [(str(meta), "unknown label 'theremin-ish'")]
    s01 = songs[0].stems[0]
    assert s01.labels == ("theremin-ish",) and s01.classes == frozenset()
    meta.write_text(text.replace("- vocalists", "- theremin-ish", 1))
    report = ReaderReport("medleydb")
    s02 = read(tmp_path, report=report)[0].stems[1]
    assert s02.labels == ("male singer", "theremin-ish")
    assert s02.classes == {"voice", "singer"}
    assert len(report.of_kind("unknown_label")) == 1


def test_include_raw_replaces_multi_raw_stems(tmp_path: Path, fixtures_dir: Path) -> None:
    song_dir = _song_tree(tmp_path, fixtures_dir, NIGHT_OWL)
    raw = song_dir / f"{NIGHT_OWL}_RAW"
    _wav(raw / f"{NIGHT_OWL}_RAW_01_01.wav")
    _wav(raw / f"{NIGHT_OWL}_RAW_01_02.wav")
    _wav(raw / f"{NIGHT_OWL}_RAW_02_01.wav")  # drum set has 15 raw tracks: 14 missing
    report = ReaderReport("medleydb")
    songs = read(tmp_path, report=report, include_raw=True)
    ids = [s.stem_id for s in songs[0].stems]
    assert ids[:3] == [f"{NIGHT_OWL}/S01/R01", f"{NIGHT_OWL}/S01/R02", f"{NIGHT_OWL}/S02"]
    assert len(ids) == 14  # bass replaced by its 2 raw tracks; the rest kept
    assert songs[0].stems[0].labels == ("electric bass",)
    assert songs[0].stems[0].classes == {"electric_bass", "plucked_string"}
    # Stems with missing raw tracks fall back to themselves; the first missing one is named.
    assert [Path(f).name for f, _ in report.of_kind("missing_file")] == [
        f"{NIGHT_OWL}_RAW_{n}.wav" for n in ("02_02", "09_01", "10_01", "13_01")
    ]
    # Without any raw folder: one entry for the song, all stems kept.
    shutil.rmtree(raw)
    report = ReaderReport("medleydb")
    assert len(read(tmp_path, report=report, include_raw=True)[0].stems) == 13
    assert report.of_kind("missing_file") == [(str(raw), "raw-track folder missing; stems kept")]


def test_skip_bleed_and_broken_metadata(tmp_path: Path, fixtures_dir: Path) -> None:
    owl = _song_tree(tmp_path, fixtures_dir, NIGHT_OWL)
    meta = owl / f"{NIGHT_OWL}_METADATA.yaml"
    meta.write_text(meta.read_text().replace("has_bleed: 'no'", "has_bleed: 'yes'"))
    beet = _song_tree(tmp_path, fixtures_dir, BEETHOVEN)
    (beet / f"{BEETHOVEN}_METADATA.yaml").write_text("stems: [unclosed\n")
    report = ReaderReport("medleydb")
    assert [s.song_id for s in read(tmp_path, report=report)] == [NIGHT_OWL]  # bleed kept
    assert report.counts == {"unreadable_metadata": 1}
    report = ReaderReport("medleydb")
    assert read(tmp_path, report=report, skip_bleed=True) == []
    assert report.of_kind("skipped_bleed") == [(str(meta), "has_bleed: yes (skip_bleed=True)")]


def test_real_stem_audio_from_mirdata_sample(tmp_path: Path, fixtures_dir: Path) -> None:
    """The fixture's one real 2 s MedleyDB stem, placed where the full download has it."""
    _song_tree(tmp_path, fixtures_dir, NIGHT_OWL, skip=tuple(range(1, 14)))
    real = fixtures_dir / "medleydb" / "medleydb_pitch" / "audio" / f"{NIGHT_OWL}_STEM_08.wav"
    dest = tmp_path / "Audio" / NIGHT_OWL / f"{NIGHT_OWL}_STEMS" / real.name
    dest.parent.mkdir()
    shutil.copy(real, dest)
    songs, report = read_dataset("medleydb", tmp_path)
    assert [s.stem_id for s in songs[0].stems] == [f"{NIGHT_OWL}/S08"]
    assert songs[0].classes == {"voice", "singer"}
    assert report.counts == {"missing_file": 12}
    assert sf.info(str(songs[0].stems[0].path)).samplerate == 44100


@pytest.mark.parametrize("bad", ["", "[]"])
def test_metadata_without_stems_is_reported(tmp_path: Path, bad: str) -> None:
    (tmp_path / "Metadata").mkdir()
    meta = tmp_path / "Metadata" / "X_Y_METADATA.yaml"
    meta.write_text(f"artist: X\nstems: {bad}\n")
    report = ReaderReport("medleydb")
    assert read(tmp_path, report=report, require_audio=False) == []
    assert report.of_kind("bad_metadata") == [(str(meta), "no 'stems' mapping")]
