"""MedleyDB reader (v1, v2, "extra" and Bach10 metadata); also reads Mixing Secrets, which uses
the same ``<Song>_METADATA.yaml`` format (see :mod:`keras_inst.data.datasets.mixing_secrets`).

Metadata is found in any of these places under ``root`` (``root`` may also be the metadata
folder itself):

- ``<root>/Audio/<Song>/<Song>_METADATA.yaml`` -- the MedleyDB audio download;
- ``<root>/Metadata/<Song>_METADATA.yaml`` (or ``metadata/``) -- the marl/medleydb repository,
  Mixing Secrets' repository; audio then lies in ``<root>/Audio/<Song>/`` or ``<root>/<Song>/``;
- ``<root>/<Song>/<Song>_METADATA.yaml``.

When a song has metadata both in a metadata folder and in its audio folder, the metadata folder
wins: marl/medleydb's v1.2 annotations correct the files shipped with the audio.

Audio of a song: stems ``<song_dir>/<stem_dir>/<filename>``, raw tracks
``<song_dir>/<raw_dir>/<filename>``, mix ``<song_dir>/<mix_filename>`` (all names from the
metadata). Songs whose metadata says ``has_bleed: 'yes'`` are kept by default: their stems
carry faint other instruments, but the labels still name the stem's own source and the paper
uses all songs; pass ``skip_bleed=True`` to drop them (reported as ``skipped_bleed``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from keras_inst.data.datasets.base import ReaderReport, Song, Stem
from keras_inst.taxonomy import UnknownLabelError, classes_for

_SUFFIX = "_METADATA.yaml"
_METADATA_DIRS = ("Metadata", "metadata", "METADATA")
_AUDIO_DIRS = ("Audio", "audio")


def load_yaml(path: Path, report: ReaderReport) -> dict | None:
    """Parse a YAML mapping with libyaml when available; a broken file is reported, not raised."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # ~10x faster for 2100 Slakh files
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        report.add("unreadable_metadata", path, f"cannot parse YAML: {e}")
        return None
    if not isinstance(data, dict):
        report.add("bad_metadata", path, f"expected a YAML mapping, got {type(data).__name__}")
        return None
    return data


def load_stems_metadata(path: Path, report: ReaderReport) -> tuple[dict, dict] | None:
    """A song's metadata YAML and its non-empty ``stems`` mapping, or None (reported)."""
    meta = load_yaml(path, report)
    if meta is None:
        return None
    stems = meta.get("stems")
    if not isinstance(stems, dict) or not stems:
        report.add("bad_metadata", path, "no 'stems' mapping")
        return None
    return meta, stems


def audio_status(path: Path) -> str:
    """'ok' for a non-empty regular file, else 'missing' or 'empty' (no decoding: see inspect)."""
    try:
        size = path.stat().st_size
    except OSError:
        return "missing"
    if not path.is_file():
        return "missing"
    return "ok" if size > 0 else "empty"


def as_labels(value: object) -> tuple[str, ...]:
    """``instrument`` is a string or a list of strings; blanks are dropped, order kept."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(str(v).strip() for v in items if v is not None and str(v).strip())


def map_labels(
    vocabulary: str, labels: tuple[str, ...], *, report: ReaderReport, file: Path | str
) -> frozenset[str]:
    """Union of the classes of every known label; each unknown one is reported and ignored."""
    out: set[str] = set()
    for label in labels:
        try:
            out |= classes_for(vocabulary, label)
        except UnknownLabelError:
            report.add("unknown_label", file, f"unknown label {label!r}")
    return frozenset(out)


def _natural_key(key: object) -> tuple:
    """S2 < S10 whatever the zero padding."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(key)))


def _text(value: object) -> str | None:
    """Metadata string or None for blanks and the literal 'None' some MedleyDB albums carry."""
    if value is None or isinstance(value, (list, dict)):
        return None
    s = str(value).strip()
    return s if s and s != "None" else None


def find_metadata(root: Path) -> dict[str, Path]:
    """Song name -> its ``<Song>_METADATA.yaml``, metadata folders preferred over song folders."""
    found: dict[str, Path] = {}
    preferred = [root] + [root / d for d in _METADATA_DIRS]
    for folder in preferred:
        for p in sorted(folder.glob("*" + _SUFFIX)) if folder.is_dir() else []:
            found.setdefault(p.name[: -len(_SUFFIX)], p)
    # Song folders: <root>/<Song>/ and <root>/Audio/<Song>/.
    for pattern in ["*/*" + _SUFFIX] + [f"{a}/*/*{_SUFFIX}" for a in _AUDIO_DIRS]:
        for p in sorted(root.glob(pattern)):
            if p.parent.name in _METADATA_DIRS:
                continue
            found.setdefault(p.name[: -len(_SUFFIX)], p)
    return found


