"""The shipped model, made by the project's own recipe: ``keras-inst release``.

``keras-inst release [--config release] [--set ...] [--run-dir D] [--out DIR | --install]``:

1. trains ``configs/release.yaml`` through the normal run lifecycle
   (:func:`keras_inst.training.train.train`: resumable, a complete run is not retrained);
2. exports it (:func:`keras_inst.deploy.export.export_model`: float16 and int8 TFLite, each
   reloaded and checked on the run's test split; into ``<run dir>/release_export``) and refuses
   to go on unless every check passed;
3. assembles the shipped folder (:mod:`keras_inst.runtime.shipped`) in a temporary folder:
   both TFLite files, ``model.keras`` (without optimizer state), ``labels.txt`` and
   ``metadata.json`` (recipe, sha256 of the resolved config, the config itself, classes,
   thresholds, presence rule, window / hop / sample rate, the run's figures and the held-out
   run's, the outputs of every shipped form on :func:`recorded_inputs`, training data with every
   sample source's licence, per-file sha256 and size, created date, package version), refuses
   more than :data:`~keras_inst.runtime.shipped.MAX_SHIPPED_BYTES` together, and renames it into
   place: ``--install`` the package's ``keras_inst/release/`` (or ``$KERAS_INST_RELEASE``),
   ``--out DIR`` elsewhere, default ``<run dir>/release``;
4. writes the model card (:mod:`keras_inst.deploy.model_card`): ``docs/model_card.md`` with
   ``--install``, else ``<run dir>/model_card.md`` (``--card-file`` to choose).

``--held-out`` trains the held-out twin instead (``configs/release_heldout.yaml``: one sample
source family and one style left out of training and judged on); its ``report.json`` is where
the release's ``held_out`` figures come from (``--held-out-run``, default ``runs/release_heldout``).
``--card`` only re-writes the model card from an existing shipped folder; with ``--probe
LABELS.json`` it first scores that folder on labelled real recordings (``predict``'s default
answer, :func:`probe_figures`) and records them in its ``metadata.json``, so the card shows how
the shipped model does on real audio beside the rendered figures.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst import atomic
from keras_inst.runtime.artifacts import PRESENCE_RULE_KEY, RUN_REPORT
from keras_inst.runtime.shipped import (
    MAX_SHIPPED_BYTES,
    SHIPPED_FILES,
    SHIPPED_FORMAT,
    SHIPPED_METADATA,
    file_record,
    read_shipped,
    shipped_dir,
)

RELEASE_CONFIG, HELD_OUT_CONFIG = "release", "release_heldout"
EXPORT_FOLDER = "release_export"  # in the run directory: the export, kept for inspection
SHIPPED_FORMATS = ("tflite_fp16", "tflite_int8")
# The fixed inputs every shipped form's outputs are recorded on (and checked against in CI):
# seeded white noise at -20 dBFS RMS and two seeded tone/noise mixes (deploy.audio_io).
RECORDED_SEED = 2026
# |probability - recorded| a re-run of a shipped form may differ by on another CPU: float
# kernels (oneDNN, XNNPACK) round differently per instruction set, ~1e-6 measured here; int8
# re-quantises activations per example, where one rounding step moves a probability by ~1e-3.
RECORD_TOLERANCE = {"keras": 1e-3, "tflite_fp16": 1e-3, "tflite_int8": 1e-2}


class ReleaseError(ValueError):
    """A release that must not be shipped (a failed check, too large): nothing was installed."""


def release_config(config: str | None, overrides: Sequence[str], *, held_out: bool) -> Any:
    """The recipe: ``config`` (default ``release``; ``--held-out``: ``release_heldout``) with ``--set``."""
    from keras_inst.config.io import load_config

    if held_out and config is not None:
        raise ValueError("--held-out trains configs/release_heldout.yaml (the release recipe with one source family "
                         "and one style held out); it takes no --config")
    return load_config(config or (HELD_OUT_CONFIG if held_out else RELEASE_CONFIG), overrides)


def config_sha256(cfg: Any) -> str:
    """sha256 of the fully resolved config's YAML text (what a run directory's config.yaml holds)."""
    from keras_inst.config.io import dump_config

    return hashlib.sha256(dump_config(cfg).encode("utf-8")).hexdigest()


def recorded_inputs(samples: int, sample_rate: int) -> np.ndarray:
    """The fixed waveforms ``[3, samples]`` whose outputs metadata.json records (see RECORDED_SEED)."""
    from keras_inst.deploy.audio_io import synthetic_mixes

    noise = np.random.default_rng(RECORDED_SEED).standard_normal(samples) * 0.1  # -20 dBFS RMS
    mixes = synthetic_mixes(2, samples=samples, sample_rate=sample_rate, seed=RECORDED_SEED)
    return np.concatenate([noise[None].astype(np.float32), mixes]).astype(np.float32)


def shipped_outputs(folder: Path, inputs: np.ndarray) -> dict[str, list[list[float]]]:
    """Probabilities ``[n, C]`` of every shipped form in ``folder`` on ``inputs``, as lists."""
    from keras_inst.runtime.lite import LiteClassifier

    out: dict[str, list[list[float]]] = {}
    if (folder / SHIPPED_FILES["keras"]).is_file():
        from keras_inst.models.short_chunk import load_model

        model = load_model(folder / SHIPPED_FILES["keras"], compile=False)
        out["keras"] = np.asarray(model.predict_on_batch(inputs), np.float64).round(7).tolist()
    for v in SHIPPED_FORMATS:
        if (folder / SHIPPED_FILES[v]).is_file():
            out[v] = np.asarray(LiteClassifier(folder / SHIPPED_FILES[v], num_threads=1).predict(inputs), np.float64).round(7).tolist()
    return out


def _split_figures(entry: dict | None) -> dict | None:
    """Macro and per-class ROC-AUC / PR-AUC (and F1 at the thresholds) of one report split."""
    if not entry:
        return None
    keep = ("roc_auc", "pr_auc", "f1@tuned", "positives", "threshold")
    out = {k: entry.get(k) for k in ("examples", "roc_auc", "pr_auc", "loss", "f1@tuned") if k in entry}
    out["per_class"] = {c: {k: e[k] for k in keep if k in e} for c, e in entry.get("per_class", {}).items()}
    for k in ("songs", "sources", "styles", "engines"):
        if k in entry:
            out[k] = entry[k]
    return out


def run_figures(report: dict, held_out_report: dict | None, held_out_run: Path | None) -> dict[str, Any]:
    """The figures metadata.json carries: the run's test split (in-domain), its whole-song scores
    and probe, and the held-out split -- the run's own if its recipe holds material out, else the
    held-out twin's (None with a note when not measured)."""
    songs = report.get("songs")
    figures: dict[str, Any] = {
        "test": _split_figures(report.get("test")),
        "songs": {k: songs[k] for k in ("songs", "rule", "presence") if k in songs} if songs else None,
        "probe": report.get("probe"),
        "held_out": None,
        "held_out_note": f"not measured: train the held-out twin first (keras-inst release --held-out; looked in {held_out_run})",
    }
    if report.get("held_out"):  # a recipe that holds out material itself (demo.yaml's FluidR3 family)
        figures["held_out"] = _split_figures(report["held_out"])
        figures["held_out_note"] = "the run's own held-out split"
    elif held_out_report and held_out_report.get("held_out"):
        figures["held_out"] = _split_figures(held_out_report["held_out"])
        figures["held_out_in_domain"] = _split_figures(held_out_report.get("test"))
        figures["held_out_note"] = f"from the held-out twin {held_out_run} (same recipe, {held_out_report['meta']['config']})"
    return figures


