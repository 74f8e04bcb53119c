"""keras-tuner search over p_musical (paper §3.2, Fig. 2): ``python -m keras_inst.tune``.

A grid search over ``tuner.p_musical_values``: every value is trained ``tuner.seeds`` times
(seeds ``training.seed + 0, 1, ...``: weight initialisation and the mixing stream both change)
for ``tuner.epochs`` epochs, and scored by ``tuner.objective`` (``val_roc_auc``, maximised) at
each run's best epoch; keras-tuner averages the seeds, as the paper averages its four.

The tuner directory (``--dir``) holds the resolved config (its identity: another config is
refused), the shared song split, keras-tuner's project (``search/``; one ``trial_*/`` per value
with ``executions.json``: every seed's metrics and history) and the outputs: ``results.md``,
``results.json`` (per value: mean and per-seed validation ROC-AUC / PR-AUC / loss; the best
value) and ``fig2_p_musical.png``. Running the same command again continues an interrupted
search: finished values are not trained again, nor finished seeds of an interrupted value.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_inst.config.io import add_override_argument, dump_config, load_config
from keras_inst.config.schema import ExperimentConfig

HP_NAME = "p_musical"
PROJECT = "search"
EXECUTIONS_FILE = "executions.json"
METRICS = ("val_roc_auc", "val_pr_auc", "val_loss")


def trial_config(cfg: ExperimentConfig, p_musical: float, seed_index: int) -> ExperimentConfig:
    """The experiment of one execution: ``p_musical``, seed ``training.seed + seed_index`` and
    ``tuner.epochs`` epochs."""
    return cfg.replace(
        mixing=dataclasses.replace(cfg.mixing, p_musical=float(p_musical)),
        training=dataclasses.replace(
            cfg.training, seed=cfg.training.seed + seed_index, epochs=cfg.tuner.epochs
        ),
    )


def objective_direction(name: str) -> str:
    """'min' for losses, 'max' for everything else (AUCs)."""
    return "min" if name.endswith("loss") else "max"


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def best_epoch_metrics(history: dict[str, list[float]], objective: str) -> tuple[int, dict]:
    """(best epoch index, every logged metric at that epoch) by ``objective``; NaN epochs lose."""
    values = history.get(objective)
    if not values:
        raise ValueError(
            f"config key 'tuner.objective': {objective!r} was not logged; logged: {sorted(history)}"
        )
    sign = -1.0 if objective_direction(objective) == "min" else 1.0
    scores = [sign * v if math.isfinite(v) else -math.inf for v in values]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))  # first of equal bests
    return best, {k: _finite(v[best]) for k, v in history.items() if len(v) > best}


def _build_hypermodel(cfg: ExperimentConfig, tune_dir: Path):
    import keras
    import keras_tuner

    class PMusicalHyperModel(keras_tuner.HyperModel):
        """Builds the compiled paper model; fits it on data mixed with the trial's p_musical."""

        def __init__(self) -> None:
            super().__init__(name="p_musical")
            self.seed_index = 0

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

            run_cfg = trial_config(cfg, hp.get(HP_NAME), self.seed_index)
            data = pipeline.build_data(run_cfg, run_dir=tune_dir)
            return model.fit(
                data.train,
                steps_per_epoch=run_cfg.training.steps_per_epoch,
                epochs=run_cfg.training.epochs,
                validation_data=data.validation,
                callbacks=list(callbacks),
                verbose=verbose,
                shuffle=False,
            )

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
                        "history": {k: [_finite(x) for x in v] for k, v in hist.items()},
                    }
                )
                record = {HP_NAME: float(hp.get(HP_NAME)), "seeds": seeds}
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
                os.replace(tmp, path)  # a killed search keeps every finished seed
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


