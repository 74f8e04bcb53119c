"""MTG-Jamendo reader on the real instrument TSV + split-0 (CRLF, extra tag columns), the
mirdata sample (LF, one real MP3) and small trees with rows copied from the real TSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.base import ReaderReport
from keras_inst.data.datasets.mtg_jamendo import (
    find_tsv,
    read,
    read_tags,
    tag_counts,
    tag_vocabulary,
)

ORCHESTRAL = "track_0006253"  # 8 tags in 8 extra columns


def _mp3(path: Path, seconds: float = 0.1, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), sr, format="MP3")


def _rows(fixtures: Path, ids: list[str]) -> str:
    """Header and the named rows of the real TSV, byte for byte (CRLF kept)."""
    text = (
        (fixtures / "mtg_jamendo" / "metadata" / "autotagging_instrument.tsv").read_bytes().decode()
    )
    lines = text.split("\r\n")
    return "\r\n".join([lines[0]] + [ln for ln in lines if ln.split("\t")[0] in ids]) + "\r\n"


def test_real_tsv_crlf_and_extra_tag_columns(fixtures_dir: Path) -> None:
    tsv = fixtures_dir / "mtg_jamendo" / "metadata" / "autotagging_instrument.tsv"
    assert b"\r\n" in tsv.read_bytes()[:200]
    tracks = read_tags(tsv)
    assert len(tracks) == 25135
    vocab = tag_vocabulary(tracks)
    assert len(vocab) == 41 and all(t.startswith("instrument---") and "\r" not in t for t in vocab)
    counts = tag_counts(tracks)
    assert list(counts.items())[:3] == [
        ("instrument---piano", 7750),
        ("instrument---synthesizer", 7496),
        ("instrument---drums", 6120),
    ]
    first = tracks[0]
    assert (
        first.track_id,
        first.artist_id,
        first.album_id,
        first.path,
        first.duration,
        first.tags,
    ) == (
        "track_0000382",
        "artist_000020",
        "album_000046",
        "82/382.mp3",
        211.1,
        ("instrument---voice",),
    )
    orch = next(t for t in tracks if t.track_id == ORCHESTRAL)
    assert orch.tags == tuple(
        f"instrument---{t}"
        for t in (
            "cello",
            "clarinet",
            "doublebass",
            "horn",
            "keyboard",
            "trombone",
            "trumpet",
            "violin",
        )
    )


def test_metadata_only_read_with_official_splits(fixtures_dir: Path) -> None:
    root = fixtures_dir / "mtg_jamendo" / "metadata"
    report = ReaderReport("mtg_jamendo")
    songs = read(root, report=report, require_audio=False)
    assert len(songs) == 25135
    assert report.counts == {"missing_audio_dir": 1}  # no unknown instrument tag
    splits = [s.official_split for s in songs]
    assert (
        splits.count("train"),
        splits.count("validation"),
        splits.count("test"),
        splits.count(None),
    ) == (
        14395,
        5466,
        5115,
        159,
    )
    by_id = {s.song_id: s for s in songs}
    orch = by_id[ORCHESTRAL]
    assert orch.classes == {"bowed_string", "violin", "woodwind", "brass", "key"}
    assert len(orch.stems) == 1 and len(orch.stems[0].labels) == 8
    assert (orch.artist, orch.album) == ("artist_000811", "album_000960")
    assert by_id["track_0000382"].classes == {"voice"}
    assert by_id["track_0004887"].official_split == "test"
    # Without audio and require_audio=True: nothing usable, one problem.
    songs, report = read_dataset("mtg_jamendo", root)
    assert songs == [] and report.counts == {"missing_audio_dir": 1}


def test_mirdata_sample_lf_moodtheme_and_real_mp3(fixtures_dir: Path) -> None:
    root = fixtures_dir / "mtg_jamendo" / "mirdata_sample"
    assert find_tsv(root).name == "autotagging_moodtheme.tsv"
    songs, report = read_dataset("mtg_jamendo", root)
    assert [s.song_id for s in songs] == ["track_0000948"]
    s = songs[0]
    assert s.stems[0].path == root / "audios" / "48" / "948.mp3" == s.mix_path
    assert s.stems[0].labels == ("mood/theme---background",)
    assert s.classes == frozenset()  # mood tags name no instrument (and are not unknown labels)
    assert s.official_split == "train"
    assert report.of_kind("split_mismatch") == [
        (
            str(root / "data" / "autotagging_moodtheme.tsv"),
            "2 split-file tracks are not in the TSV, e.g. ['track_0003346', 'track_0003524']",
        )
    ]
    assert report.counts == {"split_mismatch": 1}


def test_audio_tree_low_mp3_missing_and_empty(tmp_path: Path, fixtures_dir: Path) -> None:
    ids = ["track_0000382", "track_0000383", "track_0000384", "track_0000386", ORCHESTRAL]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "autotagging_instrument.tsv").write_bytes(
        _rows(fixtures_dir, ids).encode()
    )
    audio = tmp_path / "audio"
    _mp3(audio / "82" / "382.mp3")
    _mp3(audio / "83" / "383.low.mp3")  # low-quality release naming
    (audio / "84").mkdir()
    (audio / "84" / "384.mp3").write_bytes(b"")
    _mp3(audio / "53" / "6253.mp3")
    report = ReaderReport("mtg_jamendo")
    songs = read(tmp_path, report=report)
    assert [s.song_id for s in songs] == ["track_0000382", "track_0000383", ORCHESTRAL]
    assert songs[1].stems[0].path == audio / "83" / "383.low.mp3"
    assert all(s.official_split is None for s in songs)  # no split files here
    assert report.of_kind("empty_file") == [
        (str(audio / "84" / "384.mp3"), "track_0000384 audio is empty")
    ]
    assert report.of_kind("missing_file") == [
        (str(audio / "86" / "386.mp3"), "track_0000386 audio is missing")
    ]
    assert report.counts == {"empty_file": 1, "missing_file": 1}


def test_explicit_paths_and_split_dir(tmp_path: Path, fixtures_dir: Path) -> None:
    ids = ["track_0000382", "track_0004887", "track_0004888"]
    tsv = tmp_path / "meta" / "autotagging_instrument.tsv"
    tsv.parent.mkdir()
    tsv.write_bytes(_rows(fixtures_dir, ids).encode())
    split_dir = tmp_path / "mysplit"
    split_dir.mkdir()
    for split, member in (
        ("train", "track_0000382"),
        ("validation", "track_0004888"),
        ("test", "track_0004887"),
    ):
        (split_dir / f"autotagging_instrument-{split}.tsv").write_bytes(
            _rows(fixtures_dir, [member]).encode()
        )
    for tid in ids:
        n = tid.split("_")[1].lstrip("0")
        _mp3(tmp_path / "mp3s" / n[-2:] / f"{n}.mp3")
    report = ReaderReport("mtg_jamendo")
    songs = read(tmp_path, report=report, tsv=tsv, audio_dir=tmp_path / "mp3s", split_dir=split_dir)
    assert [(s.song_id, s.official_split) for s in songs] == [
        ("track_0000382", "train"),
        ("track_0004887", "test"),
        ("track_0004888", "validation"),
    ]
    assert songs[1].classes == {"key", "piano"} and songs[2].classes == {"plucked_string"}
    assert report.problems == []
    with pytest.raises(ValueError, match="split files missing"):
        read(tmp_path, report=report, tsv=tsv, split_dir=tmp_path)


def test_malformed_rows_and_header(tmp_path: Path) -> None:
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
    tsv = tmp_path / "autotagging.tsv"
    tsv.write_text(
        header + "track_1\ta\tb\t01/1.mp3\t12.5\tgenre---rock\tinstrument---guitar\n"
        "track_2\ta\tb\t02/2.mp3\tlong\tgenre---pop\n"
    )
    with pytest.raises(ValueError, match=r"autotagging.tsv:3: DURATION 'long' is not a number"):
        read_tags(tsv)
    report = ReaderReport("mtg_jamendo")
    tracks = read_tags(tsv, report=report)
    assert [t.tags for t in tracks] == [("genre---rock", "instrument---guitar")]
    assert report.of_kind("malformed_row") == [(f"{tsv}:3", "DURATION 'long' is not a number")]
    (tmp_path / "autotagging_genre.tsv").write_text("TRACK_ID\tPATH\n")
    with pytest.raises(ValueError, match="header must be"):
        read_tags(tmp_path / "autotagging_genre.tsv")
    assert find_tsv(tmp_path) == tsv  # autotagging.tsv preferred over autotagging_genre.tsv


def test_unknown_instrument_tag_reported_once(tmp_path: Path) -> None:
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
    rows = "".join(
        f"track_{i}\ta\tb\t0{i}/{i}.mp3\t1.0\tinstrument---nosuchthing\tinstrument---piano\n"
        for i in range(3)
    )
    (tmp_path / "autotagging.tsv").write_text(header + rows)
    report = ReaderReport("mtg_jamendo")
    songs = read(tmp_path, report=report, require_audio=False)
    assert [s.classes for s in songs] == [frozenset({"key", "piano"})] * 3
    assert report.of_kind("unknown_label") == [
        (str(tmp_path / "autotagging.tsv"), "unknown label 'instrument---nosuchthing'")
    ]


def test_partial_download_audio_found_from_any_track(tmp_path: Path) -> None:
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
    rows = "".join(
        f"track_{i}\ta{i}\tb\t{i % 100:02d}/{i}.mp3\t1.0\tinstrument---piano\n"
        for i in range(100, 160)
    )
    (tmp_path / "autotagging.tsv").write_text(header + rows)
    _mp3(tmp_path / "audio" / "59" / "159.mp3")  # only the last track's folder was downloaded
    report = ReaderReport("mtg_jamendo")
    songs = read(tmp_path, report=report)
    assert [s.song_id for s in songs] == ["track_159"]
    assert report.counts == {"missing_file": 59}
