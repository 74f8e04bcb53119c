"""Audio files and songs shared by the audio-cache tests (test_cache_format, test_cache_build,
test_audio_cache): stems in several formats and rates, plus broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from keras_inst.data.cache.build import CacheReport, build_cache
from keras_inst.data.cache.store import AudioCache, CacheEntry, open_cache
from keras_inst.data.datasets.base import Song, Stem
from keras_inst.data.mixing import SourceTable

SR = 16000
GOOD = ("wav44", "flac16", "wav22", "mp3")
BAD = {"corrupt": "unreadable_audio", "text": "unreadable_audio", "empty": "empty_file",
       "missing": "missing_file"}


def sine(freq: float, seconds: float, rate: int, amp: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_corpus(d: Path) -> dict[str, Path]:
    """Write the files of GOOD and BAD into the new folder ``d``; name -> path."""
    d.mkdir()
    files = {}
    left, right = sine(1000, 2.0, 44100, 0.5), sine(1000, 2.0, 44100, 0.3)
    files["wav44"] = d / "sine44.wav"  # 44.1 kHz stereo, mono downmix = 0.4 * sin
    sf.write(files["wav44"], np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    half = np.concatenate([np.zeros(SR, np.float32), sine(500, 1.0, SR, 0.3)])
    files["flac16"] = d / "half_silent.flac"  # 16 kHz mono, silent first second
    sf.write(files["flac16"], half, SR, subtype="PCM_16")
    files["wav22"] = d / "tone22.wav"  # 22.05 kHz mono
    sf.write(files["wav22"], sine(440, 1.5, 22050, 0.25), 22050, subtype="PCM_16")
    files["mp3"] = d / "tone.mp3"
    sf.write(files["mp3"], sine(2000, 1.0, 44100, 0.5), 44100, format="MP3")
    ok = d / "ok_source.wav"
    sf.write(ok, sine(100, 0.5, SR, 0.1), SR)
    files["corrupt"] = d / "corrupt.wav"  # header cut off before the data chunk
    files["corrupt"].write_bytes(ok.read_bytes()[:30])
    ok.unlink()
    files["empty"] = d / "empty.wav"
    files["empty"].write_bytes(b"")
    files["text"] = d / "notes.wav"
    files["text"].write_text("this is a text file, not audio\n")
    files["missing"] = d / "never_written.wav"
    return files


def corpus_songs(files: dict[str, Path], names=GOOD + tuple(BAD),
                 dataset: str = "toy") -> list[Song]:
    """Two songs (a dataset may hold several), stem ids 'song/name', one class per stem."""
    stems = [Stem(stem_id=f"s{i % 2}/{n}", path=files[n], labels=(n,), classes=frozenset({"piano"}))
             for i, n in enumerate(names)]
    return [Song(dataset=dataset, song_id=f"s{j}", stems=tuple(s for s in stems if s.stem_id.startswith(f"s{j}/")))
            for j in (0, 1)]


def by_name(cache: AudioCache) -> dict[str, CacheEntry]:
    return {e.stem_id.split("/")[1]: e for e in cache.entries}


def build(songs, cache_dir, **kw) -> CacheReport:
    """build_cache at SR, serial, without progress bar (unless ``kw`` says otherwise)."""
    kw.setdefault("sample_rate", SR)
    return build_cache(songs, cache_dir, workers=kw.pop("workers", 1), progress=False, **kw)


def tone_table(root: Path, *, seconds: float, noise: float) -> SourceTable:
    """4 songs x 3 stems (electric guitar, piano, violin; a 0.2-amplitude tone at 200 + 50 k Hz in
    white noise of RMS ``noise``), cached at SR: the source table of 1-s chunks that the realism
    and ambience stream tests mix."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    songs = []
    for s in range(4):
        stems = []
        for j, cls in enumerate(("electric_guitar", "piano", "violin")):
            x = noise * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * (200 + 50 * (3 * s + j)) * t)
            path = root / f"song{s}" / f"stem{j}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, x.astype(np.float32), SR, subtype="PCM_16")
            stems.append(Stem(f"song{s}/stem{j}", path, (cls,), frozenset({cls})))
        songs.append(Song("slakh", f"song{s}", tuple(stems)))
    build_cache(songs, root / "cache", sample_rate=SR, workers=1, progress=False)
    return SourceTable(open_cache(root / "cache", songs, sample_rate=SR), songs,
                       datasets=("slakh",), chunk_samples=SR, activity_threshold_db=-40.0,
                       min_active_fraction=0.1)
