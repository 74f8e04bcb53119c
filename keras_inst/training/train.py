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
from keras_inst.config.io import add_config_arguments
from keras_inst.config.schema import STRATEGIES, ExperimentConfig
from keras_inst.runtime.artifacts import RUN_MODEL, RUN_REPORT
from keras_inst.training.lifecycle import RunSteps, execute_run
from keras_inst.training.run_dir import (
    HISTORY_FILE,
    RunDir,
    TrainingError,
    config_and_run_dir,
)

__all__ = ["TrainingError", "build_compiled_model", "main", "prepare_run_dir", "train"]


def prepare_run_dir(cfg: ExperimentConfig, run_dir: str | Path, *, overwrite: bool = False) -> str:
    """Create or re-open a run directory: 'new', 'resume' or 'complete' (see :meth:`RunDir.prepare`)."""
    return RunDir(run_dir).prepare(cfg, overwrite=overwrite)


def build_compiled_model(cfg: ExperimentConfig):
    """Model with a new head, the pre-trained backbone loaded and frozen as the mode says (all of
    it, or the blocks before the last ``training.trainable_blocks``), compiled."""
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
    if cfg.training.trainable_blocks is not None:  # [open] partly frozen: only the last n blocks train
        from keras_inst.models.blocks import freeze_leading_blocks

        freeze_leading_blocks(model.get_layer("backbone"), cfg)
    model.compile(
        optimizer=build_optimizer(cfg, model),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=keras_metrics(),
    )
    return model


def evaluate_run(cfg: ExperimentConfig, model, data, rd: RunDir, *, train_seconds: float, tagger=None) -> dict:
    """Tune thresholds on validation, evaluate on test (and the held-out split when the data
    has one), calibrate the presence rule on the validation songs and score whole test songs
    with it (:func:`keras_inst.training.evaluate.presence_entries`), add the probe and the
    tagger's rows (``evaluation.*``, :mod:`keras_inst.training.extras`; ``tagger``: see
    :func:`~keras_inst.training.extras.extra_entries`), write the report into the run directory."""
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.evaluate import predict_dataset, presence_entries, song_level_markdown
    from keras_inst.training.extras import extra_entries, extra_markdown
    from keras_inst.training.fusion import fusion_markdown
    from keras_inst.training.metrics import evaluate_predictions, tune_thresholds
    from keras_inst.training.report import comparison_table, write_report

    plain = None
    if cfg.model.fusion_tagger is not None:  # [open]: the fused model is the run's model from here
        from keras_inst.training.fusion import fuse_run_model

        model, plain = fuse_run_model(cfg, model, data, rd)
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
    report |= presence_entries(model, cfg, data.cache, validation=data.splits["validation"], test=data.splits["test"],
                               thresholds=thresholds)  # presence_rule beside the thresholds, for predict
    if data.held_out is not None:  # data.held_out_* [open]: sources, engines or styles held out
        yh, ph = predict_dataset(model, data.held_out.dataset)
        report["held_out"] = {**evaluate_predictions(yh, ph, thresholds=thresholds), **data.held_out.describe()}
        for style, ds in data.held_out.by_style.items():  # several styles held out: each alone
            ys, ps = predict_dataset(model, ds)
            report["held_out"].setdefault("by_style", {})[style] = evaluate_predictions(ys, ps, thresholds=thresholds)
    report |= extra_entries(cfg, model, data, report, tagger=tagger)  # evaluation.probe / tagger_row [open]
    if plain is not None:
        report["without_fusion"] = plain
    out = rd.write_dir
    paths = write_report(out, report, history_csv=out / HISTORY_FILE, title=f"{cfg.name}: test split")
    extra = ("\n" + comparison_table(report) if "held_out" in report else "") + (
        song_level_markdown(report["songs"]) if "songs" in report else "") + extra_markdown(report) + fusion_markdown(report)
    if extra:  # report.md: the test split's tables, then in-domain vs held-out, then whole songs
        atomic.write_text(paths["markdown"], paths["markdown"].read_text(encoding="utf-8") + extra)
    return report


def _steps(cfg: ExperimentConfig, cluster) -> RunSteps:
    """Training's part of the run skeleton: the data layer's splits, the transfer model and
    this worker's share of every global batch."""
    from keras_inst.training import distribute as dist

    b = cfg.training.batch_size

    def load_data(rd: RunDir, initial_epoch: int):
        from keras_inst.data.held_out import held_out_split
        from keras_inst.data.pipeline import build_data
        from keras_inst.data.rendered import ensure_rendered_corpora

        ensure_rendered_corpora(cfg)  # the training corpus and the held-out one, when asked for
        start = initial_epoch * cfg.training.steps_per_epoch * b
        stream = None if cluster.num_workers == 1 else dist.worker_stream(
            global_batch=b, num_workers=cluster.num_workers, worker_index=cluster.worker_index, start=start)
        return build_data(cfg, run_dir=rd.split_dir(), start_example=start, worker_stream=stream,
                          held_out=held_out_split(cfg))

    def adapt(model) -> None:
        from keras_inst.training.distill import prepare_distillation
        from keras_inst.training.step_effects import prepare_fit

        prepare_fit(model, cfg)  # training.effects_in: train_step
        prepare_distillation(model, cfg)  # training.distill_weight > 0: learning without forgetting

    def complete(rd: RunDir) -> dict:
        print(f"Run {rd.path} is already complete; report: {rd.path / 'report.md'}")
        return rd.read_report()

    def worker_result(seconds: float) -> dict:
        return {"worker": cluster.worker_index, "num_workers": cluster.num_workers, "train_seconds_this_session": round(seconds, 1)}

    def streams(data, strategy) -> tuple:
        return dist.distributed_stream(strategy, data.train, global_batch=b, num_workers=cluster.num_workers), data.validation

    return RunSteps(
        load_data=load_data, build=lambda data: build_compiled_model(cfg), adapt=adapt, streams=streams,
        outputs=lambda final, data, rd, seconds: evaluate_run(cfg, final, data, rd, train_seconds=seconds),
        complete=complete, worker_result=worker_result,
    )


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
    from keras_inst.models.blocks import check_trainable_blocks
    from keras_inst.training import distribute as dist
    from keras_inst.training.extras import check_evaluation_inputs

    check_evaluation_inputs(cfg)  # a missing probe file fails here, before any training
    check_trainable_blocks(cfg)  # likewise more trainable blocks than the backbone has
    cluster = dist.cluster_spec(cfg.training.strategy)
    return execute_run(cfg, run_dir, _steps(cfg, cluster), is_chief=cluster.is_chief if is_chief is None else is_chief,
                       overwrite=overwrite, verbose=verbose)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_inst.train", description="Train a keras_inst model (no arguments: the main job on the embedded corpus).")
    add_config_arguments(p, default="demo")
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
        from keras_inst.training.report import held_out_words

        print(f"Held-out ({held_out_words(h)}; {h['songs']} other songs): ROC-AUC {h['roc_auc']:.4f}  PR-AUC {h['pr_auc']:.4f}")
    if "probe" in report:
        print(f"Real-recording probe ({report['probe']['clips_scored']} clips): macro ROC-AUC over clips {report['probe']['macro_roc_auc']}")
    print(f"Report: {run_dir / 'report.md'}  (JSON: {run_dir / RUN_REPORT}; model: {run_dir / RUN_MODEL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
