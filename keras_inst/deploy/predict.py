"""Instrument recognition on audio files: ``keras-inst-predict PATH... --model MODEL``.

MODEL is a ``.keras`` file, a run directory, an export directory (``export.json``), a SavedModel
directory or a ``.tflite`` file (loaded by :func:`keras_inst.runtime.loader.load_artifact`). PATHs are files or folders (searched recursively for audio
extensions). Each file is decoded (any rate, any channel count: averaged to mono, resampled to
the model's rate), cut into windows of the model's input length (4 s) every ``--hop`` seconds
(default: half a window, 2 s for the 4-second model), the last window zero-padded, and the windows' probabilities are
aggregated (``--aggregate mean`` or ``max``). The classes at or above threshold are reported,
made hierarchy-consistent (an instrument implies its family). ``--plot FILE.png`` also draws
each file's timeline (:mod:`keras_inst.deploy.plot`).

With a ``.tflite`` model (or an export directory, whose float32 TFLite model is used unless
``--variant`` says otherwise) nothing imports TensorFlow or Keras: NumPy, SciPy, soundfile and
ai-edge-litert suffice. Unreadable files are reported and skipped; the exit status is 0 if at
least one file was analysed, 1 if none was, 2 for a bad model or bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.atomic import write_text
from keras_inst.deploy.audio_io import (
    AudioReadError,
    find_audio_files,
    iter_window_batches,
    load_audio,
)
from keras_inst.runtime.artifacts import VARIANT_FILES
from keras_inst.runtime.loader import Artifact, load_artifact


def resolve_thresholds(clf: Artifact, spec: str) -> tuple[np.ndarray, str]:
    """Per-class thresholds ``[C]`` for ``--threshold`` (auto | tuned | a number) and their origin."""
    if spec in ("auto", "tuned"):
        if clf.thresholds is not None:
            return np.array([clf.thresholds[c] for c in clf.class_names]), "tuned on validation"
        if spec == "tuned":
            raise ValueError(
                f"--threshold tuned: {clf.path} carries no tuned thresholds; use a run directory "
                "(report.json) or an export made from one, or give a number such as 0.5"
            )
        spec = "0.5"
    try:
        t = float(spec)
    except ValueError:
        raise ValueError(f"--threshold must be auto, tuned or a number in (0, 1), got {spec!r}") from None
    if not 0.0 < t < 1.0:
        raise ValueError(f"--threshold must be in (0, 1), got {t}")
    return np.full(len(clf.class_names), t), f"fixed {t:g}"


def detected_classes(probs: np.ndarray, thresholds: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Classes with ``probs >= thresholds``, plus the families their instruments imply (taxonomy order)."""
    chosen = [c for c, p, t in zip(class_names, probs, thresholds, strict=True) if p >= t]
    from keras_inst.taxonomy import CLASSES, close

    if list(class_names) == list(CLASSES):
        closed = close(chosen)
        return [c for c in CLASSES if c in closed]
    return chosen


def analyse_file(clf: Artifact, path: Path, *, hop_seconds: float | None = None, aggregate: str = "mean",
                 thresholds: np.ndarray, timeline: bool = False) -> dict[str, Any]:
    """Result dict of one file (see ``--format json``); raises AudioReadError if unreadable.

    ``hop_seconds`` None: half a window.
    """
    if aggregate not in ("mean", "max"):
        raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
    audio = load_audio(path, sample_rate=clf.sample_rate)
    hop = clf.input_samples // 2 if hop_seconds is None else max(1, int(round(hop_seconds * clf.sample_rate)))
    starts, parts = [], []
    for s, windows in iter_window_batches(audio.samples, window=clf.input_samples, hop=hop, batch=256):
        starts.append(s)
        parts.append(np.asarray(clf.predict(windows), dtype=np.float64))  # [b, C] for [b, S]
    starts, probs = np.concatenate(starts), np.concatenate(parts)  # [n], [n, C]
    agg = probs.mean(axis=0) if aggregate == "mean" else probs.max(axis=0)
    win_s = clf.input_samples / clf.sample_rate
    res: dict[str, Any] = {
        "path": str(path),
        "duration_seconds": round(audio.duration, 3),
        "source_sample_rate": audio.source_sample_rate,
        "source_channels": audio.source_channels,
        "windows": len(starts),
        "probabilities": {c: round(float(p), 6) for c, p in zip(clf.class_names, agg, strict=True)},
        "classes": detected_classes(agg, thresholds, clf.class_names),
    }
    if len(audio.samples) < clf.input_samples:
        res["note"] = f"shorter than one {win_s:g}-second window: zero-padded by {win_s - audio.duration:.2f} s"
    if timeline:
        res["timeline"] = [
            {
                "start": round(s / clf.sample_rate, 3),
                "end": round(min(s / clf.sample_rate + win_s, audio.duration), 3),
                "probabilities": {c: round(float(p), 6) for c, p in zip(clf.class_names, row, strict=True)},
                "classes": detected_classes(row, thresholds, clf.class_names),
            }
            for s, row in zip(starts, probs, strict=True)
        ]
    return res


def _fmt_classes(classes: Sequence[str], probs: dict[str, float]) -> str:
    return ", ".join(f"{c} {probs[c]:.2f}" for c in classes) or "(none)"


