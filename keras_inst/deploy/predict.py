"""Instrument recognition on audio files: ``keras-inst predict PATH... [--model MODEL]``.

MODEL is a ``.keras`` file, a run directory, an export directory (``export.json``), a SavedModel
directory, a ``.tflite`` file or a shipped folder (loaded by
:func:`keras_inst.runtime.loader.load_artifact`). Without ``--model`` the shipped model is used
(:func:`keras_inst.runtime.shipped.default_model`: the package's ``keras_inst/release/``, its
float16 TFLite model unless ``--variant tflite_int8``, every file's sha256 checked); when none is
installed the command says so and how to get one (exit 2).
PATHs are files or folders (searched recursively for audio extensions). Each file is decoded
(any rate, any channel count: averaged to mono, resampled to the model's rate) and cut into
windows of the model's input length (4 s) starting every ``--hop`` seconds (default: half a
window); the last window is zero-padded, and one that would hold less than half a window of
audio is not added (:func:`keras_inst.deploy.audio_io.window_starts`).

The answer per file (``--aggregate presence``, the default) says which instruments play and
when (:mod:`keras_inst.runtime.presence`): a class is *active* in a window whose probability
reaches its threshold; its active windows merge into *segments* (seconds, window start to
window end); its *active share* is the fraction of the file's windows where it is active; it
is *present* when active in at least k windows (or, in a file too short for that, in the share
s of its windows), k and s per class from the model's presence rule (calibrated on the
validation songs at training: ``presence_rule`` in report.json / export.json), else the default
k = 2, s = 10 %, named in the output as ``presence_source``. ``--aggregate mean`` or ``max``
instead threshold the mean or max of the window probabilities, as before (the mean averages
away an instrument that plays in part of a song; the max calls one stray window). Reported
classes are made hierarchy-consistent (an instrument implies its family).
``--plot FILE.png`` also draws each file's timeline (:mod:`keras_inst.deploy.plot`).

With a ``.tflite`` model (or an export directory, whose float32 TFLite model is used unless
``--variant`` says otherwise) nothing imports TensorFlow or Keras: NumPy, SciPy, soundfile and
ai-edge-litert suffice. Arguments, input paths and output locations are checked before any
work. Unreadable files are reported and skipped. Exit status: 0 if at least one file was
analysed, 1 if none was, 2 for a bad model or bad arguments, 130 if interrupted (Ctrl-C: what
was analysed so far is still written, marked ``"interrupted": true``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.atomic import write_text
from keras_inst.deploy.audio_io import (
    AUDIO_EXTENSIONS,
    AudioReadError,
    find_audio_files,
    load_audio,
    window_probabilities,
)
from keras_inst.deploy.outputs import format_csv, format_table, plural
from keras_inst.runtime.artifacts import EXPORT_JSON, VARIANT_FILES
from keras_inst.runtime.loader import Artifact, load_artifact
from keras_inst.runtime.presence import DEFAULT_SOURCE, PresenceRule, closed_order, presence
from keras_inst.runtime.shipped import default_model, is_shipped_dir

EXIT_OK, EXIT_NONE_ANALYSED, EXIT_BAD_ARGUMENTS, EXIT_INTERRUPTED = 0, 1, 2, 130
AGGREGATES = ("presence", "mean", "max")  # the first is the default
FORMATS = ("table", "json", "csv")  # --format; also what an --output suffix may name


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


def resolve_presence_rule(clf: Artifact) -> tuple[PresenceRule, str]:
    """The model's presence rule and where it came from, else the documented default."""
    if clf.presence_rule is not None:
        return clf.presence_rule, f"{clf.presence_rule.source} ({clf.presence_rule_source})"
    return PresenceRule.default(clf.class_names), DEFAULT_SOURCE


