"""Pre-training the backbone on MTG-Jamendo auto-tagging (paper §2.2, §2.4).

``python -m keras_inst.pretrain --config pretrain_jamendo --set data.roots.mtg_jamendo=DIR``
trains the paper's model (same front end and backbone as ``configs/paper.yaml``) with one
sigmoid per tag of the chosen tag TSV (the 41 tags of ``autotagging_instrument.tsv``, or the
50 of ``autotagging_top50tags.tsv`` with ``--tsv``) and binary cross-entropy. Training examples
are random 4-second chunks of the training tracks (decoded once into the audio cache);
validation and test use the official split. At the end the BACKBONE weights are written where
:mod:`keras_inst.models.pretrained` looks for ``short_chunk_cnn`` (or ``--out``), with a sidecar JSON,
and the run directory gets a report of track-level tag ROC-AUC / PR-AUC.

Run directories work like ``keras_inst.training.train``'s (one :class:`~keras_inst.training.run_dir.RunDir`
lifecycle): the resolved config and the tag inputs are the run's identity, every epoch is
checkpointed, and running the same command again resumes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from keras_inst import atomic
from keras_inst.config.io import add_config_arguments, to_dict
from keras_inst.config.schema import ExperimentConfig
from keras_inst.data.jamendo import (  # the tagging data lives in its own module
    DATASET,
    TaggingData,
    evaluation_dataset,
    jamendo_root,
    load_tagging_data,
    training_dataset,
)
from keras_inst.runtime.artifacts import RUN_MODEL, RUN_REPORT
from keras_inst.training.lifecycle import RunSteps, execute_run
from keras_inst.training.metrics import binary_cross_entropy, keras_metrics, macro_aucs
from keras_inst.training.run_dir import RunDir, TrainingError, config_and_run_dir, load_checkpoint

PRETRAIN_FILE = "pretrain.json"  # tag file, split folder and tag vocabulary of the run


def tag_metrics(y_true: np.ndarray, y_prob: np.ndarray, tags: Sequence[str]) -> dict:
    """Macro and per-tag ROC-AUC / PR-AUC (tags with positives and negatives only) and BCE."""

    y_true = np.asarray(y_true, np.float64)
    y_prob = np.asarray(y_prob, np.float64)
    if y_true.ndim != 2 or y_true.shape != y_prob.shape or y_true.shape[1] != len(tags):
        raise ValueError(
            f"expected labels and probabilities [n, {len(tags)}], "
            f"got {y_true.shape} and {y_prob.shape}"
        )
    per_tag, roc, pr, undefined = macro_aucs(y_true, y_prob, tags)
    return {
        "tracks": int(len(y_true)),
        "roc_auc": roc,
        "pr_auc": pr,
        "loss": binary_cross_entropy(y_true, y_prob),
        "undefined_tags": undefined,
        "per_tag": per_tag,
    }


def evaluate_tracks(model, data: TaggingData, cfg: ExperimentConfig, split: str) -> dict | None:
    """Track-level metrics of a split: chunk probabilities averaged per track (None: no tracks)."""
    if not data.entries[split]:
        return None
    ds, tracks = evaluation_dataset(data, cfg, split)
    probs = np.concatenate([model.predict_on_batch(x) for x, _ in ds])  # [n_chunks, n_tags]
    n = len(data.entries[split])
    sums = np.zeros((n, probs.shape[1]), np.float64)
    np.add.at(sums, tracks, probs)
    per_track = sums / np.bincount(tracks, minlength=n)[:, None]  # [n_tracks, n_tags]
    out = tag_metrics(data.labels[split], per_track, data.tags)
    out["chunks"] = int(len(tracks))
    return out


def compile_tagger(cfg: ExperimentConfig, n_tags: int):
    """The paper's model with an ``n_tags``-sigmoid head, Adam with the step schedule, BCE."""
    import keras

    from keras_inst.models.optimizers import build_optimizer
    from keras_inst.models.short_chunk import build_model

    model = build_model(cfg, n_classes=n_tags)
    model.compile(
        optimizer=build_optimizer(cfg, model),
        loss=keras.losses.BinaryCrossentropy(),
        # Same names as keras_inst.training.metrics.keras_metrics (train's checkpointing keys on
        # val_roc_auc), sized for the tag vocabulary instead of the 15 classes.
        metrics=keras_metrics(num_labels=n_tags),
    )
    return model


def default_weights_path(cfg: ExperimentConfig) -> Path:
    """Where :func:`keras_inst.models.pretrained.load_pretrained_backbone` looks for short_chunk_cnn."""
    from keras_inst.models.pretrained import short_chunk_weights_path

    return short_chunk_weights_path(cfg)


