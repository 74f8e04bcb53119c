"""``predict``'s table and CSV outputs, both made from its ``--format json`` document
(:func:`keras_inst.deploy.predict.build_document`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any


def plural(n: int, word: str) -> str:
    """``"1 window"``, ``"2 windows"``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _fmt_classes(classes: Sequence[str], probs: dict[str, float]) -> str:
    return ", ".join(f"{c} {probs[c]:.2f}" for c in classes) or "(none)"


def _fmt_segments(segments: Sequence[Sequence[float]], sep: str = ", ") -> str:
    """``"12.0-20.0, 40.0-44.0"`` (seconds)."""
    return sep.join(f"{a:.1f}-{b:.1f}" for a, b in segments)


def format_table(doc: dict[str, Any]) -> str:
    """One line per file (classes with their mean/max probability, or with presence their active
    share and then one line of segments per present class), windows with --timeline."""
    lines = [f"model: {doc['model']} ({doc['model_kind']}), thresholds: {doc['threshold_source']}, "
             f"windows {doc['window_seconds']:g} s every {doc['hop_seconds']:g} s, aggregate {doc['aggregate']}"]
    if doc["aggregate"] == "presence":
        lines.append(f"presence rule: {doc['presence_source']}")
    if doc.get("interrupted"):
        lines.append(f"interrupted: partial results, {len(doc['files'])} of {plural(doc['files_found'], 'file')}")
    for r in doc["files"]:
        head = f"{r['path']}  [{r['duration_seconds']:.1f} s, {plural(r['windows'], 'window')}]  "
        if "segments" not in r:
            lines.append(head + _fmt_classes(r["classes"], r["probabilities"]))
        else:
            lines.append(head + (", ".join(f"{c} {r['active_share'][c]:.0%}" for c in r["classes"]) or "(none)"))
            lines += [f"    {c}: {_fmt_segments(r['segments'][c])}" for c in r["classes"]]
        if "note" in r:
            lines.append(f"    note: {r['note']}")
        for w in r.get("timeline", []):
            lines.append(f"    {w['start']:8.2f}-{w['end']:8.2f} s  {_fmt_classes(w['classes'], w['probabilities'])}")
    return "\n".join(lines) + "\n"


def format_csv(doc: dict[str, Any]) -> str:
    """One ``file`` row per file (start 0, end = duration) and, with --timeline, ``window`` rows.

    With presence, four more columns ``class, present, active_share, segments`` and one ``class``
    row per class active in any window (start/end: its first segment's start, last one's end;
    segments ``"12.0-20.0;40.0-44.0"``); the file row's class columns hold the window mean.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = doc["class_names"]
    extra = doc["aggregate"] == "presence"
    w.writerow(["path", "row", "start", "end", *names, "classes", *(["class", "present", "active_share", "segments"] if extra else [])])
    pad = [""] * 4 if extra else []
    for r in doc["files"]:
        w.writerow([r["path"], "file", 0.0, r["duration_seconds"], *(r["probabilities"][c] for c in names), ";".join(r["classes"]), *pad])
        for c in names if extra else []:
            if segs := r["segments"][c]:
                w.writerow([r["path"], "class", segs[0][0], segs[-1][1], *[""] * len(names), "", c, int(c in r["classes"]),
                            r["active_share"][c], _fmt_segments(segs, ";")])
        for t in r.get("timeline", []):
            w.writerow([r["path"], "window", t["start"], t["end"], *(t["probabilities"][c] for c in names), ";".join(t["classes"]), *pad])
    return buf.getvalue()
