"""Recipe sampler (paper §2.3): probabilities, structure, audible preference, labels, seeds.

The corpus is synthetic: 3 datasets of sine stems with known active regions (on the 256-sample
envelope grid, silence is exact zeros) and one fully silent stem per dataset, so every
expectation below is computed independently of keras_inst.data.mixing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst.config.schema import EffectsConfig, MixingConfig
from keras_inst.data.cache.store import build_cache, open_cache
from keras_inst.data.datasets.base import Song, Stem
from keras_inst.data.mixing import (
    PAD,
    RecipeArrays,
    RecipeSampler,
    SourceTable,
    finish_recipe,
    recipe_dataset,
)
from keras_inst.taxonomy import multi_hot

SR, HOP, CHUNK = 16000, 256, 64000
W0 = CHUNK // HOP  # 250 envelope frames per unstretched chunk
DATASETS = ("medleydb", "mixing_secrets", "slakh")
SONGS_PER_DATASET = (7, 3, 8)  # mixing_secrets has fewer songs than max_sources
CLASS_CYCLE = ("piano", "drums", "violin", "electric_bass", "singer", "synth", "woodwind",
               "acoustic_guitar", "electric_guitar")
SILENT_CLASS = "brass"  # only the fully silent stems carry it


def _regions(j: int, frames: int) -> list[tuple[int, int]]:
    """Active frame ranges of stem pattern j (frames are whole: 256-sample grid)."""
    half = frames // 2
    return [[(0, frames)], [(0, half)], [(half, frames)], [(frames // 4, frames // 4 + 60)]][j % 4]


def _make_corpus(root: Path) -> dict:
    """Write the WAVs, build the cache; return songs and the ground truth per stem key."""
    songs, truth = [], {}
    freq = 150.0
    for d, (name, n_songs) in enumerate(zip(DATASETS, SONGS_PER_DATASET, strict=True)):
        for s in range(n_songs):
            seconds = 8.0 + 0.512 * ((s + d) % 8)  # 8 .. 11.6 s, a multiple of the hop
            n = int(round(seconds * SR))
            frames = n // HOP
            n_stems = 2 + (s + d) % 3  # 2..4 stems
            stems = []
            for j in range(n_stems):
                x = np.zeros(n, np.float32)
                silent = j == 1 and s == 0  # one fully silent stem per dataset
                active = np.zeros(frames, bool)
                if not silent:
                    for a, b in _regions(j + s, frames):
                        t = np.arange(a * HOP, b * HOP) / SR
                        x[a * HOP: b * HOP] = 0.25 * np.sin(2 * np.pi * freq * t)
                        active[a:b] = True
                freq += 37.0
                path = root / name / f"song{s}" / f"stem{j}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, x, SR, subtype="PCM_16")
                cls = {SILENT_CLASS} if silent else {CLASS_CYCLE[(s + j + d) % len(CLASS_CYCLE)]}
                sid = f"song{s}/stem{j}"
                stems.append(Stem(sid, path, (f"label{j}",), frozenset(cls)))
                truth[(name, sid)] = {"active": active, "classes": frozenset(cls), "silent": silent}
            songs.append(Song(name, f"song{s}", tuple(stems)))
    build_cache(songs, root / "cache", sample_rate=SR, workers=1, progress=False,
                envelope_hop=HOP)
    return {"songs": songs, "truth": truth,
            "cache": open_cache(root / "cache", songs, sample_rate=SR)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _make_corpus(tmp_path_factory.mktemp("mixcorpus"))


def _table(corpus: dict, datasets=DATASETS) -> SourceTable:
    return SourceTable(corpus["cache"], corpus["songs"], datasets=datasets, chunk_samples=CHUNK,
                       activity_threshold_db=-40.0, min_active_fraction=0.1)


def _sampler(corpus: dict, *, seed: int = 0, mixing: MixingConfig | None = None,
             effects: EffectsConfig | None = None, weights=None) -> RecipeSampler:
    return RecipeSampler(_table(corpus), mixing or MixingConfig(), effects or EffectsConfig(),
                         seed=seed, dataset_weights=weights)


def _within(count: float, n: int, p: float, sigmas: float = 4.5) -> bool:
    """count/n is within ``sigmas`` binomial standard deviations of p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1e-9


