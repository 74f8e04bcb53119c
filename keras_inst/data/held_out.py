"""The held-out split of a run (beyond the paper, :mod:`keras_inst.training.cross_source`): the
held-out corpus (``data.held_out_*``, rendered by :func:`keras_inst.data.rendered.render_held_out`)
read with its own audio cache as musical mixes like the test split's, described by what it holds
out; with several held-out styles, each style's songs also as a split of their own.

Apart from :mod:`keras_inst.data.pipeline`, whose evaluation mixes (and the
:class:`~keras_inst.data.pipeline.HeldOutSplit` it makes) it uses: a run asks for it
(:func:`held_out_split`) and hands it to :func:`~keras_inst.data.pipeline.build_data`. Songs'
styles come from the Slakh reader, not :mod:`keras_inst.data.rendered`: what only reads data
(export, predict) never imports the renderers.
"""

from __future__ import annotations

import dataclasses

from keras_inst.config.schema import ExperimentConfig
from keras_inst.data.cache.store import ensure_cache
from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.slakh import track_styles
from keras_inst.data.pipeline import HeldOutSplit, musical_eval_dataset


def held_out_split(cfg: ExperimentConfig) -> HeldOutSplit | None:
    """The held-out corpus (rendered by :func:`keras_inst.data.rendered.render_held_out`) with
    its own audio cache, as musical mixes like the test split's (recipe seed 0); None when the
    config holds nothing out (``data.held_out_sources`` / ``_styles`` / ``_engines``)."""
    d = cfg.data
    if not d.holds_out:
        return None
    root = d.held_out_corpus_dir()
    songs = read_dataset("rendered", root)[0] if root.is_dir() else []
    if not songs:
        raise ValueError(f"held-out corpus {root}: no usable songs (render it with "
                         "keras_inst.data.rendered.render_held_out; training does)")
    hcfg = cfg.replace(data=dataclasses.replace(d, cache_dir=str(d.held_out_cache_dir())))
    cache = ensure_cache(hcfg, songs, progress=False)
    b = cfg.training.batch_size
    by_style = {}
    if len(d.held_out_styles) > 1:  # a family of styles: each judged alone too (the same songs)
        style_of = track_styles(root, [s.song_id for s in songs])
        by_style = {st: musical_eval_dataset(hcfg, cache, [s for s in songs if style_of[s.song_id] == st], seed=0, batch_size=b)
                    for st in d.held_out_styles if st in style_of.values()}
    return HeldOutSplit(musical_eval_dataset(hcfg, cache, songs, seed=0, batch_size=b), len(songs), tuple(d.held_out_sources),
                        root, d.held_out_seed, engines=tuple(d.held_out_engines), styles=tuple(d.held_out_styles),
                        by_style=by_style)
