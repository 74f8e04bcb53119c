"""Evaluation reports: report.json, report.md, per-class F1 bars (Fig. 3), learning curves."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keras_inst import atomic
from keras_inst.runtime.artifacts import RUN_REPORT
from keras_inst.taxonomy import CLASSES, FAMILIES


def _fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def markdown_report(report: dict, *, title: str = "Evaluation report") -> str:
    """Human-readable summary: the Table 1 metrics, then per-class rows (Fig. 3 as a table)."""
    t = report["test"]
    lines = [f"# {title}", ""]
    meta = report.get("meta", {})
    for key in ("model", "dataset", "split", "config", "examples_note"):
        if key in meta:
            lines.append(f"- {key}: {meta[key]}")
    lines += [f"- examples: {t['examples']}", "", *_macro_table(report), "",
        "| class | level | positives | ROC-AUC | PR-AUC | F1@0.5 | threshold | F1@tuned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in CLASSES:
        c = t["per_class"][name]
        level = "family" if name in FAMILIES else "instrument"
        lines.append(
            f"| {name} | {level} | {c['positives']} | {_fmt(c['roc_auc'])} | {_fmt(c['pr_auc'])} | "
            f"{_fmt(c['f1@0.5'], 3)} | {_fmt(c.get('threshold'), 3)} | {_fmt(c.get('f1@tuned'), 3)} |"
        )
    if t["undefined_classes"]:
        lines += ["", f"Classes without positives in this set (no ROC-AUC, left out of the macro average): {', '.join(t['undefined_classes'])}."]
    return "\n".join(lines) + "\n"


def _macro_table(report: dict) -> list[str]:
    """The test split's macro figures; with ``report["tagger"]`` (evaluation.tagger_row) a model
    column and the tagger's row (macro over its classes with evidence) plus this model's over the same."""
    t = report["test"]
    head = ["| ROC-AUC | PR-AUC | Test loss | F1@0.5 (macro) | F1@tuned (macro) |", "|---|---|---|---|---|"]
    row = f"| {_fmt(t['roc_auc'])} | {_fmt(t['pr_auc'])} | {_fmt(t['loss'])} | {_fmt(t['f1@0.5'])} | {_fmt(t.get('f1@tuned'))} |"
    if "test" not in report.get("tagger", {}):
        return [*head, row]
    g = report["tagger"]
    a, n = g["test"], len(CLASSES) - len(g["no_evidence_classes"])
    return [f"| model {head[0]}", "|---" + head[1], f"| this model {row}",
            f"| this model, the tagger's {n} classes | {_fmt(a['model_same_classes']['roc_auc'])} | "
            f"{_fmt(a['model_same_classes']['pr_auc'])} | | | |",
            f"| the tagger alone ({g['name']}, {n} classes) | {_fmt(a['roc_auc'])} | {_fmt(a['pr_auc'])} | "
            f"{_fmt(a['loss'])} | {_fmt(a['f1@0.5'])} | |"]


def held_out_words(h: Mapping[str, Any]) -> str:
    """What a held-out split holds out, in words (old reports: sources only)."""
    return "; ".join(f"{key} {', '.join(h[key])}" for key in ("sources", "engines", "styles") if h.get(key))


def comparison_table(report: dict) -> str:
    """Markdown: macro and per-class ROC-AUC / PR-AUC, in-domain (test split) vs the held-out split
    (sources, engines or styles training never met); the tagger's row when the report has one."""
    t, h = report["test"], report["held_out"]
    what = held_out_words(h)
    lines = [
        f"## In-domain vs held-out ({what})",
        "",
        f"In-domain: the test split ({t['examples']} mixes). Held-out: {h['songs']} other songs "
        f"(render seed {h['render_seed']}) made only of what training never met ({what}; "
        f"{h['examples']} mixes).",
        "",
        "| class | in-domain ROC-AUC | held-out ROC-AUC | in-domain PR-AUC | held-out PR-AUC | held-out positives |",
        "|---|---|---|---|---|---|",
        f"| **macro** | {_fmt(t['roc_auc'])} | {_fmt(h['roc_auc'])} | {_fmt(t['pr_auc'])} | {_fmt(h['pr_auc'])} | |",
    ]
    g = report.get("tagger", {})
    if "test" in g and "held_out" in g:
        n = len(CLASSES) - len(g["no_evidence_classes"])
        a, b = g["test"], g["held_out"]
        lines += [f"| macro, this model, the tagger's {n} classes | {_fmt(a['model_same_classes']['roc_auc'])} | "
                  f"{_fmt(b['model_same_classes']['roc_auc'])} | {_fmt(a['model_same_classes']['pr_auc'])} | "
                  f"{_fmt(b['model_same_classes']['pr_auc'])} | |",
                  f"| macro, the tagger alone ({g['name']}) | {_fmt(a['roc_auc'])} | {_fmt(b['roc_auc'])} | "
                  f"{_fmt(a['pr_auc'])} | {_fmt(b['pr_auc'])} | |"]
    for c in CLASSES:
        a, b = t["per_class"][c], h["per_class"][c]
        lines.append(f"| {c} | {_fmt(a['roc_auc'])} | {_fmt(b['roc_auc'])} | {_fmt(a['pr_auc'])} | {_fmt(b['pr_auc'])} | {b['positives']} |")
    if h.get("by_style"):  # several styles held out: each one's songs alone
        lines += ["", "Held-out songs by style (the same mixes, per style):", "",
                  "| style | mixes | ROC-AUC | PR-AUC | weakest class (ROC-AUC) |", "|---|---|---|---|---|"]
        for style, e in h["by_style"].items():
            defined = {c: v["roc_auc"] for c, v in e["per_class"].items() if v["roc_auc"] is not None}
            low = min(defined, key=defined.get) if defined else None
            lines.append(f"| {style} | {e['examples']} | {_fmt(e['roc_auc'])} | {_fmt(e['pr_auc'])} | "
                         f"{f'{low} ({defined[low]:.3f})' if low else 'n/a'} |")
    return "\n".join(lines) + "\n"