def format_table(doc: dict[str, Any]) -> str:
    lines = [f"model: {doc['model']} ({doc['model_kind']}), thresholds: {doc['threshold_source']}, "
             f"windows {doc['window_seconds']:g} s every {doc['hop_seconds']:g} s, aggregate {doc['aggregate']}"]
    for r in doc["files"]:
        lines.append(f"{r['path']}  [{r['duration_seconds']:.1f} s, {r['windows']} windows]  {_fmt_classes(r['classes'], r['probabilities'])}")
        if "note" in r:
            lines.append(f"    note: {r['note']}")
        for w in r.get("timeline", []):
            lines.append(f"    {w['start']:8.2f}-{w['end']:8.2f} s  {_fmt_classes(w['classes'], w['probabilities'])}")
    return "\n".join(lines) + "\n"


def format_csv(doc: dict[str, Any]) -> str:
    """One ``file`` row per file (start 0, end = duration) and, with --timeline, ``window`` rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    names = doc["class_names"]
    w.writerow(["path", "row", "start", "end", *names, "classes"])
    for r in doc["files"]:
        w.writerow([r["path"], "file", 0.0, r["duration_seconds"], *(r["probabilities"][c] for c in names), ";".join(r["classes"])])
        for t in r.get("timeline", []):
            w.writerow([r["path"], "window", t["start"], t["end"], *(t["probabilities"][c] for c in names), ";".join(t["classes"])])
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_inst.predict", description="Recognise instruments in audio files.",
        epilog="exit status: 0 if at least one file was analysed, 1 if none was, 2 for a bad model or bad arguments",
    )
    p.add_argument("paths", nargs="+", help="audio files and/or folders (searched recursively)")
    p.add_argument("--model", required=True, help=".keras/.tflite file, run directory, export directory or SavedModel directory")
    p.add_argument("--variant", choices=tuple(VARIANT_FILES), default=None, help="artifact of an export directory (default: tflite float32, then fp16, int8, saved_model)")
    p.add_argument("--hop", type=float, default=None, help="seconds between window starts (default: half a window, 2 s for 4-second windows)")
    p.add_argument("--aggregate", choices=("mean", "max"), default="mean", help="how window probabilities are combined per file (default mean)")
    p.add_argument("--threshold", default="auto", help="auto (tuned if the model has them, else 0.5), tuned, or a number")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--timeline", action="store_true", help="also output every window's probabilities")
    p.add_argument("--output", default=None, help="write the results here instead of stdout")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="also draw each file's timeline (classes x time, probability as colour, runs at or above "
                        "threshold outlined): one panel per file, 8 panels per PNG, further files in FILE-2.png, ...")
    p.add_argument("--threads", type=int, default=None, help="TFLite threads (default: all cores)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per model call (default 16)")
    p.add_argument("--sample-rate", type=int, default=None, help="input rate of a bare .tflite without export.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def _progress(items: list, disable: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # optional on the TFLite-only install
        return items
    return tqdm(items, desc="files", unit="file", file=sys.stderr, disable=True if disable else None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.hop is not None and not args.hop > 0:
            raise ValueError(f"--hop must be > 0 seconds, got {args.hop}")
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.plot is not None and Path(args.plot).suffix.lower() != ".png":
            raise ValueError(f"--plot must name a .png file, got {args.plot!r}")
        clf = load_artifact(args.model, variant=args.variant, num_threads=args.threads, batch_size=args.batch_size, sample_rate=args.sample_rate)
        thresholds, t_source = resolve_thresholds(clf, args.threshold)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files, skipped = find_audio_files(args.paths)
    t0 = time.perf_counter()
    results, errors = [], []
    for path in _progress(files, args.no_progress or len(files) < 2):
        try:
            results.append(analyse_file(clf, path, hop_seconds=args.hop, aggregate=args.aggregate, thresholds=thresholds,
                                        timeline=args.timeline or args.plot is not None))
        except AudioReadError as e:
            errors.append({"path": str(path), "error": e.reason})
            print(f"error: {path}: {e.reason}", file=sys.stderr)
    doc = {
        "model": str(clf.path), "model_kind": clf.kind, "sample_rate": clf.sample_rate,
        "window_seconds": clf.input_samples / clf.sample_rate, "aggregate": args.aggregate,
        "hop_seconds": args.hop if args.hop is not None else clf.input_samples / 2 / clf.sample_rate,
        "class_names": list(clf.class_names), "threshold_source": t_source,
        "thresholds": dict(zip(clf.class_names, map(float, thresholds), strict=True)),
        "files": results, "errors": errors, "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
    }
    if args.plot is not None and results:
        from keras_inst.deploy.plot import plot_timelines

        drawn = plot_timelines(results, clf.class_names, thresholds, args.plot)
        print(f"plotted {len(drawn)} timelines into {', '.join(sorted({str(d['png']) for d in drawn}))}", file=sys.stderr)
        if not args.timeline:  # computed for the plot only: the outputs stay as without --plot
            for r in results:
                r.pop("timeline", None)
    text = {"table": format_table, "csv": format_csv, "json": lambda d: json.dumps(d, indent=2) + "\n"}[args.format](doc)
    if args.output:
        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    audio_s = sum(r["duration_seconds"] for r in results)
    msg = f"analysed {len(results)} of {len(files)} files ({audio_s:.1f} s of audio) in {time.perf_counter() - t0:.1f} s"
    if errors:
        msg += f"; {len(errors)} unreadable: " + ", ".join(Path(e["path"]).name for e in errors)
    if skipped:
        msg += f"; {len(skipped)} skipped: " + ", ".join(f"{p.name} ({r})" for p, r in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
    print(msg, file=sys.stderr)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
