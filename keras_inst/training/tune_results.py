"""Results of a p_musical search (paper §3.2, Fig. 2): the table, ``results.json`` and the figure.

:mod:`keras_inst.training.tune` runs the search; this module reads what its trials recorded
(``search/trial_*/executions.json``: every seed's validation metrics at its best epoch and its
test-split scores) and writes ``results.md``, ``results.json`` and ``fig2_p_musical.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from keras_inst import atomic
from keras_inst.config.schema import ExperimentConfig

HP_NAME = "p_musical"
PROJECT = "search"
EXECUTIONS_FILE = "executions.json"
METRICS = ("val_roc_auc", "val_pr_auc", "val_loss")
TEST_METRICS = ("test_roc_auc", "test_pr_auc", "test_loss")
PANEL_TITLES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "loss": "loss"}


def objective_direction(name: str) -> str:
    """'min' for losses, 'max' for everything else (AUCs)."""
    return "min" if name.endswith("loss") else "max"


def seed_stats(values: Sequence[float | None]) -> dict[str, float | None]:
    """mean, std (population), min and max of the finite ``values``; all None when none is."""
    import numpy as np

    finite = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not finite.size:
        return dict.fromkeys(("mean", "std", "min", "max"))
    return {"mean": float(np.mean(finite)), "std": float(np.std(finite)),
            "min": float(np.min(finite)), "max": float(np.max(finite))}


def collect_results(cfg: ExperimentConfig, tune_dir: Path) -> dict:
    """Per p_musical value: seed statistics and per-seed validation and test metrics of its
    finished seeds; the best value by the objective."""
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
        for m in METRICS + TEST_METRICS:
            # Seeds recorded before test scoring existed have no "test" entry: None.
            part = "metrics" if m in METRICS else "test"
            values = [(s.get(part) or {}).get(m) for s in seeds]
            row[f"per_seed_{m}"] = values
            row.update({f"{k}_{m}": v for k, v in seed_stats(values).items()})
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
    lines += [
        "",
        "Test split at each seed's best epoch (Fig. 2's panels): mean [min, max] over seeds.",
        "",
        "| p_musical | seeds | test ROC-AUC | test PR-AUC | test loss |",
        "|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        cells = [f"{f(r[f'mean_{m}'])} [{f(r[f'min_{m}'])}, {f(r[f'max_{m}'])}]"
                 for m in TEST_METRICS]
        lines.append(f"| {r[HP_NAME]:g} | {r['seeds']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def fig2_series(results: dict, split: str = "test") -> dict[str, dict[str, list[float]]]:
    """Per panel (``roc_auc``, ``pr_auc``, ``loss``) of ``split`` ('test' or 'val'): the
    p_musical values with a finite mean (``x``), the mean over seeds and the seeds' min / max."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    series = {}
    for panel in PANEL_TITLES:
        m = f"{split}_{panel}"
        rows = [r for r in results["rows"] if r.get(f"mean_{m}") is not None]
        series[panel] = {"x": [r[HP_NAME] for r in rows]} | {
            k: [r[f"{k}_{m}"] for r in rows] for k in ("mean", "min", "max")
        }
    return series


def plot_figure(results: dict, split: str = "test"):
    """Fig. 2 as a matplotlib figure: ROC-AUC, PR-AUC and loss of ``split`` vs p_musical, the
    mean over seeds as a line, the seeds' min-max as a band and each seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = fig2_series(results, split)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (panel, s) in zip(axes, series.items(), strict=True):
        ax.plot(s["x"], s["mean"], "o-", color="C0", label=f"mean of {results['seeds']} seeds")
        ax.fill_between(s["x"], s["min"], s["max"], color="C0", alpha=0.2, label="seed min-max")
        for r in results["rows"]:
            pts = [v for v in r.get(f"per_seed_{split}_{panel}", []) if v is not None]
            ax.scatter([r[HP_NAME]] * len(pts), pts, s=10, color="0.4", zorder=3)
        if results["best_p_musical"] is not None:
            ax.axvline(results["best_p_musical"], color="C3", ls="--", lw=1,
                       label=f"best by {results['objective']}")
        ax.set_xlabel("p_musical")
        ax.set_title(f"{'test' if split == 'test' else 'validation'} {PANEL_TITLES[panel]}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_results(results: dict, path: Path) -> Path:
    """Write :func:`plot_figure` atomically to ``path``: the test split's panels, or the
    validation ones when no seed has test metrics (seeds recorded before they existed)."""
    import matplotlib.pyplot as plt

    has_test = any(r.get("mean_test_roc_auc") is not None for r in results["rows"])
    fig = plot_figure(results, "test" if has_test else "val")
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path


def write_results(cfg: ExperimentConfig, tune_dir: Path) -> dict:
    """results.json, results.md and fig2_p_musical.png from the trials' executions.json."""
    results = collect_results(cfg, tune_dir)
    atomic.write_json(tune_dir / "results.json", results, indent=1)
    atomic.write_text(tune_dir / "results.md", results_markdown(results))
    plot_results(results, tune_dir / "fig2_p_musical.png")
    return results
