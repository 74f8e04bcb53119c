"""``predict --plot``: the instrument timeline of each analysed file as a picture.

One panel per file: classes (rows, taxonomy order) x time (columns, one per analysis window,
drawn from its start to the next window's start), the window probability as colour (0..1),
and each run of windows at or above the class threshold outlined in red. Row labels carry the
thresholds; with ``predict --aggregate presence`` (the default) the labels of the classes judged
present (:mod:`keras_inst.runtime.presence`) are bold and red, with their active share. A PNG holds at most :data:`PANELS_PER_PNG` panels; more files continue in
``NAME-2.png``, ``NAME-3.png``, ... beside ``NAME.png``. matplotlib (Agg, no pyplot state) is
imported when a plot is drawn, so the TFLite-only install does not need it otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.atomic import write_with

PANELS_PER_PNG = 8
WIDTH_INCHES, DPI = 12.0, 100
ROW_INCHES, PANEL_MARGIN_INCHES = 0.22, 1.3  # per class row; title, axis and gaps per panel


def timeline_matrix(result: dict[str, Any], class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(time edges [n + 1] in seconds, probabilities [C, n]) of one file's ``timeline``."""
    rows = result.get("timeline")
    if not rows:
        raise ValueError(f"{result.get('path')}: no timeline to plot (analyse with timeline=True)")
    probs = np.array([[w["probabilities"][c] for w in rows] for c in class_names], dtype=np.float64)
    edges = np.array([w["start"] for w in rows] + [max(rows[-1]["end"], rows[-1]["start"] + 1e-3)])
    return edges, probs


def panel_height(num_classes: int) -> float:
    """Inches of one file's panel."""
    return ROW_INCHES * num_classes + PANEL_MARGIN_INCHES


def png_paths(path: str | Path, num_files: int) -> list[Path]:
    """The PNG files for ``num_files`` panels: ``path``, then ``stem-2.png``, ``stem-3.png``, ..."""
    p = Path(path)
    pages = max(1, -(-num_files // PANELS_PER_PNG))
    return [p] + [p.with_name(f"{p.stem}-{i}{p.suffix}") for i in range(2, pages + 1)]


def _outline_runs(ax: Any, edges: np.ndarray, above: np.ndarray) -> None:
    """One red rectangle per run of consecutive above-threshold windows of each class row."""
    from matplotlib.patches import Rectangle

    for c, row in enumerate(above):
        padded = np.concatenate([[False], row, [False]]).astype(np.int8)
        change = np.flatnonzero(np.diff(padded))  # run starts and ends, alternating
        for a, b in zip(change[::2], change[1::2], strict=True):
            ax.add_patch(Rectangle((edges[a], c - 0.5), edges[b] - edges[a], 1.0, fill=False, edgecolor="red", linewidth=1.2))


def _row_labels(ax: Any, result: dict[str, Any], class_names: Sequence[str], thresholds: np.ndarray) -> np.ndarray:
    """Label each class row with its threshold; a presence result's present classes also with
    their active share, in bold red. Returns which rows were marked present, bool ``[C]``."""
    present = np.array(["segments" in result and c in result.get("classes", []) for c in class_names], dtype=bool)
    ax.set_yticks(np.arange(len(class_names)))
    labels = [f"{c} ({t:.2f})" + (f" {result['active_share'][c]:.0%}" if p else "")
              for c, t, p in zip(class_names, thresholds, present, strict=True)]
    ax.set_yticklabels(labels, fontsize=8)
    for tick, p in zip(ax.get_yticklabels(), present, strict=True):
        if p:
            tick.set_fontweight("bold")
            tick.set_color("red")
    return present


def _draw_panel(ax: Any, result: dict[str, Any], class_names: Sequence[str], thresholds: np.ndarray) -> dict[str, Any]:
    edges, probs = timeline_matrix(result, class_names)
    above = probs >= thresholds[:, None]  # [C, n]
    mesh = ax.pcolormesh(edges, np.arange(len(class_names) + 1) - 0.5, probs, cmap="viridis", vmin=0.0, vmax=1.0)
    _outline_runs(ax, edges, above)
    present = _row_labels(ax, result, class_names, thresholds)
    ax.set_ylim(len(class_names) - 0.5, -0.5)  # first class on top
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("time (s)")
    found = ", ".join(result.get("classes", [])) or "(none)"
    name = Path(result["path"])  # folder and name: files are often all called mix.wav
    ax.set_title(f"{name.parent.name}/{name.name}  [{result['duration_seconds']:.1f} s]: {found}", fontsize=9, loc="left")
    return {"path": result["path"], "edges": edges, "probabilities": probs, "above": above, "present": present, "mesh": mesh}


def plot_timelines(results: Sequence[dict[str, Any]], class_names: Sequence[str], thresholds: np.ndarray,
                   path: str | Path) -> list[dict[str, Any]]:
    """Draw every result's timeline (see module doc) into ``path`` (and its continuation PNGs).

    Returns, per file, what was drawn: ``path``, ``edges`` [n + 1], ``probabilities`` [C, n],
    ``above`` [C, n] (outlined cells), ``present`` [C] (labels marked present) and ``png`` (the
    file holding its panel).
    """
    from matplotlib.figure import Figure

    if not results:
        raise ValueError("--plot: no analysed file to plot")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    drawn: list[dict[str, Any]] = []
    for page, png in enumerate(png_paths(path, len(results))):
        chunk = results[page * PANELS_PER_PNG : (page + 1) * PANELS_PER_PNG]
        fig = Figure(figsize=(WIDTH_INCHES, panel_height(len(class_names)) * len(chunk)), dpi=DPI, layout="constrained")
        axes = fig.subplots(len(chunk), 1, squeeze=False)[:, 0]
        for ax, result in zip(axes, chunk, strict=True):
            d = _draw_panel(ax, result, class_names, thresholds)
            fig.colorbar(d.pop("mesh"), ax=ax, label="probability", fraction=0.03, pad=0.01)
            drawn.append(d | {"png": png})
        png.parent.mkdir(parents=True, exist_ok=True)
        write_with(png, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=DPI))
    return drawn