def training_data(cfg: Any) -> dict[str, Any]:
    """What the model was trained on: datasets, the render's settings and every sample source it
    used with its licence (:data:`keras_inst.corpus.sources.REGISTRY`, the render's corpus.json)."""
    from keras_inst.atomic import read_json_object
    from keras_inst.corpus.render import CORPUS_FILE
    from keras_inst.corpus.sources import REGISTRY

    d = cfg.data
    root = d.roots.get("rendered")
    corpus = read_json_object(Path(root) / CORPUS_FILE) if root and "rendered" in d.datasets else None
    used = set((corpus or {}).get("sources", {}))
    return {
        "datasets": list(d.datasets), "render_songs": d.render_songs, "render_seed": d.render_seed,
        # the songs the corpus holds (a render may leave a track out: corpus.json failed_tracks)
        "corpus_songs": int(corpus["songs"]) - len(corpus.get("failed_tracks", [])) if corpus else 0,
        "render_modern": d.render_modern, "render_styles": list(d.training_styles()),
        "render_generated_share": d.render_generated_share,
        "sources": [{"name": s.name, "license": s.license, "package": s.package, "note": s.note}
                    for s in REGISTRY if s.name in used],
        "steps": cfg.training.epochs * cfg.training.steps_per_epoch, "batch_size": cfg.training.batch_size,
    }


