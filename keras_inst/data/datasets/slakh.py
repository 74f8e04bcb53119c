"""Slakh reader: Slakh2100 (original and redux), BabySlakh, and the embedded rendered corpus.

Layouts accepted for ``root``:

- ``<root>/{train,validation,test[,omitted]}/TrackNNNNN/`` -- Slakh2100-orig, -split2, -redux;
  ``official_split`` is the split folder's name;
- ``<root>/TrackNNNNN/`` -- BabySlakh and the rendered corpus; ``official_split`` is None;
- ``root`` itself a split folder (``.../train``) or a single track folder.

A track folder holds ``metadata.yaml`` (``stems: {S00: {program_num, is_drum, plugin_name,
audio_rendered, ...}}``), ``stems/Snn.flac`` (or ``.wav``) and ``mix.flac`` (or ``.wav``).
Whether a stem has audio is decided by its file (present and non-empty), never by
``audio_rendered``: BabySlakh says ``false`` for stems whose files exist. A stem without a file
whose ``plugin_name`` is ``"None"`` was never rendered (reported as ``unrendered_stem``,
always skipped); any other stem without a file is ``missing_file``.

Classes come from the General-MIDI program (128 for drums) via the "slakh" vocabulary; a stem's
``labels`` is ``("program N",)``. Slakh has no artist or album; so that ``group_by`` can keep
related tracks together, ``artist`` is ``"midi:<UUID>"`` (the md5 of the source MIDI file,
the key of Slakh's own ``duplicates.json``: tracks rendered from the same MIDI share it) and
``album`` is ``"msd:<MSD track id>"`` from ``lmd_midi_dir`` (the recording the Lakh MIDI was
matched to: different MIDI versions of one song share it). Either is None when the metadata
lacks it (the rendered corpus). ``duplicates.json`` is not read (grouping by ``artist`` keeps
its duplicates together); slakh-utils' ``problem_stems.json`` (:func:`load_problem_stems`), when
given, makes the reader skip the stems it lists (reported as ``problem_stem``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from keras_inst.data.datasets.base import ReaderReport, Song, Stem
from keras_inst.data.datasets.medleydb import audio_status, load_stems_metadata
from keras_inst.taxonomy import UnknownLabelError, classes_for

SPLIT_NAMES = ("train", "validation", "test", "omitted")
_SPLIT_ALIASES = {"val": "validation", "valid": "validation"}
_TRACK_RE = re.compile(r"^Track\d+$")
_MSD_RE = re.compile(r"^TR[A-Z0-9]{16}$")
_AUDIO_EXTS = (".flac", ".wav")
DRUM_PROGRAM = 128


def _split_name(folder: Path) -> str | None:
    name = _SPLIT_ALIASES.get(folder.name, folder.name)
    return name if name in SPLIT_NAMES else None


def _is_track_dir(d: Path) -> bool:
    return d.is_dir() and (_TRACK_RE.match(d.name) is not None or (d / "metadata.yaml").is_file())


def find_tracks(root: Path) -> list[tuple[Path, str | None]]:
    """Every track folder under ``root`` with its split folder name (None outside splits)."""
    if (root / "metadata.yaml").is_file():
        return [(root, _split_name(root.parent))]
    # train, validation, test, omitted: a track found twice is kept from the first.
    split_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and _split_name(d)),
        key=lambda d: (SPLIT_NAMES.index(_split_name(d)), d.name),
    )
    tracks: list[tuple[Path, str | None]] = []
    for d in split_dirs:
        tracks += [(t, _split_name(d)) for t in sorted(d.iterdir()) if _is_track_dir(t)]
    own = _split_name(root) if not split_dirs else None
    tracks += [(t, own) for t in sorted(root.iterdir()) if _is_track_dir(t)]
    return tracks


def _stem_dir(track: Path, meta: dict) -> Path:
    """``<track>/stems``; else the last part of ``audio_dir`` (``stems`` in BabySlakh,
    ``TrackNNNNN/stems`` in Slakh2100). Never outside the track folder: tracks get moved
    between split folders and renamed by Slakh's resplit script."""
    default = track / "stems"
    audio_dir = meta.get("audio_dir")
    if default.is_dir() or not isinstance(audio_dir, str) or not audio_dir.strip():
        return default
    return track / Path(audio_dir).name


def _first_existing(base: Path) -> Path:
    """``base`` with the first audio extension whose file exists (else the .flac name)."""
    for ext in _AUDIO_EXTS:
        p = base.with_suffix(ext)
        if p.exists():
            return p
    return base.with_suffix(_AUDIO_EXTS[0])


def _program(stem: dict) -> int | None:
    if stem.get("is_drum") is True or str(stem.get("is_drum")).lower() == "true":
        return DRUM_PROGRAM
    try:
        p = int(stem.get("program_num"))
    except (TypeError, ValueError):
        return None
    return p


def _groups(meta: dict) -> tuple[str | None, str | None]:
    """(artist, album) stand-ins: the source MIDI's md5 and its Million-Song-Dataset track id."""
    uuid = meta.get("UUID")
    artist = f"midi:{uuid}" if isinstance(uuid, str) and uuid.strip() else None
    album = None
    lmd = meta.get("lmd_midi_dir")
    if isinstance(lmd, str):
        msd = [part for part in Path(lmd).parts if _MSD_RE.match(part)]
        album = f"msd:{msd[-1]}" if msd else None
    return artist, album


