"""A plain multi-sample player for folders of recorded notes (npm's Salamander Grand Piano).

The ``@audio-samples/piano-velocity<N>`` packages hold one velocity layer ``N`` (1..16) of the
Salamander Grand Piano V3 each, one OGG per minor third named ``<note><octave>v<N>.ogg``
(``D#4v12.ogg``; C4 = MIDI 60). :func:`load_layers` indexes the installed layers;
:func:`render_notes` plays each note from the layer nearest its velocity (layer ``N`` stands for
MIDI velocity ``8 N``) and the sample nearest its key, shifted by linear-interpolation
resampling (at most 1.5 semitones), scaled by ``velocity / layer velocity``, and damped over
``RELEASE_S`` after the note-off (the packages hold no release samples).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_inst.corpus.gains import band_gain_db

RELEASE_S = 0.25
MAX_SAMPLE_S = 8.0  # a held piano note has decayed by 40+ dB by then; keeps memory small
_NAME = re.compile(r"^([A-G]#?)(-?\d)v(\d+)\.(ogg|flac|wav)$")
_PC = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8, "A": 9, "A#": 10, "B": 11}


@lru_cache(maxsize=4)
def load_layers(root: str) -> dict[int, dict[int, Path]]:
    """{layer velocity (MIDI, 8 N): {MIDI key: sample file}} of ``root/*/audio/*`` (or ``root/*``)."""
    layers: dict[int, dict[int, Path]] = {}
    for f in sorted(Path(root).glob("**/*")):
        m = _NAME.match(f.name)
        if m and f.is_file():
            key = 12 * (int(m.group(2)) + 1) + _PC[m.group(1)]
            layers.setdefault(min(127, 8 * int(m.group(3))), {})[key] = f
    return layers


@lru_cache(maxsize=256)
def _sample(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 [n] at ``sample_rate``, cut at MAX_SAMPLE_S; read once per process."""
    import soundfile as sf

    from keras_inst.corpus.dsp import resample

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [n, channels]
    x = x.mean(axis=1)[: int(MAX_SAMPLE_S * sr)]
    return resample(x, sr, sample_rate).astype(np.float32, copy=False)


def render_notes(
    notes: list[tuple[float, float, int, int]],
    *,
    root: str,
    sample_rate: int,
    n_samples: int,
    velocity_gains: tuple[tuple[int, float], ...] = (),
) -> np.ndarray:
    """Play (onset_s, duration_s, key, velocity) notes -> mono float32 [n_samples]."""
    layers = load_layers(root)
    if not layers:
        raise ValueError(f"{root}: no samples named like 'D#4v12.ogg'")
    out = np.zeros(n_samples, dtype=np.float32)
    release = int(RELEASE_S * sample_rate)
    for on, dur, key, vel in notes:
        a = int(round(on * sample_rate))
        if a >= n_samples:
            continue
        layer_vel = min(layers, key=lambda v: (abs(v - vel), v))
        base = min(layers[layer_vel], key=lambda k: (abs(k - key), k))
        x = _sample(layers[layer_vel][base], sample_rate)
        ratio = 2 ** ((key - base) / 12)  # read the sample this much faster
        held = int(round(dur * sample_rate))
        n = min(n_samples - a, held + release, int(len(x) / ratio))
        y = np.interp(np.arange(n) * ratio, np.arange(len(x)), x).astype(np.float32)
        if n > held:  # dampers: cosine fade over the release
            y[held:] *= 0.5 * (1 + np.cos(np.pi * np.arange(n - held) / release)).astype(np.float32)
        out[a : a + n] += (vel / layer_vel) * 10 ** (band_gain_db(vel, velocity_gains) / 20) * y
    return out
