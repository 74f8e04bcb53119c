"""Do the shipped int8 model's answers, TensorFlow-free, equal the TensorFlow model's? Prints JSON.

    python scripts/agree_shipped.py [--model SHIPPED_FOLDER] [--files F ...] [--reference keras|tflite_fp16]

Issue K's target (docs/deploying.md, "The shipped model"): the class decisions of the TF-free
int8 path equal the TensorFlow path's on >= 95 % of (file, class) pairs. Both paths are what
users run: ``keras-inst predict FILE... --format json --timeline`` in a fresh interpreter, the
reference on the shipped ``model.keras`` (``--reference keras``, the default) or its float16
TFLite model, the candidate on ``--variant tflite_int8`` with TensorFlow and Keras unimportable
(:mod:`keras_inst.runtime.tf_free`). A (file, class) pair agrees when both answers say the class
is present, or both say it is absent (predict's default presence rule: active in >= k windows).
Also reported: per-class agreement, every disagreeing pair with both paths' active window counts
and the count the rule needs, the agreement of the window decisions (the timeline's classes per
window and class) and the largest |difference| of a window probability.

Default files: every audio file in ../shared/real_dev/audio (recorded instruments, speech and
noise) and the held-out rendered songs' mix.flac under data/rendered_heldout_*/ where present.
Exit status 2, with a message, for a missing file or model or a failed predict run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.deploy.audio_io import AUDIO_EXTENSIONS
from keras_inst.runtime.presence import PresenceRule
from keras_inst.runtime.shipped import (
    SHIPPED_FILES,
    SHIPPED_METADATA,
    default_model,
    is_shipped_dir,
    read_shipped,
)
from keras_inst.runtime.tf_free import run_python

REPO = Path(__file__).resolve().parents[1]
REAL_DEV_AUDIO = REPO.parent / "shared" / "real_dev" / "audio"
HELD_OUT_MIXES = "data/rendered_heldout_*/*/mix.flac"  # relative to the repository
TARGET = 0.95  # issue K: share of (file, class) decisions that must agree
REFERENCES = ("keras", "tflite_fp16")
CANDIDATE = "tflite_int8"


def default_files(*, real_dev: Path = REAL_DEV_AUDIO, repo: Path = REPO) -> list[Path]:
    """The recorded clips of ``real_dev`` and the held-out rendered songs' mixes, sorted."""
    clips = sorted(f for f in real_dev.glob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS) if real_dev.is_dir() else []
    return clips + sorted(repo.glob(HELD_OUT_MIXES))


def model_files(folder: Path, reference: str) -> dict[str, Path]:
    """``{"reference": model argument, "candidate": shipped folder}``; ValueError naming the
    folder when it is no shipped folder or lacks a file the comparison needs."""
    if not folder.is_dir():
        raise ValueError(f"--model {folder}: no such folder")
    if not is_shipped_dir(folder):
        raise ValueError(f"--model {folder}: not a shipped folder (no {SHIPPED_METADATA} of a shipped model in it)")
    meta = read_shipped(folder, verify=False)  # predict checks every sha256 when it loads
    need = [SHIPPED_FILES[v] for v in (reference, CANDIDATE)]
    missing = [f for f in need if f not in meta["files"] or not (folder / f).is_file()]
    if missing:
        raise ValueError(f"shipped folder {folder} lacks {', '.join(missing)}, which the comparison needs")
    return {"reference": folder / SHIPPED_FILES["keras"] if reference == "keras" else folder, "candidate": folder}


