"""Whole-song mixes and labels: the sum of the cached stems, the evaluation mixes' peak
normalisation, and labels only from stems that sound (real BabySlakh layout and made-up songs)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cache_corpus import build, sine

from keras_inst.data.cache.store import open_cache
from keras_inst.data.datasets import read_dataset
from keras_inst.data.datasets.base import Song, Stem
from keras_inst.data.songs import SILENCE_FLOOR_DB, full_mix, song_mixes
from keras_inst.taxonomy import close

SR = 16000


def test_babyslakh_song_is_its_mix_and_only_the_sounding_stem_labels_it(fixtures_dir, tmp_path):
    """Track00001: only S00 (distortion guitar) has sound, S01-S10 are silent and mix.wav == S00."""
    root = fixtures_dir / "slakh" / "babyslakh_16k"
    songs, _ = read_dataset("slakh", root)
    build(songs, tmp_path / "cache", envelope_hop=256)
    cache = open_cache(tmp_path / "cache", songs, sample_rate=SR)
    (mix,) = song_mixes(cache, songs, peak_normalize=0.95)
    assert (mix.dataset, mix.song_id, mix.sample_rate) == ("slakh", "Track00001", SR)
    assert mix.classes == close(["electric_guitar"]) == {"electric_guitar", "plucked_string"}
    assert songs[0].classes > mix.classes  # the stems' metadata names drums, bass, piano, ... too
    assert sorted(s.split("/")[-1] for s in mix.silent_stems) == ["S01", "S02", "S03", "S04", "S05", "S07", "S08", "S09", "S10"]
    want, sr = sf.read(root / "Track00001" / "mix.wav", dtype="float32")
    assert sr == SR and mix.seconds == pytest.approx(2.0)
    # Peak 0.126 < 0.95: no gain; the cache stores int16 at the stem's own peak (step 0.126 / 32767).
    np.testing.assert_allclose(mix.audio, want, atol=0.126 / 32767)


def test_stems_are_summed_peak_normalised_and_silent_ones_give_no_label(tmp_path, caplog):
    d = tmp_path / "audio"
    d.mkdir()
    files = {
        "piano": sine(440, 2.0, SR, 0.6),
        "bass": sine(440, 1.0, SR, 0.6),  # half as long, in phase with the piano: sum peak 1.2
        "hum": sine(50, 2.0, SR, 10 ** (-75 / 20)),  # -78 dBFS RMS: below the silence floor
        "quiet_violin": sine(880, 2.0, SR, 10 ** (-50 / 20)),  # -53 dBFS RMS: above it
    }
    for name, x in files.items():
        sf.write(d / f"{name}.wav", x, SR, subtype="FLOAT")
    classes = {"piano": ["piano"], "bass": ["electric_bass"], "hum": ["drums"], "quiet_violin": ["violin"]}
    stems = tuple(Stem(f"s0/{n}", d / f"{n}.wav", (n,), close(classes[n])) for n in files)
    songs = [Song("toy", "s0", stems), Song("toy", "gone", (Stem("gone/x", d / "missing.wav", ("x",), close(["piano"])),))]
    build(songs, tmp_path / "cache", envelope_hop=256)
    cache = open_cache(tmp_path / "cache", songs, sample_rate=SR)
    with caplog.at_level(logging.WARNING, logger="keras_inst.data.songs"):
        mixes = list(song_mixes(cache, songs, peak_normalize=0.95))
    assert "1 songs have no cached stem" in caplog.text and "toy/gone" in caplog.text
    (mix,) = mixes
    assert mix.classes == close(["piano", "electric_bass", "violin"]) and mix.silent_stems == ("s0/hum",)
    raw = sum(np.pad(x, (0, 2 * SR - len(x))) for x in files.values())  # [2 s]
    assert np.abs(raw).max() > 1.19
    np.testing.assert_allclose(mix.audio, raw * 0.95 / np.abs(raw).max(), atol=2e-4)
    assert np.abs(mix.audio).max() == pytest.approx(0.95, abs=1e-6)
    # The floor decides: at -80 dBFS the hum sounds too.
    (low,) = song_mixes(cache, songs[:1], peak_normalize=0.95, silence_floor_db=-80.0)
    assert "drums" in low.classes and low.silent_stems == () and SILENCE_FLOOR_DB == -60.0


def test_a_quiet_sum_keeps_its_level(tmp_path):
    entries_audio = [np.full(4, 0.2, np.float32), np.full(2, -0.1, np.float32)]

    class FakeCache:  # full_mix needs only audio(entry)
        def audio(self, e):
            return entries_audio[e.i]

    class E:
        def __init__(self, i):
            self.i, self.num_samples = i, len(entries_audio[i])

    out = full_mix(FakeCache(), [E(0), E(1)], peak_normalize=0.95)
    np.testing.assert_allclose(out, [0.1, 0.1, 0.2, 0.2])
    with pytest.raises(ValueError, match="peak_normalize must be in"):
        full_mix(FakeCache(), [E(0)], peak_normalize=0.0)


def test_no_tensorflow_needed():
    import subprocess
    import sys

    code = "import sys, keras_inst.data.songs; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