def export_release(run_dir: Path) -> tuple[Any, dict]:
    """(the run's loaded artifact, export.json) of float16 + int8 exports checked on the run's data;
    ReleaseError unless every check passed."""
    from keras_inst.deploy.export import export_model
    from keras_inst.deploy.export_data import export_data
    from keras_inst.runtime.loader import load_artifact

    src = load_artifact(run_dir, kinds=("keras",))
    cal, xs, ys, note = export_data(src, synthetic=False, int8=True, calibration=128, check=256)
    manifest = export_model(src.model, run_dir / EXPORT_FOLDER, formats=SHIPPED_FORMATS, thresholds=src.thresholds,
                            representative=cal, check_inputs=xs, check_labels=ys, data_note=note, source=str(src.path),
                            overwrite=True)
    failed = {f: a["failed"] for f, a in manifest["artifacts"].items() if not a["passed"]}
    if failed:
        raise ReleaseError(f"export checks failed, so nothing is shipped: {failed} (see {run_dir / EXPORT_FOLDER}/export.json)")
    return src, manifest


def _export_summary(manifest: dict) -> dict[str, Any]:
    keep = ("probabilities_max_abs_diff", "decision_agreement", "decision_agreement_clear", "roc_auc_change", "passed")
    return {"check_data": manifest["check_data"], "int8": manifest.get("int8"),
            "artifacts": {f: {k: a.get(k) for k in keep} for f, a in manifest["artifacts"].items()}}


def same_keras_model(a: Path, b: Path) -> bool:
    """Whether two ``.keras`` files hold the same config and weights (byte for byte); they differ
    only in Keras' save metadata (a date) when one model is saved twice."""
    import zipfile

    if not (a.is_file() and b.is_file()):
        return False
    try:
        with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
            names = set(za.namelist()) - {"metadata.json"}
            return names == set(zb.namelist()) - {"metadata.json"} and all(za.read(n) == zb.read(n) for n in names)
    except zipfile.BadZipFile:
        return False


def assemble(tmp: Path, *, cfg: Any, src: Any, manifest: dict, report: dict, figures: dict,
             max_bytes: int = MAX_SHIPPED_BYTES, previous: Path | None = None) -> dict[str, Any]:
    """Write the shipped files and metadata.json into the empty folder ``tmp``; its metadata.
    ``previous``: the shipped folder being replaced, whose model.keras is kept as it is when it
    holds the same model (no new bytes in version control for a re-assembled release).
    ReleaseError when they come to more than ``max_bytes``."""
    import keras_inst
    from keras_inst.models.short_chunk import load_model

    export_dir = Path(src.path).parent / EXPORT_FOLDER
    for v in SHIPPED_FORMATS:
        shutil.copyfile(export_dir / SHIPPED_FILES[v], tmp / SHIPPED_FILES[v])
    # Weights only, no optimizer slots: a third of the size, and fine-tuning builds its own.
    load_model(src.path, compile=False).save(tmp / SHIPPED_FILES["keras"])
    if previous is not None and same_keras_model(tmp / SHIPPED_FILES["keras"], previous / SHIPPED_FILES["keras"]):
        shutil.copyfile(previous / SHIPPED_FILES["keras"], tmp / SHIPPED_FILES["keras"])
    atomic.write_text(tmp / SHIPPED_FILES["labels"], "\n".join(src.class_names) + "\n")
    from keras_inst.config.io import to_dict

    inputs = recorded_inputs(src.input_samples, src.sample_rate)
    meta: dict[str, Any] = {
        "format": SHIPPED_FORMAT, "format_version": 1, "recipe": cfg.name, "config_sha256": config_sha256(cfg),
        "config": to_dict(cfg), "class_names": list(src.class_names), "thresholds": src.thresholds,
        PRESENCE_RULE_KEY: report.get(PRESENCE_RULE_KEY), "sample_rate": src.sample_rate,
        "input_samples": src.input_samples, "window_seconds": src.input_samples / src.sample_rate,
        "hop_seconds": src.input_samples / 2 / src.sample_rate, "embedding_dim": manifest["embedding_dim"],
        "default_variant": "tflite_fp16", "figures": figures, "training_data": training_data(cfg),
        "export": _export_summary(manifest),
        "recorded_outputs": {"inputs": f"seeded white noise (-20 dBFS RMS) and 2 synthetic mixes, seed {RECORDED_SEED} "
                                       "(keras_inst.deploy.release.recorded_inputs)",
                             "tolerance": RECORD_TOLERANCE, "probabilities": shipped_outputs(tmp, inputs)},
        "run": {"run_dir": str(src.path.parent), "train_seconds": report.get("meta", {}).get("train_seconds_this_session")},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "package_version": keras_inst.__version__,
        "files": {f.name: file_record(f) for f in sorted(tmp.iterdir()) if f.is_file()},
    }
    atomic.write_json(tmp / SHIPPED_METADATA, meta)
    total = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
    if total > max_bytes:
        sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in sorted(tmp.iterdir()))
        raise ReleaseError(f"the shipped files come to {total / 1e6:.2f} MB, over the {max_bytes / 1e6:g} MB limit ({sizes}); "
                           "nothing was written")
    meta["total_bytes"] = total
    return meta