def sidecar_path(weights: Path) -> Path:
    """``x.weights.h5`` -> ``x.pretrain.json`` (what the weights are and how good they are)."""
    return weights.with_name(weights.name[: -len(".weights.h5")] + ".pretrain.json")


def save_backbone(model, weights: Path, meta: dict) -> Path:
    """Write the model's backbone weights and the sidecar JSON atomically."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    backbone = model.get_layer("backbone")

    # The temporary name keeps ".weights.h5", which Keras requires of weight files.
    atomic.write_with(weights, backbone.save_weights)
    atomic.write_json(sidecar_path(weights), meta)
    return weights


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _markdown(report: dict) -> str:
    f = _f
    meta = report["meta"]
    lines = [
        f"# Pre-training on MTG-Jamendo: {meta['config']}",
        "",
        f"- tag file: {meta['tsv']} ({len(meta['tags'])} tags)",
        f"- split: {meta['split']}",
        f"- backbone weights: {meta['weights']}",
        "- metrics: track level (chunk probabilities averaged per track), "
        "macro over the tags with positives",
        "",
        "| split | tracks | ROC-AUC | PR-AUC | loss |",
        "|---|---|---|---|---|",
    ]
    for split in ("validation", "test"):
        r = report.get(split)
        if r:
            metrics = " | ".join(f(r[k]) for k in ("roc_auc", "pr_auc", "loss"))
            lines.append(f"| {split} | {r['tracks']} | {metrics} |")
    per = report.get("test") or report["validation"]
    lines += [
        "",
        f"Per tag ({'test' if report.get('test') else 'validation'}):",
        "",
        "| tag | positives | ROC-AUC | PR-AUC |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t} | {e['positives']} | {f(e['roc_auc'])} | {f(e['pr_auc'])} |"
        for t, e in per["per_tag"].items()
    ]
    return "\n".join(lines) + "\n"


def _weights_path(cfg: ExperimentConfig, out: str | Path | None) -> Path:
    """Check that the config is a pre-training one; where the backbone weights go."""
    if tuple(cfg.data.datasets) != (DATASET,):
        raise ValueError(
            f"config key 'data.datasets': pre-training reads only [{DATASET}], "
            f"got {list(cfg.data.datasets)}"
        )
    if cfg.training.transfer != "scratch":
        raise ValueError(
            f"config key 'training.transfer': pre-training trains from scratch, got "
            f"{cfg.training.transfer!r}; set training.transfer=scratch and training.pretrained=null"
        )
    if out is None and cfg.model.architecture != "short_chunk_cnn":
        raise ValueError(
            f"config key 'model.architecture': {cfg.model.architecture!r} has no default "
            "weights file; pass --out FILE.weights.h5"
        )
    weights = Path(out).expanduser() if out is not None else default_weights_path(cfg)
    if not weights.name.endswith(".weights.h5"):
        raise ValueError(f"--out {str(weights)!r}: Keras weights files must end in .weights.h5")
    return weights


def _write_outputs(
    final, cfg: ExperimentConfig, rd: RunDir, data: TaggingData, weights: Path, seconds: float
) -> dict:
    """Evaluate the final model per track, save its backbone, write report.json / report.md."""
    meta = {
        "config": cfg.name,
        "run_dir": str(rd.path),
        "tsv": str(data.tsv),
        "split": data.split_source,
        "tags": list(data.tags),
        "weights": str(weights),
        "train_tracks": len(data.entries["train"]),
        "train_seconds_this_session": round(seconds, 1),
        "best_epoch": rd.read_state().best_epoch,
        "model": to_dict(cfg.model),
        "features": to_dict(cfg.features),
        "audio": to_dict(cfg.audio),
    }
    report = {
        "meta": meta,
        "validation": evaluate_tracks(final, data, cfg, "validation"),
        "test": evaluate_tracks(final, data, cfg, "test"),
    }
    summary = {
        k: {m: report[k][m] for m in ("tracks", "roc_auc", "pr_auc", "loss")}
        for k in ("validation", "test")
        if report[k]
    }
    if rd.is_chief:  # the weights file lies outside the run directory: the chief's to write
        save_backbone(final, weights, {**meta, **summary})
    rd.write_json(RUN_REPORT, report)
    rd.write_text("report.md", _markdown(report))
    return report


class _Streams(NamedTuple):
    """A pre-training run's data: the tag data and its two streams."""

    data: TaggingData
    train: Any  # tf.data.Dataset: (waveform [B, T], tags [B, n_tags]), endless
    validation: Any  # tf.data.Dataset: the validation tracks' chunks