def detected_classes(probs: np.ndarray, thresholds: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Classes with ``probs >= thresholds``, plus the families their instruments imply (class order)."""
    return closed_order([c for c, p, t in zip(class_names, probs, thresholds, strict=True) if p >= t], class_names)


def analyse_file(clf: Artifact, path: Path, *, hop_seconds: float | None = None, aggregate: str = "presence",
                 thresholds: np.ndarray, rule: PresenceRule | None = None, timeline: bool = False) -> dict[str, Any]:
    """Result dict of one file (see ``--format json``); raises AudioReadError if unreadable.

    ``hop_seconds`` None: half a window. ``rule`` (aggregate presence) None: the model's
    (:func:`resolve_presence_rule`). With presence, ``probabilities`` are the window mean and
    ``classes`` the present ones; ``active_share`` and ``segments`` give every class's activity.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    audio = load_audio(path, sample_rate=clf.sample_rate)
    hop = clf.input_samples // 2 if hop_seconds is None else max(1, int(round(hop_seconds * clf.sample_rate)))
    starts, probs = window_probabilities(clf.predict, audio.samples, window=clf.input_samples, hop=hop)  # [n], [n, C]
    agg = probs.max(axis=0) if aggregate == "max" else probs.mean(axis=0)
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
    if aggregate == "presence":
        found = presence(probs, starts / clf.sample_rate, window_s=win_s, duration_s=audio.duration, thresholds=thresholds,
                         rule=rule or resolve_presence_rule(clf)[0], class_names=clf.class_names)
        res["classes"] = found.present
        res["active_share"] = {c: round(float(v), 4) for c, v in zip(clf.class_names, found.share, strict=True)}
        res["segments"] = found.segments
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_inst.predict", description="Recognise instruments in audio files.",
        epilog="exit status: 0 if at least one file was analysed, 1 if none was, 2 for a bad model or bad "
               "arguments, 130 if interrupted (what was analysed so far is still written)",
    )
    p.add_argument("paths", nargs="+", help="audio files and/or folders (searched recursively)")
    p.add_argument("--model", default=None, help=".keras/.tflite file, run directory, export directory, SavedModel directory "
                   "or shipped folder (default: the shipped model in keras_inst/release/)")
    p.add_argument("--variant", choices=tuple(VARIANT_FILES), default=None,
                   help="artifact of an export directory (default: tflite float32, then fp16, int8, saved_model) or of "
                        "the shipped model (tflite_fp16, the default, or tflite_int8); refused for other model forms")
    p.add_argument("--hop", type=float, default=None,
                   help="seconds between window starts (default: half a window, 2 s for 4-second windows); "
                        "a last window holding less than half a window of audio is not added")
    p.add_argument("--aggregate", choices=AGGREGATES, default=AGGREGATES[0],
                   help="the answer per file: presence (default): which classes play and when -- each class's active "
                        "windows (probability >= threshold) as segments and active share, present when active in >= k "
                        "windows (the model's calibrated rule, else k = 2 or 10 %% of a shorter file); mean or max: "
                        "threshold the mean or max of the window probabilities")
    p.add_argument("--threshold", default="auto", help="auto (tuned if the model has them, else 0.5), tuned, or a number")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="table, json or csv (default: from --output's suffix, .json or .csv, else table)")
    p.add_argument("--timeline", action="store_true", help="also output every window's probabilities")
    p.add_argument("--output", default=None, help="write the results to this file (its folder is created) instead of stdout")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="also draw each file's timeline (classes x time, probability as colour, runs at or above "
                        "threshold outlined, present classes' labels in bold red): one panel per file, 8 panels per "
                        "PNG, further files in FILE-2.png, ...")
    p.add_argument("--threads", type=int, default=None, help="TFLite threads (default: all cores)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per model call (default 16)")
    p.add_argument("--sample-rate", type=int, default=None, help="input rate of a bare .tflite file without export.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def prepare_output(path: str | Path, *, option: str, example: str) -> Path:
    """Check an output file location before any work: refuse a folder (suggesting the file
    ``example`` in it), create the parent folder."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise ValueError(f"{option} {path}: is a directory; name a file in it, e.g. {out / example}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder should be, no permission, ...
        raise ValueError(f"{option} {path}: cannot create its folder ({e.strerror or e})") from None
    if not os.access(out.parent, os.W_OK):
        raise ValueError(f"{option} {path}: folder {out.parent} is not writable")
    return out


def check_model_options(model: str, *, variant: str | None, sample_rate: int | None) -> None:
    """Refuse options that the model form would silently ignore."""
    p = Path(model).expanduser()
    is_export = p.is_dir() and ((p / EXPORT_JSON).is_file() or is_shipped_dir(p))
    if variant is not None and not is_export:
        raise ValueError(f"--variant {variant} picks an artifact of an export directory (a folder with {EXPORT_JSON}); "
                         f"{model} is not one: pass the export directory, or leave out --variant")
    bare_tflite = p.suffix == ".tflite" and not ((p.parent / EXPORT_JSON).is_file() or is_shipped_dir(p.parent))
    if sample_rate is not None and not bare_tflite:
        raise ValueError(f"--sample-rate applies to a bare .tflite file (no {EXPORT_JSON} beside it) only; "
                         f"{model} states its own input rate: leave out --sample-rate")


def collect_inputs(paths: Sequence[str]) -> tuple[list[Path], list[tuple[Path, str]], list[str]]:
    """(audio files, skipped (path, reason), notes) of the PATH arguments; ValueError for a
    missing path or when no audio file is found at all (bad arguments, exit 2)."""
    missing = [raw for raw in paths if not Path(raw).expanduser().exists()]
    if missing:
        raise ValueError("; ".join(f"{raw} does not exist" for raw in missing))
    files, skipped = find_audio_files(paths)
    found = {f.resolve() for f in files}
    folders = [raw for raw in paths if Path(raw).expanduser().is_dir()]
    empty = [raw for raw in folders if not any(f.is_relative_to(Path(raw).expanduser().resolve()) for f in found)]
    looked = f"looked for {', '.join(sorted(AUDIO_EXTENSIONS))}"
    if not files:
        why = f"; {plural(len(skipped), 'other file')} skipped: " + _skipped_text(skipped) if skipped else "; the folders hold no files"
        raise ValueError(f"no audio files found in {', '.join(empty)} ({looked}{why})")
    return files, skipped, [f"no audio files found in {raw} ({looked})" for raw in empty]


def _skipped_text(skipped: Sequence[tuple[Path, str]], limit: int = 10) -> str:
    return ", ".join(f"{p.name} ({r})" for p, r in skipped[:limit]) + (" ..." if len(skipped) > limit else "")


def embedding_dim(clf: Artifact) -> int:
    """Length D of the model's ``embeddings`` output: from export.json, the Keras model, or one
    silent window run through the model."""
    if "embedding_dim" in clf.metadata:
        return int(clf.metadata["embedding_dim"])
    if clf.model is not None:
        from keras_inst.runtime.keras_model import model_info

        return int(model_info(clf.model)["embedding_dim"])
    return int(np.asarray(clf(np.zeros((1, clf.input_samples), np.float32))["embeddings"]).shape[-1])


def _progress(items: list, disable: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # optional on the TFLite-only install
        return items
    return tqdm(items, desc="files", unit="file", file=sys.stderr, disable=True if disable else None)


def analyse_all(clf: Artifact, files: list[Path], args: argparse.Namespace, thresholds: np.ndarray,
                rule: PresenceRule | None = None) -> tuple[list[dict], list[dict], bool]:
    """(results, unreadable files, interrupted) over ``files``; Ctrl-C stops the loop and keeps
    the results so far."""
    results: list[dict] = []
    errors: list[dict] = []
    try:
        for path in _progress(files, args.no_progress or len(files) < 2):
            try:
                results.append(analyse_file(clf, path, hop_seconds=args.hop, aggregate=args.aggregate, thresholds=thresholds,
                                            rule=rule, timeline=args.timeline or args.plot is not None))
            except AudioReadError as e:
                errors.append({"path": str(path), "error": e.reason})
                print(f"error: {path}: {e.reason}", file=sys.stderr)
    except KeyboardInterrupt:
        return results, errors, True
    return results, errors, False


def build_document(clf: Artifact, args: argparse.Namespace, *, thresholds: np.ndarray, threshold_source: str,
                   results: list[dict], errors: list[dict], skipped: list[tuple[Path, str]],
                   files_found: int, interrupted: bool) -> dict[str, Any]:
    """The ``--format json`` document (the table and CSV are made from it)."""
    rule = {}
    if args.aggregate == "presence":
        found, source = resolve_presence_rule(clf)
        rule = {"presence_source": source, "presence_rule": found.to_json()}
    return {
        "model": str(clf.path), "model_kind": clf.kind, "sample_rate": clf.sample_rate,
        "window_seconds": clf.input_samples / clf.sample_rate, "embedding_dim": embedding_dim(clf),
        "aggregate": args.aggregate,
        "hop_seconds": args.hop if args.hop is not None else clf.input_samples / 2 / clf.sample_rate,
        "class_names": list(clf.class_names), "threshold_source": threshold_source,
        "thresholds": dict(zip(clf.class_names, map(float, thresholds), strict=True)), **rule,
        "interrupted": interrupted, "files_found": files_found,
        "files": results, "errors": errors, "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
    }


def _plot(doc: dict[str, Any], thresholds: np.ndarray, path: str, *, keep_timeline: bool) -> None:
    from keras_inst.deploy.plot import plot_timelines

    drawn = plot_timelines(doc["files"], doc["class_names"], thresholds, path)
    print(f"plotted {plural(len(drawn), 'timeline')} into {', '.join(sorted({str(d['png']) for d in drawn}))}", file=sys.stderr)
    if not keep_timeline:  # computed for the plot only: the outputs stay as without --plot
        for r in doc["files"]:
            r.pop("timeline", None)


def summary(doc: dict[str, Any], seconds: float) -> str:
    """The closing line on stderr."""
    results, errors, skipped, found = doc["files"], doc["errors"], doc["skipped"], doc["files_found"]
    audio_s = sum(r["duration_seconds"] for r in results)
    verb = "interrupted after" if doc["interrupted"] else "analysed"
    msg = f"{verb} {len(results)} of {plural(found, 'file')} ({audio_s:.1f} s of audio) in {seconds:.1f} s"
    if errors:
        msg += f"; {len(errors)} unreadable: " + ", ".join(Path(e["path"]).name for e in errors)
    if skipped:
        msg += f"; {len(skipped)} skipped: " + _skipped_text([(Path(s["path"]), s["reason"]) for s in skipped])
    return msg


def _setup(args: argparse.Namespace) -> tuple[Artifact, np.ndarray, str, list[Path], list[tuple[Path, str]]]:
    """Every check that needs no audio analysis, then the model; ValueError for bad arguments."""
    if args.hop is not None and not args.hop > 0:
        raise ValueError(f"--hop must be > 0 seconds, got {args.hop}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.plot is not None and Path(args.plot).suffix.lower() != ".png":
        raise ValueError(f"--plot must name a .png file, got {args.plot!r}")
    if args.model is None:  # the shipped model, or a plain "none installed: how to get one"
        args.model = str(default_model())
    check_model_options(args.model, variant=args.variant, sample_rate=args.sample_rate)
    files, skipped, notes = collect_inputs(args.paths)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    clf = load_artifact(args.model, variant=args.variant, num_threads=args.threads, batch_size=args.batch_size, sample_rate=args.sample_rate)
    thresholds, t_source = resolve_thresholds(clf, args.threshold)
    args.format = output_format(args.format, args.output)
    suffix = {"table": "txt"}.get(args.format, args.format)
    for option, path, example in (("--output", args.output, f"predictions.{suffix}"), ("--plot", args.plot, "timeline.png")):
        if path is not None:  # after the model loaded, so a bad --model leaves no new folder
            prepare_output(path, option=option, example=example)
    return clf, thresholds, t_source, files, skipped


def output_format(fmt: str | None, output: str | None) -> str:
    """``--format``, else the one ``--output``'s suffix names (``x.json`` -> json), else table."""
    if fmt is not None:
        return fmt
    suffix = Path(output).suffix.lower().lstrip(".") if output else ""
    return suffix if suffix in FORMATS else "table"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        try:
            clf, thresholds, t_source, files, skipped = _setup(args)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_ARGUMENTS
        t0 = time.perf_counter()
        results, errors, interrupted = analyse_all(clf, files, args, thresholds)
        doc = build_document(clf, args, thresholds=thresholds, threshold_source=t_source, results=results, errors=errors,
                             skipped=skipped, files_found=len(files), interrupted=interrupted)
        if args.plot is not None and results and not interrupted:
            _plot(doc, thresholds, args.plot, keep_timeline=args.timeline)
        text = {"table": format_table, "csv": format_csv, "json": lambda d: json.dumps(d, indent=2) + "\n"}[args.format](doc)
        if args.output:
            write_text(args.output, text)  # atomic: a reader never sees half a file
        else:
            sys.stdout.write(text)
        print(summary(doc, time.perf_counter() - t0), file=sys.stderr)
    except KeyboardInterrupt:  # outside the analysis loop: nothing to keep
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if interrupted:
        if args.plot is not None:
            print("note: interrupted, so no plot was drawn", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if results else EXIT_NONE_ANALYSED


if __name__ == "__main__":
    sys.exit(main())