def _check_tune_dir(cfg: ExperimentConfig, tune_dir: Path) -> None:
    """The resolved config is the search's identity (like a run directory's)."""
    path = tune_dir / "config.yaml"
    text = dump_config(cfg)
    if path.is_file():
        if path.read_text(encoding="utf-8") != text:
            raise ValueError(
                f"tuner directory {tune_dir} holds a search with a different config; "
                "choose another --dir"
            )
        return
    tune_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("config.yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def collect_results(cfg: ExperimentConfig, tune_dir: Path) -> dict:
    """Per p_musical value: mean and per-seed metrics of its finished seeds; the best value."""
    import numpy as np

    rows = []
    for path in sorted((tune_dir / PROJECT).glob(f"trial_*/{EXECUTIONS_FILE}")):
        record = json.loads(path.read_text(encoding="utf-8"))
        seeds = record["seeds"]
        row = {
            HP_NAME: record[HP_NAME],
            "seeds": len(seeds),
            "complete": len(seeds) >= cfg.tuner.seeds,
            "trial": path.parent.name,
        }
        for m in METRICS:
            values = [s["metrics"].get(m) for s in seeds]
            row[f"per_seed_{m}"] = values
            finite = [v for v in values if v is not None]
            row[f"mean_{m}"] = float(np.mean(finite)) if finite else None
            row[f"std_{m}"] = float(np.std(finite)) if finite else None
        row["best_epochs"] = [s["best_epoch"] for s in seeds]
        rows.append(row)
    rows.sort(key=lambda r: r[HP_NAME])
    key = f"mean_{cfg.tuner.objective}"
    sign = -1.0 if objective_direction(cfg.tuner.objective) == "min" else 1.0
    scored = [r for r in rows if r["complete"] and r.get(key) is not None]
    best = max(scored, key=lambda r: sign * r[key])[HP_NAME] if scored else None
    return {
        "objective": cfg.tuner.objective,
        "direction": objective_direction(cfg.tuner.objective),
        "seeds": cfg.tuner.seeds,
        "epochs": cfg.tuner.epochs,
        "values": list(cfg.tuner.p_musical_values),
        "best_p_musical": best,
        "rows": rows,
    }


def results_markdown(results: dict) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.4f}"

    lines = [
        "# p_musical search (paper §3.2, Fig. 2)",
        "",
        f"{results['seeds']} seeds x {results['epochs']} epochs per value; each seed scored at "
        f"its best epoch by {results['objective']} ({results['direction']}imised), then averaged.",
        f"Best p_musical: **{results['best_p_musical']}**",
        "",
        "| p_musical | seeds | val ROC-AUC (mean ± std) | val PR-AUC | val loss "
        "| per-seed val ROC-AUC |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        seeds = f"{r['seeds']}" + ("" if r["complete"] else " (running)")
        cells = [f"{f(r[f'mean_{m}'])} ± {f(r[f'std_{m}'])}" for m in METRICS]
        per_seed = ", ".join(f(v) for v in r["per_seed_val_roc_auc"])
        lines.append(f"| {r[HP_NAME]:g} | {seeds} | {' | '.join(cells)} | {per_seed} |")
    return "\n".join(lines) + "\n"


def plot_results(results: dict, path: Path) -> Path:
    """Fig. 2: validation ROC-AUC, PR-AUC and loss vs p_musical (mean line, seeds as dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r["seeds"]]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    titles = {"val_roc_auc": "ROC-AUC", "val_pr_auc": "PR-AUC", "val_loss": "loss"}
    for ax, m in zip(axes, METRICS, strict=True):
        xs = [r[HP_NAME] for r in rows]
        ax.plot(xs, [r[f"mean_{m}"] for r in rows], "o-", color="C0", label="mean over seeds")
        for r in rows:
            pts = [v for v in r[f"per_seed_{m}"] if v is not None]
            ax.scatter([r[HP_NAME]] * len(pts), pts, s=12, color="0.5", zorder=3)
        if results["best_p_musical"] is not None:
            ax.axvline(results["best_p_musical"], color="C3", ls="--", lw=1, label="best")
        ax.set_xlabel("p_musical")
        ax.set_title(f"validation {titles[m]}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_results(cfg: ExperimentConfig, tune_dir: Path) -> dict:
    """results.json, results.md and fig2_p_musical.png from the trials' executions.json."""
    results = collect_results(cfg, tune_dir)
    for name, text in (
        ("results.json", json.dumps(results, indent=1)),
        ("results.md", results_markdown(results)),
    ):
        tmp = tune_dir / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, tune_dir / name)
    plot_results(results, tune_dir / "fig2_p_musical.png")
    return results


def tune(cfg: ExperimentConfig, tune_dir: str | Path, *, verbose: int | str = "auto") -> dict:
    """Run (or continue) the search and write the results; returns the results dict."""
    tune_dir = Path(tune_dir)
    _check_tune_dir(cfg, tune_dir)
    if cfg.training.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy(cfg.training.mixed_precision)
    from keras_inst.training.train import ensure_rendered_corpus

    ensure_rendered_corpus(cfg)
    hypermodel = _build_hypermodel(cfg, tune_dir)
    tuner = _build_tuner(cfg, tune_dir, hypermodel)
    tuner.search(verbose=verbose)
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
    p.add_argument(
        "--config",
        default="fig2_p_musical",
        help="config file or shipped name (default: fig2_p_musical)",
    )
    add_override_argument(p, example="tuner.seeds=2")
    p.add_argument("--dir", default=None, help="tuner directory (default: runs/tune/<config name>)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        tune_dir = Path(args.dir or Path("runs") / "tune" / cfg.name)
        results = tune(cfg, tune_dir)
    except ValueError as e:
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
