"""tf.data pipelines: shapes, mixes equal the sum of cached chunks, eval sets, split file, seeds.

The corpus is two tiny Slakh-layout trees (datasets ``slakh`` and ``rendered``) of sine stems
with silent sections, read through the real reader and cached by the real audio cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from script_module import load_script

from keras_inst.config.io import load_config
from keras_inst.config.schema import ExperimentConfig
from keras_inst.data.cache.store import build_cache
from keras_inst.data.datasets import read_dataset
from keras_inst.data.mixing import RecipeArrays
from keras_inst.data.pipeline import (
    build_data,
    draw_batch,
    gather_sources,
    musical_eval_dataset,
    training_dataset,
)
from keras_inst.data.splits import SPLIT_FILE
from keras_inst.taxonomy import CLASS_INDEX, FAMILY_OF

SR = 16000
# GM programs -> piano, acoustic guitar, electric bass, violin, trumpet, flute, synth lead, drums
PROGRAMS = (0, 24, 33, 40, 56, 73, 81, 128)


def write_slakh_tree(root: Path, *, n_songs: int, seed: int, seconds: float = 6.0) -> Path:
    """Slakh-layout tracks of 2-3 sine stems (distinct frequencies), odd stems silent in the
    second half; returns ``root``."""
    rng = np.random.default_rng(seed)
    for s in range(n_songs):
        track = root / f"Track{s + 1:05d}"
        (track / "stems").mkdir(parents=True, exist_ok=True)
        meta = {}
        n = int(seconds * SR) + 2560 * (s % 3)
        for k in range(2 + s % 2):
            prog = int(PROGRAMS[(s + 3 * k + seed) % len(PROGRAMS)])
            t = np.arange(n) / SR
            x = (0.2 + 0.3 * rng.random()) * np.sin(2 * np.pi * (180 + 40 * (3 * s + k)) * t)
            if k % 2:
                x[n // 2:] = 0.0
            sf.write(track / "stems" / f"S{k:02d}.wav", x.astype(np.float32), SR,
                     subtype="PCM_16")
            meta[f"S{k:02d}"] = {"program_num": prog % 128, "is_drum": prog == 128,
                                 "plugin_name": "synthetic.nkm", "audio_rendered": True}
        (track / "metadata.yaml").write_text(yaml.safe_dump({"UUID": f"{seed}-{s}",
                                                             "stems": meta}))
    return root


def make_config(tmp: Path, *overrides: str) -> ExperimentConfig:
    return load_config("paper", [
        "data.datasets=[slakh, rendered]",
        f"data.roots.slakh={tmp / 'slakh'}",
        f"data.roots.rendered={tmp / 'rendered'}",
        f"data.cache_dir={tmp / 'cache'}",
        "training.transfer=scratch", "training.pretrained=null",
        "training.batch_size=4", "mixing.eval_chunks_per_song=2", *overrides])


def write_cached_trees(tmp: Path) -> Path:
    """Two 6-song sine trees (datasets ``slakh`` and ``rendered``) in ``tmp`` and their audio
    cache in ``tmp/cache``, as :func:`make_config` reads them; returns ``tmp``."""
    songs = []
    for name, seed in (("slakh", 0), ("rendered", 1)):
        songs += read_dataset(name, write_slakh_tree(tmp / name, n_songs=6, seed=seed))[0]
    # built here in-process (build_data would start a process pool for 24 small stems)
    build_cache(songs, tmp / "cache", sample_rate=SR, workers=1, progress=False)
    return tmp


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cached_trees(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(scope="module")
def bundle(tree: Path):
    return build_data(make_config(tree), run_dir=tree / "run", progress=False)


def _batches(ds, n: int) -> list:
    return [tuple(x for x in b) for b in ds.take(n)]


def _closed(labels: np.ndarray) -> bool:
    for inst, fam in FAMILY_OF.items():
        if np.any((labels[:, CLASS_INDEX[inst]] == 1) & (labels[:, CLASS_INDEX[fam]] == 0)):
            return False
    return True


def test_training_elements(bundle) -> None:
    cfg = make_config(Path("/unused"))
    for x, y in bundle.train.take(3):
        assert x.dtype.name == "float32" and tuple(x.shape) == (4, cfg.audio.chunk_samples)
        assert y.dtype.name == "float32" and tuple(y.shape) == (4, 15)
        x, y = x.numpy(), y.numpy()
        assert np.isfinite(x).all()
        assert np.abs(x).max() <= cfg.mixing.peak_normalize + 1e-6
        assert set(np.unique(y).tolist()) <= {0.0, 1.0} and _closed(y)


def _expected_mix(cache, table, rec: dict, i: int, t: int, peak: float) -> np.ndarray:
    """Sum of the chunks read through AudioCache.chunk, peak-normalised."""
    mix = np.zeros(t, np.float64)
    for j in range(int(rec["n"][i])):
        entry = table.entries[int(rec["stems"][i, j])]
        mix += cache.chunk(entry, int(rec["starts"][i, j]), t)
    top = np.abs(mix).max()
    return mix * (peak / top if top > peak else 1.0)


def test_mix_is_sum_of_cached_chunks(tree: Path, bundle) -> None:
    cfg = make_config(tree)
    ds = training_dataset(cfg, bundle.sampler, with_recipe=True, random_effects=False)
    t = cfg.audio.chunk_samples
    seen_musical = seen_other = 0
    for x, y, rec in ds.take(4):
        rec = {k: v.numpy() for k, v in rec.items() if k != "params"}
        for i in range(x.shape[0]):
            want = _expected_mix(bundle.cache, bundle.sampler.table, rec, i, t,
                                 cfg.mixing.peak_normalize)
            np.testing.assert_allclose(x[i].numpy(), want, atol=2e-6)
            seen_musical += bool(rec["musical"][i])
            seen_other += not rec["musical"][i]
        np.testing.assert_array_equal(y.numpy(), rec["labels"])
    assert seen_musical and seen_other


def test_split_written_and_reused(tree: Path, bundle) -> None:
    path = tree / "run" / SPLIT_FILE
    doc = json.loads(path.read_text())
    assert doc["counts"] == {"train": 8, "validation": 2, "test": 2}  # 6 songs each: 4/1/1
    assert set(doc["splits"]["train"]) == {"slakh", "rendered"}
    # edit the saved split: a rebuilt bundle must follow the file, not re-split
    moved = doc["splits"]["train"]["slakh"].pop(0)
    doc["splits"]["test"]["slakh"].append(moved)
    path.write_text(json.dumps(doc))
    again = build_data(make_config(tree), run_dir=tree / "run", progress=False)
    assert ("slakh", moved) in {(s.dataset, s.song_id) for s in again.splits["test"]}
    assert len(again.splits["train"]) == 7
    assert not list((tree / "run").glob("*.tmp*"))


def test_missing_root_is_a_clear_error(tree: Path) -> None:
    cfg = make_config(tree, f"data.roots.rendered={tree / 'nope'}")
    with pytest.raises(ValueError, match="data.roots.rendered"):
        build_data(cfg, progress=False)
    cfg = load_config("paper", ["data.datasets=[rendered]", "training.transfer=scratch",
                                "training.pretrained=null"])
    with pytest.raises(ValueError, match="data.roots.rendered"):
        build_data(cfg, progress=False)


def test_eval_sets_musical_deterministic_and_complete(tree: Path, bundle) -> None:
    cfg = make_config(tree)
    songs = bundle.splits["test"] + bundle.splits["validation"]
    ds = musical_eval_dataset(cfg, bundle.cache, songs, seed=0, batch_size=3, with_recipe=True)
    xs, ys, recs = [], [], []
    for x, y, rec in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
        recs.append({k: v.numpy() for k, v in rec.items() if k != "params"})
        assert not np.any(rec["params"].rate.numpy() != 1.0)  # no random effects at all
        assert not np.any(rec["params"].gain_db.numpy() != 0.0)
    x, y = np.concatenate(xs), np.concatenate(ys)
    rec = {k: np.concatenate([r[k] for r in recs]) for k in recs[0]}
    assert x.shape == (len(songs) * 2, cfg.audio.chunk_samples)  # every song, 2 chunks each
    assert rec["musical"].all()
    table_songs = {}
    from keras_inst.data.pipeline import source_table

    table = source_table(cfg, bundle.cache, songs, datasets=["rendered", "slakh"])
    for i in range(x.shape[0]):
        stems = rec["stems"][i, : rec["n"][i]]
        song = {table.entries[k].song_id + "@" + table.entries[k].dataset for k in stems}
        assert len(song) == 1
        table_songs.setdefault(song.pop(), 0)
        table_songs[next(reversed(table_songs))] += 1
        assert len(set(rec["starts"][i, : rec["n"][i]].tolist())) == 1
        want = _expected_mix(bundle.cache, table, rec, i, cfg.audio.chunk_samples,
                             cfg.mixing.peak_normalize)
        np.testing.assert_allclose(x[i], want, atol=2e-6)
    assert len(table_songs) == len(songs) and set(table_songs.values()) == {2}
    # built again (a separate dataset): identical; another seed: different chunks
    x2 = np.concatenate([b[0].numpy() for b in musical_eval_dataset(
        cfg, bundle.cache, songs, seed=0, batch_size=4)])
    np.testing.assert_array_equal(x, x2)
    x3 = np.concatenate([b[0].numpy() for b in musical_eval_dataset(
        cfg, bundle.cache, songs, seed=1, batch_size=4)])
    assert not np.array_equal(x, x3)
    # the bundle's validation set: same shapes, musical, cached
    n_val = sum(b[0].shape[0] for b in bundle.validation)
    assert n_val == 2 * len(bundle.splits["validation"])


@pytest.mark.slow  # 21-28 s in CI; test_mixing's determinism test stays in the default suite
def test_same_seed_same_stream_with_parallel_calls(tree: Path, bundle) -> None:
    cfg = make_config(tree)
    from keras_inst.data.mixing import RecipeSampler

    def stream(seed: int, start: int, calls: int, n: int) -> list:
        sampler = RecipeSampler(bundle.sampler.table, cfg.mixing, cfg.effects, seed=seed)
        ds = training_dataset(cfg, sampler, start_example=start, num_parallel_calls=calls)
        return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]

    a = stream(0, 0, 4, 2)
    b = stream(0, 0, 1, 2)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    resumed = stream(0, 4, 3, 1)  # batch 4: examples 4..7 are the second batch
    np.testing.assert_array_equal(resumed[0][0], a[1][0])
    np.testing.assert_array_equal(resumed[0][1], a[1][1])
    other = stream(1, 0, 4, 1)
    assert not np.array_equal(other[0][0], a[0][0])


def _bench_pipeline():
    """scripts/bench_pipeline.py as a module."""
    return load_script("bench_pipeline")


def test_bench_per_example_alternative_equals_training_stream(tree: Path, bundle) -> None:
    """The benchmark's per-example-effects alternative makes the training stream's examples."""
    cfg = make_config(tree)
    a = training_dataset(cfg, bundle.sampler, start_example=40)
    b = _bench_pipeline().per_example_dataset(cfg, bundle.sampler, start_example=40)
    for (xa, ya), (xb, yb) in zip(a.take(2), b.take(2), strict=True):
        # Same examples; the phase vocoder amplifies float rounding (FFTs of other batch shapes)
        # at bins of near-zero magnitude, whose phase is ill-conditioned: a few samples differ
        # by up to ~3e-4 (of mixes peaking at ~0.3-1), everything else to 1e-5.
        err = np.abs(xa.numpy() - xb.numpy())
        assert err.max() < 1e-3 and np.mean(err > 1e-5) < 0.02
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())


def test_bench_finishes_an_interrupted_render(tmp_path: Path, monkeypatch) -> None:
    """A render that failed once (here: no synthesiser) leaves its folder behind; the next
    benchmark run finishes it instead of failing with 'no usable songs'."""
    import keras_inst.corpus.render as render

    bench = _bench_pipeline()
    root = tmp_path / "rendered"
    kw = {"workers": 1, "progress": False, "max_seconds": 4.0}

    def no_synth(*args, **kwargs):
        raise RuntimeError("fluidsynth: no synthesiser")

    with monkeypatch.context() as m:
        m.setattr(render, "_run_jobs", no_synth)
        with pytest.raises(RuntimeError, match="no synthesiser"):
            bench.ensure_corpus(root, songs=2, **kw)
    assert root.is_dir() and read_dataset("rendered", root)[0] == []
    bench.ensure_corpus(root, songs=1, **kw)  # the interrupted render asked for 2
    songs, _ = read_dataset("rendered", root)
    assert [s.song_id for s in songs] == ["Track00001", "Track00002"]
    assert json.loads((root / "corpus.json").read_text())["complete"] is True
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")}
    assert len(before) >= 4  # two mixes and their stems
    bench.ensure_corpus(root, songs=5, **kw)  # complete: used as it is
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.flac")} == before


def test_draw_batch_reads_only_used_slots(bundle) -> None:
    """draw_batch: the recipes of train_arrays, stacked, and the chunks of the used slots in
    example-major order (what gather_sources reads for them; PAD slots are not read)."""
    s = bundle.sampler
    t_in = 20000
    out = draw_batch(s, 12, 5, t_in)
    rows = [s.train_arrays(12 + j) for j in range(5)]
    for name in RecipeArrays._fields:
        np.testing.assert_array_equal(getattr(out.recipes, name),
                                      np.stack([getattr(r, name) for r in rows]))
    audio, scales = out.audio, out.scales
    assert audio.shape == (sum(int(r.n) for r in rows), t_in)
    m = 0
    for r in rows:
        ref, ref_scales = gather_sources(s.table, r.stems, r.starts, t_in)
        n = int(r.n)
        np.testing.assert_array_equal(audio[m: m + n], ref[:n])
        np.testing.assert_array_equal(scales[m: m + n], ref_scales[:n])
        m += n