def destination(*, out: str | None, install: bool, run_dir: Path) -> Path:
    """Where the shipped folder goes: ``--out``, ``--install`` (the package's), else ``<run dir>/release``."""
    if out and install:
        raise ValueError("--install writes into the package's keras_inst/release/ (or $KERAS_INST_RELEASE); "
                         "--out names another folder: give one of them")
    return Path(out).expanduser().resolve() if out else (shipped_dir() if install else run_dir / "release")


def make_release(cfg: Any, run_dir: Path, *, dest: Path, held_out_run: Path | None,
                 max_bytes: int = MAX_SHIPPED_BYTES, verbose: int | str = "auto") -> dict[str, Any]:
    """Train (or resume) the recipe in ``run_dir``, export, check and publish the shipped folder
    at ``dest`` atomically; returns its metadata (module doc)."""
    from keras_inst.training.train import train

    report = train(cfg, run_dir, verbose=verbose)
    held = None
    if held_out_run is not None and (held_out_run / RUN_REPORT).is_file():
        held = atomic.read_json_object(held_out_run / RUN_REPORT)
    src, manifest = export_release(run_dir)
    figures = run_figures(report, held, held_out_run)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        meta = assemble(tmp, cfg=cfg, src=src, manifest=manifest, report=report, figures=figures, max_bytes=max_bytes,
                        previous=dest)
        read_shipped(tmp)  # what a loader will check, checked once before publishing
        atomic.publish_dir(tmp, dest, if_exists="replace")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return meta


def default_card_file(*, install: bool, run_dir: Path) -> Path:
    """``docs/model_card.md`` of the source checkout for an installed release, else the run's."""
    return Path(__file__).resolve().parents[2] / "docs" / "model_card.md" if install else run_dir / "model_card.md"


def build_parser() -> argparse.ArgumentParser:
    from keras_inst.config.io import add_override_argument

    p = argparse.ArgumentParser(prog="python -m keras_inst.release",
                                description="Train the release recipe, export and check it, and ship it inside the package.")
    p.add_argument("--config", default=None, help=f"the recipe (default: {RELEASE_CONFIG}; {HELD_OUT_CONFIG} with --held-out)")
    add_override_argument(p, example="training.epochs=2")
    p.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    p.add_argument("--out", default=None, help="write the shipped folder here (default: <run dir>/release)")
    p.add_argument("--install", action="store_true",
                   help="write the shipped folder into the package (keras_inst/release/, or $KERAS_INST_RELEASE) "
                        "and the model card into docs/model_card.md")
    p.add_argument("--held-out", action="store_true",
                   help="train the held-out twin (configs/release_heldout.yaml) whose held-out figures the release carries")
    p.add_argument("--held-out-run", default=None, help="the held-out twin's run directory (default: runs/release_heldout)")
    p.add_argument("--card", action="store_true", help="only (re)write the model card from a shipped folder (--out, else the installed one)")
    p.add_argument("--probe", default=None, metavar="LABELS.json",
                   help="with --card: first score the shipped folder on labelled real recordings (e.g. "
                        "../shared/real_dev/labels.json) and record the figures in its metadata.json and card")
    p.add_argument("--card-file", default=None, help="where the model card goes (default: docs/model_card.md with --install "
                   "or --card, else <run dir>/model_card.md)")
    return p


