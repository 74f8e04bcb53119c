"""Audio cache build: decoding/resampling accuracy, broken files, incremental, atomic and parallel
builds, the ``cache`` command and ensure_cache."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cache_corpus import BAD, GOOD, SR, build, by_name, corpus_songs, sine, write_corpus

from keras_inst.data.cache import build as cb
from keras_inst.data.cache.format import FORMAT_VERSION
from keras_inst.data.cache.store import ensure_cache, open_cache
from keras_inst.data.datasets.base import Song, Stem


def _peak_hz(x: np.ndarray, rate: int, pad: int = 8) -> float:
    """Frequency of the spectral peak: Hann window, zero padded ``pad`` times (bin = rate/(n*pad))."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n=x.size * pad))
    return float(np.argmax(spec)) * rate / (x.size * pad)


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2))))


@pytest.fixture()
def corpus(tmp_path: Path) -> dict[str, Path]:
    return write_corpus(tmp_path / "audio")

def test_round_trip_level_frequency_and_formats(corpus, tmp_path):
    songs = corpus_songs(corpus, GOOD)
    report = build(songs, tmp_path / "cache")
    assert (report.built, report.up_to_date, report.problems) == (4, 0, [])
    cache = open_cache(tmp_path / "cache", songs, sample_rate=SR)
    e = by_name(cache)
    assert e["wav44"].classes == frozenset({"piano"}) and e["wav44"].song_id == "s0"
    x = cache.audio(e["wav44"])
    assert x.dtype == np.float32 and x.shape == (32000,)  # 2 s at 44.1 kHz -> 2 s at 16 kHz
    # frequency: Hann + 8x zero padding gives 0.0625 Hz bins; tolerance 0.1 Hz
    assert abs(_peak_hz(x, SR) - 1000.0) < 0.1
    # level: RMS of the mono downmix (0.4 * sin) kept within 0.1 dB (edges excluded: filter ramp)
    mono_db = _rms_db(sine(1000, 2.0, 44100, 0.4))
    assert abs(_rms_db(x[1000:-1000]) - mono_db) < 0.1
    assert e["wav44"].peak == pytest.approx(0.4, abs=0.01)
    # 16 kHz FLAC: no resampling, samples equal the source within half an int16 step
    src, _ = sf.read(corpus["flac16"], dtype="float32")
    y = cache.audio(e["flac16"])
    assert y.shape == src.shape and np.max(np.abs(y - src)) <= e["flac16"].scale / 2 + 1e-7
    z = cache.audio(e["wav22"])
    assert z.shape == (24000,) and abs(_peak_hz(z, SR) - 440.0) < 0.1
    m = cache.audio(e["mp3"])  # decoder delay/padding: allow 0.1 s
    assert abs(m.size - SR) < 1600 and abs(_peak_hz(m, SR) - 2000.0) < 0.5

def test_broken_files_reported_rest_cached(corpus, tmp_path):
    songs = corpus_songs(corpus)
    dup = Song("toy", "s9", (Stem("s0/wav44", corpus["wav22"], ("x",), frozenset()),))  # id clash
    report = build([*songs, dup], tmp_path / "c")
    assert report.built == 4 and report.failed == 4
    dups = [p for p in report.problems if p[0] == "duplicate_stem"]
    assert [p[1] for p in dups] == [str(corpus["wav22"])] and "s0/wav44" in dups[0][2]
    report.problems.remove(dups[0])
    assert report.counts == {"unreadable_audio": 2, "empty_file": 1, "missing_file": 1}
    named = {Path(f).name: k for k, f, _ in report.problems}
    assert named == {corpus[n].name: k for n, k in BAD.items()}
    assert all(msg for _, _, msg in report.problems)
    assert "notes.wav" in report.summary() and "4 failed" in report.summary()
    cache = open_cache(tmp_path / "c", songs, sample_rate=SR)
    assert sorted(by_name(cache)) == sorted(GOOD)
    missing = {Path(f).name: reason for _, f, reason in cache.missing}
    assert set(missing) == {corpus[n].name for n in BAD}
    assert missing["empty.wav"].startswith("empty_file") and missing["never_written.wav"] == "not cached"

