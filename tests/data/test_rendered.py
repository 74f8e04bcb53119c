"""The rendered corpora of a run: where the held-out corpus and its cache live, and the held-out
split refusing a corpus that was never rendered (rendering itself: tests/training/test_cross_source.py)."""

from __future__ import annotations

import pytest
import yaml

from keras_inst.config.io import load_config
from keras_inst.data.held_out import held_out_split
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



def test_another_corpus_gets_a_cache_of_its_own_inside_the_runs(tmp_path, monkeypatch):
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}", f"data.cache_dir={tmp_path / 'cache'}"])
    d = cfg.data
    monkeypatch.chdir(tmp_path)
    assert d.cache_dir_for("rendered", tmp_path / "rendered") == tmp_path / "cache"  # the run's own corpus
    assert d.cache_dir_for("rendered", "rendered") == tmp_path / "cache"  # relative, the same folder
    other = d.cache_dir_for("rendered", tmp_path / "eval" / "electronic")
    assert other.parent == tmp_path / "cache" / "roots" and other.name.startswith("electronic-")
    assert d.cache_dir_for("rendered", tmp_path / "eval" / "electronic") == other  # stable: reused next time
    assert d.cache_dir_for("rendered", tmp_path / "other" / "electronic") not in (other, tmp_path / "cache")
    assert d.cache_dir_for("slakh", tmp_path / "rendered") != tmp_path / "cache"  # not slakh's configured root

def test_held_out_split_needs_the_rendered_corpus_and_only_when_asked_for(tmp_path):
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}"])
    with pytest.raises(ValueError, match="held-out corpus .*rendered_heldout_.*no usable songs"):
        held_out_split(cfg)
    paper = load_config("paper")  # no held-out sources: nothing to render or read
    assert held_out_split(paper) is None and render_held_out(paper) is None


def _meta(root) -> list[dict]:
    import yaml

    return [yaml.safe_load(p.read_text())["keras_inst"] for p in sorted(root.glob("Track*/metadata.yaml"))]


def test_held_out_style_and_engine_are_described_by_what_they_hold_out(tmp_path):
    import dataclasses

    from keras_inst.config.schema import DEFAULT_SONG_STYLES
    from keras_inst.corpus.sources import REGISTRY
    from keras_inst.data.rendered import held_out_description, held_out_render_args

    base = [f"data.roots.rendered={tmp_path / 'rendered'}", "data.held_out_sources=[]", "data.held_out_songs=2"]
    style = load_config("demo", [*base, "data.render_styles=[pop,electronic]", "data.held_out_styles=[electronic]"])
    d = style.data
    assert d.holds_out and d.training_styles() == ("pop",)
    assert d.held_out_corpus_dir() == tmp_path / "rendered_heldout_style-electronic_seed1"
    # the training render's sources (demo excludes fluidr3), every song generated in the held-out style
    assert held_out_render_args(d) == {"sources": None, "exclude_sources": ["fluidr3_gm", "fluidr3mono_gm"],
                                       "modern": True, "styles": ("electronic",), "generated_share": 1.0}
    engine = load_config("demo", [*base, "data.render_modern=true", "data.held_out_engines=[builtin_synth]"]).data
    assert engine.training_exclude_sources() == ("fluidr3_gm", "fluidr3mono_gm", "builtin_synth")
    # the engine beside the training sources (demo's, the engine back in), preferred where it can
    # play, in generated songs of the training render's styles (the main job's six)
    assert held_out_render_args(engine) == {
        "sources": None, "exclude_sources": ["fluidr3_gm", "fluidr3mono_gm"], "modern": True,
        "prefer_sources": ["builtin_synth"], "styles": ("pop", "rock", "electronic", "funk", "jazz", "electropop"),
        "generated_share": 1.0}
    nostyle = dataclasses.replace(engine, render_styles=())  # a training render without styles: all five defaults
    assert held_out_render_args(nostyle)["styles"] == DEFAULT_SONG_STYLES
    assert held_out_description(engine) == "engines builtin_synth" and engine.held_out_tag() == "engine-builtin_synth"
    # the training render's styles; a held-out style as well: only it
    styled = load_config("demo", [*base, "data.render_modern=true", "data.held_out_engines=[drum_machine,builtin_synth]",
                                  "data.render_styles=[funk,electronic]", "data.render_exclude_sources=[builtin_synth]"]).data
    assert held_out_render_args(styled) == {
        "sources": None, "exclude_sources": None, "modern": True, "prefer_sources": ["drum_machine", "builtin_synth"],
        "styles": ("funk", "electronic"), "generated_share": 1.0}
    both = dataclasses.replace(styled, held_out_styles=("electronic",))
    assert held_out_render_args(both)["styles"] == ("electronic",) and held_out_render_args(both)["prefer_sources"]
    # a training render without the opt-in: its sources named, no other engine, no amps
    plain = load_config("demo", [*base, "data.render_modern=false", "data.render_styles=[]", "data.render_sources=[timgm6mb,freepats]",
                                 "data.held_out_engines=[builtin_synth]"]).data
    assert held_out_render_args(plain) == {
        "sources": ["timgm6mb", "freepats", "builtin_synth"], "exclude_sources": ["fluidr3_gm", "fluidr3mono_gm"],
        "modern": False, "prefer_sources": ["builtin_synth"], "styles": DEFAULT_SONG_STYLES, "generated_share": 1.0}
    default = dataclasses.replace(plain, render_sources=())
    assert held_out_render_args(default)["sources"] == [
        *(s.name for s in REGISTRY if not s.opt_in), "builtin_synth"]
    # the sources-only corpus keeps its old folder and render arguments (existing renders stay valid),
    # and so do held-out sources with engines: they alone play
    demo = load_config("demo").data
    assert held_out_render_args(demo) == {"sources": ["fluidr3_gm", "fluidr3mono_gm"], "exclude_sources": None, "modern": False}
    mixed = dataclasses.replace(demo, held_out_engines=("drum_machine",))
    assert held_out_render_args(mixed) == {"sources": ["fluidr3_gm", "fluidr3mono_gm", "drum_machine"],
                                           "exclude_sources": None, "modern": False}
    with pytest.raises(ValueError, match="config key 'data.held_out_styles': unknown or repeated style"):
        load_config("demo", ["data.held_out_styles=[polka]"])
    with pytest.raises(ValueError, match="config key 'data.held_out_engines': unknown or repeated engine"):
        load_config("demo", ["data.held_out_engines=[fluidr3_gm]"])
    with pytest.raises(ValueError, match="config key 'data.held_out_songs': must be > 0"):
        load_config("paper", ["data.held_out_styles=[jazz]"])