def probe_figures(folder: Path, labels: str | Path) -> dict[str, Any]:
    """The shipped folder's scores on a real-recording probe (``../shared/real_dev/labels.json``):
    its float16 TFLite model run on each clip as ``predict`` runs a file (thresholds, presence
    rule), per-class and macro ROC-AUC over clips, and the certain positives found / false alarms."""
    from keras_inst.runtime.loader import load_artifact
    from keras_inst.training.evaluate import probe_entry
    from keras_inst.training.probe import read_probe_labels

    report = probe_entry(load_artifact(folder, variant="tflite_fp16"), labels)
    truth = read_probe_labels(labels, key="--probe")
    clips = report["clips"]
    positives = sum(len(truth[k]["positive"]) for k in clips)
    where = "/".join(Path(labels).resolve().parts[-2:])  # e.g. real_dev/labels.json
    return {"labels": where, "clips_scored": report["clips_scored"], "macro_roc_auc": report["macro_roc_auc"],
            "per_class_roc_auc": report["per_class_roc_auc"], "positives": positives,
            "found": positives - sum(len(c["missed"]) for c in clips.values()),
            "negatives": sum(len(truth[k]["negative"]) for k in clips),
            "false_alarms": sum(len(c["false"]) for c in clips.values()), "clips": clips}


def _card_only(args: argparse.Namespace) -> int:
    from keras_inst.deploy.model_card import write_model_card

    folder = Path(args.out).expanduser() if args.out else shipped_dir()
    meta = read_shipped(folder)
    if args.probe:  # metadata.json is not among the hashed files: recording figures in it keeps the folder valid
        meta["figures"]["probe"] = probe_figures(folder, args.probe)
        atomic.write_json(folder / SHIPPED_METADATA, meta)
    card = Path(args.card_file) if args.card_file else default_card_file(install=True, run_dir=folder)
    write_model_card(meta, card)
    print(f"Model card of {folder}: {card}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from keras_inst.training.run_dir import TrainingError

    args = build_parser().parse_args(argv)
    try:
        if args.probe and not args.card:
            raise ValueError("--probe scores a shipped folder for its model card: use it with --card")
        if args.card:
            return _card_only(args)
        cfg = release_config(args.config, args.overrides, held_out=args.held_out)
        run_dir = Path(args.run_dir or Path("runs") / cfg.name)
        if args.held_out:
            if args.out or args.install:
                raise ValueError("--held-out trains the held-out twin only (its figures go into the release's metadata); "
                                 "it ships nothing: leave out --out / --install")
            from keras_inst.training.train import train

            report = train(cfg, run_dir)
            h = report.get("held_out") or {}
            print(f"Held-out twin {run_dir}: held-out ROC-AUC {h.get('roc_auc')}  PR-AUC {h.get('pr_auc')}; "
                  "now `keras-inst release --install` carries these figures")
            return 0
        dest = destination(out=args.out, install=args.install, run_dir=run_dir)
        held_out_run = Path(args.held_out_run or Path("runs") / HELD_OUT_CONFIG)
        meta = make_release(cfg, run_dir, dest=dest, held_out_run=held_out_run)
        from keras_inst.deploy.model_card import write_model_card

        card = Path(args.card_file) if args.card_file else default_card_file(install=args.install, run_dir=run_dir)
        write_model_card(meta, card)
    except (ValueError, TrainingError) as e:  # ReleaseError: a check failed; else bad arguments or run dir
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, ReleaseError) else 2
    except OSError as e:  # e.g. a read-only site-packages: --out DIR or $KERAS_INST_RELEASE elsewhere
        print(f"error: writing the release failed: {e}", file=sys.stderr)
        return 1
    for f, rec in meta["files"].items():
        print(f"{f:24s} {rec['bytes'] / 1e6:7.2f} MB  sha256 {rec['sha256'][:16]}...")
    print(f"Shipped {meta['total_bytes'] / 1e6:.2f} MB into {dest} (recipe {meta['recipe']}, config sha256 "
          f"{meta['config_sha256'][:16]}...); model card: {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
