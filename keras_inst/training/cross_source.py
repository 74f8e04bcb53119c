"""Cross-source evaluation (beyond the paper): does the model recognise instruments, or the sample
set (or sound engine, or song style) it was trained on?

One *held-out source family* (sample sets sharing recordings count as one, see
:data:`FAMILIES`) is excluded from the training render; after training, the run is judged on the
test split (in-domain) and on a second corpus of OTHER songs (another render seed) rendered only
with that family (held-out). ``data.held_out_*`` switch the held-out part on for any run: the
data layer renders and reads it as one more split (:mod:`keras_inst.data.rendered`,
:func:`keras_inst.data.held_out.held_out_split`) and train's report carries both.
:func:`run_cross_source` trains one config with one family held out and writes
``cross_source.json`` / ``cross_source.md`` into the run directory; ``scripts/cross_source.py``
is its command line. The same machinery holds out a generated-song style (``data.held_out_styles``:
does the model know a synth in electronic songs it never heard?) or an opt-in sound engine
(``data.held_out_engines``: the built-in synthesizer, drum machine or organ, which play every
stem they can of generated songs beside the training render's sources): :func:`hold_out`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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


def _known(names: str | Sequence[str], known: Sequence[str], kind: str) -> tuple[str, ...]:
    """One name or several as a tuple; ValueError naming the first unknown one."""
    out = (names,) if isinstance(names, str) else tuple(names)
    bad = next((n for n in out if n not in known), None)
    if bad is not None:
        raise ValueError(f"unknown {kind} {bad!r}; known: {', '.join(known)}")
    return out


def hold_out(cfg: ExperimentConfig, family: str | None = None, *, style: str | Sequence[str] | None = None,
             engine: str | Sequence[str] | None = None,
             songs: int, seed: int | None = None) -> ExperimentConfig:
    """``cfg`` with a source ``family``, a generated-song ``style`` or opt-in sound engines held
    out: left out of the training render and rendered for the held-out split (a family alone,
    styles as every held-out song: several, e.g. electronic and electropop, hold out a family of
    styles). A style switches the training render's generated songs on
    (every other style) if the config has none; engines switch ``render_modern`` on, so any other
    engine still trains. Held-out engines play every stem of the held-out songs they can, the
    training sources the rest (:func:`keras_inst.data.rendered.held_out_render_args`): one engine
    alone (``builtin_synth``: no drums) is enough."""
    from keras_inst.config.schema import DEFAULT_SONG_STYLES, HELD_OUT_ENGINES, SONG_STYLES

    if (family, style, engine).count(None) != 2:
        raise ValueError("hold out exactly one of a source family, a style or an engine")
    d = cfg.data
    changes: dict = {"held_out_songs": songs, "held_out_seed": seed if seed is not None else d.render_seed + 1,
                     "held_out_sources": (), "held_out_styles": (), "held_out_engines": ()}  # only the one named
    if family is not None:
        held = family_sources(family)
        changes |= {"render_exclude_sources": tuple(dict.fromkeys([*d.render_exclude_sources, *held])), "held_out_sources": held}
    elif style is not None:
        changes |= {"held_out_styles": _known(style, SONG_STYLES, "style"), "render_styles": d.render_styles or DEFAULT_SONG_STYLES}
    else:
        changes |= {"held_out_engines": _known(engine, HELD_OUT_ENGINES, "engine"), "render_modern": True}
    return cfg.replace(data=dataclasses.replace(d, **changes))


def run_cross_source(cfg: ExperimentConfig, run_dir: str | Path, *, family: str | None = None,
                     style: str | Sequence[str] | None = None,
                     engine: str | Sequence[str] | None = None, songs: int = 20, seed: int | None = None, overwrite: bool = False,
                     verbose: int | str = "auto") -> dict:
    """Train ``cfg`` with ``family``, ``style`` or ``engine`` held out (all None: the config's own
    ``data.held_out_*``), judge it in-domain and on the held-out corpus, write cross_source.json /
    .md; returns the summary."""
    from keras_inst.training.train import train

    if (family, style, engine) != (None, None, None):
        cfg = hold_out(cfg, family, style=style, engine=engine, songs=songs, seed=seed)
    if not cfg.data.holds_out:
        raise ValueError("config keys 'data.held_out_sources' / 'held_out_styles' / 'held_out_engines': all empty; "
                         "pass a family, style or engine to hold out")
    report = train(cfg, run_dir, overwrite=overwrite, verbose=verbose)
    if "held_out" not in report:
        raise ValueError(f"{run_dir}: the run's report has no held-out evaluation")
    d = cfg.data
    held = ("examples", "songs", "roc_auc", "pr_auc", "per_class", "corpus", "render_seed")
    summary = {
        "config": cfg.name, "run_dir": str(run_dir), "held_out_sources": list(d.held_out_sources),
        "held_out_styles": list(d.held_out_styles), "held_out_engines": list(d.held_out_engines),
        "training_sources_excluded": list(d.training_exclude_sources()), "training_styles": list(d.training_styles()),
        "in_domain": {k: report["test"][k] for k in ("examples", "roc_auc", "pr_auc", "per_class")},
        "held_out": {k: report["held_out"][k] for k in held}
        | ({"by_style": report["held_out"]["by_style"]} if "by_style" in report["held_out"] else {}),
    }
    if "tagger" in report:  # evaluation.tagger_row: the tagger alone on the same two splits
        summary["tagger"] = {k: {m: report["tagger"][k][m] for m in ("roc_auc", "pr_auc")}
                             for k in ("test", "held_out") if k in report["tagger"]} | {"name": report["tagger"]["name"]}
    out = Path(run_dir)
    atomic.write_json(out / "cross_source.json", summary)
    atomic.write_text(out / "cross_source.md", comparison_table(report))
    return summary
