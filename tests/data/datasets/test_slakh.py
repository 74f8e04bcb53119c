"""Slakh reader on the BabySlakh and Slakh2100-redux fixtures and on split trees built from the
real metadata.yaml with generated audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.base import ReaderReport
from keras_inst.data.datasets.slakh import find_tracks, read

RENDERED = [
    f"S{i:02d}" for i in range(11) if i != 6
]  # S06 (program 103, plugin None) never rendered
TRACK1_CLASSES = {
    "plucked_string",
    "electric_guitar",
    "electric_bass",
    "percussion",
    "drums",
    "key",
    "piano",
    "voice",
    "woodwind",
}
# Track00001: program -> classes of each rendered stem (GM 30 distortion guitar, 128 drums,
# 1 bright piano, 33 finger bass, 52 choir aahs, 17 percussive organ, 26 jazz guitar, 22 harmonica).
TRACK1_STEMS = {
    "S00": ("program 30", {"plucked_string", "electric_guitar"}),
    "S01": ("program 128", {"percussion", "drums"}),
    "S02": ("program 1", {"key", "piano"}),
    "S03": ("program 33", {"plucked_string", "electric_bass"}),
    "S04": ("program 52", {"voice"}),
    "S05": ("program 17", {"key"}),
    "S07": ("program 26", {"plucked_string", "electric_guitar"}),
    "S08": ("program 30", {"plucked_string", "electric_guitar"}),
    "S09": ("program 22", {"woodwind"}),
    "S10": ("program 22", {"woodwind"}),
}


def _wav(path: Path, seconds: float = 0.05, sr: int = 8000, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.1 * np.sin(2 * np.pi * 330 * t), sr, format=fmt)


def _track(
    folder: Path, fixtures: Path, *, stems: list[str] = RENDERED, ext: str = ".flac"
) -> Path:
    """A track folder with the redux fixture's real metadata.yaml and generated stems."""
    folder.mkdir(parents=True)
    shutil.copy(
        fixtures / "slakh" / "slakh2100_flac_redux" / "train" / "Track00001" / "metadata.yaml",
        folder,
    )
    for sid in stems:
        _wav(folder / "stems" / f"{sid}{ext}")
    _wav(folder / f"mix{ext}")
    return folder


def _check_track1(song, ext: str) -> None:
    assert song.song_id == "Track00001"
    assert [st.stem_id for st in song.stems] == [f"Track00001/{s}" for s in RENDERED]
    for st in song.stems:
        sid = st.stem_id.split("/")[1]
        assert (st.labels[0], set(st.classes)) == TRACK1_STEMS[sid], sid
        assert st.path.suffix == ext and st.path.is_file()
    assert song.classes == TRACK1_CLASSES
    assert song.mix_path is not None and song.mix_path.name == f"mix{ext}"
    assert song.artist == "midi:1a81ae092884234f3264e2f45927f00a"
    assert song.album == "msd:TROOHTB128F931F9DF"


def test_babyslakh_audio_rendered_false_but_files_present(fixtures_dir: Path) -> None:
    root = fixtures_dir / "slakh" / "babyslakh_16k"
    songs, report = read_dataset("slakh", root)
    assert len(songs) == 1
    _check_track1(songs[0], ".wav")
    assert songs[0].official_split is None
    assert report.of_kind("unrendered_stem") == [
        (str(root / "Track00001" / "stems" / "S06.flac"), "stem S06 (program 103) was not rendered")
    ]
    # Track00007 of the sample has only its MIDI folder.
    assert report.of_kind("missing_file") == [
        (str(root / "Track00007" / "metadata.yaml"), "track Track00007 has no metadata.yaml")
    ]
    assert report.counts == {"unrendered_stem": 1, "missing_file": 1}


def test_redux_flac_with_split_folder(fixtures_dir: Path) -> None:
    root = fixtures_dir / "slakh" / "slakh2100_flac_redux"
    songs, report = read_dataset("slakh", root)
    assert len(songs) == 1
    _check_track1(songs[0], ".flac")
    assert songs[0].official_split == "train"
    assert report.counts == {"unrendered_stem": 1}
    # The split folder itself, and the track folder itself, as root.
    assert [
        (s.song_id, s.official_split) for s in read(root / "train", report=ReaderReport("slakh"))
    ] == [("Track00001", "train")]
    assert [
        (s.song_id, s.official_split)
        for s in read(root / "train" / "Track00001", report=ReaderReport("slakh"))
    ] == [("Track00001", "train")]


def test_original_layout_all_splits(tmp_path: Path, fixtures_dir: Path) -> None:
    for i, split in enumerate(["train", "train", "validation", "test", "omitted"]):
        _track(tmp_path / split / f"Track{i + 1:05d}", fixtures_dir)
    (tmp_path / "train" / "README.txt").write_text("not a track")
    songs, report = read_dataset("slakh", tmp_path)
    assert [(s.song_id, s.official_split) for s in songs] == [
        ("Track00001", "train"),
        ("Track00002", "train"),
        ("Track00003", "validation"),
        ("Track00004", "test"),
        ("Track00005", "omitted"),
    ]
    assert all(len(s.stems) == 10 and s.classes == TRACK1_CLASSES for s in songs)
    assert report.counts == {"unrendered_stem": 5}
    assert len(find_tracks(tmp_path)) == 5


