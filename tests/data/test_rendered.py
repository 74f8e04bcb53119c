"""The rendered corpora of a run: where the held-out corpus and its cache live, and the held-out
split refusing a corpus that was never rendered (rendering itself: tests/training/test_cross_source.py)."""

from __future__ import annotations

import pytest

from keras_inst.config.io import load_config
from keras_inst.data.pipeline import held_out_split
from keras_inst.data.rendered import render_held_out


def test_held_out_corpus_and_cache_sit_beside_the_training_ones(tmp_path):
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}", f"data.cache_dir={tmp_path / 'cache'}"])
    tag = "fluidr3_gm+fluidr3mono_gm_seed1"  # demo.yaml holds the fluidr3 family out, seed 1
    assert cfg.data.held_out_corpus_dir() == tmp_path / f"rendered_heldout_{tag}"
    assert cfg.data.held_out_cache_dir() == tmp_path / "cache" / f"heldout_{tag}"
    own = load_config("demo", [f"data.held_out_root={tmp_path / 'elsewhere'}"])
    assert own.data.held_out_corpus_dir() == tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="config key 'data.held_out_root': needed when data.roots.rendered"):
        load_config("demo", ["data.roots={}"]).data.held_out_corpus_dir()


def test_held_out_split_needs_the_rendered_corpus_and_only_when_asked_for(tmp_path):
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}"])
    with pytest.raises(ValueError, match="held-out corpus .*rendered_heldout_.*no usable songs"):
        held_out_split(cfg)
    paper = load_config("paper")  # no held-out sources: nothing to render or read
    assert held_out_split(paper) is None and render_held_out(paper) is None