def track_styles(root: str | Path, song_ids: list[str]) -> dict[str, str]:
    """Each track's style in a corpus keras_inst rendered at ``root`` (``keras_inst.style`` of its
    ``metadata.yaml``: a generated song's style, an arranged score's ensemble style); ValueError
    naming the file when one has none."""
    import yaml

    out = {}
    for sid in song_ids:
        f = Path(root) / sid / "metadata.yaml"
        try:
            out[sid] = str(yaml.safe_load(f.read_text(encoding="utf-8"))["keras_inst"]["style"])
        except (OSError, KeyError, TypeError, yaml.YAMLError) as e:
            raise ValueError(f"{f}: no keras_inst.style to group the held-out songs by ({type(e).__name__}: {e})") from e
    return out


def load_problem_stems(path: str | Path) -> dict[str, dict[str, str]]:
    """slakh-utils' ``problem_stems.json``: ``{"Track00357": {"S03": "white-noise"}, ...}``.

    Raises ValueError naming the file when it is missing or not of that form.
    """
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the Slakh problem-stems file: {e}") from None
    ok = isinstance(data, dict) and all(
        isinstance(v, dict) and all(isinstance(r, str) for r in v.values()) for v in data.values())
    if not ok:
        raise ValueError(f"{path}: expected {{track: {{stem: reason}}}} as in slakh-utils' "
                         f"splits/problem_stems.json")
    return {str(t): {str(k): r for k, r in v.items()} for t, v in data.items()}


def _read_stem(track: Path, sid: object, s: object, stem_dir: Path, meta_path: Path, *,
               report: ReaderReport, require_audio: bool, skip: Mapping[str, str] | None) -> Stem | None:
    """Stem ``sid`` of a track (its metadata entry ``s``), or None (reported) when unusable."""
    program = _program(s) if isinstance(s, dict) else None
    if program is None:
        report.add("bad_metadata", meta_path, f"stem {sid} has no usable program_num/is_drum")
        return None
    path = _first_existing(stem_dir / str(sid))
    if skip and str(sid) in skip:
        report.add("problem_stem", path, f"stem {sid} (program {program}) is listed as "
                                         f"{skip[str(sid)]!r} in problem_stems.json")
        return None
    status = audio_status(path)
    if status == "missing" and str(s.get("plugin_name")) == "None":
        report.add("unrendered_stem", path, f"stem {sid} (program {program}) was not rendered")
        return None
    if status != "ok":
        kind = "missing_file" if status == "missing" else "empty_file"
        report.add(kind, path, f"stem {sid} (program {program}) audio is {status}")
        if require_audio:
            return None
    label = f"program {program}"
    try:
        classes = classes_for("slakh", program)
    except UnknownLabelError:
        report.add("unknown_label", meta_path, f"unknown label {label!r}")
        classes = frozenset()
    return Stem(stem_id=f"{track.name}/{sid}", path=path, labels=(label,), classes=classes)


def read_track(
    track: Path,
    split: str | None,
    *,
    report: ReaderReport,
    dataset: str,
    require_audio: bool = True,
    skip: Mapping[str, str] | None = None,
) -> Song | None:
    """One track folder as a Song, or None (reported) when it has no usable stem.

    ``skip``: stem id -> reason (this track's entry of ``problem_stems.json``).
    """
    meta_path = track / "metadata.yaml"
    if not meta_path.is_file():
        report.add("missing_file", meta_path, f"track {track.name} has no metadata.yaml")
        return None
    loaded = load_stems_metadata(meta_path, report)
    if loaded is None:
        return None
    meta, stems_meta = loaded
    stem_dir = _stem_dir(track, meta)
    stems = [st for sid in sorted(stems_meta, key=str)
             if (st := _read_stem(track, sid, stems_meta[sid], stem_dir, meta_path, report=report,
                                  require_audio=require_audio, skip=skip)) is not None]
    if not stems:
        report.add("empty_song", meta_path, f"track {track.name} has no usable stem")
        return None
    mix = _first_existing(track / "mix")
    artist, album = _groups(meta)
    return Song(
        dataset=dataset,
        song_id=track.name,
        stems=tuple(stems),
        artist=artist,
        album=album,
        mix_path=mix if audio_status(mix) == "ok" else None,
        official_split=split,
    )


def read(
    root: Path,
    *,
    report: ReaderReport,
    dataset: str = "slakh",
    require_audio: bool = True,
    problem_stems: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Song]:
    """Read every Slakh-layout track under ``root``, sorted by track name.

    ``require_audio=True`` skips stems whose file is missing or empty (reported);
    ``require_audio=False`` keeps them (metadata inspection). Unrendered stems are always
    skipped, and so are the stems of ``problem_stems`` (:func:`load_problem_stems`). A track
    name seen twice (in two split folders) is reported and read once.
    """
    root = Path(root)
    songs: dict[str, Song] = {}
    tracks = find_tracks(root)
    if not tracks:
        report.add("missing_file", root, "no track folders (TrackNNNNN/ or */metadata.yaml) found")
    for track, split in tracks:
        if track.name in songs:
            report.add(
                "duplicate_song",
                track,
                f"track {track.name} also in {songs[track.name].official_split}",
            )
            continue
        song = read_track(track, split, report=report, dataset=dataset, require_audio=require_audio,
                          skip=(problem_stems or {}).get(track.name))
        if song is not None:
            songs[track.name] = song
    return [songs[k] for k in sorted(songs)]
