"""Song splits: exact proportions, seeding, order independence, artist/album grouping,
official splits and the JSON round trip (also on the 330 real MedleyDB songs)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from keras_inst.data.datasets.base import ReaderReport, Song, Stem
from keras_inst.data.datasets.medleydb import read as read_medleydb
from keras_inst.data.splits import SPLITS, load_split, save_split, split_counts, split_songs


def _songs(n: int, *, artists: int | None = None, dataset: str = "medleydb") -> list[Song]:
    stem = Stem("x/S01", Path("x.wav"), ("piano",), frozenset({"piano", "key"}))
    return [
        Song(
            dataset,
            f"song{i:04d}",
            (stem,),
            artist=None if artists is None else f"artist{i % artists}",
        )
        for i in range(n)
    ]


def _ids(split) -> dict[str, list[str]]:
    return {k: [s.song_id for s in v] for k, v in split.items()}


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (330, [214, 58, 58]),
        (258, [168, 45, 45]),
        (2100, [1365, 368, 367]),
        (10, [6, 2, 2]),
        (1, [1, 0, 0]),
        (0, [0, 0, 0]),
    ],
)
def test_split_counts_largest_remainder(n: int, expected: list[int]) -> None:
    assert split_counts(n, (0.65, 0.175, 0.175)) == expected
    assert sum(expected) == n


def test_random_split_exact_sizes_seeded_and_order_independent() -> None:
    songs = _songs(330)
    a = split_songs(songs, seed=3)
    assert [len(a[k]) for k in SPLITS] == [214, 58, 58]
    ids = [s.song_id for k in SPLITS for s in a[k]]
    assert sorted(ids) == [s.song_id for s in songs]  # a partition
    shuffled = songs[:]
    random.Random(1).shuffle(shuffled)
    assert _ids(split_songs(shuffled, seed=3)) == _ids(a)
    b = split_songs(songs, seed=4)
    assert _ids(b) != _ids(a)
    assert a.params == {
        "seed": 3,
        "fractions": [0.65, 0.175, 0.175],
        "group_by": "none",
        "use_official": False,
    }
    assert all(v == sorted(v) for v in _ids(a).values())


def test_artist_grouping_keeps_each_artist_in_one_split() -> None:
    songs = _songs(330, artists=40) + [
        Song("medleydb", f"solo{i}", _songs(1)[0].stems) for i in range(20)
    ]
    split = split_songs(songs, seed=0, group_by="artist")
    where: dict[str, set[str]] = {}
    for name, part in split.items():
        for s in part:
            if s.artist:
                where.setdefault(s.artist, set()).add(name)
    assert len(where) == 40 and all(len(v) == 1 for v in where.values())
    sizes = [len(split[k]) for k in SPLITS]
    assert sum(sizes) == 350
    # Largest groups first, singletons last: the 20 solo songs fill the remaining deficits.
    assert sizes == split_counts(350, (0.65, 0.175, 0.175)) == [228, 61, 61]
    assert _ids(split_songs(list(reversed(songs)), seed=0, group_by="artist")) == _ids(split)


def test_grouping_without_artists_gives_exact_counts() -> None:
    split = split_songs(_songs(330), seed=5, group_by="album")
    assert [len(split[k]) for k in SPLITS] == [214, 58, 58]


def test_real_medleydb_artist_split(fixtures_dir: Path) -> None:
    songs = read_medleydb(
        fixtures_dir / "medleydb", report=ReaderReport("medleydb"), require_audio=False
    )
    split = split_songs(songs, seed=0, group_by="artist")
    artists = {name: {s.artist for s in part} for name, part in split.items()}
    assert not (artists["train"] & artists["validation"]) and not (
        artists["train"] & artists["test"]
    )
    assert not (artists["validation"] & artists["test"])
    sizes = [len(split[k]) for k in SPLITS]
    assert sum(sizes) == 330
    # 196 artists, the largest with 19 songs, many with one: the targets are met exactly.
    assert sizes == [214, 58, 58]
    plain = split_songs(songs, seed=0)
    assert [len(plain[k]) for k in SPLITS] == [214, 58, 58]


def test_official_split() -> None:
    stems = _songs(1)[0].stems
    songs = [
        Song("slakh", f"Track{i:05d}", stems, official_split=sp)
        for i, sp in enumerate(["train", "train", "validation", "test", "omitted"])
    ]
    split = split_songs(songs, use_official=True)
    assert _ids(split) == {
        "train": ["Track00000", "Track00001"],
        "validation": ["Track00002"],
        "test": ["Track00003"],
    }
    with pytest.raises(ValueError, match="1 songs have no official split"):
        split_songs(songs + [Song("slakh", "Track09999", stems)], use_official=True)
    dropped = split_songs(
        songs + [Song("slakh", "Track09999", stems)], use_official=True, unassigned="drop"
    )
    assert _ids(dropped) == _ids(split)
    with pytest.raises(ValueError, match="unknown official split 'dev'"):
        split_songs([Song("slakh", "T", stems, official_split="dev")], use_official=True)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_songs(_songs(3), fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="group_by"):
        split_songs(_songs(3), group_by="genre")
    with pytest.raises(ValueError, match="listed twice"):
        split_songs(_songs(3) + _songs(1))


def test_save_load_round_trip(tmp_path: Path) -> None:
    songs = _songs(40, artists=7) + _songs(5, dataset="slakh")
    split = split_songs(songs, seed=11, group_by="artist")
    path = save_split(split, tmp_path / "run" / "split.json")
    doc = json.loads(path.read_text())
    assert doc["datasets"] == ["medleydb", "slakh"]
    assert (doc["seed"], doc["group_by"], doc["fractions"]) == (11, "artist", [0.65, 0.175, 0.175])
    assert doc["counts"] == {k: len(split[k]) for k in SPLITS}
    assert sum(len(v) for part in doc["splits"].values() for v in part.values()) == 45
    loaded = load_split(path, list(reversed(songs)))
    assert {k: [(s.dataset, s.song_id) for s in v] for k, v in loaded.items()} == {
        k: [(s.dataset, s.song_id) for s in v] for k, v in split.items()
    }
    assert loaded.params == split.params
    with pytest.raises(
        ValueError,
        match=r"1 songs of the saved split are not among the songs read, e\.g\. medleydb/song0003",
    ):
        load_split(path, [s for s in songs if s.song_id != "song0003" or s.dataset != "medleydb"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a keras_inst.split/1 split file"):
        load_split(tmp_path / "bad.json", songs)
