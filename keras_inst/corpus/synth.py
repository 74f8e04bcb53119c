"""General-MIDI synthesis of one part and BS.1770 loudness, for the rendered corpus.

:func:`synthesize` renders ``(onset_s, duration_s, key, velocity)`` notes on one GM program
of a SoundFont (tinysoundfont; default TimGM6mb as bundled with pretty_midi) to mono audio;
:func:`integrated_loudness` measures ITU-R BS.1770-4 gated loudness, by which
:mod:`keras_inst.corpus.render` normalises each stem like Slakh does (SoundFont presets differ in
level by more than 6 dB at one velocity).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_inst.augment.params import k_weighting


def default_soundfont() -> Path:
    """TimGM6mb.sf2 as bundled in pretty_midi's package folder."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


@lru_cache(maxsize=2)
def soundfont_bytes(path: str) -> bytes:
    """The SoundFont file's bytes, read once per process (every stem loads it afresh)."""
    return Path(path).read_bytes()


@lru_cache(maxsize=4)
def _synth(path: str, sample_rate: int):
    """One tinysoundfont synthesizer per SoundFont and rate, loaded once per process.

    Loading FluidR3 takes ~2.4 s; every stem resets the channels it used (all sounds off, all
    controllers reset), which leaves no state behind: a reused synth renders bit-identically to a
    fresh one (tests/corpus/test_synth.py).
    """
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    return synth, synth.sfload(soundfont_bytes(path))


def _play(synth, sfid: int, chan_preset: tuple[int, int, bool], notes: list, sample_rate: int, n_samples: int) -> np.ndarray:
    """Play notes on channel 0 of the cached synth -> stereo float32 [n, 2]; leaves it silent."""
    bank, prog, drum = chan_preset
    synth.program_select(0, sfid, bank, prog, is_drums=drum)
    events = []
    for on, dur, key, vel in notes:
        a = int(round(on * sample_rate))
        b = max(a + 1, int(round((on + dur) * sample_rate)))
        events += [(a, 1, key, vel), (b, 0, key, 0)]
    events.sort(key=lambda e: (e[0], e[1], e[2]))  # note-offs before note-ons at one sample
    buf = memoryview(bytearray(n_samples * 8))  # interleaved stereo float32
    pos = 0
    try:
        for sample, is_on, key, vel in events:
            sample = min(sample, n_samples)
            if sample > pos:
                synth.generate_simple(sample - pos, buffer=buf[pos * 8 : sample * 8])
                pos = sample
            if is_on:
                synth.noteon(0, key, vel)
            else:
                synth.noteoff(0, key)
        if pos < n_samples:
            synth.generate_simple(n_samples - pos, buffer=buf[pos * 8 :])
    finally:
        # sounds_off still fades voices out over ~10 ms: render that away so the next stem
        # starts from silence (a reused synth then matches a fresh one bit for bit)
        synth.sounds_off(0)
        synth.control_change(0, 121, 0)
        synth.generate_simple(int(0.1 * sample_rate))
    return np.frombuffer(buf, dtype=np.float32).reshape(-1, 2)


def synthesize(
    notes: list[tuple[float, float, int, int]],
    *,
    program: int,
    soundfont: str | Path,
    sample_rate: int,
    n_samples: int,
    preset: tuple[int, int] | None = None,
    velocity_gains: tuple[tuple[int, float], ...] = (),
    key_gains: tuple[tuple[int, float], ...] = (),
) -> tuple[np.ndarray, str]:
    """Render (onset_s, duration_s, key, velocity) notes on one GM program -> (mono float32 [n], preset).

    ``preset`` = (bank, preset) overrides the GM choice (a drum kit stored as a melodic preset);
    ``velocity_gains`` = ((max_velocity, gain_db), ...) ascending renders each velocity band in its
    own pass and scales it by gain_db (the measured level correction of this preset);
    ``key_gains`` = ((drum key, gain_db), ...) likewise corrects a drum kit's balance.
    """
    synth, sfid = _synth(str(soundfont), sample_rate)
    drum = program == 128 and preset is None
    bank, prog = preset if preset is not None else ((128, 0) if drum else (0, program))
    name = synth.sfpreset_name(sfid, bank, prog)
    if not name:
        raise ValueError(f"soundfont {soundfont}: no preset {bank}:{prog} for GM program {program}")
    from keras_inst.corpus.gains import split_gains

    chan = (0, 0, True) if drum else (bank, prog, False)
    out = np.zeros((n_samples, 2), dtype=np.float32)
    for gain_db, part in split_gains(notes, velocity_gains, key_gains):
        out += np.float32(10 ** (gain_db / 20)) * _play(synth, sfid, chan, part, sample_rate, n_samples)
    return out.mean(axis=1).astype(np.float32), name


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770-4 gated integrated loudness (LUFS) of mono audio; -inf when silent."""
    from scipy.signal import lfilter

    y = np.asarray(x, dtype=np.float64)
    for b, a in k_weighting(sample_rate):
        y = lfilter(b, a, y)
    block, hop = int(0.4 * sample_rate), int(0.1 * sample_rate)
    c = np.concatenate([[0.0], np.cumsum(y * y)])
    starts = np.arange(0, max(1, len(y) - block + 1), hop)
    z = (c[np.minimum(starts + block, len(y))] - c[starts]) / min(block, len(y))  # mean square per block
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10 * np.log10(z)
    z = z[lk > -70.0]
    if z.size == 0:
        return float("-inf")
    rel = -0.691 + 10 * np.log10(z.mean()) - 10.0
    with np.errstate(divide="ignore"):
        z = z[-0.691 + 10 * np.log10(z) > rel]
    return float(-0.691 + 10 * np.log10(z.mean()))

