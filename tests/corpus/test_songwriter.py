"""Generated songs: each style's tempo, progressions, bass idiom, programs and part-time
instruments measured on written songs; the sung line; determinism; the corpus plan."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from keras_inst.config.schema import SONG_STYLES, DataConfig
from keras_inst.corpus.arrange import program_range
from keras_inst.corpus.ensembles import plan_track
from keras_inst.corpus.plans import plan_corpus
from keras_inst.corpus.songstyles import (
    GENERATED_KIND,
    STYLES,
    VOCAL_RANGE,
    parse_chord,
    plan_generated,
)
from keras_inst.corpus.songwriter import compose, write_song
from keras_inst.taxonomy import classes_for

SEEDS = range(6)


def _songs(style: str, seeds=SEEDS, seconds: float = 600.0):
    """(plan, whole-form composition) per seed: 600 s holds every section of the form."""
    out = []
    for s in seeds:
        plan = plan_generated(s + 1, 0, (style,))
        out.append((plan, compose(plan, rng=np.random.default_rng(s), max_seconds=seconds)))
    return out


def _stem(plan, role):
    return next((sp for sp in plan.stems if sp.role == role), None)


def test_style_names_match_the_config():
    assert tuple(STYLES) == SONG_STYLES
    for st in STYLES.values():
        for prog in st.progressions:
            for tok in prog.replace("/", " ").split():
                parse_chord(tok)  # every table entry parses
    assert parse_chord("bVImaj7") == (8, (0, 4, 7, 11))
    assert parse_chord("iih7") == (2, (0, 3, 6, 10))
    with pytest.raises(ValueError, match="chord symbol 'X7'"):
        parse_chord("X7")


@pytest.mark.parametrize("style", SONG_STYLES)
def test_tempo_progressions_and_form_follow_the_style(style):
    st = STYLES[style]
    for plan, comp in _songs(style):
        assert plan.style == style and plan.source_kind == GENERATED_KIND
        assert st.qpm[0] <= comp.qpm <= st.qpm[1]
        assert (comp.bar_q, comp.beat_q) in st.meters
        assert tuple(s.name for s in comp.sections) in st.forms  # the whole form
        for name, prog in comp.progressions.items():
            assert prog in st.progressions, (name, prog)
        symbols = {c.symbol for c in comp.chords}
        allowed = {t for p in comp.progressions.values() for t in p.replace("/", " ").split()}
        assert symbols <= allowed
        # chords follow the section's progression bar by bar
        sec = comp.sections[1]
        tokens = comp.progressions[sec.name].split()
        firsts = [c.symbol for c in comp.chords if sec.t0 <= c.t0 < sec.t1 and abs(c.t0 / comp.bar_q % 1) < 1e-6]
        assert firsts == [tokens[i % len(tokens)].split("/")[0] for i in range(len(firsts))]


def test_jazz_has_ii_v_i_and_pop_the_axis_progression():
    assert any("ii7 V7 Imaj7" in p or "ii9 V13 Imaj9" in p for p in STYLES["jazz"].progressions)
    assert "I V vi IV" in STYLES["pop"].progressions
    assert all(p.split()[0].startswith("i") for p in STYLES["electronic"].progressions)  # minor loops
    assert any("bVII" in p for p in STYLES["rock"].progressions)


def _onsets(notes):
    return np.array([n[0] for n in notes]), np.array([n[2] for n in notes])


def test_jazz_bass_walks_in_quarters_mostly_stepwise():
    for plan, comp in _songs("jazz"):
        t, k = _onsets(comp.parts[_stem(plan, "bass").name])
        on_beat = np.abs(t / comp.beat_q - np.round(t / comp.beat_q)) < 1e-6
        assert on_beat.mean() == 1.0
        assert np.mean(np.diff(np.sort(t)) == comp.beat_q) > 0.95  # a note on every beat
        steps = np.abs(np.diff(k))
        assert np.mean(steps <= 3) > 0.8, np.bincount(steps)
        assert np.median(steps) <= 2


def test_funk_bass_is_syncopated_sixteenths_and_rock_bass_eighths():
    for plan, comp in _songs("funk"):
        t, _ = _onsets(comp.parts[_stem(plan, "bass").name])
        six = np.round(t * 4).astype(int)
        assert np.allclose(t * 4, six)  # on the sixteenth grid
        assert np.mean(six % 2 == 1) >= 0.4  # odd sixteenths: "e" and "a" of the beats
    for plan, comp in _songs("rock", seeds=range(2)):
        t, _ = _onsets(comp.parts[_stem(plan, "bass").name])
        assert set(np.round(np.diff(t), 6)) <= {0.5} | set(np.round(np.diff(t), 6)[np.diff(t) > 0.5])
        assert np.mean(np.isclose(np.diff(t), 0.5)) > 0.9


@pytest.mark.parametrize("style", ["electronic", "electropop"])
def test_electronic_songs_use_synth_programs(style):
    for plan, _ in _songs(style, seeds=range(10), seconds=10):
        melodic = [sp.program for sp in plan.stems if not sp.is_drum and sp.role != "vocal"]
        synth = [p for p in melodic if 80 <= p <= 95 or p in (38, 39)]
        assert len(synth) >= len(melodic) - 1  # keys may be an electric piano
        assert _stem(plan, "bass").program in (38, 39)


def _vocal_share(style: str, seeds=range(40), seconds: float = 30.0) -> float:
    """Mean share of a ``seconds`` excerpt's bars in which the song's vocal sings (songs with one)."""
    shares = []
    for s in seeds:
        plan = plan_generated(s + 1, 0, (style,))
        voc = _stem(plan, "vocal")
        if voc is None:
            continue
        comp = compose(plan, rng=np.random.default_rng(s), max_seconds=seconds)
        bars = np.arange(0.0, comp.length_q - 1e-6, comp.bar_q)
        sung = {int(t // comp.bar_q) for t, *_ in comp.parts[voc.name]}
        shares.append(len(sung) / len(bars))
    return float(np.mean(shares))


def test_electropop_sings_verses_and_choruses_where_electronic_sings_in_the_drop():
    st = STYLES["electropop"]
    assert st.idiom == "electronic" and all(s.idiom in ("", *STYLES) for s in STYLES.values())
    assert all(f[1] == "verse" and "chorus" in f and "drop" not in f for f in st.forms)
    vocal = next(s for s in st.stems if s.role == "vocal")
    assert {"verse", "chorus"} <= vocal.sections and vocal.p >= 0.9
    # measured on 30-s excerpts (the corpus's length): the electronic style's vocal sings in
    # under a third of the bars, electropop's in most
    pop, edm = _vocal_share("electropop"), _vocal_share("electronic")
    assert pop >= 0.7 and edm < 0.45 and pop > edm + 0.3, (pop, edm)  # 0.82 vs 0.34
    # its bass, keys and leads are written as electronic's: a synth bass on every eighth or off-beat
    for plan, comp in _songs("electropop", seeds=range(4)):
        t, _ = _onsets(comp.parts[_stem(plan, "bass").name])
        assert np.allclose(t * 2, np.round(t * 2))  # on the eighth grid, no walking or sixteenths


@pytest.mark.parametrize("style", SONG_STYLES)
def test_some_instruments_play_in_part_of_the_song_only(style):
    for plan, comp in _songs(style):
        part_time = []
        for name, on in comp.playing.items():
            played = [any(s.t0 <= n[0] < s.t1 for n in comp.parts[name]) for s in comp.sections]
            assert not any(p and not o for p, o in zip(played, on, strict=True))  # silent where off
            if any(played) and not all(played):
                part_time.append(name)
        assert part_time, "every stem plays in every section"
        drums = _stem(plan, "drums")
        if drums is not None:  # drums enter after the intro
            assert comp.playing[drums.name][0] is False and any(comp.playing[drums.name])


def test_vocal_line_in_the_singers_range_on_chord_tones():
    n_checked = 0
    for style in SONG_STYLES:
        for plan, comp in _songs(style):
            voc = _stem(plan, "vocal")
            if voc is None:
                continue
            notes = comp.parts[voc.name]
            keys = [n[2] for n in notes]
            assert VOCAL_RANGE[0] <= min(keys) and max(keys) <= VOCAL_RANGE[1]
            strong, fits = 0, 0
            beats = round(comp.bar_q / comp.beat_q)
            step = 2 * comp.beat_q if beats % 2 == 0 else comp.bar_q  # beats 1 and 3; 3/4: beat 1
            for t, _, k, _ in notes:
                sec = next(s for s in comp.sections if s.t0 <= t < s.t1)
                if abs((t - sec.t0) / step - round((t - sec.t0) / step)) < 1e-6:
                    c = next(c for c in comp.chords if c.t0 <= t < c.t1)
                    strong += 1
                    fits += (k - c.root) % 12 in {iv % 12 for iv in c.ivs}
            assert strong > 5 and fits / strong >= 0.9
            assert np.median(np.abs(np.diff(keys))) <= 3  # a singable line, mostly steps
            n_checked += 1
    assert n_checked >= 10


def test_every_styles_programs_map_to_the_expected_classes():
    expect = {"drums": {"drums"}, "vocal": {"singer"}}
    for st in STYLES.values():
        for stem in st.stems:
            for p in stem.programs:
                cls = classes_for("slakh", p)
                assert cls, (st.name, stem.role, p)
                assert expect.get(stem.role, cls) <= cls
                if stem.role == "bass":
                    assert cls & {"electric_bass", "synth", "plucked_string"}, (st.name, p)
    assert classes_for("slakh", 29) >= {"electric_guitar"}
    assert "synth" in classes_for("slakh", 38) and "synth" in classes_for("slakh", 90)
    assert "piano" in classes_for("slakh", 0)


def test_written_song_is_deterministic_and_fits_ranges():
    plan = plan_generated(3, 5, SONG_STYLES)
    a = write_song(plan, rng=np.random.default_rng(9), max_seconds=20.0)
    b = write_song(plan, rng=np.random.default_rng(9), max_seconds=20.0)
    c = write_song(plan, rng=np.random.default_rng(10), max_seconds=20.0)
    assert a == b and a != c
    assert a.seconds <= 20.0 + 1e-6 and a.form[0][1] == 0.0
    for sp in plan.stems:
        notes = a.parts[sp.name]
        assert all(0 <= n[0] < a.seconds + 0.05 for n in notes)
        if not sp.is_drum and sp.role != "vocal" and notes:
            lo, hi = program_range(sp.program)
            assert np.mean([lo <= n[2] <= hi for n in notes]) > 0.95


def test_corpus_plan_mixes_generated_songs_and_keeps_the_others():
    base = plan_corpus(60, 0)
    mixed = plan_corpus(60, 0, styles=SONG_STYLES, generated_share=0.4)
    gen = [p for p in mixed if p.source_kind == GENERATED_KIND]
    assert 12 <= len(gen) <= 36
    assert all(m == b for m, b in zip(mixed, base, strict=True) if m.source_kind != GENERATED_KIND)
    assert Counter(p.style for p in gen).keys() <= set(SONG_STYLES) and len({p.style for p in gen}) >= 4
    assert mixed == plan_corpus(60, 0, styles=SONG_STYLES, generated_share=0.4)
    assert plan_track(1, 0) == base[0]
    with pytest.raises(ValueError, match="generated_share"):
        plan_corpus(3, 0, styles=("pop",), generated_share=0.0)
    with pytest.raises(ValueError, match="song styles"):
        plan_generated(1, 0, ("polka",))


def test_config_validates_styles():
    assert DataConfig(render_styles=("pop", "jazz")).render_styles == ("pop", "jazz")
    with pytest.raises(ValueError, match="data.render_styles"):
        DataConfig(render_styles=("polka",))
    with pytest.raises(ValueError, match="data.render_generated_share"):
        DataConfig(render_styles=("pop",), render_generated_share=1.5)


def test_render_with_styles_writes_slakh_layout_with_the_style(tmp_path):
    import json

    import soundfile as sf
    import yaml

    from keras_inst.corpus.render import render_corpus

    out = tmp_path / "gen"
    rep = render_corpus(out, songs=2, seed=0, workers=1, progress=False, max_seconds=4.0,
                        styles=("electronic", "funk"), generated_share=1.0)
    assert rep.rendered == 2 and not rep.failed
    desc = json.loads((out / "corpus.json").read_text())
    assert desc["generated_songs"]["styles"] == ["electronic", "funk"]
    for track in sorted(out.glob("Track*")):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        ki = meta["keras_inst"]
        assert ki["source_kind"] == GENERATED_KIND and ki["style"] in ("electronic", "funk")
        assert ki["source"] == f"songwriter/{ki['style']}" and ki["form"][0][1] == 0.0
        assert set(ki["progressions"].values()) <= set(STYLES[ki["style"]].progressions)
        mix, sr = sf.read(track / "mix.flac")
        assert sr == 16000 and np.max(np.abs(mix)) > 0.01
        for sid, stem in meta["stems"].items():
            assert (track / "stems" / f"{sid}.flac").is_file() and (track / "MIDI" / f"{sid}.mid").is_file()
            assert stem["inst_class"] and stem["program_num"] in range(129)
    with pytest.raises(ValueError, match="generated_songs"):  # another setting is another corpus
        render_corpus(out, songs=2, seed=0, workers=1, progress=False, max_seconds=4.0)


def test_electropop_renders_with_its_style_and_a_synth_bass(tmp_path):
    import yaml

    from keras_inst.corpus.render import render_corpus

    out = tmp_path / "epop"
    rep = render_corpus(out, songs=2, seed=0, workers=1, progress=False, max_seconds=20.0,
                        styles=("electropop",), generated_share=1.0)
    assert rep.rendered == 2 and not rep.failed
    for track in sorted(out.glob("Track*")):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        ki = meta["keras_inst"]
        assert ki["style"] == "electropop" and {s[0] for s in ki["form"]} <= set(STYLES["electropop"].forms[0])
        assert "verse" in {s[0] for s in ki["form"]}  # 20 s reach past the 4-bar intro
        roles = {ki["stems"][sid]["role"]: stem for sid, stem in meta["stems"].items()}
        assert "vocal" in roles and classes_for("slakh", roles["vocal"]["program_num"]) >= {"singer", "voice"}
        bass = classes_for("slakh", roles["bass"]["program_num"])
        assert "synth" in bass and "electric_bass" not in bass  # a synth bass is synth
