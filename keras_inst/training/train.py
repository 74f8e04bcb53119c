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
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from keras_inst.config.io import add_override_argument, dump_config, load_config
from keras_inst.config.schema import ExperimentConfig

STATE_FILE = "state.json"
LAST_CKPT = "checkpoints/last.keras"
BEST_CKPT = "checkpoints/best.keras"


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, a run directory that belongs to another config)."""


def atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_state(run_dir: Path) -> dict:
    """The run's progress record (epochs done, best score, complete); {} before the first epoch."""
    path = run_dir / STATE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def prepare_run_dir(cfg: ExperimentConfig, run_dir: Path, *, overwrite: bool = False) -> str:
    """Create or re-open a run directory. Returns 'new', 'resume' or 'complete'.

    The resolved config is the run's identity: a directory written by another config is an error
    (never silently overwritten) unless ``overwrite`` is given.
    """
    cfg_path = run_dir / "config.yaml"
    text = dump_config(cfg)
    if cfg_path.is_file() and not overwrite:
        if cfg_path.read_text(encoding="utf-8") != text:
            raise TrainingError(
                f"run directory {run_dir} holds a run with a different config; "
                "choose another --run-dir, or pass --overwrite to replace it"
            )
        state = read_state(run_dir)
        return "complete" if state.get("complete") else "resume"
    if overwrite and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    tmp = cfg_path.with_name("config.yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, cfg_path)
    return "new"


def load_checkpoint(path: str | Path):
    """Load a .keras checkpoint in any process (see :func:`keras_inst.models.short_chunk.load_model`)."""
    from keras_inst.models.short_chunk import load_model

    return load_model(path)


def ensure_rendered_corpus(cfg: ExperimentConfig) -> None:
    """Render the embedded corpus into data.roots.rendered when the config asks for one."""
    if cfg.data.render_songs <= 0 or "rendered" not in cfg.data.datasets:
        return
    root = cfg.data.roots.get("rendered")
    if not root:
        raise ValueError("config key 'data.roots.rendered': needed when data.render_songs > 0")
    from keras_inst.corpus.render import render_corpus

    print(f"Embedded corpus: {cfg.data.render_songs} songs in {root} (rendered once, then reused)")
    render_corpus(root, songs=cfg.data.render_songs, seed=cfg.data.render_seed, soundfont=cfg.data.soundfont, sample_rate=cfg.audio.sample_rate)


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


def training_callbacks(run_dir: Path) -> list:
    """NaN guard, CSV history, TensorBoard and the per-epoch atomic checkpoint of a run directory."""
    import keras

    class EpochCheckpoint(keras.callbacks.Callback):
        """Save model + optimizer state atomically after every epoch, then record the epoch."""

        def __init__(self) -> None:
            super().__init__()
            self.best = -math.inf

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            loss = logs.get("loss")
            if loss is None or not math.isfinite(loss):
                self.model.stop_training = True
                raise TrainingError(
                    f"loss became {loss} in epoch {epoch + 1}; stopping. Lower the learning rate "
                    "(optimizer.head_learning_rate / backbone_learning_rate) or check the data "
                    "(python -m keras_inst.data preview)"
                )
            last = run_dir / LAST_CKPT
            tmp = last.with_name("last.tmp.keras")
            self.model.save(tmp)
            os.replace(tmp, last)
            state = read_state(run_dir)
            score = logs.get("val_roc_auc", -loss)
            if score > state.get("best_score", -math.inf):
                best = run_dir / BEST_CKPT
                tmp_best = best.with_name("best.tmp.keras")
                self.model.save(tmp_best)
                os.replace(tmp_best, best)
                state.update(best_score=float(score), best_epoch=epoch + 1)
            state.update(epochs_done=epoch + 1, complete=False)
            atomic_json(run_dir / STATE_FILE, state)

    class NaNBatchGuard(keras.callbacks.Callback):
        """Stop within the epoch, with a clear message, as soon as a batch loss is NaN/inf."""

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.model.stop_training = True
                raise TrainingError(
                    f"loss became {loss} at batch {batch + 1}; stopping. Lower the learning rate "
                    "(optimizer.head_learning_rate / backbone_learning_rate) or check the data "
                    "(python -m keras_inst.data preview)"
                )

    return [
        NaNBatchGuard(),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), update_freq="epoch"),
        EpochCheckpoint(),
    ]


