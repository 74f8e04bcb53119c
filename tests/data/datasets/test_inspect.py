"""``python -m keras_inst.data inspect`` on every fixture folder and on trees with broken audio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.data.cli import main
from keras_inst.data.datasets.base import ReaderReport
from keras_inst.data.datasets.inspect import check_audio, read_for_inspection, summarize
from keras_inst.taxonomy import CLASSES, classes_for

FIXTURE_ROOTS = [
    ("medleydb", "medleydb", 330, 2014),
    ("mixing_secrets", "mixing_secrets", 258, 4529),
    ("slakh", "slakh/babyslakh_16k", 1, 10),
    ("slakh", "slakh/slakh2100_flac_redux", 1, 10),
    ("mtg_jamendo", "mtg_jamendo/metadata", 25135, 25135),
    ("mtg_jamendo", "mtg_jamendo/mirdata_sample", 1, 1),
]


def _vocab_classes(dataset: str, label: str) -> frozenset[str]:
    """Independent label -> classes, for cross-checking the summary's counts."""
    if dataset == "slakh":
        return classes_for("slakh", int(label.split()[1]))
    if dataset == "mtg_jamendo":
        return (
            classes_for("mtg_jamendo", label) if label.startswith("instrument---") else frozenset()
        )
    return classes_for(dataset, label)


@pytest.mark.parametrize(("dataset", "sub", "n_songs", "n_stems"), FIXTURE_ROOTS)
def test_cli_on_fixtures(
    dataset: str,
    sub: str,
    n_songs: int,
    n_stems: int,
    fixtures_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    out = tmp_path / "summary.json"
    rc = main(
        ["inspect", "--dataset", dataset, "--root", str(fixtures_dir / sub), "--json", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert f"songs: {n_songs}  stems: {n_stems}" in text
    assert "unmapped labels: 0\n" in text
    s = json.loads(out.read_text())
    assert (s["dataset"], s["songs"], s["stems"]) == (dataset, n_songs, n_stems)
    assert s["unmapped_labels"] == {} and "unknown_label" not in s["problems"]["counts"]
    assert list(s["classes"]) == list(CLASSES)
    # Class counts agree with mapping every raw label independently.
    songs, _ = read_for_inspection(dataset, fixtures_dir / sub)
    mapped = [
        (song.song_id, frozenset().union(*(_vocab_classes(dataset, lab) for lab in st.labels)))
        for song in songs
        for st in song.stems
    ]
    for c in CLASSES:
        assert s["classes"][c]["stems"] == sum(c in cl for _, cl in mapped), c
        assert s["classes"][c]["songs"] == len({sid for sid, cl in mapped if c in cl}), c
    assert sum(s["labels"].values()) == sum(len(st.labels) for song in songs for st in song.stems)


def test_babyslakh_summary_numbers(fixtures_dir: Path) -> None:
    songs, report = read_for_inspection("slakh", fixtures_dir / "slakh" / "babyslakh_16k")
    readable = check_audio(songs, report)
    s = summarize(songs, report, readable_stems=readable)
    assert s["audio"] == {"stems_with_file": 10, "checked": True, "stems_readable": 10}
    assert {c: n["stems"] for c, n in s["classes"].items() if n["stems"]} == {
        "voice": 1,
        "percussion": 1,
        "plucked_string": 4,
        "woodwind": 2,
        "key": 2,
        "drums": 1,
        "electric_guitar": 3,
        "electric_bass": 1,
        "piano": 1,
    }
    assert s["problems"]["counts"] == {"unrendered_stem": 1, "missing_file": 1}
    assert (s["artists"], s["albums"], s["songs_with_mix"], s["official_splits"]) == (1, 1, 1, {})


def test_broken_audio_is_reported(
    tmp_path: Path, fixtures_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    src = fixtures_dir / "slakh" / "babyslakh_16k" / "Track00001"
    track = tmp_path / "Track00001"
    shutil.copytree(src, track)
    (track / "stems" / "S00.wav").chmod(0o644)
    (track / "stems" / "S00.wav").write_bytes(b"this is not audio at all" * 10)
    (track / "stems" / "S01.wav").chmod(0o644)
    sf.write(track / "stems" / "S01.wav", np.zeros(0), 16000)  # valid header, no frames
    (track / "stems" / "S02.wav").chmod(0o644)
    (track / "stems" / "S02.wav").write_bytes(b"")
    out = tmp_path / "s.json"
    assert main(["inspect", "--dataset", "slakh", "--root", str(tmp_path), "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    items = {(p["kind"], Path(p["file"]).name) for p in s["problems"]["items"]}
    assert {
        ("unreadable_audio", "S00.wav"),
        ("empty_audio", "S01.wav"),
        ("empty_file", "S02.wav"),
        ("unrendered_stem", "S06.flac"),
    } == items
    assert s["audio"] == {"stems_with_file": 9, "checked": True, "stems_readable": 7}
    text = capsys.readouterr().out
    assert "unreadable_audio: 1" in text and "S00.wav" in text


def test_unmapped_labels_counted_and_printed(
    tmp_path: Path, fixtures_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    meta = fixtures_dir / "medleydb" / "Metadata" / "AClassicEducation_NightOwl_METADATA.yaml"
    (tmp_path / "Metadata").mkdir()
    # The two 'male singer' stems (S08, S13) get a label the taxonomy does not know.
    (tmp_path / "Metadata" / meta.name).write_text(
        meta.read_text().replace("instrument: male singer", "instrument: hurdy gurdy x")
    )
    assert (
        main(
            [
                "inspect",
                "--dataset",
                "medleydb",
                "--root",
                str(tmp_path),
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["unmapped_labels"] == {"hurdy gurdy x": 2}
    assert s["problems"]["counts"] == {"unknown_label": 2, "missing_audio_dir": 1}
    assert s["classes"]["singer"] == {"songs": 1, "stems": 1}  # only 'vocalists' S10 is left
    text = capsys.readouterr().out
    assert "unmapped labels: 1\n  'hurdy gurdy x': 2\n" in text


def test_no_songs_and_bad_root(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", "--dataset", "slakh", "--root", str(tmp_path)]) == 1
    assert main(["inspect", "--dataset", "slakh", "--root", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_summarize_without_audio_check() -> None:
    s = summarize([], ReaderReport("medleydb"))
    assert s["audio"] == {"stems_with_file": 0, "checked": False, "stems_readable": None}
    assert s["classes"]["piano"] == {"songs": 0, "stems": 0}