def predict_document(files: Sequence[Path], *, model: Path, variant: str | None, tf_free: bool, tmp: Path) -> dict[str, Any]:
    """``keras-inst predict FILES --model MODEL [--variant V] --format json --timeline`` in a fresh
    interpreter (TF-free if asked); its JSON document. ValueError with predict's stderr on failure."""
    out = tmp / f"{variant or 'keras'}{'_tf_free' if tf_free else ''}.json"
    shown = ["--model", str(model), *(["--variant", variant] if variant else []), "--format", "json", "--timeline"]
    args = [*map(str, files), *shown, "--output", str(out), "--no-progress"]
    code = f"from keras_inst.deploy.predict import main\nraise SystemExit(main({args!r}))"
    proc = run_python(code, tf_free=tf_free)
    if proc.returncode != 0:
        raise ValueError(f"predict {' '.join(shown)} failed (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-2000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def file_decisions(doc: Mapping[str, Any], where: str) -> dict[str, dict[str, np.ndarray]]:
    """Per file path of a predict document: ``present`` bool ``[C]``, ``windows`` bool ``[n, C]``
    (the timeline's classes) and ``probabilities`` ``[n, C]``. ValueError naming ``where`` when
    the document is not a presence answer with a timeline."""
    names = doc.get("class_names")
    if doc.get("aggregate") != "presence" or not names:
        raise ValueError(f"{where}: expected predict's presence answer (aggregate 'presence', class_names)")
    out = {}
    for f in doc["files"]:
        if "timeline" not in f or len(f["timeline"]) != f["windows"]:
            raise ValueError(f"{where}: file {f['path']} has no timeline of its {f['windows']} windows (predict --timeline)")
        out[f["path"]] = {
            "present": np.array([c in f["classes"] for c in names]),
            "windows": np.array([[c in w["classes"] for c in names] for w in f["timeline"]], dtype=bool).reshape(-1, len(names)),
            "probabilities": np.array([[w["probabilities"][c] for c in names] for w in f["timeline"]], float).reshape(-1, len(names)),
        }
    return out


def required_windows(doc: Mapping[str, Any], windows: int) -> list[int] | None:
    """Active windows each class needs in a file of ``windows`` windows (the document's presence rule)."""
    rule = doc.get("presence_rule")
    if rule is None:
        return None
    names = doc["class_names"]
    return PresenceRule.from_json(rule, names, where="the reference's presence_rule").required_windows(windows, names).tolist()


def compare(reference: Mapping[str, Any], candidate: Mapping[str, Any], *, target: float = TARGET) -> dict[str, Any]:
    """Agreement of two predict documents (``--format json --timeline``) over the same files
    (module doc); ValueError when they differ in classes, files or windows."""
    names = list(reference["class_names"])
    if list(candidate["class_names"]) != names:
        raise ValueError(f"the two answers name different classes: {names} and {candidate['class_names']}")
    ref, cand = file_decisions(reference, "reference"), file_decisions(candidate, "candidate")
    if set(ref) != set(cand):
        raise ValueError(f"the two answers cover different files: only in the reference {sorted(set(ref) - set(cand))}, "
                         f"only in the candidate {sorted(set(cand) - set(ref))}")
    if not ref:
        raise ValueError("no file was analysed by both paths")
    paths = sorted(ref)
    bad = [p for p in paths if ref[p]["windows"].shape != cand[p]["windows"].shape]
    if bad:
        raise ValueError(f"the two answers cut different windows from {', '.join(bad)}")
    same = np.stack([ref[p]["present"] == cand[p]["present"] for p in paths])  # [F, C]
    win_same = np.concatenate([ref[p]["windows"] == cand[p]["windows"] for p in paths])  # [sum n, C]
    dp = np.concatenate([np.abs(ref[p]["probabilities"] - cand[p]["probabilities"]) for p in paths])
    agreement = float(same.mean())
    return {
        "files": len(paths), "classes": len(names), "pairs": int(same.size), "agreeing_pairs": int(same.sum()),
        "agreement": agreement, "per_class": {c: float(v) for c, v in zip(names, same.mean(axis=0), strict=True)},
        "disagreements": [disagreement(reference, p, c, ref[p], cand[p], j) for i, p in enumerate(paths)
                          for j, c in enumerate(names) if not same[i, j]],
        "windows": int(win_same.shape[0]), "window_decision_agreement": float(win_same.mean()),
        "max_abs_dp": round(float(dp.max()), 6) if dp.size else 0.0, "target": target, "met": agreement >= target,
    }


def disagreement(reference: Mapping[str, Any], path: str, cls: str, ref: Mapping[str, np.ndarray],
                 cand: Mapping[str, np.ndarray], j: int) -> dict[str, Any]:
    """One disagreeing (file, class) pair: both decisions and active window counts."""
    n = int(ref["windows"].shape[0])
    need = required_windows(reference, n)
    return {"file": path, "class": cls, "windows": n, "required_windows": None if need is None else need[j],
            "reference": {"present": bool(ref["present"][j]), "active_windows": int(ref["windows"][:, j].sum())},
            "candidate": {"present": bool(cand["present"][j]), "active_windows": int(cand["windows"][:, j].sum())}}


def measure(files: Sequence[Path], *, folder: Path, reference: str) -> dict[str, Any]:
    """Run both paths over ``files`` and compare them (module doc)."""
    models = model_files(folder, reference)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="agree_shipped_") as tmp:
        t0 = time.perf_counter()
        ref = predict_document(files, model=models["reference"], variant=None if reference == "keras" else reference,
                               tf_free=False, tmp=Path(tmp))
        seconds["reference"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        cand = predict_document(files, model=models["candidate"], variant=CANDIDATE, tf_free=True, tmp=Path(tmp))
        seconds["candidate"] = round(time.perf_counter() - t0, 1)
    result = compare(ref, cand)
    unread = sorted({e["path"] for doc in (ref, cand) for e in doc["errors"]})
    return {"model": str(folder), "reference": f"{reference} ({ref['model']})",
            "candidate": f"{CANDIDATE} without TensorFlow ({cand['model']})", **result,
            "unreadable": unread, "inputs": sorted(f["path"] for f in ref["files"]), "seconds": seconds}


def check_files(raw: Sequence[str] | None) -> list[Path]:
    """``--files`` (each must exist) or the default files; ValueError when none are there."""
    if raw:
        missing = [f for f in raw if not Path(f).expanduser().is_file()]
        if missing:
            raise ValueError(f"--files: {', '.join(missing)} not found (or not a file)")
        return [Path(f).expanduser().resolve() for f in raw]
    files = default_files()
    if not files:
        raise ValueError(f"no default files: {REAL_DEV_AUDIO} holds no audio and no {REPO / HELD_OUT_MIXES} exists; "
                         "pass --files")
    return files


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a shipped folder (default: the installed one, or $KERAS_INST_RELEASE)")
    p.add_argument("--files", nargs="+", default=None,
                   help="audio files (default: ../shared/real_dev/audio/* and data/rendered_heldout_*/*/mix.flac)")
    p.add_argument("--reference", choices=REFERENCES, default=REFERENCES[0],
                   help="the path the int8 model is compared with: the shipped .keras model (default) or its float16 TFLite")
    args = p.parse_args(argv)
    try:
        folder = Path(args.model).expanduser().resolve() if args.model else default_model()
        result = measure(check_files(args.files), folder=folder, reference=args.reference)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
