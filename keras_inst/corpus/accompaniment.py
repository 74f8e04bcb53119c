"""Generated accompaniment for the rendered corpus: idiomatic parts from a chord sequence.

Each generator takes a :class:`PartContext` (the excerpt's score parts, its chords from
:func:`keras_inst.corpus.scores.estimate_chords`, metre, tempo, style, tonic and the song's random
generator) and a GM program, and returns notes ``(onset_q, duration_q, key, velocity)`` in
quarter notes: bass on roots per style, walking bass, guitar strums with staggered strings,
arpeggios, piano/organ comping, jazz voicings, sustained pads, drums (:mod:`keras_inst.corpus.drums`).
:data:`GENERATORS` maps each generated role of :data:`keras_inst.corpus.arrange.ROLES` to its generator;
:mod:`keras_inst.corpus.arrange` fits the parts into the instrument's range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_inst.corpus.drums import drum_part
from keras_inst.corpus.scores import DIMINISHED_TRIAD, MAJOR_TRIAD, Chord

NoteQ = tuple[float, float, int, int]  # onset, duration (quarters or seconds), key, velocity


@dataclass
class PartContext:
    """What every generator reads: the excerpt (quarters), its harmony, style and randomness."""

    parts: list[list[tuple[float, float, int]]]
    chords: list[Chord]
    bar_q: float
    beat_q: float
    length_q: float
    spq: float  # quarters per second
    style: str
    tonic: int
    rng: np.random.Generator

    def vel(self, t: float, base: float) -> int:
        """Velocity with metric accents (+8 downbeat, +3 beat) and a little human spread."""
        acc = 8 if _on_grid(t, self.bar_q) else 3 if _on_grid(t, self.beat_q) else 0
        return int(np.clip(round(base + acc + self.rng.normal(0, 4)), 25, 120))


def _on_grid(t: float, step: float) -> bool:
    return abs(t / step - round(t / step)) < 1e-6


def _near(pc: int, lo: int) -> int:
    """Lowest key >= lo with pitch class pc."""
    return lo + (pc - lo) % 12


def _guitar(c: Chord, lo: int = 40, power: bool = False) -> list[int]:
    """Barre-chord voicing: E shape (6 strings) or A shape (5) from the lowest root >= lo."""
    r = _near(c.root, lo)
    third, fifth = c.ivs[1], c.ivs[2]
    if power:
        return [r, r + 7, r + 12]
    shape = [r, r + fifth, r + 12, r + 12 + third, r + 12 + fifth]
    return shape if r - lo >= 5 else shape + [r + 24]


def _close(pcs: list[int], target: float, lo: int = 55, hi: int = 76) -> list[int]:
    """Close voicing of pitch classes in [lo, hi] whose mean is nearest ``target`` (voice leading)."""
    cands = {tuple(sorted(_near(pc, b) for pc in pcs)) for b in range(lo, lo + 12)}
    cands = [c for c in cands if c[-1] <= hi] or sorted(cands)[:1]
    return list(min(cands, key=lambda c: (abs(np.mean(c) - target), c)))


def _bass_roots(ctx: PartContext, program: int) -> list[NoteQ]:
    out, st, b = [], ctx.style, ctx.beat_q
    for i, c in enumerate(ctx.chords):
        r, L = _near(c.root, 31), c.t1 - c.t0
        if st in ("rock", "dance"):
            for k, t in enumerate(np.arange(c.t0, c.t1 - 1e-6, 0.5)):
                key = r + 12 if (st == "dance" and k % 2) else r
                out.append((t, 0.42 if st == "rock" else 0.35, key, ctx.vel(t, 90)))
        elif st == "funk":
            out.append((c.t0, 0.45, r, ctx.vel(c.t0, 100)))
            for t in np.arange(c.t0 + 0.5, c.t1 - 1e-6, 0.25):
                if ctx.rng.random() < 0.3:
                    out.append((t, 0.2, r + int(ctx.rng.choice([0, 12, 7, 10])), ctx.vel(t, 82)))
        elif st in ("pop", "folk"):
            out.append((c.t0, min(L, b) * 0.9, r, ctx.vel(c.t0, 92)))
            if L >= 2 * b:
                out.append((c.t0 + L / 2, b * 0.9, r + int(ctx.rng.choice([0, c.ivs[2]])), ctx.vel(c.t0 + L / 2, 84)))
            if L >= 2 * b and i + 1 < len(ctx.chords) and ctx.rng.random() < 0.35:
                nxt = _near(ctx.chords[i + 1].root, 31)
                out.append((c.t1 - 0.5, 0.45, nxt + int(ctx.rng.choice([-2, 2, -1])), ctx.vel(c.t1 - 0.5, 78)))
        else:  # classical: one sustained root per chord
            out.append((c.t0, L * 0.95, r, ctx.vel(c.t0, 86)))
    return out


def _bass_walk(ctx: PartContext, program: int) -> list[NoteQ]:
    out, prev = [], 36
    for i, c in enumerate(ctx.chords):
        beats = list(np.arange(c.t0, c.t1 - 1e-6, ctx.beat_q))
        nxt = ctx.chords[i + 1].root if i + 1 < len(ctx.chords) else c.root
        tones = [k for k in range(28, 51) if (k - c.root) % 12 in c.ivs and k != prev]
        for j, t in enumerate(beats):
            if j == 0:
                key = min((k for k in range(28, 51) if k % 12 == c.root), key=lambda k: abs(k - prev))
            elif j == len(beats) - 1:  # chromatic approach to the next root
                target = min((k for k in range(29, 50) if k % 12 == nxt), key=lambda k: abs(k - prev))
                key = target + int(ctx.rng.choice([-1, 1]))
            else:
                near = sorted(tones, key=lambda k: abs(k - prev))[:3]
                key = int(ctx.rng.choice(near))
            out.append((t, ctx.beat_q * 0.9, key, ctx.vel(t, 88)))
            prev = key
    return out


def _strum(ctx: PartContext, program: int) -> list[NoteQ]:
    out, stag = [], 0.012 * ctx.spq  # 12 ms between strings
    funk, power = ctx.style == "funk" or program == 28, program in (29, 30)
    for c in ctx.chords:
        if funk:  # muted sixteenth stabs on the top strings
            voice = _guitar(c, lo=50)[-4:]
            hits = [t for k, t in enumerate(np.arange(c.t0, c.t1 - 1e-6, 0.25)) if k == 0 or ctx.rng.random() < 0.35]
            strums = [(t, 0.15, voice, True) for t in hits]
        elif power or ctx.style == "rock":  # driving eighths, palm-muted length
            voice = _guitar(c, power=power)
            strums = [(t, 0.45, voice, True) for t in np.arange(c.t0, c.t1 - 1e-6, 0.5)]
        else:  # down on the beats, up on some off-beats; strings ring to the next strum
            voice, times = _guitar(c), []
            for k, t in enumerate(np.arange(c.t0, c.t1 - 1e-6, 0.5)):
                down = _on_grid(t, ctx.beat_q)
                if k == 0 or ctx.rng.random() < (0.75 if down else 0.55):
                    times.append((t, down))
            ends = [t for t, _ in times[1:]] + [c.t1]
            strums = [(t, e - t, voice if down else voice[-3:], down) for (t, down), e in zip(times, ends, strict=True)]
        for t, dur, keys, down in strums:
            order = keys if down else keys[::-1]
            base = 88 if down else 72
            for j, k in enumerate(order):
                out.append((t + j * stag, max(0.05, dur - j * stag), k, ctx.vel(t, base - 2 * j)))
    return out


def _arp(ctx: PartContext, program: int) -> list[NoteQ]:
    out, guitar = [], 24 <= program <= 31
    pattern = (0, 3, 2, 4, 1, 3, 2, 4) if guitar else (0, 2, 1, 2)
    for c in ctx.chords:
        if guitar:
            voice = _guitar(c)
        else:  # piano: held bass note + Alberti figure on a close triad
            out.append((c.t0, (c.t1 - c.t0) * 0.95, _near(c.root, 36), ctx.vel(c.t0, 80)))
            voice = _close([(c.root + iv) % 12 for iv in c.ivs], 64)
        for k, t in enumerate(np.arange(c.t0, c.t1 - 1e-6, 0.5)):
            key = voice[pattern[k % len(pattern)] % len(voice)]
            out.append((t, 1.0 if guitar else 0.45, key, ctx.vel(t, 74)))
    return out


def _comp(ctx: PartContext, program: int) -> list[NoteQ]:
    out, prev, b, st = [], 64.0, ctx.beat_q, ctx.style
    organ = 16 <= program <= 20
    for c in ctx.chords:
        L = c.t1 - c.t0
        voice = _close([(c.root + iv) % 12 for iv in c.ivs], prev)
        prev = float(np.mean(voice))
        if st not in ("dance", "funk"):
            out.append((c.t0, L * 0.95, _near(c.root, 36), ctx.vel(c.t0, 82)))  # left hand
        if organ:
            hits = [(c.t0, L * 0.98)]
        elif st == "rock":
            hits = [(t, b * 0.5) for t in np.arange(c.t0, c.t1 - 1e-6, b)]
        elif st in ("pop", "folk"):
            hits = [(c.t0, b * 0.9)] + ([(c.t0 + 1.5 * b, b * 0.45)] if L >= 2 * b and ctx.rng.random() < 0.6 else [])
        elif st == "dance":
            hits = [(t, 0.3) for t in np.arange(c.t0 + 0.5, c.t1 - 1e-6, 1.0)]
        elif st == "funk":
            hits = [(t, 0.2) for t in np.arange(c.t0, c.t1 - 1e-6, 0.25) if ctx.rng.random() < 0.3]
        else:  # classical block chords on the beats
            hits = [(t, b * 0.9) for t in np.arange(c.t0, c.t1 - 1e-6, b)]
        out += [(t, d, k, ctx.vel(t, 72)) for t, d in hits for k in voice]
    return out


def _jazz_comp(ctx: PartContext, program: int) -> list[NoteQ]:
    out, prev, b = [], 60.0, ctx.beat_q
    for c in ctx.chords:
        deg = (c.root - ctx.tonic) % 12
        seventh = 9 if c.ivs == DIMINISHED_TRIAD else 11 if (c.ivs == MAJOR_TRIAD and deg in (0, 5)) else 10
        voice = _close([(c.root + c.ivs[1]) % 12, (c.root + seventh) % 12, (c.root + 2) % 12], prev, 50, 70)
        prev = float(np.mean(voice))
        pattern = [(0.0,), (0.0, 1.5), (0.5,), (1.5,)][int(ctx.rng.integers(4))]
        for off in pattern:
            if c.t0 + off * b < c.t1 - 1e-6:
                dur = float(ctx.rng.uniform(0.4, 0.9))
                out += [(c.t0 + off * b, dur, k, ctx.vel(c.t0 + off * b, 64)) for k in voice]
    return out


def _pad(ctx: PartContext, program: int) -> list[NoteQ]:
    held: dict[int, list] = {}  # key -> note being held across chords with that key
    out = []
    for c in ctx.chords:
        r = _near(c.root, 48)
        keys = {r, r + c.ivs[2], r + 12 + c.ivs[1], r + 12 + c.ivs[2]}
        for k in list(held):
            if k not in keys:
                out.append(tuple(held.pop(k)))
        for k in sorted(keys):
            if k in held:
                held[k][1] = c.t1 - held[k][0]  # tie into the next chord
            else:
                held[k] = [c.t0, c.t1 - c.t0, k, ctx.vel(c.t0, 70)]
    return out + [tuple(n) for n in held.values()]


def _drums(ctx: PartContext, program: int) -> list[NoteQ]:
    if ctx.style == "classical":
        return []
    n_bars = math.ceil(ctx.length_q / ctx.bar_q - 1e-6)
    return drum_part(ctx.style, start_q=0.0, n_bars=n_bars, bar_q=ctx.bar_q, beat_q=ctx.beat_q, rng=ctx.rng)


GENERATORS: dict[str, Callable[[PartContext, int], list[NoteQ]]] = {
    "bass_roots": _bass_roots, "bass_walk": _bass_walk, "strum": _strum, "arp": _arp,
    "comp": _comp, "jazz_comp": _jazz_comp, "pad": _pad, "drums": _drums,
}