def test_held_out_engines_are_the_opt_in_sources():
    from keras_inst.config.schema import HELD_OUT_ENGINES
    from keras_inst.corpus.sources import REGISTRY

    assert set(HELD_OUT_ENGINES) == {s.name for s in REGISTRY if s.opt_in}


def test_tiny_held_out_style_corpus_holds_only_that_style_and_training_none(tmp_path, monkeypatch):
    """Both renders of a run holding out 'electronic', through the run's own render calls (shortened)."""
    import functools

    import keras_inst.corpus.render as R
    from keras_inst.data.rendered import ensure_rendered_corpora

    monkeypatch.setattr(R, "render_corpus", functools.partial(R.render_corpus, max_seconds=3.0, workers=1))
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}", "data.render_songs=3",
                               "data.render_styles=[electronic,funk]", "data.render_generated_share=1.0",
                               "data.held_out_sources=[]", "data.held_out_styles=[electronic]", "data.held_out_songs=2"])
    ensure_rendered_corpora(cfg, progress=False)
    train, held = _meta(tmp_path / "rendered"), _meta(cfg.data.held_out_corpus_dir())
    assert len(train) == 3 and len(held) == 2
    assert {m["style"] for m in train} == {"funk"} and {m["style"] for m in held} == {"electronic"}


