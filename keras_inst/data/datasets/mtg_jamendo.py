"""MTG-Jamendo reader: tag TSVs, official splits and MP3 audio.

TSV format (``autotagging*.tsv``): header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``;
a track's tags continue as extra tab-separated columns; the real files end lines with CRLF.
Each track becomes a Song with ONE Stem: the MP3 (a full mix), ``labels`` = all its raw tags
(``instrument---piano``, ``genre---rock``, ``mood/theme---calm``: pretraining uses all of
them), ``classes`` = the classes of its ``instrument---`` tags; other tag categories carry no
instrument and are not mapped. ``artist``/``album`` are ARTIST_ID/ALBUM_ID.

Discovery under ``root`` when arguments are None:

- ``tsv``: ``autotagging*.tsv`` in ``root``, ``root/data`` or ``root/metadata``; preferred
  ``autotagging_instrument.tsv``, then ``autotagging.tsv``, else the only candidate;
- ``split_dir``: ``<tsv folder>/splits/split-0``; official splits come from the files
  ``<tsv name>-{train,validation,test}.tsv`` there (tracks in none of them: ``official_split``
  None); absent files mean no official split;
- ``audio_dir``: the first of ``root/audio``, ``root/audios``, ``root/mp3``, ``root`` in which
  any track's PATH exists (``NN/ID.mp3``, or the ``NN/ID.low.mp3`` of the low-quality release).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_inst.data.datasets.base import ReaderReport, Song, Stem
from keras_inst.data.datasets.medleydb import audio_status
from keras_inst.taxonomy import UnknownLabelError, classes_for

HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
INSTRUMENT_PREFIX = "instrument---"
SPLITS = ("train", "validation", "test")
_TSV_PREFERENCE = ("autotagging_instrument.tsv", "autotagging.tsv")
_AUDIO_DIRS = ("audio", "audios", "mp3")


@dataclass(frozen=True)
class JamendoTrack:
    """One TSV row."""

    track_id: str  # e.g. track_0000382
    artist_id: str
    album_id: str
    path: str  # relative to the audio root, e.g. 82/382.mp3
    duration: float  # seconds
    tags: tuple[str, ...]  # e.g. ("instrument---voice", "genre---pop")


def read_tags(tsv_path: str | Path, *, report: ReaderReport | None = None) -> list[JamendoTrack]:
    """Parse an MTG-Jamendo TSV (CRLF or LF). A malformed row raises ValueError naming file
    and line, or, with ``report``, is reported as ``malformed_row`` and skipped."""
    tsv_path = Path(tsv_path)
    with open(tsv_path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        got = lines[0].split("\t") if lines else []
        raise ValueError(f"{tsv_path}: header must be the tab-separated {list(HEADER)}, got {got}")
    tracks: list[JamendoTrack] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        problem = None
        if len(cols) < 5:
            problem = f"expected >= 5 tab-separated columns, got {len(cols)}"
        else:
            try:
                duration = float(cols[4])
            except ValueError:
                problem = f"DURATION {cols[4]!r} is not a number"
        if problem is not None:
            if report is None:
                raise ValueError(f"{tsv_path}:{lineno}: {problem}")
            report.add("malformed_row", f"{tsv_path}:{lineno}", problem)
            continue
        tags = tuple(t.strip() for t in cols[5:] if t.strip())
        tracks.append(JamendoTrack(cols[0], cols[1], cols[2], cols[3], duration, tags))
    return tracks


def tag_counts(tracks: Iterable[JamendoTrack]) -> dict[str, int]:
    """Number of tracks per tag, most frequent first (ties by name)."""
    c = Counter(t for tr in tracks for t in tr.tags)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def tag_vocabulary(tracks: Iterable[JamendoTrack]) -> tuple[str, ...]:
    """Every distinct tag of the tracks, sorted by name (the pretraining output order)."""
    return tuple(sorted({t for tr in tracks for t in tr.tags}))


def find_tsv(root: Path) -> Path:
    """The tag TSV under ``root`` (see the module docstring for the preference)."""
    folders = [d for d in (root, root / "data", root / "metadata") if d.is_dir()]
    candidates = [p for d in folders for p in sorted(d.glob("autotagging*.tsv"))]
    for name in _TSV_PREFERENCE:
        for p in candidates:
            if p.name == name:
                return p
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(
            f"mtg_jamendo: no autotagging*.tsv in {root}, {root}/data or {root}/metadata"
        )
    raise ValueError(
        f"mtg_jamendo: several tag files in {root}, pass tsv=: "
        + ", ".join(str(p) for p in candidates)
    )


def read_official_splits(
    tsv: Path, split_dir: Path | None, *, report: ReaderReport
) -> dict[str, str]:
    """Track id -> train/validation/test from ``<split_dir>/<tsv stem>-<split>.tsv``."""
    explicit = split_dir is not None
    split_dir = split_dir if explicit else tsv.parent / "splits" / "split-0"
    files = {s: split_dir / f"{tsv.stem}-{s}.tsv" for s in SPLITS}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        if explicit:
            raise ValueError(f"mtg_jamendo: split files missing: {', '.join(missing)}")
        return {}
    out: dict[str, str] = {}
    for split, path in files.items():
        for tr in read_tags(path, report=report):
            if out.setdefault(tr.track_id, split) != split:
                report.add(
                    "split_conflict", path, f"{tr.track_id} is in {out[tr.track_id]} and {split}"
                )
    return out


def _resolve(audio_dir: Path, rel: str) -> Path:
    """PATH, or its ``.low.mp3`` variant when only that exists."""
    p = audio_dir / rel
    if not p.exists() and p.suffix == ".mp3":
        low = p.with_name(p.stem + ".low.mp3")
        if low.exists():
            return low
    return p


def find_audio_dir(root: Path, tracks: list[JamendoTrack]) -> Path | None:
    """First candidate folder in which any track's audio exists, else None. All tracks are
    tried (stopping at the first hit): a partial download may hold only some NN/ folders."""
    for d in [root / a for a in _AUDIO_DIRS] + [root]:
        if d.is_dir() and any(_resolve(d, t.path).exists() for t in tracks):
            return d
    return None


def classes_of_tags(
    tags: Iterable[str], *, report: ReaderReport, file: str | Path
) -> frozenset[str]:
    """Classes of the ``instrument---`` tags; an unknown instrument tag is reported."""
    out: set[str] = set()
    for tag in tags:
        if not tag.startswith(INSTRUMENT_PREFIX):
            continue
        try:
            out |= classes_for("mtg_jamendo", tag)
        except UnknownLabelError:
            report.add("unknown_label", file, f"unknown label {tag!r}")
    return frozenset(out)


def read(
    root: Path,
    *,
    report: ReaderReport,
    dataset: str = "mtg_jamendo",
    tsv: str | Path | None = None,
    audio_dir: str | Path | None = None,
    split_dir: str | Path | None = None,
    require_audio: bool = True,
) -> list[Song]:
    """Read the tracks of one MTG-Jamendo TSV as single-stem Songs, in TSV order.

    ``require_audio=True`` skips tracks whose MP3 is missing or empty (reported);
    ``require_audio=False`` keeps them. When no audio folder is found at all one
    ``missing_audio_dir`` entry replaces the per-track ones. Unknown instrument tags are
    reported once per tag (``unknown_label``) rather than once per track.
    """
    root = Path(root)
    tsv_path = Path(tsv) if tsv is not None else find_tsv(root)
    tracks = read_tags(tsv_path, report=report)
    splits = read_official_splits(tsv_path, Path(split_dir) if split_dir else None, report=report)
    if splits:
        known = {t.track_id for t in tracks}
        extra = sorted(set(splits) - known)
        if extra:
            report.add(
                "split_mismatch",
                tsv_path,
                f"{len(extra)} split-file tracks are not in the TSV, e.g. {extra[:3]}",
            )
    adir = Path(audio_dir) if audio_dir is not None else find_audio_dir(root, tracks)
    if adir is None:
        report.add(
            "missing_audio_dir",
            root,
            f"no track's audio in {root} nor in its {'/, '.join(_AUDIO_DIRS)}/",
        )
    songs: list[Song] = []
    seen: set[str] = set()
    tag_classes: dict[str, frozenset[str]] = {}  # unknown tags are reported once, not per track
    for tr in tracks:
        if tr.track_id in seen:
            report.add("duplicate_song", tsv_path, f"{tr.track_id} listed twice")
            continue
        seen.add(tr.track_id)
        for tag in tr.tags:
            if tag not in tag_classes:
                tag_classes[tag] = classes_of_tags([tag], report=report, file=tsv_path)
        song = _track_song(tr, root, adir, dataset, tag_classes, splits, report, require_audio)
        if song is not None:
            songs.append(song)
    return songs


def _track_song(tr: Any, root: Path, adir: Path | None, dataset: str,
                tag_classes: dict[str, frozenset[str]], splits: dict[str, str],
                report: ReaderReport, require_audio: bool) -> Song | None:
    """One TSV row of :func:`read` as a single-stem Song, or None when its audio is unusable."""
    path = _resolve(adir, tr.path) if adir is not None else root / tr.path
    if adir is not None:
        status = audio_status(path)
        if status != "ok":
            kind = "missing_file" if status == "missing" else "empty_file"
            report.add(kind, path, f"{tr.track_id} audio is {status}")
            if require_audio:
                return None
    elif require_audio:
        return None
    classes = frozenset().union(*(tag_classes[t] for t in tr.tags))
    stem = Stem(stem_id=tr.track_id, path=path, labels=tr.tags, classes=classes)
    return Song(
        dataset=dataset,
        song_id=tr.track_id,
        stems=(stem,),
        artist=tr.artist_id or None,
        album=tr.album_id or None,
        mix_path=path,
        official_split=splits.get(tr.track_id),
    )
