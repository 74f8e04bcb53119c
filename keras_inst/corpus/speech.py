"""Spoken vocals for the corpus: phrases of speech over a song, by the flite speech synthesiser.

Real produced songs carry spoken words (intros, spoken verses, rap, samples of talk), and the
taxonomy gives speech the *voice* family but not *singer* (:mod:`keras_inst.taxonomy.tables`).
The corpus had none: its only voices are the sung-vowel singer and GM choirs, and the model gave
real speech a voice probability of 0.07 (the real_dev probe's two speech clips). No recorded
speech is reachable from the project's registries; Debian's ``flite`` (CMU, 28 MB with its
voices) synthesises it from real speakers' data: ``kal16`` (a male diphone voice: concatenated
recordings) and ``awb``, ``rms``, ``slt`` (Scottish male, US male, US female; statistical
parametric voices). A speaker is drawn per stem (voice, mean pitch, pitch range, speaking rate,
delivery), phrases of a few words from :data:`WORDS` are spoken with pauses over one section of
the song (or all of it), and the stem is labelled voice only (GM 52, the taxonomy's voice-only
program). What was drawn goes into the stem's metadata.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SPEECH_PROGRAM = 52  # voice, not singer (keras_inst.taxonomy.tables): speech as a choir is
VOICES = ("kal16", "awb", "rms", "slt")  # flite's 16 kHz voices (kal is 8 kHz, awb_time a clock)
_LOW_VOICES = ("kal16", "awb", "rms")  # male speakers: mean pitch 85-150 Hz
_NO_PITCH_CONTROL = ("rms",)  # flite's rms voice ignores the f0 targets (measured)
FLITE_RATE = 16000  # Hz, what the four voices produce
NO_FLITE = "spoken vocals need flite (apt-get install flite; scripts/setup_sample_sets.sh)"
SECONDS_PER_WORD = 0.3  # a failed phrase's stand-in pause per word (flite at stretch 1: ~3 syllables/s)
# A small lyric vocabulary: sentences built from it have the rhythm and stress of talk.
_NOUNS = ("night", "city", "river", "morning", "fire", "heart", "road", "light", "summer", "rain", "money",
          "music", "people", "window", "radio", "story", "weekend", "dream", "corner", "phone", "party",
          "friend", "mother", "brother", "winter", "beat", "crowd", "street", "train", "time")
_VERBS = ("walked", "talked", "remember", "told", "wanted", "called", "moved", "saw", "know", "feel",
          "keep", "take", "bring", "left", "found", "turned", "running", "waiting", "dancing", "driving")
_ADJS = ("young", "cold", "golden", "late", "quiet", "loud", "little", "electric", "empty", "new", "old",
         "bright", "heavy", "slow", "crazy", "beautiful", "broken", "easy")
_FUNC = ("and", "but", "so", "then", "because", "when", "until", "maybe", "yeah", "okay", "listen", "now")
_PRONOUNS = ("I", "you", "we", "they", "she", "he", "nobody", "everybody")
_PREPS = ("through", "into", "under", "across", "around", "over", "down", "up")
WORDS = (*_NOUNS, *_VERBS, *_ADJS, *_FUNC, *_PRONOUNS, *_PREPS)


@dataclass(frozen=True)
class Speaker:
    """What one spoken stem is drawn with (recorded in its metadata)."""

    voice: str  # one of VOICES
    f0_hz: float  # mean pitch target (ignored by rms)
    f0_range_hz: float  # pitch standard deviation target: monotone to lively
    stretch: float  # duration stretch: < 1 faster than the voice's default
    delivery: str  # "spoken" (phrases with pauses) or "rap" (dense, fast, short gaps)


@functools.cache
def flite() -> str | None:
    """Path of the flite binary (Debian ``flite``; scripts/setup_sample_sets.sh), or None."""
    return shutil.which("flite")


@functools.cache
def flite_version() -> str:
    """flite's version line (part of a corpus's identity), '' when not installed."""
    exe = flite()
    if exe is None:
        return ""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    return next((ln.strip() for ln in out.splitlines() if "version" in ln), out.strip())


def draw_speaker(rng: np.random.Generator) -> Speaker:
    """A speaker over musically plausible ranges: male voices at 85-150 Hz (a third raised to
    160-230 Hz), the female one at 150-240 Hz; speaking rate 0.75-1.3x; a quarter rap."""
    voice = VOICES[int(rng.integers(len(VOICES)))]
    if voice in _LOW_VOICES:
        f0 = rng.uniform(160.0, 230.0) if rng.random() < 1 / 3 else rng.uniform(85.0, 150.0)
    else:
        f0 = rng.uniform(150.0, 240.0)
    rap = rng.random() < 0.25
    stretch = rng.uniform(0.75, 0.95) if rap else rng.uniform(0.85, 1.3)
    return Speaker(voice, round(float(f0), 1), round(float(rng.uniform(5.0, 40.0)), 1), round(float(stretch), 3),
                   "rap" if rap else "spoken")


def sentence(rng: np.random.Generator) -> str:
    """A phrase of 2-12 words in one of a few clause shapes (pronoun verb ... noun); a phrase cut
    after an article loses it."""
    def pick(words: tuple[str, ...]) -> str:
        return words[int(rng.integers(len(words)))]

    clause = [pick(_PRONOUNS), pick(_VERBS), "the", pick(_ADJS), pick(_NOUNS)]
    if rng.random() < 0.6:
        clause += [pick(_PREPS), "the", pick(_NOUNS)]
    if rng.random() < 0.4:
        clause = [pick(_FUNC), *clause]
    words = clause[: int(rng.integers(3, len(clause) + 1))]
    while words[-1] == "the":  # a cut phrase does not end on its article
        words.pop()
    return " ".join(words)


def say(text: str, speaker: Speaker, *, workdir: Path) -> np.ndarray:
    """One phrase by flite -> mono float64 [n] at :data:`FLITE_RATE`; ValueError when flite is
    missing, fails, hangs (60 s) or cannot run (naming the phrase)."""
    import soundfile as sf

    exe = flite()
    if exe is None:
        raise ValueError(NO_FLITE)
    out = workdir / "phrase.wav"
    cmd = [exe, "-voice", speaker.voice, "--setf", f"duration_stretch={speaker.stretch}"]
    if speaker.voice not in _NO_PITCH_CONTROL:
        cmd += ["--setf", f"int_f0_target_mean={speaker.f0_hz}", "--setf", f"int_f0_target_stddev={speaker.f0_range_hz}"]
    out.unlink(missing_ok=True)  # a failed call must not leave the previous phrase to be read
    try:
        done = subprocess.run([*cmd, "-t", text, "-o", str(out)], capture_output=True, text=True, timeout=60)
    except (subprocess.TimeoutExpired, OSError) as e:  # a hung or unrunnable flite: this phrase fails, not the render
        raise ValueError(f"flite failed on {text!r} (voice {speaker.voice}): {e}") from e
    if done.returncode != 0 or not out.is_file():
        raise ValueError(f"flite failed on {text!r} (voice {speaker.voice}): {done.stderr.strip()[:200]}")
    audio, rate = sf.read(out, dtype="float64")
    if rate != FLITE_RATE:
        raise ValueError(f"flite voice {speaker.voice} wrote {rate} Hz, expected {FLITE_RATE}")
    return audio


def _gap(rng: np.random.Generator, who: Speaker) -> float:
    """The pause after a phrase, in seconds: short in rap, a breath or more when spoken."""
    return float(rng.uniform(0.05, 0.35) if who.delivery == "rap" else rng.uniform(0.3, 1.5))


def section(rng: np.random.Generator, seconds: float) -> tuple[float, float]:
    """Where the speech goes: the whole song half the time, else one section of 30-70 % of it."""
    if rng.random() < 0.5 or seconds < 8.0:
        return 0.0, seconds
    length = rng.uniform(0.3, 0.7) * seconds
    start = rng.uniform(0.0, seconds - length)
    return float(start), float(start + length)


def speak(
    *, sample_rate: int, n_samples: int, seed: int, speaker: Speaker | None = None,
) -> tuple[np.ndarray, list[tuple[float, float]], dict]:
    """A spoken stem -> (mono float32 [n_samples], phrase spans [(onset s, duration s)], details).

    Phrases are spoken one after another from the start of the drawn :func:`section` with pauses
    (0.3-1.5 s spoken, 0.05-0.35 s rap), each at its own level (+-3 dB), until the section ends;
    deterministic for ``seed``. ``details`` (for the metadata): the speaker, the section, the
    number of phrases and the first phrase's words, and ``failed_phrases`` / ``first_failure``
    when flite failed on some: such a phrase is left out as a pause of its estimated length
    (:data:`SECONDS_PER_WORD` per word), so one bad phrase costs a phrase, not the song. flite
    failing on every phrase (unusable) raises ValueError, which the render reports for the track.
    """
    from keras_inst.corpus.dsp import resample

    if flite() is None:
        raise ValueError(NO_FLITE)
    rng = np.random.default_rng([seed, 0x5B])
    who = speaker or draw_speaker(rng)
    start, end = section(rng, n_samples / sample_rate)
    out = np.zeros(n_samples, dtype=np.float64)
    spans: list[tuple[float, float]] = []
    first_words, failures = "", []
    t = start + rng.uniform(0.0, 1.0)
    with tempfile.TemporaryDirectory(prefix="keras_inst_speech_") as tmp:
        while t < end - 0.5:
            text = sentence(rng)
            try:
                x = say(text, who, workdir=Path(tmp))
            except ValueError as e:
                failures.append(str(e))
                t += len(text.split()) * SECONDS_PER_WORD * who.stretch + _gap(rng, who)
                continue
            x = resample(x, FLITE_RATE, sample_rate)
            a = int(round(t * sample_rate))
            n = min(len(x), int(round(end * sample_rate)) - a, n_samples - a)
            if n <= 0:
                break
            fade = np.minimum(1.0, (n - np.arange(n)) / (0.02 * sample_rate))  # no click where the section cuts
            out[a : a + n] += x[:n] * fade * 10 ** (rng.uniform(-3.0, 3.0) / 20)
            spans.append((round(t, 3), round(n / sample_rate, 3)))
            first_words = first_words or text
            t += n / sample_rate + _gap(rng, who)
    if failures and not spans:
        raise ValueError(f"spoken vocals: flite failed on all {len(failures)} phrases; the first: {failures[0]}")
    details = {"speaker": {**asdict(who), "engine": "flite"},
               "section_s": [round(start, 3), round(end, 3)], "phrases": len(spans),
               "first_words": first_words}
    if failures:
        details |= {"failed_phrases": len(failures), "first_failure": failures[0][:300]}
    return out.astype(np.float32), spans, details
