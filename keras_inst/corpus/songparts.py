"""Parts of the generated songs: per-style bass lines, guitars, keys, pads, arpeggios, leads,
riffs, horn stabs, drums and a sung melody, written over a song's chords and sections.

Every writer takes a :class:`SongContext` (chords and sections in quarter notes, metre, style,
key, the song's random generator) and a GM program, and returns notes ``(onset_q, duration_q,
key, velocity)`` for the WHOLE form; :mod:`keras_inst.corpus.songwriter` keeps the sections each
stem plays in. Patterns (strums, riffs, melody rhythms) are drawn once per song or per section
name and repeated, as in produced songs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_inst.corpus.accompaniment import NoteQ
from keras_inst.corpus.arrange import program_range
from keras_inst.corpus.drums import drum_part
from keras_inst.corpus.songstyles import STYLES, VOCAL_RANGE

_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_STRUMS = ("D.DU.UDU", "D.D.DUDU", "D.DUDUDU", "D..UD.DU")  # eighths of a 4/4 bar


@dataclass(frozen=True)
class SongChord:
    t0: float  # quarters
    t1: float
    root: int  # pitch class
    ivs: tuple[int, ...]  # intervals above the root (may exceed an octave: 9ths, 13ths)
    symbol: str  # Roman numeral of the style table


@dataclass(frozen=True)
class Section:
    name: str
    t0: float  # quarters
    t1: float


@dataclass
class SongContext:
    chords: list[SongChord]
    sections: list[Section]
    bar_q: float
    beat_q: float
    style: str
    tonic: int
    mode: str  # major | minor
    rng: np.random.Generator

    def vel(self, t: float, base: float) -> int:
        """Velocity with metric accents (+8 downbeat, +3 beat) and a little human spread."""
        acc = 8 if _on(t, self.bar_q) else 3 if _on(t, self.beat_q) else 0
        return int(np.clip(round(base + acc + self.rng.normal(0, 4)), 25, 120))

    def chord_at(self, t: float) -> SongChord:
        return next((c for c in self.chords if c.t0 <= t + 1e-6 < c.t1), self.chords[-1])

    @property
    def idiom(self) -> str:
        """How the parts are written: the style's own name, or the style it borrows them from."""
        return STYLES[self.style].idiom or self.style

    def scale(self) -> set[int]:
        return {(self.tonic + d) % 12 for d in _SCALES[self.mode]}


def _on(t: float, step: float) -> bool:
    return abs(t / step - round(t / step)) < 1e-6


def _near(pc: int, lo: int) -> int:
    """Lowest key >= lo with pitch class pc."""
    return lo + (pc - lo) % 12


def _pcs(c: SongChord) -> list[int]:
    return [(c.root + iv) % 12 for iv in c.ivs]


def _voicing(c: SongChord, target: float, n: int = 4) -> list[int]:
    """Close voicing of the chord's upper tones (root left out when it has >= 4) near ``target``."""
    pcs = _pcs(c)[1:] if len(c.ivs) >= 4 else _pcs(c)
    pcs = pcs[:n]
    cands = [sorted(_near(pc, b) for pc in pcs) for b in range(int(target) - 8, int(target) + 4)]
    return min(cands, key=lambda v: (abs(float(np.mean(v)) - target), v[-1] - v[0]))


def _grid(c: SongChord, step: float) -> np.ndarray:
    return np.arange(c.t0, c.t1 - 1e-6, step)


# ---------------------------------------------------------------------------------------------
# Bass


def _walk_step(cur: int, target: int, pcs: set[int], rng: np.random.Generator) -> int:
    """The next walking-bass note: a scale or chord tone 1-3 semitones from ``cur`` toward ``target``."""
    d = int(np.sign(target - cur)) or int(rng.choice([-1, 1]))
    if not 30 <= cur + 3 * d <= 52:
        d = -d
    cands = [cur + d * s for s in (1, 2, 3) if (cur + d * s) % 12 in pcs]
    return cands[0] if len(cands) == 1 or rng.random() < 0.7 else cands[1] if cands else cur + 2 * d


