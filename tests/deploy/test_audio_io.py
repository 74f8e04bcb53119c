"""TensorFlow-free audio loading: formats, downmix, resampling, windows, folder scanning."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from keras_inst.deploy.audio_io import (
    AudioReadError,
    downmix,
    find_audio_files,
    frame_windows,
    iter_window_batches,
    load_audio,
    resample,
    window_starts,
)


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_downmix_averages_channels():
    x = np.array([[1.0, 0.0], [0.5, -0.5], [0.2, 0.4]], np.float32)
    np.testing.assert_allclose(downmix(x), [0.5, 0.0, 0.3], atol=1e-7)
    np.testing.assert_array_equal(downmix(x[:, :1]), x[:, 0])
    np.testing.assert_array_equal(downmix(x[:, 0]), x[:, 0])
    with pytest.raises(ValueError, match="frames, channels"):
        downmix(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("orig", [8000, 22050, 44100, 48000])
def test_resample_keeps_frequency_level_and_length(orig):
    x = tone(440.0, orig, 2.0)
    y = resample(x, orig, 16000)
    assert y.dtype == np.float32 and len(y) == 32000
    assert abs(peak_hz(y, 16000) - 440.0) <= 0.5  # FFT bin width 0.5 Hz
    assert rms(y[2000:-2000]) == pytest.approx(rms(x), rel=2e-3)


def test_resample_removes_content_above_the_new_nyquist():
    # 10 kHz cannot exist at 16 kHz: the anti-aliasing filter must remove it, not fold it to 6 kHz.
    y = resample(tone(10000.0, 44100, 2.0), 44100, 16000)
    assert 20 * np.log10(rms(y[1000:-1000]) / rms(tone(10000.0, 44100, 2.0))) < -50  # measured -57 dB
    # 7 kHz (passband) survives within 0.5 dB (measured -0.25 dB).
    y = resample(tone(7000.0, 44100, 2.0), 44100, 16000)
    assert abs(20 * np.log10(rms(y[1000:-1000]) / rms(tone(7000.0, 44100, 2.0)))) < 0.5


def test_resample_identity_and_bad_rates():
    x = tone(100.0, 16000, 0.1)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(ValueError, match="sample rates"):
        resample(x, 0, 16000)


@pytest.mark.parametrize(
    ("ext", "sr", "channels", "rms_tol"),
    [("wav", 44100, 2, 2e-3), ("flac", 22050, 1, 2e-3), ("ogg", 48000, 2, 2e-2), ("mp3", 44100, 2, 2e-2)],
)
def test_load_audio_formats(tmp_path, ext, sr, channels, rms_tol):
    left = tone(440.0, sr, 3.0)
    data = np.stack([left, 0.5 * left], axis=1)[:, :channels]
    path = tmp_path / f"x.{ext}"
    sf.write(path, data, sr)
    audio = load_audio(path, sample_rate=16000)
    assert (audio.source_sample_rate, audio.source_channels, audio.sample_rate) == (sr, channels, 16000)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(3.0, abs=1e-3)  # libsndfile strips the MP3 encoder delay
    assert abs(peak_hz(audio.samples, 16000) - 440.0) <= 0.5
    want = 0.5 / np.sqrt(2) * (0.75 if channels == 2 else 1.0)  # stereo: mean of L and L/2
    assert rms(audio.samples[4000:-4000]) == pytest.approx(want, rel=rms_tol)


def test_load_audio_errors_name_the_file(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("not audio")
    with pytest.raises(AudioReadError, match=r"notes.txt: not a readable audio file \(Format not recognised\)"):
        load_audio(txt, sample_rate=16000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    with pytest.raises(AudioReadError, match="broken.wav") as info:
        load_audio(broken, sample_rate=16000)
    assert isinstance(info.value, ValueError) and info.value.path == broken
    assert info.value.reason == "not a readable audio file (Error in WAV/W64/RF64 file. Malformed 'fmt ' chunk)"
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioReadError, match="no audio samples"):
        load_audio(empty, sample_rate=16000)
    with pytest.raises(AudioReadError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav", sample_rate=16000)


@pytest.mark.parametrize("content", [b"", b"this is a text file, not an MP3\n" * 40])
def test_an_existing_file_is_never_said_not_to_exist(tmp_path, content):
    """libsndfile says "File does not exist or is not a regular file" for a text or empty file
    named .mp3; the user is told it is not readable audio instead."""
    fake = tmp_path / "song.mp3"
    fake.write_bytes(content)
    with pytest.raises(AudioReadError) as info:
        load_audio(fake, sample_rate=16000)
    reason = info.value.reason
    assert reason.startswith("not a readable audio file (the decoder recognises no audio stream in this .mp3 file")
    assert "not exist" not in reason and str(info.value) == f"{fake}: {reason}"


def test_window_starts_cover_the_signal():
    assert window_starts(100, window=400, hop=200).tolist() == [0]
    assert window_starts(400, window=400, hop=200).tolist() == [0]
    assert window_starts(401, window=400, hop=200).tolist() == [0, 200]
    # 30 s at 16 kHz, 4 s windows every 2 s: 1 + ceil(26 / 2) = 14 windows, the last ends at 30 s.
    starts = window_starts(30 * 16000, window=64000, hop=32000)
    assert len(starts) == 14 and starts[-1] + 64000 == 30 * 16000
    # Non-overlapping 4 s windows over 10 s: starts 0, 4, 8; the last is half padding.
    assert window_starts(160000, window=64000, hop=64000).tolist() == [0, 64000, 128000]
    # Over 9 s the last would hold 1 s of audio and 3 s of padding: left out.
    assert window_starts(144000, window=64000, hop=64000).tolist() == [0, 64000]
    with pytest.raises(ValueError, match="must be > 0"):
        window_starts(10, window=4, hop=0)


@pytest.mark.parametrize(("n", "hop", "want"), [
    (1000, 150, [0, 150, 300, 450, 600]),  # 1 + ceil((1000 - 400) / 150) = 5: same as before
    (1000, 500, [0, 500]),  # the window at 500 holds 500 samples: kept
    (1100, 500, [0, 500]),  # one at 1000 would hold 100 samples (a quarter window): left out
    (1200, 500, [0, 500, 1000]),  # ... 200 samples, half a window: kept
    (420, 500, [0]),  # 20 samples past one window: never a second, mostly empty one
    (10_000, 1000, list(range(0, 9601, 1000))),  # the window at 9000 holds 1000 samples
])
def test_window_starts_with_a_hop_beyond_the_window(n, hop, want):
    """Windows start at 0, hop, 2 hop, ... while the previous one has not reached the end and
    the new one holds at least half a window of audio (min_last)."""
    assert window_starts(n, window=400, hop=hop).tolist() == want
    starts = window_starts(n, window=400, hop=hop)
    assert all(n - s >= 200 for s in starts[1:])  # every later window is at least half audio
    assert window_starts(1100, window=400, hop=500, min_last=100).tolist() == [0, 500, 1000]
    with pytest.raises(ValueError, match="min_last"):
        window_starts(1100, window=400, hop=500, min_last=0)


def test_frame_windows_with_a_hop_beyond_the_window():
    x = np.arange(1, 12, dtype=np.float32)  # 11 samples, windows of 4 every 5: starts 0, 5
    w, starts = frame_windows(x, window=4, hop=5)
    assert starts.tolist() == [0, 5]
    np.testing.assert_array_equal(w, [[1, 2, 3, 4], [6, 7, 8, 9]])
    parts = list(iter_window_batches(x, window=4, hop=5, batch=1))
    np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), w)


def test_frame_windows_content_and_padding():
    x = np.arange(1, 11, dtype=np.float32)  # 10 samples
    w, starts = frame_windows(x, window=4, hop=3)
    assert starts.tolist() == [0, 3, 6]
    np.testing.assert_array_equal(w, [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]])
    w, starts = frame_windows(x, window=4, hop=4)
    np.testing.assert_array_equal(w[-1], [9, 10, 0, 0])  # zero-padded past the end
    w, _ = frame_windows(x[:3], window=4, hop=2)
    np.testing.assert_array_equal(w, [[1, 2, 3, 0]])
    w[0, 0] = 99  # a copy, not a view of the input
    assert x[0] == 1
    with pytest.raises(ValueError, match="mono"):
        frame_windows(np.zeros((4, 2)), window=2, hop=1)


def test_find_audio_files(tmp_path):
    root = tmp_path / "music"
    (root / "b" / "deep").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    for name in ("a.WAV", "b/c.flac", "b/deep/d.mp3", "b/e.ogg", "notes.txt", "._a.wav", ".hidden_dir/x.wav"):
        (root / name).write_bytes(b"")
    extra = tmp_path / "extra.dat"  # named explicitly: kept whatever its extension
    extra.write_bytes(b"")
    files, skipped = find_audio_files([root, extra, root / "a.WAV", tmp_path / "missing.wav"])
    rel = [f.relative_to(tmp_path).as_posix() for f in files]
    assert rel == ["music/a.WAV", "music/b/c.flac", "music/b/deep/d.mp3", "music/b/e.ogg", "extra.dat"]
    reasons = {p.name: r for p, r in skipped}
    assert reasons == {
        "._a.wav": "hidden file",
        "notes.txt": "not an audio file extension (.txt)",
        "missing.wav": "no such file or directory",
    }


def test_iter_window_batches_equals_frame_windows():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    want, want_starts = frame_windows(x, window=128, hop=50)
    parts = list(iter_window_batches(x, window=128, hop=50, batch=7))
    assert [len(s) for s, _ in parts] == [7, 7, 5]  # 1 + ceil((1000 - 128) / 50) = 19 windows
    np.testing.assert_array_equal(np.concatenate([s for s, _ in parts]), want_starts)
    np.testing.assert_array_equal(np.concatenate([w for _, w in parts]), want)