def plot_f1_bars(report: dict, path: Path) -> None:
    """Per-class F1 as in the paper's Fig. 3 (at 0.5 and at validation-tuned thresholds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pc = report["test"]["per_class"]
    x = np.arange(len(CLASSES))
    f05 = [pc[c]["f1@0.5"] for c in CLASSES]
    tuned = [pc[c].get("f1@tuned") for c in CLASSES]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.4 if tuned[0] is not None else 0.8
    ax.bar(x - (width / 2 if tuned[0] is not None else 0), f05, width, label="threshold 0.5")
    if tuned[0] is not None:
        ax.bar(x + width / 2, tuned, width, label="tuned on validation")
    ax.axvline(len(FAMILIES) - 0.5, color="grey", lw=0.8)
    ax.set_xticks(x, [c.replace("_", " ") for c in CLASSES], rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title("Class-wise F1 (families | instruments)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def read_history(csv_path: Path) -> dict[str, list[float]]:
    """Columns of a Keras CSVLogger file (last row wins for an epoch logged twice after a resume)."""
    rows: dict[int, dict[str, str]] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    out: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for k, v in rows[epoch].items():
            out.setdefault(k, []).append(float(v) if v not in ("", None) else float("nan"))
    return out


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss, ROC-AUC and PR-AUC per epoch, training vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e + 1 for e in history.get("epoch", [])]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key in zip(axes, ("loss", "roc_auc", "pr_auc"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(epochs, history[prefix + key], style, marker="o", ms=3, label=(prefix or "train_").rstrip("_"))
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def write_report(out_dir: str | Path, report: dict, *, history_csv: str | Path | None = None, title: str = "Evaluation report") -> dict[str, Path]:
    """Write report.json, report.md and the plots into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / RUN_REPORT, "markdown": out / "report.md", "f1_plot": out / "f1_per_class.png"}
    atomic.write_json(paths["json"], report)
    atomic.write_text(paths["markdown"], markdown_report(report, title=title))
    plot_f1_bars(report, paths["f1_plot"])
    if history_csv is not None and Path(history_csv).is_file():
        paths["curves"] = out / "learning_curves.png"
        plot_learning_curves(read_history(Path(history_csv)), paths["curves"])
    return paths