def test_incremental_builds(corpus, tmp_path, monkeypatch):
    calls: list[str] = []
    real = cb._process_job
    monkeypatch.setattr(cb, "_process_job", lambda job: calls.append(job["key"]) or real(job))
    songs, cdir = corpus_songs(corpus), tmp_path / "c"
    assert build(songs, cdir).built == 4 and len(calls) == 7  # the missing file is never decoded
    calls.clear()
    second = build(songs, cdir)
    assert (second.built, second.up_to_date, calls) == (0, 4, [])  # nothing decoded again...
    assert second.counts == {"unreadable_audio": 2, "empty_file": 1, "missing_file": 1}  # ...still reported
    # touching one file rebuilds exactly that one, with new files replacing the old ones
    st = os.stat(corpus["wav22"])
    os.utime(corpus["wav22"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = build(songs, cdir)
    assert (third.built, third.up_to_date, calls) == (1, 3, ["toy/s0/wav22"])
    # rewriting one with new content: the cache serves the new audio
    calls.clear()
    sf.write(corpus["wav44"], np.zeros((4410, 2), np.float32), 44100)
    assert build(songs, cdir).built == 1 and calls == ["toy/s0/wav44"]
    cache = open_cache(cdir, songs, sample_rate=SR)
    e = by_name(cache)["wav44"]
    assert e.num_samples == 1600 and not cache.audio(e).any()
    assert len(list((cdir / f"sr{SR}" / "stems").iterdir())) == 2 * 4  # old files removed
    # a repaired broken file is picked up
    calls.clear()
    sf.write(corpus["empty"], sine(300, 0.5, SR, 0.2), SR)
    fourth = build(songs, cdir)
    assert fourth.built == 1 and calls == ["toy/s0/empty"] and fourth.failed == 3
    # another sample rate is its own cache; the first is untouched
    calls.clear()
    assert build(songs, cdir, sample_rate=8000).built == 5 and len(calls) == 7
    assert open_cache(cdir, songs, sample_rate=8000).entries[0].num_samples == 800
    calls.clear()
    assert build(songs, cdir).built == 0 and calls == []
    # another envelope hop rebuilds everything at that rate
    assert build(songs, cdir, envelope_hop=128).built == 5
    # a different format version in the index rebuilds everything
    index_path = cdir / f"sr{SR}" / "index.json"
    index = json.loads(index_path.read_text())
    index["format_version"] = FORMAT_VERSION + 1
    index_path.write_text(json.dumps(index))
    calls.clear()
    assert build(songs, cdir, envelope_hop=128).built == 5 and len(calls) == 7

def test_unlisted_entries_kept_or_pruned_and_stale_reported(corpus, tmp_path):
    all_songs, cdir = corpus_songs(corpus, GOOD), tmp_path / "c"
    build(all_songs, cdir)
    some = corpus_songs(corpus, GOOD[:2])
    kept = build(some, cdir)
    assert (kept.built, kept.up_to_date, kept.pruned) == (0, 2, 0)
    assert len(open_cache(cdir, sample_rate=SR)) == 4  # unlisted entries kept
    assert len(open_cache(cdir, some, sample_rate=SR)) == 2
    # relabelled stems (same audio) are not decoded again, but the index learns the new classes
    relabelled = [Song(s.dataset, s.song_id, tuple(Stem(t.stem_id, t.path, t.labels, frozenset({"violin"}))
                                                   for t in s.stems)) for s in some]
    assert build(relabelled, cdir).built == 0
    assert {e.stem_id: e.classes for e in open_cache(cdir, sample_rate=SR).entries if "wav44" in e.stem_id} \
        == {"s0/wav44": frozenset({"violin"})}
    pruned = build(some, cdir, prune=True)
    assert pruned.pruned == 2 and len(open_cache(cdir, sample_rate=SR)) == 2
    assert len(list((cdir / f"sr{SR}" / "stems").iterdir())) == 4
    # a source changed after the build: open_cache reports it stale instead of serving old audio
    sf.write(corpus["flac16"], np.zeros(100, np.float32), SR)
    cache = open_cache(cdir, some, sample_rate=SR)
    assert [k for k, _, _ in cache.missing] == ["toy/s1/flac16"] and len(cache) == 1
    assert "changed" in cache.missing[0][2]
    with pytest.raises(ValueError, match="keras_inst.data cache"):
        open_cache(tmp_path / "nowhere", some, sample_rate=SR)

def test_failure_mid_build_leaves_consistent_cache(corpus, tmp_path, monkeypatch):
    songs, cdir = corpus_songs(corpus, GOOD), tmp_path / "c"
    real, writes = cb.write_npy, []

    def failing_write(path, array):
        writes.append(path.name)
        if len(writes) == 4:  # second stem's envelope: its audio file is written, its entry is not
            raise OSError(28, "No space left on device")
        real(path, array)

    monkeypatch.setattr(cb, "write_npy", failing_write)
    with pytest.raises(OSError, match="No space"):
        build(songs, cdir)
    monkeypatch.setattr(cb, "write_npy", real)
    root = cdir / f"sr{SR}"
    index = json.loads((root / "index.json").read_text())
    assert list(index["entries"]) == ["toy/s0/wav44"]  # only the finished stem, with both files
    assert all((root / "stems" / index["entries"]["toy/s0/wav44"][f]).is_file() for f in ("audio", "envelope"))
    assert len(open_cache(cdir, sample_rate=SR)) == 1
    rerun = build(songs, cdir)
    assert (rerun.built, rerun.up_to_date) == (3, 1)
    assert len(list((root / "stems").iterdir())) == 8  # the half-written stem's orphan is gone

@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_process_pool_matches_serial(corpus, tmp_path, monkeypatch, start):
    import sys

    if start == "spawn":  # the pool spawns fresh interpreters once TensorFlow is imported
        monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    else:
        monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    songs = corpus_songs(corpus)
    serial = build(songs, tmp_path / "a", workers=1)
    pooled = build(songs, tmp_path / "b", workers=2)
    assert (pooled.built, pooled.counts) == (serial.built, serial.counts)
    ca, cb = (open_cache(tmp_path / d, songs, sample_rate=SR) for d in ("a", "b"))
    for ea, eb in zip(ca.entries, cb.entries, strict=True):
        assert ea.key == eb.key and ea.scale == eb.scale
        np.testing.assert_array_equal(ca.int16(ea), cb.int16(eb))


def test_cli_and_ensure_cache(corpus, tmp_path, monkeypatch, capsys):
    import keras_inst.data.datasets as datasets
    from keras_inst.config.io import load_config
    from keras_inst.data.cli import main

    songs = corpus_songs(corpus, dataset="medleydb")
    seen = []

    def fake_read(name, root, *, problem_stems=None):
        seen.append((name, str(root), problem_stems))
        return songs, datasets.ReaderReport(dataset=name)

    monkeypatch.setattr(datasets, "read_dataset", fake_read)
    argv = ["cache", "--dataset", "medleydb", "--root", str(tmp_path / "audio"),
            "--cache-dir", str(tmp_path / "c"), "--workers", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "caching stems at 16000 Hz" in err  # progress bar on stderr
    assert seen == [("medleydb", str(tmp_path / "audio"), None)]
    assert "4 stems cached now, 0 up to date, 4 failed" in out and "notes.wav" in out
    assert main(argv) == 0 and "0 stems cached now, 4 up to date" in capsys.readouterr().out
    slakh = ["cache", "--dataset", "slakh", "--root", str(tmp_path / "audio"), "--cache-dir",
             str(tmp_path / "c"), "--workers", "1", "--set", "data.slakh_problem_stems=/p.json"]
    assert main(slakh) == 0 and seen[-1] == ("slakh", str(tmp_path / "audio"), "/p.json")
    capsys.readouterr()
    assert main(["cache", "--cache-dir", str(tmp_path / "c")]) == 2  # neither config nor dataset
    assert "--dataset" in capsys.readouterr().err
    cfg = load_config("demo", [f"data.cache_dir={tmp_path / 'c'}"])
    cache = ensure_cache(cfg, songs, workers=1, progress=False)
    assert len(cache) == 4 and len(cache.missing) == 4
    assert cache.entries[0].envelope_hop == cfg.features.hop_length
    assert isinstance(cb.run_cache_cli(argparse.Namespace(
        config=None, dataset="medleydb", root=None, cache_dir=None, sample_rate=None, workers=1,
        overrides=[f"data.roots.medleydb={tmp_path / 'audio'}", f"data.cache_dir={tmp_path / 'c'}"])), int)