def evaluate_run(cfg: ExperimentConfig, model, data, run_dir: Path) -> dict:
    """Tune thresholds on validation, evaluate on test, write the report into the run directory."""
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.evaluate import predict_dataset
    from keras_inst.training.metrics import evaluate_predictions, tune_thresholds
    from keras_inst.training.report import write_report

    yv, pv = predict_dataset(model, data.validation)
    yt, pt = predict_dataset(model, data.test)
    thresholds = tune_thresholds(yv, pv)
    report = {
        "meta": {"config": cfg.name, "run_dir": str(run_dir), "split": "test", "dataset": ", ".join(cfg.data.datasets)},
        "validation": evaluate_predictions(yv, pv, thresholds=thresholds),
        "test": evaluate_predictions(yt, pt, thresholds=thresholds),
        "thresholds": dict(zip(CLASSES, map(float, thresholds), strict=True)),
    }
    write_report(run_dir, report, history_csv=run_dir / "history.csv", title=f"{cfg.name}: test split")
    return report


def train(cfg: ExperimentConfig, run_dir: str | Path, *, overwrite: bool = False, verbose: int | str = "auto") -> dict:
    """Train (or resume) a run and evaluate it; returns the report dict."""
    run_dir = Path(run_dir)
    status = prepare_run_dir(cfg, run_dir, overwrite=overwrite)
    if status == "complete":
        print(f"Run {run_dir} is already complete; report: {run_dir / 'report.md'}")
        return json.loads((run_dir / "report.json").read_text())

    import keras

    if cfg.training.mixed_precision:
        keras.mixed_precision.set_global_policy(cfg.training.mixed_precision)
    keras.utils.set_random_seed(cfg.training.seed)

    ensure_rendered_corpus(cfg)
    state = read_state(run_dir)
    initial_epoch = int(state.get("epochs_done", 0)) if (run_dir / LAST_CKPT).is_file() else 0

    from keras_inst.data.pipeline import build_data

    steps = cfg.training.steps_per_epoch
    data = build_data(cfg, run_dir=run_dir, start_example=initial_epoch * steps * cfg.training.batch_size)
    if initial_epoch > 0:
        print(f"Resuming {run_dir} after epoch {initial_epoch}")
        model = load_checkpoint(run_dir / LAST_CKPT)
    else:
        model = build_compiled_model(cfg)

    t0 = time.time()
    if initial_epoch < cfg.training.epochs:
        model.fit(
            data.train,
            steps_per_epoch=steps,
            epochs=cfg.training.epochs,
            initial_epoch=initial_epoch,
            validation_data=data.validation,
            callbacks=training_callbacks(run_dir),
            verbose=verbose,
            shuffle=False,  # the mixing stream is random already; Keras cannot shuffle a tf.data input
        )
    train_seconds = time.time() - t0

    best = run_dir / BEST_CKPT
    final = load_checkpoint(best) if best.is_file() else model
    tmp = run_dir / "model.tmp.keras"
    final.save(tmp)
    os.replace(tmp, run_dir / "model.keras")
    report = evaluate_run(cfg, final, data, run_dir)
    report["meta"]["train_seconds_this_session"] = round(train_seconds, 1)
    atomic_json(run_dir / "report.json", report)
    state = read_state(run_dir)
    state["complete"] = True
    atomic_json(run_dir / STATE_FILE, state)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_inst.train", description="Train a keras_inst model (no arguments: the main job on the embedded corpus).")
    p.add_argument("--config", default="demo", help="config file or shipped name (default: demo)")
    add_override_argument(p)
    p.add_argument("--run-dir", default=None, help="default: runs/<config name>")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory of another config")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.run_dir or Path("runs") / cfg.name)
        report = train(cfg, run_dir, overwrite=args.overwrite)
    except (ValueError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = report["test"]
    print(f"\nTest split: ROC-AUC {t['roc_auc']:.4f}  PR-AUC {t['pr_auc']:.4f}  loss {t['loss']:.4f}  F1@tuned {t.get('f1@tuned', float('nan')):.3f}")
    print(f"Report: {run_dir / 'report.md'}  (JSON: {run_dir / 'report.json'}; model: {run_dir / 'model.keras'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
