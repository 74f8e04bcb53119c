"""Mixing Secrets reader on the real metadata (258 songs) and on small trees in the dataset's
<root>/<Song>/<Song>_STEMS/ layout with generated audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.base import ReaderReport
from keras_inst.data.datasets.mixing_secrets import read

AMCONTRA = "AMContra_HeartPeripheral"
JOANNA = "JoannaWard_Away"
TIMO = "MR0904_TimoCarlier"


def _wav(path: Path, seconds: float = 0.05, sr: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.1 * np.sin(2 * np.pi * 220 * t), sr)


def _tree(
    root: Path, fixtures: Path, song: str, *, skip: tuple[str, ...] = (), audio: str = ""
) -> dict:
    """metadata/<song>_METADATA.yaml (real) + <root>[/Audio]/<song>/<stem_dir>/<filename> WAVs."""
    meta_src = fixtures / "mixing_secrets" / "metadata" / f"{song}_METADATA.yaml"
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    shutil.copy(meta_src, root / "metadata" / meta_src.name)
    meta = yaml.safe_load(meta_src.read_text())
    song_dir = root / audio / song if audio else root / song
    for sid, s in meta["stems"].items():
        if sid not in skip:
            _wav(song_dir / meta["stem_dir"] / s["filename"])
    return meta


def test_all_fixture_metadata_maps_without_unknown_labels(fixtures_dir: Path) -> None:
    report = ReaderReport("mixing_secrets")
    songs = read(fixtures_dir / "mixing_secrets", report=report, require_audio=False)
    assert len(songs) == 258
    assert sum(len(s.stems) for s in songs) == 4529
    assert report.counts == {"missing_audio_dir": 1}
    tracklist = (fixtures_dir / "mixing_secrets" / "tracklist.txt").read_text().split()
    assert sorted(s.song_id for s in songs) == sorted(tracklist)
    by_id = {s.song_id: s for s in songs}
    assert by_id[AMCONTRA].classes == {"percussion", "drums", "synth", "voice", "singer"}
    assert len(by_id[AMCONTRA].stems) == 22
    # Every stem of JoannaWard_Away is a room recording of the whole ensemble (list label).
    assert [st.labels for st in by_id[JOANNA].stems] == [("cello", "flute", "oboe", "violin")] * 3
    assert by_id[JOANNA].classes == {"bowed_string", "violin", "woodwind"}
    s03 = by_id[TIMO].stems[2]
    assert s03.stem_id == f"{TIMO}/S03" and s03.labels == ("acoustic guitar", "male singer")
    assert s03.classes == {"plucked_string", "acoustic_guitar", "voice", "singer"}
    assert by_id[TIMO].classes == {
        "percussion",
        "drums",
        "plucked_string",
        "acoustic_guitar",
        "voice",
        "singer",
        "bowed_string",
    }
    assert by_id[AMCONTRA].artist == "AMContra" and by_id[AMCONTRA].album is None
    assert all(s.dataset == "mixing_secrets" for s in songs)


def test_song_folders_at_root_with_metadata_filenames(tmp_path: Path, fixtures_dir: Path) -> None:
    meta = _tree(tmp_path, fixtures_dir, AMCONTRA, skip=("S02",))
    _tree(tmp_path, fixtures_dir, TIMO)
    songs, report = read_dataset("mixing_secrets", tmp_path)
    assert [s.song_id for s in songs] == [AMCONTRA, TIMO]
    am, timo = songs
    assert len(am.stems) == 21 and len(timo.stems) == 9
    assert "synth" not in am.classes  # S02 synthesizer has no audio
    # Stem files keep the multitrack's own names, inside <Song>_STEMS/.
    assert am.stems[1].path == tmp_path / AMCONTRA / f"{AMCONTRA}_STEMS" / "19_BackingVox03.wav"
    missing = tmp_path / AMCONTRA / meta["stem_dir"] / meta["stems"]["S02"]["filename"]
    assert report.of_kind("missing_file") == [
        (str(missing), "stem S02 (synthesizer) audio is missing")
    ]
    assert report.counts == {"missing_file": 1}


def test_audio_folder_layout_and_raw_tracks_take_stem_labels(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    meta = _tree(tmp_path, fixtures_dir, AMCONTRA, audio="Audio")
    raw_dir = tmp_path / "Audio" / AMCONTRA / meta["raw_dir"]
    for r in meta["stems"]["S02"]["raw"].values():  # 4 synth raw tracks named 'Synth', 'BassSynth'
        _wav(raw_dir / r["filename"])
    report = ReaderReport("mixing_secrets")
    songs = read(tmp_path, report=report, include_raw=True)
    stems = songs[0].stems
    raw = [st for st in stems if st.stem_id.startswith(f"{AMCONTRA}/S02/")]
    assert [st.stem_id for st in raw] == [f"{AMCONTRA}/S02/R0{i}" for i in range(1, 5)]
    assert all(st.labels == ("synthesizer",) and st.classes == {"synth"} for st in raw)
    assert len(stems) == 22 - 1 + 4
    # S01 (8 loops) has no raw audio: kept as a stem, its first raw track reported.
    assert stems[0].stem_id == f"{AMCONTRA}/S01"
    assert report.of_kind("unknown_label") == []
    assert report.counts == {"missing_file": 1}
