"""Cross-source evaluation end to end on a tiny corpus: the held-out corpus holds other songs and
only the held-out family's samples, the training corpus none of them, and the report / table
carry in-domain and held-out figures per class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from script_module import load_script
from tiny import tiny_overrides

from keras_inst.config.io import load_config
from keras_inst.corpus.render import render_corpus
from keras_inst.data.rendered import held_out_render_args
from keras_inst.taxonomy import CLASSES
from keras_inst.training import cross_source as X

TINY = tiny_overrides(steps=2, epochs=1, eval_chunks=2)
FAMILY = "timgm6mb"


def _stems(root: Path) -> dict[str, dict]:
    """Track name -> the keras_inst block of its metadata.yaml."""
    return {p.parent.name: yaml.safe_load(p.read_text())["keras_inst"] for p in sorted(root.glob("Track*/metadata.yaml"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rendered")
    render_corpus(root, songs=8, seed=0, max_seconds=6.0, workers=2, progress=False,
                  exclude_sources=list(X.family_sources(FAMILY)))
    return root


def test_families_and_config_checks():
    assert X.family_sources("fluidr3") == ("fluidr3_gm", "fluidr3mono_gm")
    with pytest.raises(ValueError, match="unknown held-out source family 'musescore'"):
        X.family_sources("musescore")
    cfg = X.hold_out(load_config("demo"), "fluidr3", songs=5)
    assert cfg.data.held_out_sources == ("fluidr3_gm", "fluidr3mono_gm")
    assert set(cfg.data.held_out_sources) <= set(cfg.data.render_exclude_sources)
    assert cfg.data.held_out_seed == cfg.data.render_seed + 1
    # training on a held-out source, or the same songs, is refused with the key named
    with pytest.raises(ValueError, match="data.held_out_sources"):
        load_config("demo", ["data.held_out_sources=[freepats]", "data.held_out_songs=3"])
    with pytest.raises(ValueError, match="data.held_out_seed"):
        load_config("demo", ["data.held_out_sources=[freepats]", "data.render_exclude_sources=[freepats]",
                             "data.held_out_songs=3", "data.held_out_seed=0"])
    assert load_config("paper").data.held_out_sources == ()


def test_hold_out_a_style_or_an_engine_instead_of_a_family():
    demo = load_config("demo")
    style = X.hold_out(demo, style="electronic", songs=4).data
    # only the style is held out; training keeps every other style and the demo's excluded sources
    assert (style.held_out_styles, style.held_out_sources, style.held_out_songs) == (("electronic",), (), 4)
    assert style.training_styles() == ("pop", "rock", "funk", "jazz", "electropop")  # the main job names all six
    assert style.training_exclude_sources() == demo.data.render_exclude_sources
    # a family of styles: both electronic ones out, the same four trained as with electronic alone before electropop
    family = X.hold_out(demo, style=["electronic", "electropop"], songs=4).data
    assert family.held_out_styles == ("electronic", "electropop")
    assert family.training_styles() == ("pop", "rock", "funk", "jazz")
    assert family.held_out_tag() == "style-electronic+style-electropop"
    with pytest.raises(ValueError, match="unknown style 'polka'"):
        X.hold_out(demo, style=["electronic", "polka"], songs=2)
    engine = X.hold_out(demo, engine="drum_machine", songs=2).data
    assert engine.render_modern and engine.held_out_engines == ("drum_machine",) and not engine.held_out_sources
    assert "drum_machine" in engine.training_exclude_sources()
    both = X.hold_out(demo, engine=["builtin_synth", "drum_machine"], songs=2).data
    assert both.held_out_engines == ("builtin_synth", "drum_machine")
    assert {"builtin_synth", "drum_machine"} <= set(both.training_exclude_sources())
    # one engine alone: it plays beside the training sources, preferred where it can play
    alone = held_out_render_args(X.hold_out(demo, engine="builtin_synth", songs=2).data)
    assert alone["prefer_sources"] == ["builtin_synth"] and alone["modern"] and alone["generated_share"] == 1.0
    assert alone["exclude_sources"] == list(demo.data.render_exclude_sources) and alone["sources"] is None
    with pytest.raises(ValueError, match="exactly one"):
        X.hold_out(demo, "fluidr3", style="jazz", songs=2)
    with pytest.raises(ValueError, match="unknown engine 'fluidr3_gm'"):
        X.hold_out(demo, engine="fluidr3_gm", songs=2)


def test_cross_source_run_end_to_end(corpus, tmp_path):
    sets = [*TINY, f"data.roots.rendered={corpus}", f"data.cache_dir={tmp_path / 'cache'}"]
    cfg = load_config("demo", sets)
    run = tmp_path / "run"
    summary = X.run_cross_source(cfg, run, family=FAMILY, songs=3, verbose=0)

    held_root = Path(summary["held_out"]["corpus"])
    assert held_root == X.hold_out(cfg, FAMILY, songs=3).data.held_out_corpus_dir()
    held, train = _stems(held_root), _stems(corpus)
    assert len(held) == 3 and summary["held_out"]["songs"] == 3
    # only the held-out family plays the held-out songs; training never heard it
    assert {s["source"] for k in held.values() for s in k["stems"].values()} <= set(X.FAMILIES[FAMILY])
    assert not {s["source"] for k in train.values() for s in k["stems"].values()} & set(X.FAMILIES[FAMILY])
    # other songs: other track seeds and other score excerpts
    assert not {k["track_seed"] for k in held.values()} & {k["track_seed"] for k in train.values()}
    assert not {(k["source"], k["start_quarter"]) for k in held.values()} & {(k["source"], k["start_quarter"]) for k in train.values()}
    assert {k["corpus_seed"] for k in held.values()} == {1}

    # the run's report carries both evaluations; the held-out one has 2 mixes per held-out song
    report = json.loads((run / "report.json").read_text())
    assert report["held_out"]["examples"] == 3 * 2 == summary["held_out"]["examples"]
    assert report["held_out"]["sources"] == list(X.FAMILIES[FAMILY])
    assert summary["in_domain"]["roc_auc"] == report["test"]["roc_auc"]
    saved = json.loads((run / "cross_source.json").read_text())
    assert saved["held_out_sources"] == list(X.FAMILIES[FAMILY]) and set(saved) >= {"in_domain", "held_out"}

    table = (run / "cross_source.md").read_text().splitlines()
    assert table[0] == f"## In-domain vs held-out (sources {', '.join(X.FAMILIES[FAMILY])})"
    rows = [line for line in table if line.startswith("| ")]
    assert rows[0] == "| class | in-domain ROC-AUC | held-out ROC-AUC | in-domain PR-AUC | held-out PR-AUC | held-out positives |"
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == ["**macro**", *CLASSES]
    assert all(len(r.split("|")) == 8 for r in rows)
    t, h = report["test"], report["held_out"]

    def f(v):  # a tiny set may leave every class undefined: the table says n/a
        return "n/a" if v is None else f"{v:.4f}"

    assert rows[1] == f"| **macro** | {f(t['roc_auc'])} | {f(h['roc_auc'])} | {f(t['pr_auc'])} | {f(h['pr_auc'])} | |"
    assert rows[2].endswith(f"| {h['per_class'][CLASSES[0]]['positives']} |")
    # report.md: the test split's tables, then the comparison
    md = (run / "report.md").read_text()
    assert md.index("| class | level |") < md.index("## In-domain vs held-out (sources")


@pytest.mark.slow
def test_one_engine_held_out_alone_end_to_end(tmp_path, monkeypatch, capsys):
    """``scripts/cross_source.py --engine builtin_synth``: the synthesizer alone held out (no drums
    of its own), both renders shortened; the held-out songs play it beside the training sources."""
    import functools

    import keras_inst.corpus.render as R
    from keras_inst.corpus.sources import get

    monkeypatch.setattr(R, "render_corpus", functools.partial(R.render_corpus, max_seconds=4.0, workers=1))
    script = load_script("cross_source")
    run = tmp_path / "run"
    sets = [*TINY, f"data.roots.rendered={tmp_path / 'rendered'}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.render_songs=6", "data.render_sources=[timgm6mb,sung_vowels]", "data.render_styles=[electronic,pop]",
            "data.render_generated_share=1.0"]
    argv = ["--engine", "builtin_synth", "--songs", "3", "--run-dir", str(run)]
    assert script.main([*argv, *(x for kv in sets for x in ("--set", kv))]) == 0
    out = capsys.readouterr().out  # training's progress, then the summary
    printed = json.loads(out[out.rindex('{\n  "run_dir"'):].split("Table:")[0])
    assert printed["held_out_engines"] == ["builtin_synth"] and printed["held_out"]["examples"] == 3 * 2
    played = []  # (source, GM program) of every held-out stem
    for meta_file in sorted((tmp_path / "rendered_heldout_engine-builtin_synth_seed1").glob("Track*/metadata.yaml")):
        meta = yaml.safe_load(meta_file.read_text())
        played += [(meta["keras_inst"]["stems"][sid]["source"], st["program_num"]) for sid, st in meta["stems"].items()]
    synth = get("builtin_synth").programs
    assert any(p in synth for _, p in played) and any(p not in synth for _, p in played)
    assert all((s == "builtin_synth") == (p in synth) for s, p in played)
    train = _stems(tmp_path / "rendered")
    assert "builtin_synth" not in {s["source"] for k in train.values() for s in k["stems"].values()}
    assert json.loads((run / "cross_source.json").read_text())["held_out_engines"] == ["builtin_synth"]