def _bass_walk(ctx: SongContext) -> list[NoteQ]:
    out, prev = [], None
    for i, c in enumerate(ctx.chords):
        root = _near(c.root, 33) if prev is None else min(
            (k for k in range(31, 51) if k % 12 == c.root), key=lambda k: abs(k - prev))
        nxt = ctx.chords[(i + 1) % len(ctx.chords)].root
        target = min((k for k in range(31, 51) if k % 12 == nxt), key=lambda k: abs(k - root))
        pcs = ctx.scale() | set(_pcs(c))
        keys = [root]
        times = _grid(c, ctx.beat_q)
        for j in range(1, len(times)):
            if j == len(times) - 1:  # chromatic approach into the next root
                side = 1 if keys[-1] > target else -1
                keys.append(target + side if target + side != keys[-1] else target - side)
            else:
                keys.append(_walk_step(keys[-1], target, pcs, ctx.rng))
        out += [(float(t), ctx.beat_q * 0.92, k, ctx.vel(t, 88)) for t, k in zip(times, keys, strict=True)]
        prev = keys[-1]
    return out


def _bass(ctx: SongContext, program: int) -> list[NoteQ]:
    """Root-fifth (pop), driving eighths (rock), offbeat/octave synth bass (electronic),
    syncopated sixteenths (funk), walking quarters (jazz)."""
    st, rng, b = ctx.idiom, ctx.rng, ctx.beat_q
    if st == "jazz":
        return _bass_walk(ctx)
    out: list[NoteQ] = []
    octaves = rng.random() < 0.5
    odd = [int(s) for s in rng.choice([3, 5, 7, 9, 11, 13, 15], 3, replace=False)]
    even = [int(s) for s in rng.choice([2, 4, 6, 8, 10, 12, 14], 2, replace=False)]
    funk = [(0, 0)] + sorted((s, int(rng.choice([0, 12, 7, 10]))) for s in odd + even)  # one bar
    for i, c in enumerate(ctx.chords):
        r, fifth = _near(c.root, 33), 7
        if st == "rock":
            out += [(t, 0.42, r, ctx.vel(t, 92)) for t in _grid(c, 0.5)]
        elif st == "electronic" and octaves:
            out += [(t, 0.4, r + 12 * (k % 2), ctx.vel(t, 96)) for k, t in enumerate(_grid(c, 0.5))]
        elif st == "electronic":  # notes between the kicks: the pump of a side-chained bass
            out += [(t + 0.5, 0.42, r, ctx.vel(t, 100)) for t in _grid(c, b)]
        elif st == "funk":
            bar0 = c.t0 - (c.t0 % ctx.bar_q)
            out += [(bar0 + s / 4, 0.22 if s else 0.45, r + iv, ctx.vel(bar0 + s / 4, 100 if s == 0 else 84))
                    for s, iv in funk if c.t0 - 1e-6 <= bar0 + s / 4 < c.t1 - 1e-6]
        else:  # pop: root, fifth or root on the half bar, approach notes into the next chord
            L = c.t1 - c.t0
            out.append((c.t0, min(L, 2 * b) * 0.9, r, ctx.vel(c.t0, 92)))
            if L >= 3 * b:
                t = c.t0 + 2 * b
                out.append((t, b * 0.9, r + int(rng.choice([0, fifth, 12])), ctx.vel(t, 84)))
            if L >= 4 * b and rng.random() < 0.4:
                nxt = _near(ctx.chords[(i + 1) % len(ctx.chords)].root, 33)
                out.append((c.t1 - 0.5, 0.45, nxt + int(rng.choice([-2, 2, -1])), ctx.vel(c.t1 - 0.5, 78)))
    return out


# ---------------------------------------------------------------------------------------------
# Chords: guitars, keys, pads, arpeggios, horns


def _strum(ctx: SongContext, program: int) -> list[NoteQ]:
    rng, out, stag = ctx.rng, [], 0.02  # ~10 ms between strings at 120 qpm
    pattern = _STRUMS[int(rng.integers(len(_STRUMS)))]
    scratch = [k == 0 or rng.random() < 0.5 for k in range(16)]  # funk sixteenths, one bar
    for c in ctx.chords:
        r = _near(c.root, 40)
        if program in (29, 30):  # power chords, palm-muted eighths
            hits = [(t, 0.45, [r, r + 7, r + 12], True) for t in _grid(c, 0.5)]
        elif program in (27, 28):  # muted sixteenth scratches on the top strings
            voice = _voicing(c, 66, 3)
            hits = [(t, 0.12, voice, k % 2 == 0) for t in _grid(c, 0.25)
                    if scratch[(k := int(round((t % ctx.bar_q) * 4)) % 16)]]
        else:  # open strums, D on the beats and U between, strings ring to the next strum
            full = [r, r + 7, r + 12] + [r + 12 + iv for iv in c.ivs[1:] if iv < 12][:2]
            slots = [t for t in _grid(c, 0.5) if pattern[int(round((t % ctx.bar_q) * 2)) % 8] != "."]
            ends = slots[1:] + [c.t1]
            hits = [(t, e - t, full if _on(t, 1.0) else full[-3:], _on(t, 1.0)) for t, e in zip(slots, ends, strict=True)]
        for t, dur, keys, down in hits:
            for j, k in enumerate(keys if down else keys[::-1]):
                out.append((t + j * stag, max(0.05, dur - j * stag), k, ctx.vel(t, (88 if down else 72) - 2 * j)))
    return out


