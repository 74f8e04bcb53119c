"""Cross-source evaluation (beyond the paper): does the model recognise instruments, or the sample
set it was trained on?

One *held-out source family* (sample sets sharing recordings count as one, see
:data:`FAMILIES`) is excluded from the training render; after training, the run is judged on the
test split (in-domain) and on a second corpus of OTHER songs (another render seed) rendered only
with that family (held-out). ``data.held_out_*`` switch the held-out part on for any run; train's
report then carries both (:func:`held_out_evaluation`). :func:`run_cross_source` trains one config
with one family held out and writes ``cross_source.json`` / ``cross_source.md`` into the run
directory; ``scripts/cross_source.py`` is its command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_inst import atomic
from keras_inst.config.schema import ExperimentConfig
from keras_inst.taxonomy import CLASSES

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


def held_out_root(cfg: ExperimentConfig) -> Path:
    """Folder of the held-out corpus (``data.held_out_root``, else beside the training render)."""
    d = cfg.data
    if d.held_out_root:
        return Path(d.held_out_root).expanduser()
    base = d.roots.get("rendered")
    if not base:
        raise ValueError("config key 'data.held_out_root': needed when data.roots.rendered is not set")
    return Path(base).expanduser().with_name(f"{Path(base).name}_heldout_{'+'.join(d.held_out_sources)}_seed{d.held_out_seed}")


def held_out_cache_dir(cfg: ExperimentConfig) -> Path:
    """Its own audio cache: both corpora name their songs Track00001..., and the cache keys stems
    by (dataset, song/stem), so sharing one cache would make each corpus invalidate the other."""
    return Path(cfg.data.cache_dir).expanduser() / f"heldout_{'+'.join(cfg.data.held_out_sources)}_seed{cfg.data.held_out_seed}"


def render_held_out(cfg: ExperimentConfig, *, progress: bool = True) -> Path:
    """Render (once; reused afterwards) the held-out corpus; returns its folder."""
    from keras_inst.corpus.render import render_corpus

    root = held_out_root(cfg)
    d = cfg.data
    print(f"Held-out corpus: {d.held_out_songs} songs (seed {d.held_out_seed}) rendered only with {', '.join(d.held_out_sources)} in {root}")
    render_corpus(root, songs=d.held_out_songs, seed=d.held_out_seed, sample_rate=cfg.audio.sample_rate,
                  sources=list(d.held_out_sources), progress=progress)
    return root


def evaluate_corpus(cfg: ExperimentConfig, model, root: str | Path, *, cache_dir: str | Path,
                    thresholds: np.ndarray | None = None, seed: int = 0) -> dict:
    """Metrics of ``model`` on every song of a rendered corpus (musical mixes, as the test split)."""
    from keras_inst.data.cache.store import ensure_cache
    from keras_inst.data.datasets import read_dataset
    from keras_inst.data.pipeline import musical_eval_dataset
    from keras_inst.training.evaluate import predict_dataset
    from keras_inst.training.metrics import evaluate_predictions

    songs, _ = read_dataset("rendered", root)
    if not songs:
        raise ValueError(f"held-out corpus {root}: no usable songs")
    ecfg = cfg.replace(data=dataclasses.replace(cfg.data, cache_dir=str(cache_dir)))
    cache = ensure_cache(ecfg, songs, progress=False)
    ds = musical_eval_dataset(ecfg, cache, songs, seed=seed, batch_size=cfg.training.batch_size)
    y_true, y_prob = predict_dataset(model, ds)
    out = evaluate_predictions(y_true, y_prob, thresholds=thresholds)
    out["songs"] = len(songs)
    return out


def held_out_evaluation(cfg: ExperimentConfig, model, thresholds: np.ndarray | None) -> dict | None:
    """The held-out-source metrics of a run (None when ``data.held_out_sources`` is empty)."""
    if not cfg.data.held_out_sources:
        return None
    root = render_held_out(cfg)
    out = evaluate_corpus(cfg, model, root, cache_dir=held_out_cache_dir(cfg), thresholds=thresholds)
    out["sources"] = list(cfg.data.held_out_sources)
    out["corpus"] = str(root)
    out["render_seed"] = cfg.data.held_out_seed
    return out


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def comparison_table(report: dict) -> str:
    """Markdown: macro and per-class ROC-AUC / PR-AUC, in-domain (test split) vs held-out source."""
    t, h = report["test"], report["held_out"]
    lines = [
        f"## In-domain vs held-out source ({', '.join(h['sources'])})",
        "",
        f"In-domain: the test split ({t['examples']} mixes). Held-out: {h['songs']} other songs "
        f"(render seed {h['render_seed']}) rendered only with {', '.join(h['sources'])}, "
        f"which training never heard ({h['examples']} mixes).",
        "",
        "| class | in-domain ROC-AUC | held-out ROC-AUC | in-domain PR-AUC | held-out PR-AUC | held-out positives |",
        "|---|---|---|---|---|---|",
        f"| **macro** | {_f(t['roc_auc'])} | {_f(h['roc_auc'])} | {_f(t['pr_auc'])} | {_f(h['pr_auc'])} | |",
    ]
    for c in CLASSES:
        a, b = t["per_class"][c], h["per_class"][c]
        lines.append(f"| {c} | {_f(a['roc_auc'])} | {_f(b['roc_auc'])} | {_f(a['pr_auc'])} | {_f(b['pr_auc'])} | {b['positives']} |")
    return "\n".join(lines) + "\n"


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
