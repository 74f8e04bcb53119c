"""Training with transfer learning (paper §2.4, §3.1): ``python -m keras_inst.train``.

A run directory holds everything of one run: the fully resolved config, the data split,
checkpoints, TensorBoard logs, the CSV history, the final model and the evaluation report.
Killed runs resume from their last finished epoch when the same command is run again; a run
directory with a different config is never overwritten.

With no arguments this runs the main job (configs/demo.yaml): render the embedded corpus if it
is missing, train, evaluate on the test split and print where the report is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_inst import atomic
from keras_inst.config.io import add_override_argument
from keras_inst.config.schema import STRATEGIES, ExperimentConfig
from keras_inst.runtime.artifacts import RUN_MODEL, RUN_REPORT
from keras_inst.training.run_dir import (
    HISTORY_FILE,
    RunDir,
    TrainingError,
    config_and_run_dir,
    start_keras,
)

__all__ = ["TrainingError", "build_compiled_model", "ensure_rendered_corpus", "main", "prepare_run_dir", "train"]


def prepare_run_dir(cfg: ExperimentConfig, run_dir: str | Path, *, overwrite: bool = False) -> str:
    """Create or re-open a run directory: 'new', 'resume' or 'complete' (see :meth:`RunDir.prepare`)."""
    return RunDir(run_dir).prepare(cfg, overwrite=overwrite)


def ensure_rendered_corpus(cfg: ExperimentConfig) -> None:
    """Render the embedded corpus into data.roots.rendered when the config asks for one."""
    if cfg.data.render_songs <= 0 or "rendered" not in cfg.data.datasets:
        return
    root = cfg.data.roots.get("rendered")
    if not root:
        raise ValueError("config key 'data.roots.rendered': needed when data.render_songs > 0")
    from keras_inst.corpus.render import render_corpus

    print(f"Embedded corpus: {cfg.data.render_songs} songs in {root} (rendered once, then reused)")
    render_corpus(
        root, songs=cfg.data.render_songs, seed=cfg.data.render_seed, soundfont=cfg.data.soundfont,
        sample_rate=cfg.audio.sample_rate, sources=list(cfg.data.render_sources) or None,
        exclude_sources=list(cfg.data.render_exclude_sources) or None,
    )


def build_compiled_model(cfg: ExperimentConfig):
    """Model with a new head, the pre-trained backbone loaded and frozen as the mode says, compiled."""
    import keras

    from keras_inst.models.optimizers import build_optimizer
    from keras_inst.models.short_chunk import build_model
    from keras_inst.training.metrics import keras_metrics

    model = build_model(cfg)
    if cfg.training.transfer != "scratch":
        from keras_inst.models.pretrained import load_pretrained_backbone

        load_pretrained_backbone(model, cfg)
    if cfg.training.transfer == "frozen":
        # trainable=False also puts Keras 3 BatchNormalization into inference mode, so the
        # frozen backbone's moving statistics do not drift either.
        model.get_layer("backbone").trainable = False
    model.compile(
        optimizer=build_optimizer(cfg, model),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=keras_metrics(),
    )
    return model


def evaluate_run(cfg: ExperimentConfig, model, data, rd: RunDir, *, train_seconds: float) -> dict:
    """Tune thresholds on validation, evaluate on test, write the report into the run directory."""
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.evaluate import predict_dataset
    from keras_inst.training.metrics import evaluate_predictions, tune_thresholds
    from keras_inst.training.report import write_report

    yv, pv = predict_dataset(model, data.validation)
    yt, pt = predict_dataset(model, data.test)
    thresholds = tune_thresholds(yv, pv)
    meta = {"config": cfg.name, "run_dir": str(rd.path), "split": "test", "dataset": ", ".join(cfg.data.datasets)}
    report = {
        "meta": {**meta, "train_seconds_this_session": round(train_seconds, 1)},
        "validation": evaluate_predictions(yv, pv, thresholds=thresholds),
        "test": evaluate_predictions(yt, pt, thresholds=thresholds),
        "thresholds": dict(zip(CLASSES, map(float, thresholds), strict=True)),
    }
    from keras_inst.training.cross_source import comparison_table, held_out_evaluation

    held = held_out_evaluation(cfg, model, thresholds)  # None unless data.held_out_sources [open]
    if held is not None:
        report["held_out"] = held
    out = rd.write_dir
    paths = write_report(out, report, history_csv=out / HISTORY_FILE, title=f"{cfg.name}: test split")
    if held is not None:  # report.md: the test split's tables, then in-domain vs held-out
        atomic.write_text(paths["markdown"], paths["markdown"].read_text(encoding="utf-8") + "\n" + comparison_table(report))
    return report


def train(cfg: ExperimentConfig, run_dir: str | Path, *, overwrite: bool = False, verbose: int | str = "auto", is_chief: bool | None = None) -> dict:
    """Train (or resume) a run and evaluate it; returns the report dict.

    ``training.strategy`` picks the ``tf.distribute`` strategy (:mod:`keras_inst.training.distribute`).
    Under ``multi_worker`` every process of ``TF_CONFIG`` runs this: each draws its share of
    every global batch, only the chief writes into ``run_dir`` and evaluates, and a non-chief
    worker returns ``{"worker": index, ...}`` instead of a report. ``is_chief`` overrides the
    chief role (None: from ``TF_CONFIG``; False writes nothing into ``run_dir``, see
    :class:`~keras_inst.training.run_dir.RunDir`). A killed cluster resumes from the last
    finished epoch when every process is started again (Keras' BackupAndRestore semantics).
    """
    from keras_inst.training import distribute as dist

    cluster = dist.cluster_spec(cfg.training.strategy)
    with RunDir(run_dir, is_chief=cluster.is_chief if is_chief is None else is_chief) as rd:
        if rd.prepare(cfg, overwrite=overwrite) == "complete":
            print(f"Run {rd.path} is already complete; report: {rd.path / 'report.md'}")
            return rd.read_report()
        # Before any other TensorFlow op: MultiWorkerMirroredStrategy configures the collectives
        # at startup, and it waits here until every worker of TF_CONFIG has joined.
        strategy = dist.make_strategy(cfg.training.strategy)
        b = cfg.training.batch_size
        dist.per_replica_batch(b, strategy.num_replicas_in_sync)  # ValueError unless it divides
        start_keras(cfg.training)
        ensure_rendered_corpus(cfg)
        initial_epoch = rd.resume_epoch()

        from keras_inst.data.pipeline import build_data
        from keras_inst.training.step_effects import prepare_fit

        start = initial_epoch * cfg.training.steps_per_epoch * b
        stream = None if cluster.num_workers == 1 else dist.worker_stream(
            global_batch=b, num_workers=cluster.num_workers, worker_index=cluster.worker_index, start=start)
        data = build_data(cfg, run_dir=rd.split_dir(), start_example=start, worker_stream=stream)
        with strategy.scope():  # variables, optimizer slots and metrics are mirrored
            model = rd.load_or_build(initial_epoch, lambda: build_compiled_model(cfg))
            dist.synchronize_batch_norm(model, strategy.num_replicas_in_sync)
            prepare_fit(model, cfg)  # training.effects_in: train_step
        train_ds = dist.distributed_stream(strategy, data.train, global_batch=b, num_workers=cluster.num_workers)
        seconds = rd.fit(model, train_ds, data.validation, cfg.training, initial_epoch=initial_epoch, verbose=verbose)
        if not rd.is_chief:
            return {"worker": cluster.worker_index, "num_workers": cluster.num_workers, "train_seconds_this_session": round(seconds, 1)}
        # The chief evaluates alone: finalize loads the best checkpoint outside the strategy.
        return rd.finalize(model, outputs=lambda final: evaluate_run(cfg, final, data, rd, train_seconds=seconds))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_inst.train", description="Train a keras_inst model (no arguments: the main job on the embedded corpus).")
    p.add_argument("--config", default="demo", help="config file or shipped name (default: demo)")
    add_override_argument(p)
    p.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory of another config")
    p.add_argument("--strategy", default=None, choices=STRATEGIES, help="training.strategy: default | mirrored (the GPUs of this host) | multi_worker (hosts from TF_CONFIG)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, run_dir = config_and_run_dir(args)
        report = train(cfg, run_dir, overwrite=args.overwrite)
    except (ValueError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if "worker" in report:  # a non-chief worker: the chief writes the run directory
        print(f"Worker {report['worker']} of {report['num_workers']} finished; the chief writes {run_dir}")
        return 0
    t = {k: float("nan") if v is None else v for k, v in report["test"].items()}  # None: no class has both labels
    print(f"\nTest split: ROC-AUC {t['roc_auc']:.4f}  PR-AUC {t['pr_auc']:.4f}  loss {t['loss']:.4f}  F1@tuned {t.get('f1@tuned', float('nan')):.3f}")
    if "held_out" in report:
        h = report["held_out"]
        print(f"Held-out source ({', '.join(h['sources'])}, {h['songs']} other songs): ROC-AUC {h['roc_auc']:.4f}  PR-AUC {h['pr_auc']:.4f}")
    print(f"Report: {run_dir / 'report.md'}  (JSON: {run_dir / RUN_REPORT}; model: {run_dir / RUN_MODEL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
