"""The rendered corpora of a run, made on demand: the embedded corpus (``data.roots.rendered``)
and the held-out-source corpus (``data.held_out_*``).

Both are rendered once by :func:`keras_inst.corpus.render.render_corpus` and reused afterwards.
The held-out corpus (beyond the paper, see :mod:`keras_inst.training.cross_source`) holds
``data.held_out_songs`` OTHER songs (render seed ``data.held_out_seed``) played only by
``data.held_out_sources``, which the training render excludes; :func:`keras_inst.data.pipeline.build_data`
reads it as the run's ``held_out`` split. Rendering stays out of the pipeline module, so that
what only reads data (export's calibration, prediction) never imports the renderers.
"""

from __future__ import annotations

from pathlib import Path

from keras_inst.config.schema import ExperimentConfig


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
        exclude_sources=list(cfg.data.render_exclude_sources) or None, modern=cfg.data.render_modern,
        styles=cfg.data.render_styles, generated_share=cfg.data.render_generated_share,
    )


def render_held_out(cfg: ExperimentConfig, *, progress: bool = True) -> Path | None:
    """Render (once; reused afterwards) the held-out corpus into
    :meth:`~keras_inst.config.schema.DataConfig.held_out_corpus_dir`; returns that folder, or
    None when ``data.held_out_sources`` is empty."""
    d = cfg.data
    if not d.held_out_sources:
        return None
    from keras_inst.corpus.render import render_corpus

    root = d.held_out_corpus_dir()
    print(f"Held-out corpus: {d.held_out_songs} songs (seed {d.held_out_seed}) rendered only with {', '.join(d.held_out_sources)} in {root}")
    render_corpus(root, songs=d.held_out_songs, seed=d.held_out_seed, sample_rate=cfg.audio.sample_rate,
                  sources=list(d.held_out_sources), progress=progress)
    return root


def ensure_rendered_corpora(cfg: ExperimentConfig, *, progress: bool = True) -> None:
    """Both corpora a run reads (:func:`ensure_rendered_corpus`, :func:`render_held_out`)."""
    ensure_rendered_corpus(cfg)
    render_held_out(cfg, progress=progress)
