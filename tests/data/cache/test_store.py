"""Audio cache reads: exact and zero-padded chunks, envelopes and active frames, consolidation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cache_corpus import GOOD, SR, build, by_name, corpus_songs, write_corpus

from keras_inst.data.cache import store as ac
from keras_inst.data.cache.format import ENVELOPE_FLOOR_DB


@pytest.fixture()
def corpus(tmp_path: Path) -> dict[str, Path]:
    return write_corpus(tmp_path / "audio")


def test_chunk_reads_exact_and_zero_padded(corpus, tmp_path):
    songs = corpus_songs(corpus, ("flac16", "wav22"))
    build(songs, tmp_path / "c")
    cache = ac.open_cache(tmp_path / "c", songs, sample_rate=SR)
    e = by_name(cache)["flac16"]
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
    songs = corpus_songs(corpus, ("flac16", "silent"))
    build(songs, tmp_path / "c", envelope_hop=256)
    cache = ac.open_cache(tmp_path / "c", songs, sample_rate=SR)
    e = by_name(cache)
    env = cache.envelope(e["flac16"])
    assert env.dtype == np.float32 and env.shape == (-(-32000 // 256),)  # 125 frames
    # 0.3-amplitude sine: 20*log10(0.3/sqrt(2)) = -13.47 dBFS; silence sits at the floor
    assert np.allclose(env[64:-1], 20 * np.log10(0.3 / np.sqrt(2)), atol=0.05)
    assert np.all(env[:62] == ENVELOPE_FLOOR_DB)
    active = cache.active_frames(e["flac16"], -40.0)
    assert active.dtype == bool and not active[:62].any() and active[63:].all()  # frame 62 straddles 1 s
    assert not cache.active_frames(e["silent"], -40.0).any()  # silent stem: nothing is active

def test_consolidate_offsets_and_values(corpus, tmp_path):
    songs = corpus_songs(corpus, GOOD)
    build(songs, tmp_path / "c")
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
