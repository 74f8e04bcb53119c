"""keras-tuner search over p_musical (paper §3.2, Fig. 2): ``python -m keras_inst.tune``.

A grid search over ``tuner.p_musical_values``: every value is trained ``tuner.seeds`` times
(seeds ``training.seed + 0, 1, ...``: weight initialisation and the mixing stream both change)
for ``tuner.epochs`` epochs, and scored by ``tuner.objective`` (``val_roc_auc``, maximised) at
each run's best epoch; keras-tuner averages the seeds, as the paper averages its four.

The tuner directory (``--dir``) holds the resolved config (its identity: another config is
refused), the shared song split, keras-tuner's project (``search/``; one ``trial_*/`` per value
with ``executions.json``: every seed's metrics and history) and the outputs: ``results.md``,
``results.json`` (per value: mean, min, max, std and per-seed validation and test ROC-AUC /
PR-AUC / loss; the best value) and ``fig2_p_musical.png``. Running the same command again
continues an interrupted search: finished values are not trained again, nor finished seeds of an
interrupted value.

Each seed is also scored on the test split (musical mixes only, paper §2.3) with the weights of
its best epoch: Fig. 2's three panels are test ROC-AUC, PR-AUC and loss vs p_musical, drawn by
:func:`plot_results` as the mean over seeds with the min-max band of the seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_inst import atomic
from keras_inst.config.io import add_config_arguments, load_config
from keras_inst.config.schema import ExperimentConfig
from keras_inst.training.run_dir import RunDir, TrainingError, start_keras
from keras_inst.training.tune_results import (  # noqa: F401  (re-exported: the search's API)
    EXECUTIONS_FILE,
    HP_NAME,
    METRICS,
    PANEL_TITLES,
    PROJECT,
    TEST_METRICS,
    collect_results,
    fig2_series,
    objective_direction,
    plot_figure,
    plot_results,
    results_markdown,
    write_results,
)


def trial_config(cfg: ExperimentConfig, p_musical: float, seed_index: int) -> ExperimentConfig:
    """The experiment of one execution: ``p_musical``, seed ``training.seed + seed_index`` and
    ``tuner.epochs`` epochs."""
    return cfg.replace(
        mixing=dataclasses.replace(cfg.mixing, p_musical=float(p_musical)),
        training=dataclasses.replace(
            cfg.training, seed=cfg.training.seed + seed_index, epochs=cfg.tuner.epochs
        ),
    )


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def best_index(values: Sequence[float], objective: str) -> int:
    """Index of the best of ``values`` of ``objective``: the first of equal bests; NaN loses."""
    sign = -1.0 if objective_direction(objective) == "min" else 1.0
    scores = [sign * v if math.isfinite(v) else -math.inf for v in values]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def best_epoch_metrics(history: dict[str, list[float]], objective: str) -> tuple[int, dict]:
    """(best epoch index, every logged metric at that epoch) by ``objective``; NaN epochs lose."""
    values = history.get(objective)
    if not values:
        raise ValueError(
            f"config key 'tuner.objective': {objective!r} was not logged; logged: {sorted(history)}"
        )
    best = best_index(values, objective)
    return best, {k: _finite(v[best]) for k, v in history.items() if len(v) > best}


def score_test_split(model, test_ds) -> dict[str, float | None]:
    """``test_roc_auc``, ``test_pr_auc`` and ``test_loss`` (macro, as evaluate reports them) of
    ``model`` on the finite test dataset."""
    from keras_inst.training.evaluate import predict_dataset
    from keras_inst.training.metrics import evaluate_predictions

    report = evaluate_predictions(*predict_dataset(model, test_ds))
    return {f"test_{k}": None if report[k] is None else _finite(report[k]) for k in PANEL_TITLES}


def _keep_best_weights(objective: str):
    """A callback holding the weights of the epoch :func:`best_epoch_metrics` picks."""
    import keras

    class KeepBestWeights(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.values: list[float] = []
            self.best_weights = None

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.values.append(float((logs or {}).get(objective, math.nan)))
            if best_index(self.values, objective) == len(self.values) - 1:
                self.best_weights = self.model.get_weights()

    return KeepBestWeights()


def _build_hypermodel(cfg: ExperimentConfig, tune_dir: Path):
    import keras
    import keras_tuner

    class PMusicalHyperModel(keras_tuner.HyperModel):
        """Builds the compiled paper model; fits it on data mixed with the trial's p_musical."""

        def __init__(self) -> None:
            super().__init__(name="p_musical")
            self.seed_index = 0
            self.test_metrics: dict = {}  # of the last fit, at its best epoch

        def declare_hyperparameters(self, hp) -> None:
            hp.Choice(HP_NAME, [float(v) for v in cfg.tuner.p_musical_values])

        def build(self, hp):
            from keras_inst.training.train import build_compiled_model

            self.declare_hyperparameters(hp)
            run_cfg = trial_config(cfg, hp.get(HP_NAME), self.seed_index)
            keras.utils.set_random_seed(run_cfg.training.seed)
            return build_compiled_model(run_cfg)

        def fit(self, hp, model, *args, callbacks=(), verbose="auto", **kwargs):
            from keras_inst.data import pipeline  # looked up per call: tests can observe it
            from keras_inst.training.step_effects import prepare_fit

            run_cfg = trial_config(cfg, hp.get(HP_NAME), self.seed_index)
            data = pipeline.build_data(run_cfg, run_dir=tune_dir)
            prepare_fit(model, run_cfg)  # training.effects_in
            keep = _keep_best_weights(cfg.tuner.objective)
            history = model.fit(
                data.train,
                steps_per_epoch=run_cfg.training.steps_per_epoch,
                epochs=run_cfg.training.epochs,
                validation_data=data.validation,
                callbacks=[*callbacks, keep],
                verbose=verbose,
                shuffle=False,
            )
            if keep.best_weights is not None:  # the test split is judged at the best epoch
                model.set_weights(keep.best_weights)
            self.test_metrics = score_test_split(model, data.test)
            return history

    return PMusicalHyperModel()


