"""Audio cache: decoding/resampling accuracy, chunk and envelope reads, incremental and atomic builds."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_inst import audio_cache as ac
from keras_inst.datasets.base import Song, Stem

SR = 16000


def _sine(freq: float, seconds: float, rate: int, amp: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int, pad: int = 8) -> float:
    """Frequency of the spectral peak: Hann window, zero padded ``pad`` times (bin = rate/(n*pad))."""
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size), n=x.size * pad))
    return float(np.argmax(spec)) * rate / (x.size * pad)


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2))))


@pytest.fixture()
def corpus(tmp_path: Path) -> dict[str, Path]:
    """Stems in several formats and rates, plus broken files."""
    d = tmp_path / "audio"
    d.mkdir()
    files = {}
    left, right = _sine(1000, 2.0, 44100, 0.5), _sine(1000, 2.0, 44100, 0.3)
    files["wav44"] = d / "sine44.wav"  # 44.1 kHz stereo, mono downmix = 0.4 * sin
    sf.write(files["wav44"], np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    half = np.concatenate([np.zeros(SR, np.float32), _sine(500, 1.0, SR, 0.3)])
    files["flac16"] = d / "half_silent.flac"  # 16 kHz mono, silent first second
    sf.write(files["flac16"], half, SR, subtype="PCM_16")
    files["wav22"] = d / "tone22.wav"  # 22.05 kHz mono
    sf.write(files["wav22"], _sine(440, 1.5, 22050, 0.25), 22050, subtype="PCM_16")
    files["mp3"] = d / "tone.mp3"
    sf.write(files["mp3"], _sine(2000, 1.0, 44100, 0.5), 44100, format="MP3")
    ok = d / "ok_source.wav"
    sf.write(ok, _sine(100, 0.5, SR, 0.1), SR)
    files["corrupt"] = d / "corrupt.wav"  # header cut off before the data chunk
    files["corrupt"].write_bytes(ok.read_bytes()[:30])
    ok.unlink()
    files["empty"] = d / "empty.wav"
    files["empty"].write_bytes(b"")
    files["text"] = d / "notes.wav"
    files["text"].write_text("this is a text file, not audio\n")
    files["missing"] = d / "never_written.wav"
    return files


GOOD = ("wav44", "flac16", "wav22", "mp3")
BAD = {"corrupt": "unreadable_audio", "text": "unreadable_audio", "empty": "empty_file",
       "missing": "missing_file"}


def _songs(files: dict[str, Path], names=GOOD + tuple(BAD), dataset: str = "toy") -> list[Song]:
    """Two songs (a dataset may hold several), stem ids 'song/name', one class per stem."""
    stems = [Stem(stem_id=f"s{i % 2}/{n}", path=files[n], labels=(n,), classes=frozenset({"piano"}))
             for i, n in enumerate(names)]
    return [Song(dataset=dataset, song_id=f"s{j}", stems=tuple(s for s in stems if s.stem_id.startswith(f"s{j}/")))
            for j in (0, 1)]


def _by_name(cache: ac.AudioCache) -> dict[str, ac.CacheEntry]:
    return {e.stem_id.split("/")[1]: e for e in cache.entries}


def _build(songs, cache_dir, **kw) -> ac.CacheReport:
    kw.setdefault("sample_rate", SR)
    return ac.build_cache(songs, cache_dir, workers=kw.pop("workers", 1), progress=False, **kw)


def test_round_trip_level_frequency_and_formats(corpus, tmp_path):
    songs = _songs(corpus, GOOD)
    report = _build(songs, tmp_path / "cache")
    assert (report.built, report.up_to_date, report.problems) == (4, 0, [])
    cache = ac.open_cache(tmp_path / "cache", songs, sample_rate=SR)
    e = _by_name(cache)
    assert e["wav44"].classes == frozenset({"piano"}) and e["wav44"].song_id == "s0"
    x = cache.audio(e["wav44"])
    assert x.dtype == np.float32 and x.shape == (32000,)  # 2 s at 44.1 kHz -> 2 s at 16 kHz
    # frequency: Hann + 8x zero padding gives 0.0625 Hz bins; tolerance 0.1 Hz
    assert abs(_peak_hz(x, SR) - 1000.0) < 0.1
    # level: RMS of the mono downmix (0.4 * sin) kept within 0.1 dB (edges excluded: filter ramp)
    mono_db = _rms_db(_sine(1000, 2.0, 44100, 0.4))
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


def test_chunk_reads_exact_and_zero_padded(corpus, tmp_path):
    songs = _songs(corpus, ("flac16", "wav22"))
    _build(songs, tmp_path / "c")
    cache = ac.open_cache(tmp_path / "c", songs, sample_rate=SR)
    e = _by_name(cache)["flac16"]
    full = cache.audio(e)
    q = np.asarray(cache.int16(e))
    assert q.dtype == np.int16 and np.array_equal(full, q.astype(np.float32) * np.float32(e.scale))
    np.testing.assert_array_equal(cache.chunk(e, 20000, 4000), full[20000:24000])
    tail = cache.chunk(e, e.num_samples - 1000, 4000)  # past the end: zeros
    assert tail.shape == (4000,) and tail.dtype == np.float32
    np.testing.assert_array_equal(tail[:1000], full[-1000:])
    assert not tail[1000:].any() and np.abs(tail[:1000]).max() > 0.2
    head = cache.chunk(e, -500, 1000)  # before the start: zeros
    np.testing.assert_array_equal(head[500:], full[:500])
    assert not head[:500].any()
    assert not cache.chunk(e, e.num_samples + 10, 64).any()
    with pytest.raises(ValueError, match="length"):
        cache.chunk(e, 0, -1)


def test_envelope_and_active_frames(corpus, tmp_path):
    silent = tmp_path / "audio" / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), SR)
    corpus["silent"] = silent
    songs = _songs(corpus, ("flac16", "silent"))
    _build(songs, tmp_path / "c", envelope_hop=256)
    cache = ac.open_cache(tmp_path / "c", songs, sample_rate=SR)
    e = _by_name(cache)
    env = cache.envelope(e["flac16"])
    assert env.dtype == np.float32 and env.shape == (-(-32000 // 256),)  # 125 frames
    # 0.3-amplitude sine: 20*log10(0.3/sqrt(2)) = -13.47 dBFS; silence sits at the floor
    assert np.allclose(env[64:-1], 20 * np.log10(0.3 / np.sqrt(2)), atol=0.05)
    assert np.all(env[:62] == ac.ENVELOPE_FLOOR_DB)
    active = cache.active_frames(e["flac16"], -40.0)
    assert active.dtype == bool and not active[:62].any() and active[63:].all()  # frame 62 straddles 1 s
    assert not cache.active_frames(e["silent"], -40.0).any()  # silent stem: nothing is active


def test_broken_files_reported_rest_cached(corpus, tmp_path):
    songs = _songs(corpus)
    dup = Song("toy", "s9", (Stem("s0/wav44", corpus["wav22"], ("x",), frozenset()),))  # id clash
    report = _build([*songs, dup], tmp_path / "c")
    assert report.built == 4 and report.failed == 4
    dups = [p for p in report.problems if p[0] == "duplicate_stem"]
    assert [p[1] for p in dups] == [str(corpus["wav22"])] and "s0/wav44" in dups[0][2]
    report.problems.remove(dups[0])
    assert report.counts == {"unreadable_audio": 2, "empty_file": 1, "missing_file": 1}
    named = {Path(f).name: k for k, f, _ in report.problems}
    assert named == {corpus[n].name: k for n, k in BAD.items()}
    assert all(msg for _, _, msg in report.problems)
    assert "notes.wav" in report.summary() and "4 failed" in report.summary()
    cache = ac.open_cache(tmp_path / "c", songs, sample_rate=SR)
    assert sorted(_by_name(cache)) == sorted(GOOD)
    missing = {Path(f).name: reason for _, f, reason in cache.missing}
    assert set(missing) == {corpus[n].name for n in BAD}
    assert missing["empty.wav"].startswith("empty_file") and missing["never_written.wav"] == "not cached"


def test_incremental_builds(corpus, tmp_path, monkeypatch):
    calls: list[str] = []
    real = ac._process_job
    monkeypatch.setattr(ac, "_process_job", lambda job: calls.append(job["key"]) or real(job))
    songs, cdir = _songs(corpus), tmp_path / "c"
    assert _build(songs, cdir).built == 4 and len(calls) == 7  # the missing file is never decoded
    calls.clear()
    second = _build(songs, cdir)
    assert (second.built, second.up_to_date, calls) == (0, 4, [])  # nothing decoded again...
    assert second.counts == {"unreadable_audio": 2, "empty_file": 1, "missing_file": 1}  # ...still reported
    # touching one file rebuilds exactly that one, with new files replacing the old ones
    st = os.stat(corpus["wav22"])
    os.utime(corpus["wav22"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = _build(songs, cdir)
    assert (third.built, third.up_to_date, calls) == (1, 3, ["toy/s0/wav22"])
    # rewriting one with new content: the cache serves the new audio
    calls.clear()
    sf.write(corpus["wav44"], np.zeros((4410, 2), np.float32), 44100)
    assert _build(songs, cdir).built == 1 and calls == ["toy/s0/wav44"]
    cache = ac.open_cache(cdir, songs, sample_rate=SR)
    e = _by_name(cache)["wav44"]
    assert e.num_samples == 1600 and not cache.audio(e).any()
    assert len(list((cdir / f"sr{SR}" / "stems").iterdir())) == 2 * 4  # old files removed
    # a repaired broken file is picked up
    calls.clear()
    sf.write(corpus["empty"], _sine(300, 0.5, SR, 0.2), SR)
    fourth = _build(songs, cdir)
    assert fourth.built == 1 and calls == ["toy/s0/empty"] and fourth.failed == 3
    # another sample rate is its own cache; the first is untouched
    calls.clear()
    assert _build(songs, cdir, sample_rate=8000).built == 5 and len(calls) == 7
    assert ac.open_cache(cdir, songs, sample_rate=8000).entries[0].num_samples == 800
    calls.clear()
    assert _build(songs, cdir).built == 0 and calls == []
    # another envelope hop rebuilds everything at that rate
    assert _build(songs, cdir, envelope_hop=128).built == 5
    # a different format version in the index rebuilds everything
    index_path = cdir / f"sr{SR}" / "index.json"
    index = json.loads(index_path.read_text())
    index["format_version"] = ac.FORMAT_VERSION + 1
    index_path.write_text(json.dumps(index))
    calls.clear()
    assert _build(songs, cdir, envelope_hop=128).built == 5 and len(calls) == 7


def test_unlisted_entries_kept_or_pruned_and_stale_reported(corpus, tmp_path):
    all_songs, cdir = _songs(corpus, GOOD), tmp_path / "c"
    _build(all_songs, cdir)
    some = _songs(corpus, GOOD[:2])
    kept = _build(some, cdir)
    assert (kept.built, kept.up_to_date, kept.pruned) == (0, 2, 0)
    assert len(ac.open_cache(cdir, sample_rate=SR)) == 4  # unlisted entries kept
    assert len(ac.open_cache(cdir, some, sample_rate=SR)) == 2
    # relabelled stems (same audio) are not decoded again, but the index learns the new classes
    relabelled = [Song(s.dataset, s.song_id, tuple(Stem(t.stem_id, t.path, t.labels, frozenset({"violin"}))
                                                   for t in s.stems)) for s in some]
    assert _build(relabelled, cdir).built == 0
    assert {e.stem_id: e.classes for e in ac.open_cache(cdir, sample_rate=SR).entries if "wav44" in e.stem_id} \
        == {"s0/wav44": frozenset({"violin"})}
    pruned = _build(some, cdir, prune=True)
    assert pruned.pruned == 2 and len(ac.open_cache(cdir, sample_rate=SR)) == 2
    assert len(list((cdir / f"sr{SR}" / "stems").iterdir())) == 4
    # a source changed after the build: open_cache reports it stale instead of serving old audio
    sf.write(corpus["flac16"], np.zeros(100, np.float32), SR)
    cache = ac.open_cache(cdir, some, sample_rate=SR)
    assert [k for k, _, _ in cache.missing] == ["toy/s1/flac16"] and len(cache) == 1
    assert "changed" in cache.missing[0][2]
    with pytest.raises(ValueError, match="keras_inst.data cache"):
        ac.open_cache(tmp_path / "nowhere", some, sample_rate=SR)


def test_consolidate_offsets_and_values(corpus, tmp_path):
    songs = _songs(corpus, GOOD)
    _build(songs, tmp_path / "c")
    cache = ac.open_cache(tmp_path / "c", songs, sample_rate=SR)
    entries = cache.entries[1:] + cache.entries[:1]  # any order the caller chooses
    c = cache.consolidate(entries)
    lengths = [e.num_samples for e in entries]
    assert c.lengths.tolist() == lengths and c.offsets.tolist() == [0, *np.cumsum(lengths)[:-1].tolist()]
    assert c.audio.dtype == np.int16 and c.audio.size == sum(lengths) and c.offsets.dtype == np.int64
    assert c.envelope_hop == 256 and c.envelope_lengths.tolist() == [-(-n // 256) for n in lengths]
    for i, e in enumerate(entries):
        seg = c.audio[c.offsets[i]: c.offsets[i] + c.lengths[i]].astype(np.float32) * c.scales[i]
        np.testing.assert_array_equal(seg, cache.audio(e))
        eo = c.envelope_offsets[i]
        np.testing.assert_array_equal(c.envelopes[eo: eo + c.envelope_lengths[i]], cache.envelope(e))
    assert cache.consolidate([]).audio.size == 0


def test_failure_mid_build_leaves_consistent_cache(corpus, tmp_path, monkeypatch):
    songs, cdir = _songs(corpus, GOOD), tmp_path / "c"
    real, writes = ac._write_npy, []

    def failing_write(path, array):
        writes.append(path.name)
        if len(writes) == 4:  # second stem's envelope: its audio file is written, its entry is not
            raise OSError(28, "No space left on device")
        real(path, array)

    monkeypatch.setattr(ac, "_write_npy", failing_write)
    with pytest.raises(OSError, match="No space"):
        _build(songs, cdir)
    monkeypatch.setattr(ac, "_write_npy", real)
    root = cdir / f"sr{SR}"
    index = json.loads((root / "index.json").read_text())
    assert list(index["entries"]) == ["toy/s0/wav44"]  # only the finished stem, with both files
    assert all((root / "stems" / index["entries"]["toy/s0/wav44"][f]).is_file() for f in ("audio", "envelope"))
    assert len(ac.open_cache(cdir, sample_rate=SR)) == 1
    rerun = _build(songs, cdir)
    assert (rerun.built, rerun.up_to_date) == (3, 1)
    assert len(list((root / "stems").iterdir())) == 8  # the half-written stem's orphan is gone


def test_index_write_failure_keeps_previous_index(corpus, tmp_path, monkeypatch):
    songs, cdir = _songs(corpus, GOOD), tmp_path / "c"
    _build(songs, cdir)
    index_path = cdir / f"sr{SR}" / "index.json"
    before = index_path.read_bytes()
    sf.write(corpus["wav22"], np.zeros(2205, np.float32), 22050)

    def torn_dump(obj, f, **kw):
        f.write('{"format_version": 1, "entr')  # killed halfway through writing
        raise KeyboardInterrupt

    monkeypatch.setattr(ac.json, "dump", torn_dump)
    with pytest.raises(KeyboardInterrupt):
        _build(songs, cdir)
    monkeypatch.undo()
    assert index_path.read_bytes() == before and not list(index_path.parent.glob("index.json.tmp*"))
    assert len(ac.open_cache(cdir, sample_rate=SR)) == 4
    assert _build(songs, cdir).built == 1  # the changed stem is rebuilt on the next run
    assert len(list((cdir / f"sr{SR}" / "stems").iterdir())) == 8


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_process_pool_matches_serial(corpus, tmp_path, monkeypatch, start):
    import sys

    if start == "spawn":  # the pool spawns fresh interpreters once TensorFlow is imported
        monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow", object()))
    else:
        monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    songs = _songs(corpus)
    serial = _build(songs, tmp_path / "a", workers=1)
    pooled = _build(songs, tmp_path / "b", workers=2)
    assert (pooled.built, pooled.counts) == (serial.built, serial.counts)
    ca, cb = (ac.open_cache(tmp_path / d, songs, sample_rate=SR) for d in ("a", "b"))
    for ea, eb in zip(ca.entries, cb.entries, strict=True):
        assert ea.key == eb.key and ea.scale == eb.scale
        np.testing.assert_array_equal(ca.int16(ea), cb.int16(eb))


def test_cli_and_ensure_cache(corpus, tmp_path, monkeypatch, capsys):
    import keras_inst.datasets as datasets
    from keras_inst.config import load_config
    from keras_inst.data import main

    songs = _songs(corpus, dataset="medleydb")
    seen = []

    def fake_read(name, root):
        seen.append((name, str(root)))
        return songs, datasets.ReaderReport(dataset=name)

    monkeypatch.setattr(datasets, "read_dataset", fake_read)
    argv = ["cache", "--dataset", "medleydb", "--root", str(tmp_path / "audio"),
            "--cache-dir", str(tmp_path / "c"), "--workers", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "caching stems at 16000 Hz" in err  # progress bar on stderr
    assert seen == [("medleydb", str(tmp_path / "audio"))]
    assert "4 stems cached now, 0 up to date, 4 failed" in out and "notes.wav" in out
    assert main(argv) == 0 and "0 stems cached now, 4 up to date" in capsys.readouterr().out
    assert main(["cache", "--cache-dir", str(tmp_path / "c")]) == 2  # neither config nor dataset
    assert "--dataset" in capsys.readouterr().err
    cfg = load_config("demo", [f"data.cache_dir={tmp_path / 'c'}"])
    cache = ac.ensure_cache(cfg, songs, workers=1, progress=False)
    assert len(cache) == 4 and len(cache.missing) == 4
    assert cache.entries[0].envelope_hop == cfg.features.hop_length
    assert isinstance(ac.run_cache_cli(argparse.Namespace(
        config=None, dataset="medleydb", root=None, cache_dir=None, sample_rate=None, workers=1,
        overrides=[f"data.roots.medleydb={tmp_path / 'audio'}", f"data.cache_dir={tmp_path / 'c'}"])), int)