def _song_dir(root: Path, song: str, meta_path: Path) -> Path | None:
    """The folder holding the song's stem folder and mix, or None if there is none."""
    candidates = [meta_path.parent] if meta_path.parent.name == song else []
    bases = [root, root.parent] if root.name in _METADATA_DIRS else [root]
    for base in bases:
        candidates += [base / a / song for a in _AUDIO_DIRS] + [base / song]
    for c in candidates:
        if c.is_dir():
            return c
    return None


@dataclass(frozen=True)
class _ReadOptions:
    """The keyword flags of :func:`read_multitrack`, passed down to the per-song readers."""

    report: ReaderReport
    dataset: str
    vocabulary: str
    include_raw: bool
    raw_labels: str
    require_audio: bool
    skip_bleed: bool


def read_multitrack(
    root: Path,
    *,
    report: ReaderReport,
    dataset: str,
    vocabulary: str,
    include_raw: bool = False,
    raw_labels: str = "own",
    require_audio: bool = True,
    skip_bleed: bool = False,
) -> list[Song]:
    """Read every song of a MedleyDB-format dataset under ``root``, sorted by song id.

    ``include_raw``: a stem with two or more raw tracks is replaced by its raw tracks (so a
    song's sources still add up to its mix), provided all of them have audio; otherwise the
    stem itself is kept. Raw tracks take their own ``instrument`` (``raw_labels="own"``,
    MedleyDB) or their stem's (``"stem"``, Mixing Secrets, whose raw labels are free-form
    track names such as 'BackingVox').

    ``require_audio=True`` (training): a stem without a non-empty audio file is reported
    (``missing_file`` / ``empty_file``) and skipped, and a song left without stems is reported
    (``empty_song``) and skipped. ``require_audio=False`` (metadata inspection): stems are kept
    whether or not their audio exists; missing audio is still reported. When no song has an
    audio folder at all, one ``missing_audio_dir`` entry replaces the per-song entries.
    """
    if raw_labels not in ("own", "stem"):
        raise ValueError(f"raw_labels must be 'own' or 'stem', got {raw_labels!r}")
    opts = _ReadOptions(report, dataset, vocabulary, include_raw, raw_labels, require_audio, skip_bleed)
    metas = find_metadata(root)
    if not metas:
        report.add(
            "missing_file",
            root,
            f"no *{_SUFFIX} files under {root} (nor in Metadata/, Audio/<Song>/)",
        )
        return []
    song_dirs = {song: _song_dir(root, song, p) for song, p in metas.items()}
    no_audio_at_all = all(d is None for d in song_dirs.values())
    if no_audio_at_all:
        report.add(
            "missing_audio_dir",
            root / "Audio",
            f"no audio folder for any of the {len(metas)} songs "
            "(looked in Audio/<Song>/ and <Song>/)",
        )
    songs: list[Song] = []
    for song in sorted(metas, key=_natural_key):
        song_dir = song_dirs[song]
        if song_dir is None and not no_audio_at_all:
            report.add("missing_file", root / "Audio" / song, f"no audio folder for song {song}")
        one = _read_song(root, song, metas[song], song_dir, opts)
        if one is not None:
            songs.append(one)
    return songs


def _read_song(root: Path, song: str, meta_path: Path, song_dir: Path | None, opts: _ReadOptions) -> Song | None:
    """One song of :func:`read_multitrack`, or None (reported) when it has no usable stem."""
    report = opts.report
    loaded = load_stems_metadata(meta_path, report)
    if loaded is None:
        return None
    meta, stems_meta = loaded
    if opts.skip_bleed and str(meta.get("has_bleed", "no")).lower() == "yes":
        report.add("skipped_bleed", meta_path, "has_bleed: yes (skip_bleed=True)")
        return None
    check = song_dir is not None  # per-file reports only where the song folder exists
    stem_dir = (song_dir / str(meta.get("stem_dir") or f"{song}_STEMS")) if song_dir else None
    raw_dir = (song_dir / str(meta.get("raw_dir") or f"{song}_RAW")) if song_dir else None
    use_raw = opts.include_raw and raw_dir is not None
    if use_raw and not raw_dir.is_dir():
        report.add("missing_file", raw_dir, "raw-track folder missing; stems kept")
        use_raw = False
    stems: list[Stem] = []
    for sid in sorted(stems_meta, key=_natural_key):
        s = stems_meta[sid]
        if not isinstance(s, dict) or not s.get("filename"):
            report.add("bad_metadata", meta_path, f"stem {sid} has no filename")
            continue
        path = (stem_dir or root / "Audio" / song / f"{song}_STEMS") / str(s["filename"])
        stems.extend(_read_stem(song, sid, s, path, meta_path, raw_dir if use_raw else None, check, opts))
    if not stems:
        if check:  # a missing song folder was reported by the caller
            report.add("empty_song", meta_path, f"song {song} has no usable stem")
        return None
    mix = song_dir / str(meta["mix_filename"]) if song_dir and meta.get("mix_filename") else None
    return Song(
        dataset=opts.dataset,
        song_id=song,
        stems=tuple(stems),
        artist=_text(meta.get("artist")),
        album=_text(meta.get("album")),
        mix_path=mix if mix is not None and audio_status(mix) == "ok" else None,
    )


