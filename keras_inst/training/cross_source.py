"""Cross-source evaluation (beyond the paper): does the model recognise instruments, or the sample
set it was trained on?

One *held-out source family* (sample sets sharing recordings count as one, see
:data:`FAMILIES`) is excluded from the training render; after training, the run is judged on the
test split (in-domain) and on a second corpus of OTHER songs (another render seed) rendered only
with that family (held-out). ``data.held_out_*`` switch the held-out part on for any run: the
data layer renders and reads it as one more split (:mod:`keras_inst.data.rendered`,
:func:`keras_inst.data.pipeline.held_out_split`) and train's report carries both.
:func:`run_cross_source` trains one config with one family held out and writes
``cross_source.json`` / ``cross_source.md`` into the run directory; ``scripts/cross_source.py``
is its command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_inst import atomic
from keras_inst.config.schema import ExperimentConfig
from keras_inst.training.report import comparison_table

# Families of sample sources that share recordings (measured, FACTS / corpus.sources): holding
# out one member while training on another would leak the held-out samples into training.
FAMILIES: dict[str, tuple[str, ...]] = {
    "fluidr3": ("fluidr3_gm", "fluidr3mono_gm"),  # same recordings, re-edited in mono
    "timgm6mb": ("timgm6mb", "csound_gm"),  # csound_gm shares most of TimGM6mb's samples
    "freepats": ("freepats",),  # independent GUS recordings
}


def family_sources(name: str) -> tuple[str, ...]:
    """The sample sources of a held-out family (ValueError naming the known ones)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown held-out source family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def hold_out(cfg: ExperimentConfig, family: str, *, songs: int, seed: int | None = None) -> ExperimentConfig:
    """``cfg`` with ``family`` excluded from the training render and rendered for the held-out test."""
    held = family_sources(family)
    d = cfg.data
    data = dataclasses.replace(
        d, render_exclude_sources=tuple(dict.fromkeys([*d.render_exclude_sources, *held])),
        held_out_sources=held, held_out_songs=songs,
        held_out_seed=seed if seed is not None else d.render_seed + 1)
    return cfg.replace(data=data)


def run_cross_source(cfg: ExperimentConfig, run_dir: str | Path, *, family: str | None = None,
                     songs: int = 20, seed: int | None = None, overwrite: bool = False,
                     verbose: int | str = "auto") -> dict:
    """Train ``cfg`` with ``family`` held out (None: the config's own ``data.held_out_*``), judge
    it in-domain and on the held-out corpus, write cross_source.json / .md; returns the summary."""
    from keras_inst.training.train import train

    if family is not None:
        cfg = hold_out(cfg, family, songs=songs, seed=seed)
    if not cfg.data.held_out_sources:
        raise ValueError("config key 'data.held_out_sources': empty; pass a family to hold out")
    report = train(cfg, run_dir, overwrite=overwrite, verbose=verbose)
    if "held_out" not in report:
        raise ValueError(f"{run_dir}: the run's report has no held-out evaluation")
    summary = {
        "config": cfg.name, "run_dir": str(run_dir), "held_out_sources": list(cfg.data.held_out_sources),
        "training_sources_excluded": list(cfg.data.render_exclude_sources),
        "in_domain": {k: report["test"][k] for k in ("examples", "roc_auc", "pr_auc", "per_class")},
        "held_out": {k: report["held_out"][k] for k in ("examples", "songs", "roc_auc", "pr_auc", "per_class", "corpus", "render_seed")},
    }
    out = Path(run_dir)
    atomic.write_json(out / "cross_source.json", summary)
    atomic.write_text(out / "cross_source.md", comparison_table(report))
    return summary