def _keys(ctx: SongContext, program: int) -> list[NoteQ]:
    """Jazz rootless comping, funk clavinet sixteenths, organ pads (rock), offbeat synth stabs
    (electronic), pop piano: left-hand root and right-hand chords."""
    rng, b, st, out = ctx.rng, ctx.beat_q, ctx.idiom, []
    pattern = [(0.0,), (0.0, 1.5), (1.5,), (0.5, 2.5)] if st == "jazz" else [(0.0, 2.0), (0.0, 1.5, 2.0, 3.5)]
    clav = [k == 0 or rng.random() < 0.45 for k in range(16)]
    pop_hits = pattern[int(rng.integers(len(pattern)))]
    for c in ctx.chords:
        L = c.t1 - c.t0
        if st == "jazz":
            voice = _voicing(c, 62, 3)
            hits = [(c.t0 + o * b, float(rng.uniform(0.4, 0.9))) for o in pattern[int(rng.integers(4))] if o * b < L - 1e-6]
        elif st == "funk" and program == 7:
            voice = _voicing(c, 67, 3)
            hits = [(t, 0.15) for t in _grid(c, 0.25) if clav[int(round((t % ctx.bar_q) * 4)) % 16]]
        elif st == "funk":
            voice, hits = _voicing(c, 64), [(t, 0.6) for t in _grid(c, 2 * b) + 1.5 * b if t < c.t1 - 1e-6]
        elif st == "rock":
            voice, hits = _voicing(c, 62) + [_near(c.root, 43)], [(c.t0, L * 0.98)]
        elif st == "electronic":
            voice, hits = _voicing(c, 67), [(t + 0.5, 0.25) for t in _grid(c, b)]
        else:
            voice = _voicing(c, 65)
            out.append((c.t0, L * 0.95, _near(c.root, 36), ctx.vel(c.t0, 82)))
            hits = [(c.t0 + o, b * 0.9 if o == int(o) else 0.45) for o in pop_hits if o < L - 1e-6]
        out += [(t, d, k, ctx.vel(t, 70)) for t, d in hits for k in voice]
    return out


def _pad(ctx: SongContext, program: int) -> list[NoteQ]:
    held: dict[int, list] = {}  # key -> note held across chords that share it
    out = []
    for c in ctx.chords:
        keys = set(_voicing(c, 62)) | {_near(c.root, 48)}
        for k in [k for k in held if k not in keys]:
            out.append(tuple(held.pop(k)))
        for k in sorted(keys):
            if k in held:
                held[k][1] = c.t1 - held[k][0]
            else:
                held[k] = [c.t0, c.t1 - c.t0, k, ctx.vel(c.t0, 66)]
    return out + [tuple(n) for n in held.values()]


def _arp(ctx: SongContext, program: int) -> list[NoteQ]:
    orders = ((0, 1, 2, 3), (0, 1, 2, 3, 2, 1), (0, 2, 1, 3), (3, 2, 1, 0))
    order = orders[int(ctx.rng.integers(len(orders)))]
    out = []
    for c in ctx.chords:
        tones = sorted(_near(pc, 60) for pc in _pcs(c)[:3])
        tones = (tones + [tones[0] + 12])[:4]
        out += [(t, 0.22, tones[order[k % len(order)]], ctx.vel(t, 74)) for k, t in enumerate(_grid(c, 0.25))]
    return out


def _horns(ctx: SongContext, program: int) -> list[NoteQ]:
    """Section stabs on off-beats (a one-bar pattern drawn per song)."""
    slots = sorted({0.0} | {float(s) / 4 for s in ctx.rng.choice([3, 6, 10, 11, 14], 2, replace=False)})
    out = []
    for c in ctx.chords:
        voice = _voicing(c, 68, 3)
        bar0 = c.t0 - (c.t0 % ctx.bar_q)
        out += [(bar0 + s, 0.3, k, ctx.vel(bar0 + s, 90)) for s in slots
                if c.t0 - 1e-6 <= bar0 + s < c.t1 - 1e-6 for k in voice]
    return out