def _build_tuner(cfg: ExperimentConfig, tune_dir: Path, hypermodel):
    import keras
    import keras_tuner

    class PMusicalSearch(keras_tuner.GridSearch):
        """GridSearch whose executions are the seeds, each recorded and resumable."""

        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            path = Path(self.get_trial_dir(trial.trial_id)) / EXECUTIONS_FILE
            record = json.loads(path.read_text()) if path.is_file() else {}
            seeds = record.get("seeds", [])[: self.executions_per_trial]
            kwargs.pop("callbacks", None)
            for index in range(len(seeds), self.executions_per_trial):
                keras.backend.clear_session()
                hypermodel.seed_index = index
                try:
                    model = hypermodel.build(hp)
                    history = hypermodel.fit(
                        hp, model, *args, callbacks=[keras.callbacks.TerminateOnNaN()], **kwargs
                    )
                except ValueError as e:
                    # keras-tuner would mark the trial invalid and never run it again; a fatal
                    # error stops the search instead and the next invocation retries the trial.
                    raise keras_tuner.errors.FatalValueError(str(e)) from e
                except Exception as e:
                    raise keras_tuner.errors.FatalRuntimeError(f"{type(e).__name__}: {e}") from e
                hist = {k: [float(x) for x in v] for k, v in history.history.items()}
                epoch, metrics = best_epoch_metrics(hist, cfg.tuner.objective)
                seeds.append(
                    {
                        "seed": cfg.training.seed + index,
                        "best_epoch": epoch + 1,
                        "metrics": metrics,
                        "test": hypermodel.test_metrics,  # at best_epoch
                        "history": {k: [_finite(x) for x in v] for k, v in hist.items()},
                    }
                )
                record = {HP_NAME: float(hp.get(HP_NAME)), "seeds": seeds}
                atomic.write_json(path, record, indent=1)  # a killed search keeps finished seeds
            # keras-tuner averages the per-seed dicts into the trial's score.
            return [
                {k: (v if v is not None else math.nan) for k, v in s["metrics"].items()}
                for s in seeds
            ]

    objective = keras_tuner.Objective(cfg.tuner.objective, objective_direction(cfg.tuner.objective))
    return PMusicalSearch(
        hypermodel=hypermodel,
        objective=objective,
        max_trials=len(cfg.tuner.p_musical_values),
        executions_per_trial=cfg.tuner.seeds,
        directory=str(tune_dir),
        project_name=PROJECT,
        overwrite=False,
        max_consecutive_failed_trials=1,
    )