def test_missing_empty_and_duplicate_tracks(tmp_path: Path, fixtures_dir: Path) -> None:
    t1 = _track(
        tmp_path / "train" / "Track00001",
        fixtures_dir,
        stems=[s for s in RENDERED if s != "S02"],
        ext=".wav",
    )
    (t1 / "stems" / "S03.wav").write_bytes(b"")
    _track(tmp_path / "test" / "Track00001", fixtures_dir)
    t2 = _track(tmp_path / "test" / "Track00002", fixtures_dir, stems=[])
    report = ReaderReport("slakh")
    songs = read(tmp_path, report=report)
    assert [s.song_id for s in songs] == ["Track00001"]
    assert songs[0].official_split == "train"
    # Piano S02 missing (its plugin is named, so it should exist) and bass S03 empty: skipped.
    assert songs[0].classes == TRACK1_CLASSES - {"piano", "electric_bass"}
    assert len(songs[0].stems) == 8
    assert report.of_kind("missing_file") == [
        (str(t1 / "stems" / "S02.flac"), "stem S02 (program 1) audio is missing")
    ] + [
        (
            str(t2 / "stems" / f"{s}.flac"),
            f"stem {s} (program {TRACK1_STEMS[s][0].split()[1]}) audio is missing",
        )
        for s in RENDERED
    ]
    assert report.of_kind("empty_file") == [
        (str(t1 / "stems" / "S03.wav"), "stem S03 (program 33) audio is empty")
    ]
    assert report.of_kind("duplicate_song") == [
        (str(tmp_path / "test" / "Track00001"), "track Track00001 also in train")
    ]
    assert report.of_kind("empty_song") == [
        (str(t2 / "metadata.yaml"), "track Track00002 has no usable stem")
    ]
    # Inspection mode keeps stems without audio (not the unrendered one).
    songs = read(tmp_path, report=ReaderReport("slakh"), require_audio=False)
    assert [len(s.stems) for s in songs] == [10, 10]


def test_drum_flag_unknown_program_and_rendered_name(tmp_path: Path, fixtures_dir: Path) -> None:
    t = _track(tmp_path / "Track00003", fixtures_dir, stems=["S00", "S01", "S02"])
    meta = t / "metadata.yaml"
    text = meta.read_text()
    # S00 becomes a drum kit although program_num says 30; S02 an out-of-range program.
    text = text.replace(
        "    is_drum: false\n    midi_program_name: Distortion Guitar",
        "    is_drum: true\n    midi_program_name: Distortion Guitar",
        1,
    )
    text = text.replace("program_num: 1\n", "program_num: 200\n", 1)
    meta.write_text(text)
    songs, report = read_dataset("rendered", tmp_path)
    assert songs[0].dataset == "rendered" and songs[0].official_split is None
    s00, s01, s02 = songs[0].stems
    assert s00.labels == ("program 128",) and s00.classes == {"percussion", "drums"}
    assert s02.labels == ("program 200",) and s02.classes == frozenset()
    assert report.of_kind("unknown_label") == [(str(meta), "unknown label 'program 200'")]
    assert len(report.of_kind("missing_file")) == 7  # S03..S10 rendered in metadata, not here


def test_problem_stems_are_skipped_and_reported(tmp_path: Path, fixtures_dir: Path) -> None:
    """slakh-utils' real problem_stems.json lists Track00357/S03 as white noise: with the file
    that stem is skipped (and counted), without it the track keeps every stem."""
    problems = fixtures_dir / "slakh" / "metadata" / "splits" / "problem_stems.json"
    root = tmp_path / "slakh2100_flac_redux"
    _track(root / "train" / "Track00357", fixtures_dir)
    _track(root / "train" / "Track00001", fixtures_dir)
    plain, report = read_dataset("slakh", root)
    assert [len(s.stems) for s in plain] == [len(RENDERED), len(RENDERED)]
    assert "problem_stem" not in report.counts
    songs, report = read_dataset("slakh", root, problem_stems=problems)
    by_id = {s.song_id: s for s in songs}
    assert [st.stem_id for st in by_id["Track00357"].stems] == [
        f"Track00357/{s}" for s in RENDERED if s != "S03"]
    assert len(by_id["Track00001"].stems) == len(RENDERED)  # not listed: untouched
    assert report.counts["problem_stem"] == 1
    ((file, message),) = report.of_kind("problem_stem")
    assert "white-noise" in message and Path(file).name.startswith("S03")
    assert Path(file).parent.parent.name == "Track00357"


def test_problem_stems_file_errors_name_the_file(tmp_path: Path, fixtures_dir: Path) -> None:
    root = tmp_path / "slakh"
    _track(root / "Track00001", fixtures_dir)
    bad = tmp_path / "problems.json"
    bad.write_text('{"Track00001": ["S00"]}')
    with pytest.raises(ValueError, match="problems.json"):
        read_dataset("slakh", root, problem_stems=bad)
    with pytest.raises(ValueError, match="missing.json"):
        read_dataset("slakh", root, problem_stems=tmp_path / "missing.json")
    with pytest.raises(ValueError, match="slakh dataset only"):
        read_dataset("medleydb", root, problem_stems=bad)
