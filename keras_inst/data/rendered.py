"""The rendered corpora of a run, made on demand: the embedded corpus (``data.roots.rendered``)
and the held-out corpus (``data.held_out_*``).

Both are rendered once by :func:`keras_inst.corpus.render.render_corpus` and reused afterwards.
The held-out corpus (beyond the paper, see :mod:`keras_inst.training.cross_source`) holds
``data.held_out_songs`` OTHER songs (render seed ``data.held_out_seed``) made of what the training
render leaves out, one mechanism for three kinds of "out" (:func:`held_out_render_args`):
sample sources (``held_out_sources``, which the training render must exclude; they alone play
the held-out songs), generated-song styles (``held_out_styles``, dropped from the training
render's ``render_styles``) and opt-in sound engines (``held_out_engines``, excluded from the
training render; they play beside the training sources, every stem they can play, in generated
songs). :func:`keras_inst.data.pipeline.build_data`
reads it as the run's ``held_out`` split. Rendering stays out of the pipeline module, so that
what only reads data (export's calibration, prediction) never imports the renderers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_inst.config.schema import DEFAULT_SONG_STYLES, DataConfig, ExperimentConfig


def ensure_rendered_corpus(cfg: ExperimentConfig) -> None:
    """Render the embedded corpus into data.roots.rendered when the config asks for one."""
    if cfg.data.render_songs <= 0 or "rendered" not in cfg.data.datasets:
        return
    root = cfg.data.roots.get("rendered")
    if not root:
        raise ValueError("config key 'data.roots.rendered': needed when data.render_songs > 0")
    from keras_inst.corpus.render import render_corpus

    print(f"Embedded corpus: {cfg.data.render_songs} songs in {root} (rendered once, then reused)")
    render_corpus(
        root, songs=cfg.data.render_songs, seed=cfg.data.render_seed, soundfont=cfg.data.soundfont,
        sample_rate=cfg.audio.sample_rate, sources=list(cfg.data.render_sources) or None,
        exclude_sources=list(cfg.data.training_exclude_sources()) or None, modern=cfg.data.render_modern,
        styles=cfg.data.training_styles(), generated_share=cfg.data.render_generated_share,
        speech=cfg.data.render_speech, vocal_lar_db=cfg.data.render_vocal_lar_db,
    )


def held_out_render_args(d: DataConfig) -> dict[str, Any]:
    """The :func:`~keras_inst.corpus.render.render_corpus` arguments of the held-out corpus.

    Held-out sources are the only sources played (with any held-out engines), as before engines
    existed. Held-out engines alone play beside the training render's sources
    (:func:`_engines_beside_training`). Without either, the training render's sources (and
    ``render_modern``) play. Held-out styles make every song a generated one in those styles
    (share 1); without them (and engines) the songs are arranged scores, as the held-out corpora
    made before styles existed (their ``corpus.json`` still matches).
    """
    held = [*d.held_out_sources, *d.held_out_engines]
    if d.held_out_engines and not d.held_out_sources:
        args = _engines_beside_training(d)
    else:
        args = {"sources": held or list(d.render_sources) or None,
                "exclude_sources": None if held else list(d.training_exclude_sources()) or None,
                "modern": False if held else d.render_modern}
    if d.held_out_styles:
        args |= {"styles": tuple(d.held_out_styles), "generated_share": 1.0}
    return args


def _engines_beside_training(d: DataConfig) -> dict[str, Any]:
    """Held-out engines beside the training render's sources: the same sources plus the engines,
    which play every stem they can (``prefer_sources``; the synthesizer its synth programs, the
    drum machine the drum parts its kit covers, the organ the organs), the training sources every
    other stem. The songs are generated (the training render's styles, every style if it has
    none), so synth and drum parts occur in every song: arranged scores seldom have synths."""
    engines = list(d.held_out_engines)
    exclude = [s for s in d.training_exclude_sources() if s not in engines]
    if d.render_modern:  # the training render's opt-in sources: all that are not excluded
        sources = list(d.render_sources) or None
    else:  # none but those it names: name the rest (amps stay off, as in training)
        from keras_inst.corpus.sources import REGISTRY

        base = list(d.render_sources) or [s.name for s in REGISTRY if not s.opt_in]
        sources = [*base, *(e for e in engines if e not in base)]
    return {"sources": sources, "exclude_sources": exclude or None, "modern": d.render_modern,
            "prefer_sources": engines, "styles": tuple(d.render_styles or DEFAULT_SONG_STYLES), "generated_share": 1.0}


def held_out_description(d: DataConfig) -> str:
    """What the held-out corpus holds out, in words (logs, report titles)."""
    parts = [f"{name} {', '.join(v)}" for name, v in (("sources", d.held_out_sources),
             ("engines", d.held_out_engines), ("styles", d.held_out_styles)) if v]
    return "; ".join(parts)


def render_held_out(cfg: ExperimentConfig, *, progress: bool = True) -> Path | None:
    """Render (once; reused afterwards) the held-out corpus into
    :meth:`~keras_inst.config.schema.DataConfig.held_out_corpus_dir`; returns that folder, or
    None when the config holds nothing out."""
    d = cfg.data
    if not d.holds_out:
        return None
    from keras_inst.corpus.render import render_corpus

    root = d.held_out_corpus_dir()
    print(f"Held-out corpus: {d.held_out_songs} songs (seed {d.held_out_seed}), held out: {held_out_description(d)}, in {root}")
    render_corpus(root, songs=d.held_out_songs, seed=d.held_out_seed, sample_rate=cfg.audio.sample_rate,
                  progress=progress, **held_out_render_args(d))
    return root


def ensure_rendered_corpora(cfg: ExperimentConfig, *, progress: bool = True) -> None:
    """Both corpora a run reads (:func:`ensure_rendered_corpus`, :func:`render_held_out`)."""
    ensure_rendered_corpus(cfg)
    render_held_out(cfg, progress=progress)