def tune(cfg: ExperimentConfig, tune_dir: str | Path, *, verbose: int | str = "auto") -> dict | None:
    """Run (or continue) the search and write the results; returns the results dict.

    Distributed (keras-tuner's ``KERASTUNER_*`` variables, :func:`~keras_inst.training.distribute.tuner_role`):
    the chief serves the trials and, once every worker is done, writes the results; a worker
    trains the trials it is given and returns None. ``tune_dir`` must be one shared folder.
    """
    from keras_inst.training.distribute import tuner_role

    role = tuner_role()
    tune_dir = Path(tune_dir)
    # The resolved config is the search's identity, checked like a run directory's.
    RunDir(tune_dir).prepare(cfg, noun="tuner directory", hint="choose another --dir")
    start_keras(cfg.training, seed=False)  # each execution seeds itself (PMusicalHyperModel.build)
    from keras_inst.data.rendered import ensure_rendered_corpus

    if role != "chief":  # the chief (oracle) trains nothing
        ensure_rendered_corpus(cfg)
    hypermodel = _build_hypermodel(cfg, tune_dir)
    tuner = _build_tuner(cfg, tune_dir, hypermodel)
    tuner.search(verbose=verbose)  # the chief: serves trials until the workers are done
    if role == "worker":
        print(f"Tuner worker {tuner.tuner_id} finished; the chief writes the results in {tune_dir}")
        return None
    for t in tuner.oracle.trials.values():
        if t.status in ("FAILED", "INVALID"):  # e.g. a NaN objective: reported, not retried
            why = t.message or f"objective {cfg.tuner.objective} is NaN"
            print(
                f"warning: trial {t.trial_id} ({HP_NAME}={t.hyperparameters.get(HP_NAME)}) "
                f"failed: {why}",
                file=sys.stderr,
            )
    return write_results(cfg, tune_dir)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_inst.tune",
        description="keras-tuner grid search over p_musical (paper §3.2, Fig. 2).",
    )
    add_config_arguments(p, default="fig2_p_musical", example="tuner.seeds=2")
    p.add_argument("--dir", default=None, help="tuner directory (default: runs/tune/<config name>)")
    p.add_argument("--plot", default=None, help="also write the Fig. 2 plot to this PNG")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the results of the seeds finished so far")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        tune_dir = Path(args.dir or Path("runs") / "tune" / cfg.name)
        if args.report_only and not (tune_dir / PROJECT).is_dir():
            raise ValueError(f"--dir {tune_dir}: no search to report ({PROJECT}/ is missing)")
        # --report-only may run beside a running search: it only reads finished seeds.
        results = write_results(cfg, tune_dir) if args.report_only else tune(cfg, tune_dir)
        if results is None:  # a distributed search's worker
            return 0
        if args.plot:
            plot_results(results, Path(args.plot))
    except (ValueError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(results_markdown(results))
    print(
        f"Results: {tune_dir / 'results.md'}, {tune_dir / 'results.json'}, "
        f"{tune_dir / 'fig2_p_musical.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
