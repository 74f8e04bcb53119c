"""Record types shared by every dataset reader: songs, stems and the reader's report."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("keras_inst.data.datasets")


@dataclass(frozen=True)
class Stem:
    """One single-instrument track of a song."""

    stem_id: str  # unique within its dataset, e.g. "Track00001/S01" or "AClassicEducation_NightOwl/01"
    path: Path  # audio file
    labels: tuple[str, ...]  # the raw source label(s), e.g. ("flute",) or ("program 33",)
    classes: frozenset[str]  # closed class set from keras_inst.taxonomy (may be empty)


@dataclass(frozen=True)
class Song:
    """One multitrack song: its stems, optional mix, and what is known about its origin."""

    dataset: str  # medleydb | mixing_secrets | slakh | mtg_jamendo | rendered
    song_id: str  # unique within the dataset
    stems: tuple[Stem, ...]
    artist: str | None = None
    album: str | None = None
    mix_path: Path | None = None
    official_split: str | None = None  # train | validation | test | omitted (Slakh folders, Jamendo splits)

    @property
    def classes(self) -> frozenset[str]:
        out: set[str] = set()
        for s in self.stems:
            out |= s.classes
        return frozenset(out)


@dataclass
class ReaderReport:
    """What a reader could not use, counted by kind, each with the file and the problem."""

    dataset: str
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, file, message)

    def add(self, kind: str, file: str | Path, message: str) -> None:
        """Record and log a problem: kind is e.g. unknown_label, missing_file, unreadable_audio."""
        self.problems.append((kind, str(file), message))
        logger.warning("%s: %s: %s", self.dataset, file, message)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(k for k, _, _ in self.problems))

    def of_kind(self, kind: str) -> list[tuple[str, str]]:
        return [(f, m) for k, f, m in self.problems if k == kind]

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "counts": self.counts,
            "problems": [{"kind": k, "file": f, "message": m} for k, f, m in self.problems],
        }