# ---------------------------------------------------------------------------------------------
# Lines: sung melody, leads, riffs


def _rhythm(ctx: SongContext, density: float, sub: float) -> list[tuple[float, float]]:
    """A two-bar rhythm (offset, duration) that ends a beat early: room to breathe."""
    span = 2 * ctx.bar_q - 2 * ctx.beat_q
    ons = [float(t) for t in np.arange(0.0, span - 1e-6, sub)
           if ctx.rng.random() < (0.85 if _on(t, 2 * ctx.beat_q) else 0.6 if _on(t, ctx.beat_q) else density)]
    ons = ons or [0.0]
    ends = ons[1:] + [min(span + ctx.beat_q, ons[-1] + 2 * ctx.beat_q)]
    return [(t, min(e - t, 2 * ctx.beat_q)) for t, e in zip(ons, ends, strict=True)]


def melody(ctx: SongContext, lo: int, hi: int, *, density: float, sub: float = 0.5) -> list[NoteQ]:
    """A line in [lo, hi]: chord tones on the strong beats (1 and 3), scale steps between, one
    rhythm per section name repeated every two bars."""
    scale, rhythms, prev, out = ctx.scale(), {}, (lo + hi) // 2, []
    strong_step = 2 * ctx.beat_q if round(ctx.bar_q / ctx.beat_q) % 2 == 0 else ctx.bar_q
    for sec in ctx.sections:
        rhythm = rhythms.setdefault(sec.name, _rhythm(ctx, density, sub))
        for p0 in np.arange(sec.t0, sec.t1 - 1e-6, 2 * ctx.bar_q):
            for off, dur in rhythm:
                t = float(p0 + off)
                if t >= sec.t1 - 1e-6:
                    break
                if _on(t - sec.t0, strong_step):
                    pcs = set(_pcs(ctx.chord_at(t)))
                    cands = sorted((k for k in range(lo, hi + 1) if k % 12 in pcs), key=lambda k: abs(k - prev))[:2]
                else:
                    pull = 1 if prev < (lo + hi) / 2 else -1  # drift back toward the middle
                    cands = [k for k in range(prev - 4, prev + 5) if lo <= k <= hi and k % 12 in scale
                             and k != prev and (k - prev) * pull >= -2]
                prev = int(ctx.rng.choice(cands)) if cands else prev
                out.append((t, dur * 0.92, prev, ctx.vel(t, 84)))
    return out


def _vocal(ctx: SongContext, program: int) -> list[NoteQ]:
    return melody(ctx, *VOCAL_RANGE, density=0.45)


def _lead(ctx: SongContext, program: int) -> list[NoteQ]:
    lo, hi = program_range(program)
    mid = (lo + hi) // 2 + (4 if ctx.idiom == "electronic" else 0)
    sub = 0.25 if ctx.idiom == "electronic" else 0.5
    return melody(ctx, max(lo, mid - 9), min(hi, mid + 9), density=0.55, sub=sub)


def _riff(ctx: SongContext, program: int) -> list[NoteQ]:
    """A one-bar minor-pentatonic riff on eighths, moved to each chord's root."""
    steps = int(round(ctx.bar_q * 2))
    riff = [(s / 2, int(ctx.rng.choice([0, 3, 5, 7, 10, 12]))) for s in range(steps)
            if s == 0 or ctx.rng.random() < 0.7]
    out = []
    for c in ctx.chords:
        bar0, r = c.t0 - (c.t0 % ctx.bar_q), _near(c.root, 45)
        out += [(bar0 + o, 0.45, r + iv, ctx.vel(bar0 + o, 92)) for o, iv in riff if c.t0 - 1e-6 <= bar0 + o < c.t1 - 1e-6]
    return out


def _drums(ctx: SongContext, program: int) -> list[NoteQ]:
    """The style's groove per section (a crash where each section starts, fills before)."""
    drum_style = STYLES[ctx.style].drum_style
    out: list[NoteQ] = []
    for sec in ctx.sections:
        n_bars = int(round((sec.t1 - sec.t0) / ctx.bar_q))
        out += drum_part(drum_style, start_q=sec.t0, n_bars=n_bars, bar_q=ctx.bar_q, beat_q=ctx.beat_q, rng=ctx.rng)
    return out


WRITERS: dict[str, Callable[[SongContext, int], list[NoteQ]]] = {
    "drums": _drums, "bass": _bass, "strum": _strum, "keys": _keys, "pad": _pad, "arp": _arp,
    "lead": _lead, "riff": _riff, "horns": _horns, "vocal": _vocal,
}