def _read_stem(song: str, sid: str, s: dict, path: Path, meta_path: Path, raw_dir: Path | None,
               check: bool, opts: _ReadOptions) -> list[Stem]:
    """The stem ``sid`` as one Stem, or as its raw tracks (``raw_dir`` given), or [] (reported)."""
    report = opts.report
    labels = as_labels(s.get("instrument"))
    if not labels:
        report.add("missing_label", meta_path, f"stem {sid} has no instrument label")
    classes = map_labels(opts.vocabulary, labels, report=report, file=meta_path)
    if raw_dir is not None:
        raws = _raw_stems(song, sid, s, raw_dir, labels, classes, opts.vocabulary, opts.raw_labels,
                          meta_path, report)
        if raws:
            return raws
    status = audio_status(path) if check else "missing"
    if status != "ok" and check:
        kind = "missing_file" if status == "missing" else "empty_file"
        report.add(kind, path, f"stem {sid} ({', '.join(labels) or 'no label'}) audio is {status}")
    if status != "ok" and opts.require_audio:
        return []
    return [Stem(stem_id=f"{song}/{sid}", path=path, labels=labels, classes=classes)]


def _raw_stems(
    song: str,
    sid: str,
    stem_meta: dict,
    raw_dir: Path,
    stem_labels: tuple[str, ...],
    stem_classes: frozenset[str],
    vocabulary: str,
    raw_labels: str,
    meta_path: Path,
    report: ReaderReport,
) -> list[Stem]:
    """Raw tracks replacing stem ``sid``, or [] to keep the stem (fewer than 2, or any unusable)."""
    raw = stem_meta.get("raw")
    if not isinstance(raw, dict) or len(raw) < 2:
        return []
    out: list[Stem] = []
    for rid in sorted(raw, key=_natural_key):
        r = raw[rid]
        if not isinstance(r, dict) or not r.get("filename"):
            report.add("bad_metadata", meta_path, f"raw track {sid}/{rid} has no filename")
            return []
        path = raw_dir / str(r["filename"])
        status = audio_status(path)
        if status != "ok":
            kind = "missing_file" if status == "missing" else "empty_file"
            report.add(kind, path, f"raw track {sid}/{rid} audio is {status}; keeping stem {sid}")
            return []
        if raw_labels == "own":
            labels = as_labels(r.get("instrument"))
            classes = map_labels(vocabulary, labels, report=report, file=meta_path)
        else:
            labels, classes = stem_labels, stem_classes
        out.append(Stem(stem_id=f"{song}/{sid}/{rid}", path=path, labels=labels, classes=classes))
    return out


def multitrack_reader(vocabulary: str, *, raw_labels: str) -> Callable[..., list[Song]]:
    """The ``read`` function of a MedleyDB-format dataset named ``vocabulary`` whose labels map
    with that vocabulary (``raw_labels``: see :func:`read_multitrack`)."""

    def read(root: Path, *, report: ReaderReport, dataset: str = vocabulary, include_raw: bool = False,
             require_audio: bool = True, skip_bleed: bool = False) -> list[Song]:
        return read_multitrack(Path(root), report=report, dataset=dataset, vocabulary=vocabulary,
                               include_raw=include_raw, raw_labels=raw_labels,
                               require_audio=require_audio, skip_bleed=skip_bleed)

    read.__doc__ = (f"Read {vocabulary} under ``root`` (labels mapped with the {vocabulary!r} vocabulary).\n\n"
                    "See :func:`keras_inst.data.datasets.medleydb.read_multitrack` for ``include_raw``, "
                    "``require_audio`` and ``skip_bleed``.")
    return read


read = multitrack_reader("medleydb", raw_labels="own")
