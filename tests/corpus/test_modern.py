"""Opt-in modern sources of the rendered corpus (built-in synthesizer, drum machine, guitar amp):
renders without the opt-in stay identical, renders with it use and record them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from keras_inst.corpus import sources as S
from keras_inst.corpus.render import render_corpus
from keras_inst.taxonomy import classes_for

# sha1 of metadata.yaml + mix PCM of this render, computed with the code BEFORE the opt-in sources
# existed (git HEAD of issue J part 2): a render that does not ask for them must not change.
PINNED = "f8b06f7b023eb3021f48c8893705ad8862eebff4"
SOURCES = "timgm6mb,sung_vowels"  # pip-bundled + built-in: the same on every machine


def _render(out: Path, *, seed: int = 0, **kw) -> Path:
    render_corpus(out, songs=kw.pop("songs", 3), seed=seed, workers=1, progress=False, max_seconds=4.0,
                  sources=kw.pop("sources", SOURCES), **kw)
    return out


def _stems(out: Path) -> list[tuple[dict, dict]]:
    """(Slakh stem entry, keras_inst stem entry) of every stem of a corpus."""
    got = []
    for track in sorted(out.glob("Track*")):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        got += [(st, meta["keras_inst"]["stems"][sid]) for sid, st in sorted(meta["stems"].items())]
    return got


def test_render_without_the_opt_in_is_unchanged(tmp_path):
    out = _render(tmp_path / "c")
    h = hashlib.sha1()
    for t in sorted(out.glob("Track*")):
        h.update((t / "metadata.yaml").read_bytes())
        h.update(sf.read(str(t / "mix.flac"), dtype="int16")[0].tobytes())
    assert h.hexdigest() == PINNED
    desc = json.loads((out / "corpus.json").read_text())
    assert "render_modern" not in desc and set(desc["sources"]) == {"timgm6mb", "sung_vowels"}
    assert all(not ({"patch", "kit", "amp"} & set(extra)) for _, extra in _stems(out))
    assert not {"builtin_synth", "drum_machine"} & {s.name for s in S.discover().available}
    with pytest.raises(ValueError, match="render_modern"):  # the opt-in is another corpus
        _render(tmp_path / "c", modern=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_render_with_the_opt_in_plays_and_records_the_modern_sources(tmp_path, seed):
    out = _render(tmp_path / "m", seed=seed, songs=4, modern=True)
    desc = json.loads((out / "corpus.json").read_text())
    assert desc["render_modern"] is True and {"builtin_synth", "drum_machine"} <= set(desc["sources"])
    assert "--modern" in (out / "README.txt").read_text()
    stems = _stems(out)
    for st, extra in stems:
        src, prog = extra["source"], st["program_num"]
        if src == "builtin_synth":
            assert prog in S.get("builtin_synth").programs and st["plugin_name"] == f"builtin_synth:{extra['patch']['name']}"
            assert extra["patch"]["role"] in st["plugin_name"] and "cutoff_hz" in extra["patch"]
        if src == "drum_machine":
            assert prog == 128 and st["plugin_name"] == f"drum_machine:{extra['kit']['name']}"
            assert extra["kit"]["style"] in ("808", "909") and extra["kit"]["kick_hz"] > 0
        if "amp" in extra:
            assert 26 <= prog <= 31 and st["plugin_name"].endswith("+" + extra["amp"]["name"])
            assert 0 <= extra["amp"]["drive_db"] <= 40
        if prog in (38, 39):  # a synth bass is a synthesizer, whatever plays it
            assert classes_for("slakh", prog) == {"synth"} and st["inst_class"] == "Bass"
    used = {extra["source"] for _, extra in stems} | {"amp" for _, extra in stems if "amp" in extra}
    # seed 0 draws the drum machine and an amp (tracks 2-4), seed 1 the synthesizer for all three
    # synth parts of its synth-pop track (measured); both keep timgm6mb for other parts
    assert used >= ({"drum_machine", "amp", "timgm6mb"} if seed == 0 else {"builtin_synth", "drum_machine"})
    from keras_inst.data.datasets import read_dataset

    songs, report = read_dataset("rendered", out)
    assert report.counts == {} and len(songs) == 4


def test_preferred_source_plays_every_stem_it_can_and_is_part_of_the_identity(tmp_path, capsys):
    from keras_inst.data.cli import main

    out = tmp_path / "p"
    args = ["render", "--out", str(out), "--songs", "2", "--seed", "1", "--workers", "1", "--max-seconds", "4",
            "--sources", SOURCES, "--modern", "--styles", "electronic", "--generated-share", "1.0"]
    assert main([*args, "--prefer-sources", "builtin_synth"]) == 0
    desc = json.loads((out / "corpus.json").read_text())
    assert desc["prefer_sources"] == ["builtin_synth"] and "builtin_synth" in desc["sources"]
    assert (out / "README.txt").read_text().splitlines()[3].endswith(
        " --modern --styles electronic --generated-share 1.0 --prefer-sources builtin_synth")
    stems = _stems(out)
    synth = [extra["source"] for st, extra in stems if st["program_num"] in S.get("builtin_synth").programs]
    others = {extra["source"] for st, extra in stems if st["program_num"] not in S.get("builtin_synth").programs}
    # electronic songs: synth bass, pads, arps and leads all on the synthesizer; drums, keys, voice elsewhere
    assert len(synth) >= 3 and set(synth) == {"builtin_synth"} and others and "builtin_synth" not in others
    capsys.readouterr()
    assert main(args) == 2 and "prefer_sources: ['builtin_synth'] != None" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"prefer_sources: \['builtin_synth'\] not among the render's available"):
        _render(tmp_path / "q", prefer_sources=("builtin_synth",))  # not selected: no modern
    with pytest.raises(ValueError, match=r"prefer_sources: \['nope'\] not among"):
        _render(tmp_path / "q", modern=True, prefer_sources="builtin_synth,nope")


def test_recorded_draws_are_what_the_engines_played():
    notes = [(0.05, 0.4, 40, 100), (0.5, 0.4, 43, 70)]
    drums = [(0.05, 0.1, 36, 100), (0.3, 0.1, 37, 90), (0.5, 0.1, 42, 80)]  # 37 (side stick) -> snare
    for seed in (3, 11):
        _, name = S.play(S.get("builtin_synth"), "", notes, program=38, sample_rate=16000, n_samples=16000, seed=seed)
        assert S.drawn_details(S.get("builtin_synth"), 38, seed)["patch"]["name"] == name
        assert S.drawn_details(S.get("builtin_synth"), 38, seed)["patch"]["role"] == "bass"
        x, kit = S.play(S.get("drum_machine"), "", drums, program=128, sample_rate=16000, n_samples=16000, seed=seed)
        assert S.drawn_details(S.get("drum_machine"), 128, seed)["kit"]["name"] == kit and np.max(np.abs(x)) > 0
    assert S.drawn_details(S.get("timgm6mb"), 0, 3) == {}
    json.dumps(S.drawn_details(S.get("builtin_synth"), 81, 5))  # plain values only (YAML-safe)


def test_amp_draw_is_seeded_guitar_only_and_about_the_set_probability():
    assert S.amp_for(33, 1) is None and S.amp_for(24, 1) is None  # bass, acoustic guitar
    drawn = [S.amp_for(27, seed) for seed in range(400)]
    share = np.mean([a is not None for a in drawn])
    assert abs(share - S.AMP_PROBABILITY) < 0.07, share
    assert S.amp_for(27, 5) == S.amp_for(27, 5)
    assert all(a.drive_db <= 20 for a in (S.amp_for(30, s) for s in range(100)) if a)  # distortion guitar


def test_opt_in_sources_join_only_when_asked_and_cover_their_programs():
    names = lambda found: {s.name for s in found.available}  # noqa: E731
    assert not {"builtin_synth", "drum_machine"} & names(S.discover(exclude="fluidr3_gm"))
    assert {"builtin_synth", "drum_machine"} <= names(S.discover(modern=True))
    assert names(S.discover("timgm6mb,builtin_synth")) == {"timgm6mb", "builtin_synth"}
    organ = {"grandorgue_demo"} if S.resolve_path(S.get("grandorgue_demo")) else set()  # a Debian package
    assert names(S.discover("timgm6mb", modern=True)) == {"timgm6mb", "builtin_synth", "drum_machine"} | organ
    assert "drum_machine" not in names(S.discover(modern=True, exclude="drum_machine"))
    found = S.discover("timgm6mb,drum_machine")
    assert "drum_machine" in {s.name for s in S.candidates(found, S.DRUMS, {35, 37, 39, 44, 54, 69})}
    assert "drum_machine" not in {s.name for s in S.candidates(found, S.DRUMS, {36, 71})}  # 71: whistle
    assert S.get("builtin_synth").programs >= {38, 39, 50, 51, 54, 62, 63, *range(80, 104)}
