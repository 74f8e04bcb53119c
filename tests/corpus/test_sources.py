"""Sample-source registry: discovery and skip reporting, the seeded per-stem draw, metadata that
records each stem's source, level correction bounds, and the sung-vowel singer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from keras_inst.corpus import sources as S
from keras_inst.corpus.gains import (
    REF_VELOCITY,
    VELOCITIES,
    _analysis,
    dropped,
    velocity_gains,
)
from keras_inst.corpus.levels import measure
from keras_inst.corpus.render import render_corpus
from keras_inst.corpus.voice import sing

SR = 16000


def _installed(name: str) -> bool:
    return S.resolve_path(S.get(name)) is not None


# ------------------------------------------------------------------ registry and discovery


def test_registry_covers_enough_sources_and_no_reserved_one():
    melodic = [s for s in S.REGISTRY if len(s.programs & S.ALL_MELODIC) >= 100]
    drums = [s for s in S.REGISTRY if S.DRUMS in s.programs]
    assert len(melodic) >= 4 and len(drums) >= 3
    assert {s.kind for s in S.REGISTRY} == {"sf2", "sf2-drumkit", "timidity", "samples", "hydrogen", "organ", "builtin"}
    for s in S.REGISTRY:
        assert s.license and s.package and not S.is_reserved(s.path + s.name + s.package)
    assert len({s.name for s in S.REGISTRY}) == len(S.REGISTRY)


def test_discovery_reports_missing_and_keeps_timgm6mb(tmp_path):
    gone = S.SampleSource("gone", "sf2", "no-such-package", str(tmp_path / "none.sf2"), "MIT", S.ALL_MELODIC)
    found = S.discover(registry=(S.get("timgm6mb"), gone))
    assert [s.name for s in found.available] == ["timgm6mb"]
    assert found.missing == (("gone", f"not installed ({tmp_path / 'none.sf2'}; apt-get install no-such-package)"),)
    assert found.report() == [f"sample source 'gone' skipped: {found.missing[0][1]}"]
    assert Path(found.paths["timgm6mb"]).name == "TimGM6mb.sf2"
    sel = S.discover("timgm6mb,sung_vowels")
    assert [s.name for s in sel.available] == ["timgm6mb", "sung_vowels"] and sel.missing == ()
    assert [s.name for s in S.discover("timgm6mb,sung_vowels", exclude=["sung_vowels"]).available] == ["timgm6mb"]


def test_discovery_refuses_bad_selections():
    with pytest.raises(ValueError, match="unknown sample source.*nope"):
        S.discover("timgm6mb,nope")
    with pytest.raises(ValueError, match="reserved"):
        S.discover(exclude="musescore_general")
    with pytest.raises(ValueError, match="plays melodic"):
        S.discover("sung_vowels,fluidr3_gm", exclude="fluidr3_gm")
    reserved = S.SampleSource("x", "sf2", "musescore-general-soundfont", "/usr/share/sounds/sf2/MuseScore_General.sf2",
                              "MIT", S.ALL_MELODIC | {S.DRUMS})
    with pytest.raises(ValueError, match="reserved"):
        S.discover(registry=(reserved,))


def test_render_with_one_user_soundfont_and_reserved_one(tmp_path):
    own = tmp_path / "Mine.sf2"
    own.write_bytes(S.resolve_path(S.get("timgm6mb")).read_bytes())
    rep = render_corpus(tmp_path / "c", songs=1, seed=0, workers=1, progress=False, max_seconds=3.0, soundfont=str(own))
    assert set(rep.sources) == {"file:Mine.sf2"}
    assert f"--soundfont {own}" in (tmp_path / "c" / "README.txt").read_text()
    fake = tmp_path / "MuseScore_General.sf2"
    fake.write_bytes(own.read_bytes())
    with pytest.raises(ValueError, match="reserved"):
        render_corpus(tmp_path / "m", songs=1, seed=0, workers=1, progress=False, soundfont=str(fake))
    with pytest.raises(ValueError, match="don't combine"):
        render_corpus(tmp_path / "m", songs=1, seed=0, progress=False, soundfont=str(own), sources="timgm6mb")


def test_freepats_coverage_matches_its_config_and_renders_deterministically():
    if not _installed("freepats"):
        pytest.skip("freepats/timidity not installed (scripts/setup_sample_sets.sh)")
    from keras_inst.corpus.timidity import cfg_coverage, render

    programs, keys = cfg_coverage(S.get("freepats").path)
    assert programs == S.FREEPATS_PROGRAMS and set(range(35, 82)) - keys == set()
    notes = [(0.5, 0.4, 60, 100), (1.0, 0.4, 64, 50)]
    x = render(notes, program=0, cfg=S.get("freepats").path, sample_rate=SR, n_samples=2 * SR)
    assert x.shape == (2 * SR,) and np.max(np.abs(x[: int(0.49 * SR)])) < 1e-3  # onset kept at 0.5 s
    assert np.sqrt(np.mean(x[int(0.5 * SR) : int(0.6 * SR)] ** 2)) > 1e-3
    assert np.array_equal(x, render(notes, program=0, cfg=S.get("freepats").path, sample_rate=SR, n_samples=2 * SR))



@pytest.mark.parametrize("error", [subprocess.TimeoutExpired(["timidity"], 300), FileNotFoundError("timidity")])
def test_a_hung_or_missing_timidity_fails_the_part_with_a_clear_error(monkeypatch, tmp_path, error):
    from keras_inst.corpus import timidity

    def run(*args, **kwargs):
        raise error

    monkeypatch.setattr(timidity.subprocess, "run", run)
    with pytest.raises(ValueError, match="timidity failed on program 40 with /etc/x.cfg"):  # the track is reported
        timidity._render_once([(0.0, 0.5, 60, 90)], 40, "/etc/x.cfg", SR, SR, tmp_path)

# ------------------------------------------------------------------ the per-stem draw


def test_draw_is_seeded_per_stem_and_covers_the_candidates():
    found = S.discover()
    pool = [s.name for s in S.candidates(found, 0)]
    draws = [S.draw_source(found, track_seed=t, stem_index=i, program=0).name for t in range(60) for i in range(3)]
    again = [S.draw_source(found, track_seed=t, stem_index=i, program=0).name for t in range(60) for i in range(3)]
    assert draws == again and set(draws) == set(pool)
    assert S.draw_source(found, track_seed=5, stem_index=0, program=53).name in {s.name for s in S.candidates(found, 53)}
    assert "sung_vowels" in [s.name for s in S.candidates(found, 53)] and "sung_vowels" not in pool
    singers = [S.draw_source(found, track_seed=t, stem_index=0, program=53).name for t in range(600)]
    n_gm = len(S.candidates(found, 53)) - 1
    assert singers.count("sung_vowels") / 600 == pytest.approx(5 / (5 + n_gm), abs=0.06)  # weight 5
    only = S.discover("timgm6mb,sung_vowels")
    assert {S.draw_source(only, track_seed=t, stem_index=0, program=40).name for t in range(20)} == {"timgm6mb"}
    for key, prog in dropped():  # presets that play wrong are not drawn while another source can play
        others = [s for s in S.candidates(found, prog) if (s.name, prog) not in dropped()]
        names = {S.draw_source(found, track_seed=t, stem_index=0, program=prog).name for t in range(40)}
        assert key not in names if others else names == {s.name for s in S.candidates(found, prog)}


def test_preferred_sources_play_every_stem_they_can_and_nothing_changes_without():
    found = S.discover("timgm6mb,sung_vowels,builtin_synth,drum_machine")  # installed everywhere
    kit = {36, 38, 42}

    def draws(program, keys=None, **kw):
        return [S.draw_source(found, track_seed=t, stem_index=t % 3, program=program, drum_keys=keys, **kw).name
                for t in range(10)]

    # pinned with the code before ``prefer`` existed: no preference, the same draws
    table = ["builtin_synth", "timgm6mb", "builtin_synth", "timgm6mb", "builtin_synth", "timgm6mb",
             "builtin_synth", "builtin_synth", "timgm6mb", "builtin_synth"]
    assert draws(38) == draws(38, prefer=()) == table
    assert draws(S.DRUMS, kit) == [n.replace("builtin_synth", "drum_machine") for n in table]
    # a preferred source that can play the stem always does; the others' stems draw as before
    assert draws(38, prefer=("builtin_synth",)) == draws(81, prefer=["builtin_synth"]) == ["builtin_synth"] * 10
    assert draws(0, prefer=("builtin_synth",)) == draws(0) == ["timgm6mb"] * 10
    assert draws(S.DRUMS, kit, prefer=("builtin_synth",)) == draws(S.DRUMS, kit)
    assert draws(53, prefer=("builtin_synth",)) == draws(53) != ["timgm6mb"] * 10
    both = ("builtin_synth", "drum_machine")
    assert set(draws(S.DRUMS, kit, prefer=both)) == {"drum_machine"}
    assert set(draws(S.DRUMS, {36, 71}, prefer=both)) == {"timgm6mb"}  # 71 (whistle): not in the machine's kit


def test_drum_draw_respects_kit_coverage():
    if not _installed("h2_bja_pacific"):
        pytest.skip("hydrogen-drumkits not installed (scripts/setup_sample_sets.sh)")
    found = S.discover()
    folk = {54, 70, 37}  # tambourine, shaker, side stick: few kits have the first two
    names = {s.name for s in S.candidates(found, S.DRUMS, folk)}
    assert "h2_bja_pacific" not in names and "timgm6mb" in names
    rock = {36, 38, 42, 49, 37, 44}  # BJA lacks side stick and pedal hat: played as snare / closed hat
    assert "h2_bja_pacific" in {s.name for s in S.candidates(found, S.DRUMS, rock)}


@pytest.mark.parametrize("name", [s.name for s in S.REGISTRY if S.DRUMS in s.programs and s.kind != "hydrogen"])
def test_sf2_drum_kits_play_every_key_but_their_silent_ones(name):
    if not _installed(name):
        pytest.skip(f"sample source {name} not installed (scripts/setup_sample_sets.sh)")
    src, path = S.get(name), str(S.resolve_path(S.get(name)))
    silent = set()
    for key in range(35, 71):
        x, _ = S.play(src, path, [(0.0, 0.2, key, 100)], program=S.DRUMS, sample_rate=SR, n_samples=SR // 2, seed=0)
        if np.max(np.abs(x)) < 1e-3:
            silent.add(key)
    assert silent == set(src.silent_keys)
    found = S.discover(name + ",timgm6mb")
    assert (name in {s.name for s in S.candidates(found, S.DRUMS, {36, 70})}) == (70 not in silent)


# ------------------------------------------------------------------ rendered metadata


def test_render_records_each_stems_source_and_missing_sources(tmp_path, monkeypatch):
    real = S.resolve_path
    monkeypatch.setattr(S, "resolve_path", lambda s: None if s.name == "fluidr3_gm" else real(s))
    out = tmp_path / "c"
    rep = render_corpus(out, songs=3, seed=0, workers=1, progress=False, max_seconds=4.0,
                        sources="timgm6mb,fluidr3_gm,sung_vowels,csound_gm")
    assert rep.missing_sources[0] == (
        "sample source 'fluidr3_gm' skipped: not installed (/usr/share/sounds/sf2/FluidR3_GM.sf2; "
        "apt-get install fluid-soundfont-gm)")
    desc = json.loads((out / "corpus.json").read_text())
    expected = {"timgm6mb", "sung_vowels"} | ({"csound_gm"} if _installed("csound_gm") else set())
    assert set(desc["sources"]) == expected and len(rep.missing_sources) == 4 - len(expected)
    assert desc["missing_sources"] == list(rep.missing_sources)
    used = []
    for track in sorted(out.glob("Track*")):
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        for sid, st in meta["stems"].items():
            src = meta["keras_inst"]["stems"][sid]["source"]
            assert src in desc["sources"] and st["plugin_name"].startswith(src + ":")
            used.append(src)
    assert sum(rep.sources.values()) == len(used) and set(rep.sources) == set(used)
    from keras_inst.data.datasets import read_dataset

    songs, report = read_dataset("rendered", out)
    assert report.counts == {} and len(songs) == 3
    with pytest.raises(ValueError, match="sources"):  # another source set is another corpus
        render_corpus(out, songs=3, seed=0, workers=1, progress=False, max_seconds=4.0, sources="timgm6mb,csound_gm")


# ------------------------------------------------------------------ levels


@pytest.mark.parametrize("name", [s.name for s in S.REGISTRY])
def test_level_correction_brings_each_source_to_the_median_curve(name):
    """On a held-out phrase (other keys, rhythm), the corrected velocity curve of each source stays
    within 1.5 dB (melodic; raw curves differ by up to 4.6 dB) / 2.5 dB (drum kits; raw: 7.8 dB)
    of the median. Measured: <= 0.3 dB for SoundFonts and freepats, 1.2 dB for the Salamander
    piano (other keys play other recorded samples), 2.1 dB for drum kits. The synthesizer and the
    drum machine draw a patch/kit per stem: their curve is the mean over the same ``draws`` seeds
    (levels.py says why); the median is that of the other sources (gains.opt_in_sources). The
    pipe organ (flat: see the next test) is checked on its GM organ programs, the same way."""
    if not _installed(name):
        pytest.skip(f"sample source {name} not installed (scripts/setup_sample_sets.sh)")
    from keras_inst.corpus.gains import opt_in_sources, stored_table

    LEVELS = stored_table()[0]

    assert name in LEVELS, f"{name} has no measured levels: run python -m keras_inst.corpus.levels --out ..."
    probe = {"builtin_synth": (38, 81, 89),  # a bass, a lead, a pad
             "grandorgue_demo": (16, 19, 20)}.get(name, (0, 33, 48, 53, 128))
    progs = [p for p in probe if p in S.get(name).programs and (name, p) not in dropped()]
    assert progs, name
    got = measure([name], progs, variant=1, corrected=True)[name]
    i = VELOCITIES.index(REF_VELOCITY)
    for p in progs:
        others = [np.asarray(LEVELS[n][p]) for n in LEVELS
                  if p in LEVELS[n] and (n, p) not in dropped() and n not in opt_in_sources()]
        median = np.median([r - r[i] for r in others], axis=0)
        curve = np.asarray(got[p]) - got[p][i]
        bound = 2.5 if p == 128 else 1.5
        assert np.max(np.abs(curve - median)) <= bound, (name, p, curve.round(2), median.round(2))


def test_the_pipe_organ_has_no_velocity_response_and_gets_the_median_organ_curve():
    """Pipes speak at one wind pressure: the organ's raw rows are flat (within 0.05 dB, measured
    0.0), so its level correction is the median organ curve of the GM banks (-6.9..+3.2 dB, under
    MAX_CORRECTION_DB: not dropped) and a phrase with accents keeps them, as on every source."""
    if not _installed("grandorgue_demo"):
        pytest.skip("grandorgue-demo / wavpack not installed (scripts/setup_sample_sets.sh)")
    from keras_inst.corpus.gains import opt_in_sources, stored_table

    levels = stored_table()[0]
    raw = measure(["grandorgue_demo"], [19], variant=1)["grandorgue_demo"][19]
    assert np.ptp(raw) <= 0.05 and np.ptp(levels["grandorgue_demo"][19]) <= 0.05
    assert "grandorgue_demo" in opt_in_sources() and S.ORGAN_PROGRAMS <= set(levels["grandorgue_demo"])
    for p in S.ORGAN_PROGRAMS:
        gains = [g for _, g in velocity_gains("grandorgue_demo", p)]
        assert ("grandorgue_demo", p) not in dropped() and gains[VELOCITIES.index(REF_VELOCITY)] == 0.0
        assert gains[0] < -5.0 and gains[-1] > 2.0  # soft notes softer, hard ones louder, like the banks'


@pytest.mark.parametrize("name", [s.name for s in S.REGISTRY if S.DRUMS in s.programs])
def test_kit_balance_correction_brings_each_kit_to_the_median_kit(name):
    """Each group (snare, hats, cymbals, toms) against the kick, on a held-out rhythm: within 2.5 dB
    of the median kit after correction (raw: up to 13.4 dB off; measured after: <= 2.0 dB)."""
    if not _installed(name):
        pytest.skip(f"sample source {name} not installed (scripts/setup_sample_sets.sh)")
    from keras_inst.corpus.gains import opt_in_sources, stored_table
    from keras_inst.corpus.levels import measure_balance

    BALANCE = stored_table()[1]

    rel = {n: {g: v - b["kick"] for g, v in b.items()} for n, b in BALANCE.items() if n not in opt_in_sources()}
    got = measure_balance([name], variant=1, corrected=True)[name]
    assert set(got) == set(BALANCE[name])
    for group, level in got.items():
        median = np.median([r[group] for r in rel.values() if group in r])
        assert abs(level - got["kick"] - median) <= 2.5, (name, group, level - got["kick"], median)


def test_adding_to_the_table_keeps_every_other_line(tmp_path):
    """``levels --add`` rewrites the stored table in its own layout: nothing else changes."""
    import difflib
    from importlib import resources

    from keras_inst.corpus.levels import _write_table

    stored = resources.files("keras_inst.corpus").joinpath("source_levels.json").read_text("utf-8")
    path = tmp_path / "t.json"
    path.write_text(stored)
    _write_table({}, {}, str(path), add=True)
    assert path.read_text() == stored
    _write_table({"new_source": {0: [-30.0, -29.0, -28.0, -27.0, float("-inf")]}}, {}, str(path), add=True)
    diff = difflib.unified_diff(stored.splitlines(), path.read_text().splitlines(), n=0, lineterm="")
    changed = {line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")}
    assert changed <= {"-    }", "+    },", "+    }", '+    "new_source": {',  # the entry, a brace's comma
                       '+      "0": [-30.0, -29.0, -28.0, -27.0, null]'}
    assert '"new_source": {\n      "0": [-30.0, -29.0, -28.0, -27.0, null]\n    }' in path.read_text()


def test_broken_presets_are_dropped_and_gains_are_bands():
    bad = dropped()
    assert bad[("timgm6mb", 94)].startswith("velocity layers jump")  # Pad 7: +34 dB at velocity 88
    gains = velocity_gains("h2_bja_pacific", 128)
    assert [top for top, _ in gains] == [52, 76, 100, 119, 127] and dict(gains)[100] == 0.0
    assert gains[0][1] > 3.0  # its soft layers are far quieter than the median kit's
    assert velocity_gains("no_such_source", 0) == ()
    from keras_inst.corpus.gains import key_gains

    crash = dict(key_gains("freepats"))  # freepats' cymbals play 11 dB over the median kit's
    assert crash[49] == crash[57] < -10.0 and crash[36] == 0.0 and key_gains("timgm6mb")
    assert all(max(abs(c) for c in corr) <= 12.0 for corr in _analysis()[0].values() if corr)


# ------------------------------------------------------------------ the singer


def _f0(x: np.ndarray) -> float:
    """Fundamental by autocorrelation over 60..1000 Hz."""
    ac = np.correlate(x, x, mode="full")[len(x) - 1 :]
    lo, hi = SR // 1000, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


def test_singer_sings_the_notes_deterministically():
    notes = [(0.1, 0.8, 57, 100), (1.0, 0.8, 64, 60)]
    x = sing(notes, program=53, sample_rate=SR, n_samples=2 * SR, seed=3)
    assert x.dtype == np.float32 and x.shape == (2 * SR,)
    assert np.array_equal(x, sing(notes, program=53, sample_rate=SR, n_samples=2 * SR, seed=3))
    assert not np.array_equal(x, sing(notes, program=53, sample_rate=SR, n_samples=2 * SR, seed=4))
    assert np.max(np.abs(x[: int(0.09 * SR)])) == 0.0  # silent before the first onset
    a, b = x[int(0.4 * SR) : int(0.8 * SR)], x[int(1.3 * SR) : int(1.7 * SR)]
    assert abs(12 * np.log2(_f0(a) / 220.0)) < 0.7 and abs(12 * np.log2(_f0(b) / 329.63)) < 0.7
    soft = sing([(0.1, 0.8, 57, 60), notes[1]], program=53, sample_rate=SR, n_samples=2 * SR, seed=3)
    assert np.allclose(x[: SR], soft[: SR] * (100 / 60) ** 1.5, atol=1e-6)  # velocity -> amplitude^1.5
    gained = sing(notes, program=53, sample_rate=SR, n_samples=2 * SR, seed=3, velocity_gains=((76, -6.0), (127, 0.0)))
    assert np.allclose(gained[: int(0.95 * SR)], x[: int(0.95 * SR)])
    assert np.allclose(gained[int(1.05 * SR) :], x[int(1.05 * SR) :] * 10 ** (-6 / 20), atol=1e-6)
