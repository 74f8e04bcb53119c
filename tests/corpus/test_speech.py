"""Spoken vocals (keras_inst.corpus.speech): the speaker draw, the phrases, and flite's speech
measured -- pitch, syllable rhythm, spectrum, placement, level -- and its stem in a rendered corpus."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from keras_inst.corpus import speech
from keras_inst.corpus.speech import VOICES, WORDS, Speaker, draw_speaker, section, sentence, speak

SR = 16000
needs_flite = pytest.mark.skipif(speech.flite() is None, reason="Debian flite not installed (scripts/setup_sample_sets.sh)")


def test_speaker_draw_covers_voices_pitches_rates_and_deliveries():
    rng = np.random.default_rng(0)
    who = [draw_speaker(rng) for _ in range(800)]
    assert {w.voice for w in who} == set(VOICES)
    for w in who:
        low, high = (85.0, 230.0) if w.voice != "slt" else (150.0, 240.0)
        assert low <= w.f0_hz <= high and 5.0 <= w.f0_range_hz <= 40.0
        assert (0.75 <= w.stretch <= 0.95) if w.delivery == "rap" else (0.85 <= w.stretch <= 1.3)
    rap = np.mean([w.delivery == "rap" for w in who])
    assert 0.2 < rap < 0.3
    raised = [w for w in who if w.voice != "slt" and w.f0_hz >= 160.0]  # a third of the male voices raised
    assert 0.27 < len(raised) / sum(w.voice != "slt" for w in who) < 0.4


def test_sentences_use_the_vocabulary_and_never_end_on_the_article():
    rng = np.random.default_rng(1)
    for _ in range(300):
        words = sentence(rng).split()
        assert 2 <= len(words) <= 12 and words[-1] != "the"
        assert set(words) <= {*WORDS, "the"}


def test_section_is_the_whole_song_half_the_time_else_30_to_70_percent():
    rng = np.random.default_rng(2)
    spans = [section(rng, 30.0) for _ in range(400)]
    whole = [s for s in spans if s == (0.0, 30.0)]
    assert 0.4 < len(whole) / len(spans) < 0.6
    for a, b in spans:
        assert 0.0 <= a < b <= 30.0 and ((a, b) == (0.0, 30.0) or 9.0 - 1e-9 <= b - a <= 21.0 + 1e-9)
    assert section(rng, 5.0) == (0.0, 5.0)  # short songs: all of it


def test_without_flite_a_phrase_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(speech, "flite", lambda: None)
    with pytest.raises(ValueError, match="apt-get install flite"):
        speech.say("hello", Speaker("slt", 200.0, 20.0, 1.0, "spoken"), workdir=tmp_path)


def _f0_median(x: np.ndarray) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(x.astype(np.float64), fmin=60.0, fmax=400.0, sr=SR, frame_length=1024)
    return float(np.nanmedian(f0[voiced]))


@needs_flite
@pytest.mark.parametrize("voice,f0", [("slt", 210.0), ("awb", 110.0), ("kal16", 180.0)])
def test_speech_follows_the_drawn_pitch(voice, f0):
    x, spans, _ = speak(sample_rate=SR, n_samples=8 * SR, seed=3, speaker=Speaker(voice, f0, 15.0, 1.0, "spoken"))
    assert spans
    assert abs(np.log2(_f0_median(x) / f0)) < 0.15  # within ~2 semitones of the target


def _syllables_per_second(x: np.ndarray, spans: list[tuple[float, float]]) -> tuple[float, float]:
    """(envelope peaks per spoken second, modulation energy 2-8 Hz / 0.5-2 Hz) over the phrases."""
    from scipy.signal import find_peaks

    env = np.sqrt(np.mean(x[: len(x) // 160 * 160].reshape(-1, 160) ** 2, axis=1))  # 10 ms RMS frames
    db = np.convolve(20 * np.log10(env + 1e-6), np.ones(5) / 5, mode="same")
    peaks, _ = find_peaks(db, prominence=6, distance=8)
    spoken = np.concatenate([env[int(a * 100) : int((a + d) * 100)] for a, d in spans])
    mod = np.abs(np.fft.rfft(spoken - spoken.mean()))
    hz = np.fft.rfftfreq(len(spoken), 0.01)
    ratio = mod[(hz >= 2) & (hz < 8)].sum() / mod[(hz >= 0.5) & (hz < 2)].sum()
    return len(peaks) / sum(d for _, d in spans), float(ratio)


@needs_flite
def test_speech_has_syllable_rhythm_and_a_speech_spectrum():
    x, spans, details = speak(sample_rate=SR, n_samples=20 * SR, seed=5, speaker=Speaker("rms", 120.0, 20.0, 1.0, "spoken"))
    assert details["phrases"] == len(spans) >= 4 and details["speaker"]["voice"] == "rms"
    rate, ratio = _syllables_per_second(x, spans)
    assert 2.0 < rate < 6.0 and ratio > 1.5  # syllables (measured 3.0 / s), not notes held for seconds
    fast = speak(sample_rate=SR, n_samples=20 * SR, seed=5, speaker=Speaker("kal16", 120.0, 20.0, 0.8, "rap"))
    slow = speak(sample_rate=SR, n_samples=20 * SR, seed=5, speaker=Speaker("kal16", 120.0, 20.0, 1.3, "spoken"))
    assert _syllables_per_second(*fast[:2])[0] > 1.3 * _syllables_per_second(*slow[:2])[0]  # measured 4.0 vs 2.6
    # spectrum: 90 % of the energy below 4 kHz, centroid of speech (300-2500 Hz)
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    assert np.sum(p[f < 4000]) / np.sum(p) > 0.9
    assert 300.0 < np.sum(f * p) / np.sum(p) < 2500.0


@needs_flite
def test_phrases_stay_in_their_section_with_pauses_and_are_deterministic():
    for seed in range(6):
        x, spans, details = speak(sample_rate=SR, n_samples=30 * SR, seed=seed)
        a, b = details["section_s"]
        assert np.all(x[: int(a * SR)] == 0) and np.all(x[int(np.ceil(b * SR)) + 1 :] == 0)
        gaps = [s2[0] - (s1[0] + s1[1]) for s1, s2 in zip(spans[:-1], spans[1:], strict=True)]
        low = 0.05 if details["speaker"]["delivery"] == "rap" else 0.3
        assert all(g >= low - 0.002 for g in gaps)
        assert all(a <= on and on + d <= b + 1e-3 for on, d in spans)
    y, _, _ = speak(sample_rate=SR, n_samples=30 * SR, seed=5)
    assert np.array_equal(x, y)
    z, _, _ = speak(sample_rate=22050, n_samples=30 * 22050, seed=5)  # resampled to the corpus rate
    assert len(z) == 30 * 22050 and abs(np.log10(np.std(z) / np.std(x))) < 0.1


@needs_flite
def test_a_rendered_corpus_gets_voice_only_spoken_stems_at_their_level(tmp_path):
    from keras_inst.corpus.render import TARGET_LUFS, render_corpus
    from keras_inst.data.datasets import read_dataset

    render_corpus(tmp_path / "c", songs=2, seed=4, speech=1.0, workers=1, progress=False, max_seconds=8.0)
    desc = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert desc["spoken_vocals"]["probability"] == 1.0 and "flite" in desc["spoken_vocals"]["engine"]
    assert "--speech 1.0" in (tmp_path / "c" / "README.txt").read_text()  # how to render it again
    songs, _ = read_dataset("rendered", tmp_path / "c")
    import yaml

    for song in songs:
        track = song.song_id.split("/")[-1]
        meta = yaml.safe_load((tmp_path / "c" / track / "metadata.yaml").read_text())
        spoken = {sid: m for sid, m in meta["keras_inst"]["stems"].items() if m["role"] == "spoken vocal"}
        assert len(spoken) == 1
        (sid, extra), = spoken.items()
        assert extra["source"] == "flite_speech" and extra["speaker"]["voice"] in VOICES and extra["phrases"] >= 1
        assert meta["stems"][sid]["program_num"] == 52
        assert meta["stems"][sid]["integrated_loudness"] == pytest.approx(TARGET_LUFS + extra["level_db"], abs=0.2)
        stem = next(s for s in song.stems if s.stem_id.endswith(sid))
        assert stem.classes == frozenset({"voice"})  # speech is voice, not singer
    with pytest.raises(ValueError, match="spoken_vocals"):  # another setting is another corpus
        render_corpus(tmp_path / "c", songs=2, seed=4, workers=1, progress=False, max_seconds=8.0)



def _fake_flite(monkeypatch, fail_on: set[int]) -> list[str]:
    """``say`` as a 0.1-s-per-word tone that fails (ValueError) on the calls numbered in ``fail_on``."""
    said: list[str] = []

    def say(text, speaker, *, workdir):
        said.append(text)
        if len(said) - 1 in fail_on:
            raise ValueError(f"flite failed on {text!r} (voice {speaker.voice}): killed")
        n = int(0.1 * len(text.split()) * speech.FLITE_RATE)
        return 0.1 * np.sin(2 * np.pi * 200.0 * np.arange(n) / speech.FLITE_RATE)

    monkeypatch.setattr(speech, "flite", lambda: "/usr/bin/flite")
    monkeypatch.setattr(speech, "say", say)
    return said


def test_a_failing_phrase_costs_that_phrase_not_the_stem(monkeypatch):
    who = Speaker("slt", 200.0, 20.0, 1.0, "spoken")
    said = _fake_flite(monkeypatch, set())
    x0, spans0, d0 = speak(sample_rate=SR, n_samples=30 * SR, seed=3, speaker=who)
    said = _fake_flite(monkeypatch, {1})  # the second phrase fails
    x, spans, d = speak(sample_rate=SR, n_samples=30 * SR, seed=3, speaker=who)
    assert "failed_phrases" not in d0 and d["failed_phrases"] == 1
    assert d["first_failure"].startswith(f"flite failed on {said[1]!r}")
    assert spans[0] == spans0[0] and len(spans) >= 2  # the first phrase as before; speech goes on after
    # between them: the first phrase's pause, the failed one's stand-in (0.3 s a word) and its pause (0.3-1.5 s each)
    pause, stand_in = spans[1][0] - (spans[0][0] + spans[0][1]), len(said[1].split()) * speech.SECONDS_PER_WORD
    assert stand_in + 0.6 - 1e-3 <= pause <= stand_in + 3.0 + 1e-3
    end0 = int(round((spans[0][0] + spans[0][1]) * SR))
    assert np.array_equal(x[:end0], x0[:end0]) and np.all(x[end0 : int(spans[1][0] * SR) - 1] == 0)


def test_flite_failing_on_every_phrase_is_one_error_naming_the_first(monkeypatch):
    _fake_flite(monkeypatch, set(range(1000)))
    with pytest.raises(ValueError, match=r"flite failed on all \d+ phrases; the first: flite failed on '"):
        speak(sample_rate=SR, n_samples=20 * SR, seed=1)
    monkeypatch.setattr(speech, "flite", lambda: None)
    with pytest.raises(ValueError, match="apt-get install flite"):  # no flite at all: said at once
        speak(sample_rate=SR, n_samples=20 * SR, seed=1)


@pytest.mark.parametrize("error", [subprocess.TimeoutExpired(["flite"], 60), PermissionError("not executable")])
def test_a_hung_or_unrunnable_flite_is_a_phrase_error(monkeypatch, tmp_path, error):
    def run(*args, **kwargs):
        raise error

    monkeypatch.setattr(speech, "flite", lambda: "/usr/bin/flite")
    monkeypatch.setattr(speech.subprocess, "run", run)
    with pytest.raises(ValueError, match="flite failed on 'hello there' \\(voice slt\\)"):
        speech.say("hello there", Speaker("slt", 200.0, 20.0, 1.0, "spoken"), workdir=tmp_path)

def test_without_flite_the_render_skips_spoken_vocals_and_says_so(monkeypatch, tmp_path):
    from keras_inst.corpus import render

    monkeypatch.setattr(speech, "flite_version", lambda: "")
    assert render._spoken_vocals(0.3) == {"probability": 0.0, "asked": 0.3, "engine": ""}
    assert render._spoken_vocals(0.0) is None
    with pytest.raises(ValueError, match="speech must be a probability"):
        render.render_corpus(tmp_path / "c", songs=1, seed=0, speech=1.5)
    rep = render.render_corpus(tmp_path / "c", songs=1, seed=0, speech=0.5, workers=1, progress=False, max_seconds=4.0)
    assert "spoken vocals skipped: flite not installed (apt-get install flite)" in rep.missing_sources
    assert "flite_speech" not in rep.sources


def test_the_setup_script_installs_flite_and_refuses_unknown_packages():
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "setup_sample_sets.sh"
    pkgs = next(ln for ln in script.read_text().splitlines() if ln.startswith("PKGS=")).split('"')[1].split()
    assert "flite" in pkgs
    done = subprocess.run(["bash", str(script), "flite", "no-such-package"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown package 'no-such-package'" in done.stderr  # before apt runs