def test_tiny_held_out_engine_corpus_plays_the_engine_beside_the_training_sources(tmp_path, monkeypatch):
    """The held-out corpus of a run holding out the synthesizer alone (its render call, shortened):
    every synth-program stem on the synthesizer, every other stem on a training source."""
    import functools
    import json

    import keras_inst.corpus.render as R
    from keras_inst.corpus.sources import discover, get
    from keras_inst.data.rendered import render_held_out

    monkeypatch.setattr(R, "render_corpus", functools.partial(R.render_corpus, max_seconds=4.0, workers=1))
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}", "data.render_modern=true",
                               "data.render_sources=[timgm6mb,sung_vowels]", "data.render_styles=[electronic]",
                               "data.held_out_sources=[]", "data.held_out_engines=[builtin_synth]", "data.held_out_songs=3"])
    root = render_held_out(cfg, progress=False)
    desc = json.loads((root / "corpus.json").read_text())
    assert desc["prefer_sources"] == ["builtin_synth"] and desc["render_modern"] is True
    assert desc["generated_songs"]["styles"] == ["electronic"] and "builtin_synth" in desc["sources"]
    d = cfg.data  # the training render's sources (ensure_rendered_corpus's arguments), the engine back in
    training = {s.name for s in discover(list(d.render_sources), list(d.training_exclude_sources()), modern=True).available}
    assert set(desc["sources"]) == training | {"builtin_synth"} and "builtin_synth" not in training
    assert {"timgm6mb", "sung_vowels", "drum_machine"} <= training
    synth, others = [], []
    for p in sorted(root.glob("Track*/metadata.yaml")):
        meta = yaml.safe_load(p.read_text())
        for sid, st in meta["stems"].items():
            src = meta["keras_inst"]["stems"][sid]["source"]
            (synth if st["program_num"] in get("builtin_synth").programs else others).append(src)
    assert len(synth) >= 3 and set(synth) == {"builtin_synth"}
    assert others and set(others) <= training


def test_a_family_of_held_out_styles_is_also_judged_style_by_style(tmp_path, monkeypatch):
    """Two styles held out: the held-out split keeps every song, and per style a split of its own
    songs (styles read from each track's metadata.yaml); the comparison table lists them."""
    import functools

    import numpy as np

    import keras_inst.corpus.render as R
    from keras_inst.data.datasets.slakh import track_styles
    from keras_inst.taxonomy import CLASSES
    from keras_inst.training.report import comparison_table

    monkeypatch.setattr(R, "render_corpus", functools.partial(R.render_corpus, max_seconds=8.0, workers=1))
    cfg = load_config("demo", [f"data.roots.rendered={tmp_path / 'rendered'}", f"data.cache_dir={tmp_path / 'cache'}",
                               "data.render_styles=[pop,electronic,electropop]", "data.held_out_sources=[]",
                               "data.held_out_styles=[electronic,electropop]", "data.held_out_songs=6",
                               "mixing.eval_chunks_per_song=2", "audio.chunk_seconds=1.0", "training.batch_size=4"])
    root = render_held_out(cfg, progress=False)
    ids = sorted(p.name for p in root.glob("Track*"))
    style_of = track_styles(root, ids)
    assert set(style_of.values()) == {"electronic", "electropop"}  # 6 songs drawn among both (seeded)
    split = held_out_split(cfg)
    assert list(split.by_style) == ["electronic", "electropop"]

    def count(ds):
        return sum(int(y.shape[0]) for _, y in ds)

    whole = count(split.dataset)
    per = {st: count(ds) for st, ds in split.by_style.items()}
    assert per == {st: 2 * list(style_of.values()).count(st) for st in per} and sum(per.values()) == whole
    (root / ids[0] / "metadata.yaml").write_text("stems: {}\n")
    with pytest.raises(ValueError, match=f"{ids[0]}/metadata.yaml: no keras_inst.style"):
        track_styles(root, ids)
    # the table: one row per style with its weakest class
    cls = {c: {"roc_auc": None, "pr_auc": None, "positives": 0} for c in CLASSES}
    e = {"examples": 16, "roc_auc": 0.93, "pr_auc": 0.88, "per_class": cls | {"voice": {"roc_auc": 0.825, "pr_auc": 0.6, "positives": 3},
                                                                                 "drums": {"roc_auc": 1.0, "pr_auc": 1.0, "positives": 9}}}
    report = {"test": {"examples": 8, "roc_auc": 0.9, "pr_auc": 0.8, "per_class": cls},
              "held_out": {"songs": 6, "render_seed": 1, "examples": 32, "roc_auc": 0.91, "pr_auc": 0.8, "per_class": cls,
                           "sources": [], "engines": [], "styles": ["electronic", "electropop"],
                           "by_style": {"electronic": e | {"roc_auc": np.float64(0.898)}, "electropop": e}}}
    md = comparison_table(report)
    assert "| electronic | 16 | 0.8980 | 0.8800 | voice (0.825) |" in md
    assert "| electropop | 16 | 0.9300 | 0.8800 | voice (0.825) |" in md