def _audible(truth: dict, key: tuple[str, str], start: int, rate: float = 1.0) -> bool:
    """Independent audibility: >= 10 % (and >= 1) of the chunk's frames are active."""
    act = truth[key]["active"]
    f = start // HOP
    w = math.ceil(rate * CHUNK / HOP)
    count = int(act[f: f + w].sum())
    return count >= max(1, math.ceil(0.1 * w - 1e-9))


def _key(table: SourceTable, k: int) -> tuple[str, str]:
    e = table.entries[k]
    return (e.dataset, e.stem_id)


def test_table_groups_cached_stems(corpus: dict) -> None:
    t = _table(corpus)
    assert t.num_songs == sum(SONGS_PER_DATASET)
    assert len(t.entries) == len(corpus["truth"])
    assert [t.songs_of(d).size for d in range(3)] == list(SONGS_PER_DATASET)
    for j, stems in enumerate(t.song_stems):
        assert {t.entries[k].song_id for k in stems} == {t.song_keys[j][1]}
    # the nominal audible mask agrees with the independent rule at every start frame
    for k in range(len(t.entries)):
        key = _key(t, k)
        expect = [_audible(corpus["truth"], key, f * HOP) for f in range(t.max_start[k] + 1)]
        assert t.audible[k].tolist() == expect, key