def _steps(cfg: ExperimentConfig, weights: Path, loading: dict) -> RunSteps:
    """Pre-training's part of the run skeleton: the tagging data (bound to the run), the
    tagger, and the backbone weights written with the report."""

    def load_data(rd: RunDir, initial_epoch: int) -> _Streams:
        data = load_tagging_data(cfg, **loading)
        inputs = {"tsv": str(data.tsv.resolve()), "split": data.split_source, "tags": list(data.tags)}
        rd.bind(PRETRAIN_FILE, inputs, hint="choose another --run-dir or pass --overwrite")
        start = initial_epoch * cfg.training.steps_per_epoch * cfg.training.batch_size
        return _Streams(data, training_dataset(data, cfg, start_example=start),
                        evaluation_dataset(data, cfg, "validation")[0])

    def complete(rd: RunDir) -> dict:
        report = rd.read_report()
        if not weights.is_file() and rd.is_chief:
            meta = {**report["meta"], "weights": str(weights)}
            save_backbone(load_checkpoint(rd.path / RUN_MODEL), weights, meta)
        print(f"Run {rd.path} is already complete; backbone weights: {weights}")
        return report

    return RunSteps(
        load_data=load_data, build=lambda d: compile_tagger(cfg, len(d.data.tags)),
        streams=lambda d, strategy: (d.train, d.validation), complete=complete,
        outputs=lambda final, d, rd, seconds: _write_outputs(final, cfg, rd, d.data, weights, seconds),
    )


def pretrain(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    tsv: str | Path | None = None,
    split_dir: str | Path | None = None,
    audio_dir: str | Path | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    verbose: int | str = "auto",
    callbacks: Sequence = (),
    is_chief: bool = True,
) -> dict:
    """Pre-train (or resume), save the backbone weights, evaluate; returns the report dict.

    ``callbacks`` run after the checkpointing ones (so an epoch they see is already saved).
    ``is_chief=False``: a non-chief distributed worker, which writes nothing of the run.
    ``training.strategy``: ``default`` or ``mirrored`` (the GPUs of one host; one input
    pipeline, each global batch split over them); ``multi_worker`` is refused here, as the
    tagging stream is not sharded per worker (see :func:`keras_inst.training.train.train`).
    """
    if cfg.training.strategy == "multi_worker":
        raise ValueError("config key 'training.strategy': multi_worker is not supported for "
                         "pre-training (use mirrored for the GPUs of one host)")
    weights = _weights_path(cfg, out)
    jamendo_root(cfg)  # before the run directory is created
    loading = {"tsv": tsv, "split_dir": split_dir, "audio_dir": audio_dir, "workers": workers,
               "progress": verbose != 0}
    return execute_run(cfg, run_dir, _steps(cfg, weights, loading), is_chief=is_chief,
                       overwrite=overwrite, callbacks=callbacks, verbose=verbose)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_inst.pretrain",
        description="Pre-train the backbone on MTG-Jamendo auto-tagging and save its weights "
        "for transfer learning.",
    )
    add_config_arguments(p, default="pretrain_jamendo", example="data.roots.mtg_jamendo=/data/mtg-jamendo")
    p.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    p.add_argument(
        "--out",
        default=None,
        help="backbone weights file (.weights.h5); default: where keras_inst.models.pretrained "
        "looks for short_chunk_cnn",
    )
    p.add_argument(
        "--tsv",
        default=None,
        help="tag file (default: autotagging_instrument.tsv, else autotagging.tsv, "
        "found under the root)",
    )
    p.add_argument(
        "--split-dir",
        default=None,
        help="folder with <tsv name>-{train,validation,test}.tsv "
        "(default: <tsv folder>/splits/split-0)",
    )
    p.add_argument(
        "--audio-dir", default=None, help="folder holding NN/ID.mp3 (default: found under the root)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel decode processes for the audio cache (default: all cores)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory of another config",
    )
    p.add_argument("--strategy", default=None, choices=("default", "mirrored"),
                   help="training.strategy: default | mirrored (the GPUs of this host)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, run_dir = config_and_run_dir(args)
        report = pretrain(cfg, run_dir, out=args.out, tsv=args.tsv, split_dir=args.split_dir,
                          audio_dir=args.audio_dir, overwrite=args.overwrite, workers=args.workers)
    except (ValueError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split in ("validation", "test"):
        r = report.get(split)
        if r:
            print(
                f"{split}: {r['tracks']} tracks, tag ROC-AUC {_f(r['roc_auc'])}  "
                f"PR-AUC {_f(r['pr_auc'])}  loss {_f(r['loss'])}"
            )
    print(f"Backbone weights: {report['meta']['weights']}  (report: {run_dir / 'report.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
