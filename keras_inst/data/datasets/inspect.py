"""``python -m keras_inst.data inspect``: check a dataset download before a long run.

Reads the dataset with ``require_audio=False`` so that the labels of every song in the metadata
are summarised even where audio is missing (e.g. MedleyDB's full metadata next to a partial
download); missing, empty and (with the audio check, on by default) undecodable files are
listed as problems. Prints songs, stems, per-class positive counts (songs and stems) for the 15
classes, labels the taxonomy could not map, and the problems; ``--json`` writes the same.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

import soundfile as sf
from tqdm import tqdm

from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.base import ReaderReport, Song
from keras_inst.data.datasets.medleydb import audio_status
from keras_inst.taxonomy import CLASSES

_UNKNOWN_PREFIX = "unknown label "  # every reader reports f"unknown label {label!r}"
_EXAMPLES = 10


def read_for_inspection(name: str, root: str | Path) -> tuple[list[Song], ReaderReport]:
    """Read dataset ``name`` keeping stems without audio (``require_audio=False``)."""
    return read_dataset(name, root, require_audio=False)


def check_audio(songs: list[Song], report: ReaderReport) -> int:
    """Open every present stem file with soundfile; undecodable files are reported as
    ``unreadable_audio``, files with zero frames as ``empty_audio``. Returns the readable count."""
    readable = 0
    seen: set[Path] = set()
    stems = [st for song in songs for st in song.stems]
    # Progress only on a terminal (disable=None): MP3 headers of a full download take minutes.
    for stem in tqdm(stems, desc="checking audio", unit="file", disable=None, file=sys.stderr):
        if stem.path in seen or audio_status(stem.path) != "ok":
            continue  # missing/empty files were reported by the reader
        seen.add(stem.path)
        try:
            info = sf.info(str(stem.path))
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            report.add("unreadable_audio", stem.path, f"stem {stem.stem_id}: {e}")
            continue
        if info.frames <= 0:
            report.add("empty_audio", stem.path, f"stem {stem.stem_id}: no audio frames")
            continue
        readable += 1
    return readable


def unknown_labels(report: ReaderReport) -> list[str]:
    """Distinct labels named in the report's ``unknown_label`` entries, in first-seen order."""
    out: dict[str, None] = {}
    for _, message in report.of_kind("unknown_label"):
        if message.startswith(_UNKNOWN_PREFIX):
            try:
                out[str(ast.literal_eval(message[len(_UNKNOWN_PREFIX) :]))] = None
            except (ValueError, SyntaxError):
                out[message[len(_UNKNOWN_PREFIX) :]] = None
    return list(out)


def summarize(
    songs: list[Song], report: ReaderReport, *, readable_stems: int | None = None
) -> dict:
    """JSON-ready summary: counts, per-class songs/stems, raw label counts, unmapped labels
    (number of stems carrying each, or of report entries when no kept stem carries it),
    official splits and the report's problems. ``readable_stems`` from :func:`check_audio`."""
    stems = [st for s in songs for st in s.stems]
    label_counts = Counter(lab for st in stems for lab in st.labels)
    reported = Counter(m for _, m in report.of_kind("unknown_label"))
    unmapped = {
        lab: label_counts.get(lab) or reported.get(f"{_UNKNOWN_PREFIX}{lab!r}", 0)
        for lab in unknown_labels(report)
    }
    song_classes = [s.classes for s in songs]  # a computed property: evaluate once
    classes = {
        c: {
            "songs": sum(c in sc for sc in song_classes),
            "stems": sum(c in st.classes for st in stems),
        }
        for c in CLASSES
    }
    splits = Counter(s.official_split for s in songs if s.official_split is not None)
    return {
        "dataset": report.dataset,
        "songs": len(songs),
        "stems": len(stems),
        "songs_with_mix": sum(s.mix_path is not None for s in songs),
        "artists": len({s.artist for s in songs if s.artist}),
        "albums": len({s.album for s in songs if s.album}),
        "official_splits": dict(sorted(splits.items())),
        "classes": classes,
        "stems_without_class": sum(not st.classes for st in stems),
        "audio": {
            "stems_with_file": sum(audio_status(st.path) == "ok" for st in stems),
            "checked": readable_stems is not None,
            "stems_readable": readable_stems,
        },
        "labels": dict(sorted(label_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "unmapped_labels": dict(sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0]))),
        "problems": {"counts": report.counts, "items": report.to_dict()["problems"]},
    }


def print_summary(summary: dict, *, out: TextIO | None = None) -> None:
    """Human-readable form of :func:`summarize` (problems: counts and the first examples)."""
    w = (out if out is not None else sys.stdout).write
    w(f"dataset: {summary['dataset']}\n")
    a = summary["audio"]
    readable = a["stems_readable"] if a["checked"] else "not checked"
    w(
        f"songs: {summary['songs']}  stems: {summary['stems']}  stems with audio file: "
        f"{a['stems_with_file']}  readable: {readable}  "
        f"songs with mix: {summary['songs_with_mix']}\n"
    )
    w(f"artists: {summary['artists']}  albums: {summary['albums']}\n")
    if summary["official_splits"]:
        w(
            "official splits: "
            + ", ".join(f"{k} {v}" for k, v in summary["official_splits"].items())
            + "\n"
        )
    w(f"{'class':<16}{'songs':>8}{'stems':>8}\n")
    for c, n in summary["classes"].items():
        w(f"{c:<16}{n['songs']:>8}{n['stems']:>8}\n")
    w(f"stems without any class: {summary['stems_without_class']}\n")
    um = summary["unmapped_labels"]
    w(f"unmapped labels: {len(um)}\n")
    for lab, n in um.items():
        w(f"  {lab!r}: {n}\n")
    counts = summary["problems"]["counts"]
    w(f"problems: {sum(counts.values())}\n")
    for kind, n in sorted(counts.items()):
        w(f"  {kind}: {n}\n")
        items = [p for p in summary["problems"]["items"] if p["kind"] == kind]
        for p in items[:_EXAMPLES]:
            w(f"    {p['file']}: {p['message']}\n")
        if len(items) > _EXAMPLES:
            w(f"    ... and {len(items) - _EXAMPLES} more\n")


def run_inspect(args: argparse.Namespace) -> int:
    """CLI entry: ``args.dataset``, ``args.root``, ``args.json_path``, optional
    ``args.audio_check`` (default True). Returns 0, or 1 when no song was found."""
    songs, report = read_for_inspection(args.dataset, args.root)
    readable = check_audio(songs, report) if getattr(args, "audio_check", True) else None
    summary = summarize(songs, report, readable_stems=readable)
    summary["root"] = str(Path(args.root).expanduser())
    print_summary(summary)
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        print(f"summary written to {path}")
    return 0 if songs else 1