def test_structure_statistics(corpus: dict) -> None:
    n = 10_000
    m = MixingConfig()  # paper: p_musical 0.4, p_single 0.2, N in [2, 6]
    s = _sampler(corpus, mixing=m)
    t = s.table
    draws = [s.draw(i) for i in range(n)]
    musical = np.array([r.musical for r in draws])
    sizes = np.array([r.stems.size for r in draws])
    ds = np.array([r.dataset for r in draws])
    assert _within(musical.sum(), n, m.p_musical)
    # every song has >= 2 stems and every dataset >= 3 songs, so N == 1 only when single-source
    assert _within((sizes == 1).sum(), n, m.p_single_source)
    for d in range(3):
        assert _within((ds == d).sum(), n, 1 / 3)
    for r in draws:
        songs = t.stem_song[r.stems]
        assert np.all(t.song_dataset_array[songs] == r.dataset)
        assert 1 <= r.stems.size <= m.max_sources
        assert len(set(r.stems.tolist())) == r.stems.size  # distinct stems
        assert np.all(r.starts % HOP == 0) and np.all(r.starts >= 0)
        assert np.all(r.starts // HOP <= t.max_start[r.stems].max())
        if r.musical:
            assert len(set(songs.tolist())) == 1  # one song ...
            assert len(set(r.starts.tolist())) == 1  # ... one common position
            assert r.stems.size <= t.song_stems[songs[0]].size
        else:
            assert len(set(songs.tolist())) == r.stems.size  # distinct songs
            assert r.stems.size <= t.songs_of(r.dataset).size
    # N given not single: non-musical in medleydb (7 songs) is uniform on 2..6; mixing_secrets
    # (3 songs) caps it at 3, so P(N=3 | N>1) = 4/5
    multi = sizes > 1
    nm_med = sizes[multi & ~musical & (ds == 0)]
    for v in range(2, 7):
        assert _within((nm_med == v).sum(), nm_med.size, 1 / 5)
    nm_ms = sizes[multi & ~musical & (ds == 1)]
    assert set(nm_ms.tolist()) == {2, 3}
    assert _within((nm_ms == 3).sum(), nm_ms.size, 4 / 5)
    # musical: capped by the song's stems
    for r in draws:
        if r.musical and r.stems.size > 1:
            song = t.stem_song[r.stems[0]]
            assert 2 <= r.stems.size <= min(m.max_sources, t.song_stems[song].size)


def test_dataset_weights_unequal(corpus: dict) -> None:
    n = 10_000
    s = _sampler(corpus, weights=(0.6, 0.3, 0.1))
    ds = np.array([s.draw(i).dataset for i in range(n)])
    for d, p in enumerate((0.6, 0.3, 0.1)):
        assert _within((ds == d).sum(), n, p)
    s0 = _sampler(corpus, weights=(0.5, 0.0, 0.5))
    assert 1 not in {s0.draw(i).dataset for i in range(2000)}
    with pytest.raises(ValueError, match="dataset_weights"):
        _sampler(corpus, weights=(0.5, 0.5))


def test_audible_preference(corpus: dict) -> None:
    """Single non-musical sources: P(audible) = p + (1 - p) * (audible fraction of positions)."""
    n = 10_000
    p = 0.7
    m = MixingConfig(p_musical=0.0, p_single_source=1.0, p_prefer_audible=p)
    s = _sampler(corpus, mixing=m)
    t = s.table
    truth = corpus["truth"]
    fracs = {}  # audible fraction of each stem's start positions
    for k in range(len(t.entries)):
        key = _key(t, k)
        fracs[k] = np.mean([_audible(truth, key, f * HOP) for f in range(t.max_start[k] + 1)])
    hits, expect = 0, 0.0
    n_silent = 0
    for i in range(n):
        r = s.draw(i)
        k = int(r.stems[0])
        key = _key(t, k)
        frac = fracs[k]
        hits += _audible(truth, key, int(r.starts[0]))
        expect += (p + (1 - p) * frac) if frac > 0 else 0.0
        n_silent += truth[key]["silent"]
    assert n_silent > 0  # silent stems are drawn and never audible
    assert abs(hits - expect) <= 4.5 * math.sqrt(n * 0.25)
    # p = 0: uniform positions; p = 1: always audible unless the stem is silent
    s1 = _sampler(corpus, mixing=MixingConfig(p_musical=0.0, p_single_source=1.0,
                                              p_prefer_audible=1.0))
    for i in range(500):
        r = s1.draw(i)
        key = _key(t, int(r.stems[0]))
        assert _audible(truth, key, int(r.starts[0])) != truth[key]["silent"]


def test_musical_position_prefers_any_audible_stem(corpus: dict) -> None:
    m = MixingConfig(p_musical=1.0, p_single_source=0.0, p_prefer_audible=1.0)
    s = _sampler(corpus, mixing=m)
    t = s.table
    for i in range(500):
        r = s.draw(i)
        keys = [_key(t, int(k)) for k in r.stems]
        start = int(r.starts[0])
        any_possible = any(
            _audible(corpus["truth"], key, f * HOP)
            for key, k in zip(keys, r.stems, strict=True) for f in range(t.max_start[k] + 1))
        assert any(_audible(corpus["truth"], key, start) for key in keys) == any_possible


def _finished(sampler: RecipeSampler, count: int, start: int = 0) -> list[dict]:
    ds = recipe_dataset(sampler, start=start, count=count).batch(256)
    out = []
    for b in ds:
        b = {k: (type(v)(*(x.numpy() for x in v)) if k == "params" else v.numpy())
             for k, v in b.items()}
        for i in range(b["index"].shape[0]):
            out.append({k: (type(v)(*(x[i] for x in v)) if k == "params" else v[i])
                        for k, v in b.items()})
    return out


def test_labels_are_union_of_audible_stems(corpus: dict) -> None:
    """Exact labels, with time stretch changing the window (rates up to 1.25)."""
    eff = EffectsConfig(p_time_stretch=0.8)
    s = _sampler(corpus, seed=3, effects=eff)
    t = s.table
    truth = corpus["truth"]
    recs = _finished(s, 800)
    saw_silent = saw_stretched = 0
    for r in recs:
        n = int(r["n"])
        assert np.all(r["stems"][n:] == PAD) and not r["valid"][n:].any()
        expect = np.zeros(15, np.float32)
        for i in range(n):
            key = _key(t, int(r["stems"][i]))
            rate = float(r["params"].rate[i])
            aud = _audible(truth, key, int(r["starts"][i]), rate)
            assert bool(r["audible"][i]) == aud, (r["index"], i, key, rate)
            if aud:
                expect = np.maximum(expect, multi_hot(truth[key]["classes"]))
            saw_silent += truth[key]["silent"]
            saw_stretched += rate != 1.0
        np.testing.assert_array_equal(r["labels"], expect)
        assert r["labels"][list(multi_hot([SILENT_CLASS])).index(1.0)] == 0.0
    assert saw_silent > 0 and saw_stretched > 100


def test_effect_rates_and_no_pitch_time_in_musical(corpus: dict) -> None:
    eff = EffectsConfig()
    s = _sampler(corpus, seed=1, effects=eff)
    recs = _finished(s, 2500)
    src = {"musical": [], "nonmusical": []}
    for r in recs:
        n = int(r["n"])
        p = r["params"]
        for i in range(n):
            src["musical" if r["musical"] else "nonmusical"].append(
                [p.gain_db[i], p.low_shelf_db[i], p.high_shelf_db[i], p.peak_db[i],
                 p.semitones[i], p.rate[i]])
        # unused slots carry identity parameters
        assert np.all(p.gain_db[n:] == 0) and np.all(p.rate[n:] == 1) and np.all(p.semitones[n:] == 0)
    mus, non = np.array(src["musical"]), np.array(src["nonmusical"])
    assert len(mus) > 1000 and len(non) > 1000
    assert np.all(mus[:, 4] == 0.0) and np.all(mus[:, 5] == 1.0)  # never pitch/time when musical
    both = np.concatenate([mus, non])
    for col, prob in ((0, eff.p_gain), (1, eff.p_low_shelf), (2, eff.p_high_shelf),
                      (3, eff.p_peaking)):
        assert _within((both[:, col] != 0).sum(), len(both), prob), col
    assert _within((non[:, 4] != 0).sum(), len(non), eff.p_pitch_shift)
    assert _within((non[:, 5] != 1).sum(), len(non), eff.p_time_stretch)
    assert non[:, 5].min() >= eff.stretch_rate[0] and non[:, 5].max() <= eff.stretch_rate[1]


def test_determinism_resume_and_seeds(corpus: dict) -> None:
    a, b = _sampler(corpus, seed=5), _sampler(corpus, seed=5)
    c = _sampler(corpus, seed=6)

    def same(x, y) -> bool:
        return (x.dataset == y.dataset and x.musical == y.musical
                and np.array_equal(x.stems, y.stems) and np.array_equal(x.starts, y.starts)
                and np.array_equal(x.effects_seed, y.effects_seed))

    assert all(same(a.draw(i), b.draw(i)) for i in range(300))
    assert sum(same(a.draw(i), c.draw(i)) for i in range(300)) < 30
    # a drawn index does not depend on what was drawn before (restart anywhere)
    assert same(a.draw(1234), _sampler(corpus, seed=5).draw(1234))
    full = _finished(a, 40)
    resumed = _finished(b, 15, start=25)
    for x, y in zip(full[25:], resumed, strict=True):
        assert x["index"] == y["index"]
        np.testing.assert_array_equal(x["labels"], y["labels"])
        np.testing.assert_array_equal(x["params"].gain_db, y["params"].gain_db)
        np.testing.assert_array_equal(x["starts"], y["starts"])


def test_eval_recipes_musical_and_keyed_by_song(corpus: dict) -> None:
    s = _sampler(corpus, seed=0)
    recs = s.eval_structures(4)
    t = s.table
    assert len(recs) == 4 * t.num_songs
    assert [r.index for r in recs] == list(range(len(recs)))
    for j in range(t.num_songs):
        mine = recs[4 * j: 4 * j + 4]
        for r in mine:
            assert r.musical and set(t.stem_song[r.stems].tolist()) == {j}
            assert len(set(r.starts.tolist())) == 1
    # a table of a subset of the songs gives the same recipes for the songs they share
    sub = [sg for sg in corpus["songs"] if sg.dataset == "slakh"]
    t2 = SourceTable(corpus["cache"], sub, datasets=("slakh",), chunk_samples=CHUNK,
                     activity_threshold_db=-40.0, min_active_fraction=0.1)
    s2 = RecipeSampler(t2, MixingConfig(), EffectsConfig(), seed=0)
    first = t.song_keys.index(t2.song_keys[0])
    r_full, r_sub = s.draw_eval(first, 2), s2.draw_eval(0, 2)
    assert [_key(t, k) for k in r_full.stems] == [_key(t2, k) for k in r_sub.stems]
    np.testing.assert_array_equal(r_full.starts, r_sub.starts)


def test_finish_recipe_on_a_batch_equals_per_recipe(corpus: dict) -> None:
    """The pipeline finishes a whole batch in one graph call: same params, audibility and
    labels as finishing each recipe alone."""
    import tensorflow as tf

    s = _sampler(corpus, seed=5, effects=EffectsConfig(p_time_stretch=0.5))
    rows = [s.train_arrays(i) for i in range(40)]
    batch = finish_recipe(RecipeArrays(*map(tf.constant, RecipeArrays.stack(rows))), sampler=s)
    for i, arrays in enumerate(rows):
        one = finish_recipe(RecipeArrays(*map(tf.constant, arrays)), sampler=s)
        for key in ("valid", "audible", "labels"):
            np.testing.assert_array_equal(batch[key].numpy()[i], one[key].numpy())
        for vb, vo in zip(batch["params"], one["params"], strict=True):
            np.testing.assert_array_equal(vb.numpy()[i], vo.numpy())


def test_stem_weights_golden_values() -> None:
    from keras_inst.data.balance import stem_weights

    piano, wood = multi_hot(["piano"]) > 0, multi_hot(["woodwind"]) > 0
    none = np.zeros_like(piano)
    classes = np.stack([piano, piano, piano, wood])
    # shares: key and piano 3/4, woodwind 1/4; weight = share ** -0.5, then mean 1
    raw = np.array([0.75 ** -0.5] * 3 + [0.25 ** -0.5])
    np.testing.assert_allclose(stem_weights(classes, 0.5), raw / raw.mean(), rtol=1e-12)
    np.testing.assert_allclose(stem_weights(classes, 0.0), np.ones(4))
    # exponent 1: each class's stems together weigh the same (3 x 4/3 vs 1 x 4)
    w1 = stem_weights(classes, 1.0)
    assert w1[:3].sum() == pytest.approx(w1[3])
    # a stem without a class counts as the commonest class (key / piano, share 3/5)
    w = stem_weights(np.stack([piano, piano, piano, wood, none]), 1.0)
    assert w[4] == pytest.approx(w[0]) and w[3] == pytest.approx(3 * w[0])


def _expected_class_shares(table: SourceTable, exponent: float) -> np.ndarray:
    """P(class in a single-source non-musical draw), computed from the corpus ground truth:
    dataset 1/3, song by its stems' mean weight, stem by weight within the song."""
    p = np.zeros(multi_hot([]).size)
    for d in range(3):
        songs = table.songs_of(d)
        stems = np.concatenate([table.song_stems[s] for s in songs])
        cls = table.classes[stems] > 0
        share = cls.mean(axis=0)
        rare = {int(k): min(share[c] for c in np.flatnonzero(row)) if row.any() else share.max()
                for k, row in zip(stems, cls, strict=True)}
        w = {k: r ** -exponent for k, r in rare.items()}
        song_w = np.array([np.mean([w[int(k)] for k in table.song_stems[s]]) for s in songs])
        for s, sw in zip(songs, song_w / song_w.sum(), strict=True):
            tot = sum(w[int(k)] for k in table.song_stems[s])
            for k in table.song_stems[s]:
                p += (1 / 3) * sw * (w[int(k)] / tot) * (table.classes[k] > 0)
    return p


def test_stem_balance_draws_rare_classes_as_often_as_computed(corpus: dict) -> None:
    """mixing.stem_balance (beyond the paper): 0 is the paper's draw, recipe for recipe; 1 draws
    each class as often as the two-stage weights say, and the rarest class more often than 0."""
    base = MixingConfig(p_musical=0.0, p_single_source=1.0)
    paper, zero = _sampler(corpus, mixing=base), _sampler(corpus, mixing=MixingConfig(p_musical=0.0, p_single_source=1.0, stem_balance=0.0))
    for i in range(300):
        a, b = paper.draw(i), zero.draw(i)
        assert a.stems.tolist() == b.stems.tolist() and a.starts.tolist() == b.starts.tolist()
    n = 12_000
    shares = {}
    for x in (0.0, 1.0):
        s = _sampler(corpus, mixing=MixingConfig(p_musical=0.0, p_single_source=1.0, stem_balance=x))
        got = np.zeros(multi_hot([]).size)
        for i in range(n):
            (k,) = s.draw(i).stems
            got += s.table.classes[k] > 0
        expect = _expected_class_shares(s.table, x)
        # keras_inst.data.balance's exact shares (scripts/class_shares.py) agree with this count
        from keras_inst.data.balance import non_musical_class_shares

        t = s.table
        exact = sum(non_musical_class_shares([t.classes[t.song_stems[j]] > 0 for j in t.songs_of(d)], x)
                    for d in range(3)) / 3
        np.testing.assert_allclose(exact, expect, atol=1e-12)
        for c in np.flatnonzero(expect):
            assert _within(got[c], n, expect[c]), (x, c, got[c] / n, expect[c])
        shares[x] = got / n
    wood = int(np.flatnonzero(multi_hot(["woodwind"]))[0])
    piano = int(np.flatnonzero(multi_hot(["piano"]))[-1])
    # the corpus's class counts differ; balancing narrows the gap between common and rare
    spread = {x: shares[x][[wood, piano]].max() / shares[x][[wood, piano]].min() for x in shares}
    assert spread[1.0] < spread[0.0], spread
    with pytest.raises(ValueError, match=r"'mixing.stem_balance': must be in \[0, 1\]"):
        MixingConfig(stem_balance=1.5)


def test_class_shares_script_on_the_slakh_fixtures(fixtures_dir: Path) -> None:
    """scripts/class_shares.py: exponent 0 on babyslakh's songs is the uniform song-then-stem
    share, computed here from the read songs; 1 moves draws toward the rarer classes."""
    from script_module import load_script

    from keras_inst.config.io import load_config
    from keras_inst.data.datasets import read_dataset

    root = fixtures_dir / "slakh" / "babyslakh_16k"
    cfg = load_config("demo", ["data.datasets=[slakh]", f"data.roots={{slakh: {root}}}"])
    out = load_script("class_shares").class_shares(cfg, [0.0, 1.0])["slakh"]
    songs, _ = read_dataset("slakh", root)
    songs = [s for s in songs if s.stems]
    uniform = sum(np.mean([multi_hot(st.classes) for st in s.stems], axis=0) for s in songs) / len(songs)
    names = list(out["stem_share"])
    np.testing.assert_allclose([out["draw_share"]["0.0"][c] for c in names], uniform, atol=6e-5)  # rounded to 4 places
    assert out["songs"] == len(songs) and out["stems"] == sum(len(s.stems) for s in songs)
    rare = min((c for c in names if out["stem_share"][c] > 0), key=lambda c: out["stem_share"][c])
    assert out["draw_share"]["1.0"][rare] > out["draw_share"]["0.0"][rare]
