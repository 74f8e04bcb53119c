"""Scores -> ensemble parts for the rendered corpus: source excerpts, implied harmony, accompaniment.

Source scores come from music21's bundled corpus (kinds: Bach chorales, string quartets,
madrigals, folk tunes). A song is an excerpt in quarter notes; the harmony is estimated per half
bar from all parts (key by Krumhansl-Kessler profiles, then the best diatonic triad), and roles
either take a score part (``melody`` = highest part, ``bass`` = lowest, ...) moved by octaves into
the instrument's range, or generate an idiomatic part from the harmony (guitar strums with
staggered strings, bass on roots, walking bass, piano comping, sustained pads, drums).
Notes are ``(onset, duration, key, velocity)``; :func:`arrange` returns them in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from keras_inst.drums import drum_part

SOURCE_KINDS = ("chorale", "quartet", "madrigal", "folk")
ROLES = ("melody", "upper", "inner", "bass", "all_parts", "melody_double", "bass_roots",
         "bass_walk", "strum", "arp", "comp", "jazz_comp", "pad", "drums")
# Small movements only: the long quartet movements take 3-20 s each to parse.
_QUARTETS = tuple(
    [f"haydn/opus1no1/movement{i}.mxl" for i in (1, 2, 4, 5)] + ["haydn/opus74no1/movement3.mxl"]
    + [f"mozart/k155/movement{i}.mxl" for i in (2, 3)] + [f"mozart/k156/movement{i}.mxl" for i in (1, 2, 3, 4)]
    + [f"mozart/k80/movement{i}.mxl" for i in (1, 2, 3, 4)] + ["mozart/k458/movement2.mxl"]
)
_QPM = {"chorale": (80, 60, 100), "quartet": (100, 60, 150), "madrigal": (140, 100, 170), "folk": (110, 90, 140)}
# GM program ranges -> playable MIDI keys (lo, hi)
_RANGES = ((0, 21, 108), (8, 60, 96), (16, 36, 96), (24, 40, 86), (32, 28, 60), (40, 55, 100),
           (41, 48, 88), (42, 36, 76), (43, 28, 60), (44, 36, 96), (52, 40, 81), (55, 36, 96),
           (56, 55, 82), (57, 40, 72), (58, 28, 58), (59, 55, 82), (60, 41, 77), (61, 40, 84),
           (64, 56, 87), (65, 49, 81), (66, 44, 76), (67, 36, 69), (68, 58, 91), (69, 52, 81),
           (70, 34, 72), (71, 50, 91), (72, 74, 108), (73, 60, 96), (80, 48, 96), (88, 36, 84),
           (96, 36, 96))
_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
_MAJ, _MIN, _DIM = (0, 4, 7), (0, 3, 7), (0, 3, 6)
_DIATONIC = {  # (degree semitones, triad) per mode; minor uses the harmonic-minor dominant
    "major": ((0, _MAJ), (2, _MIN), (4, _MIN), (5, _MAJ), (7, _MAJ), (9, _MIN), (11, _DIM)),
    "minor": ((0, _MIN), (2, _DIM), (3, _MAJ), (5, _MIN), (7, _MAJ), (8, _MAJ), (10, _MAJ)),
}
_PRIOR = {0: 0.12, 7: 0.08, 5: 0.06}
_PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

NoteQ = tuple[float, float, int, int]  # onset, duration (quarters or seconds), key, velocity


@dataclass(frozen=True)
class Score:
    source: str  # music21 corpus path, e.g. "bach/bwv66.6.mxl"
    kind: str
    parts: tuple[tuple[tuple[float, float, int], ...], ...]  # highest part first: (onset_q, dur_q, key)
    bar_q: float
    beat_q: float
    measures: tuple[float, ...]  # measure start offsets (quarters)
    end_q: float
    qpm: float | None  # the score's own tempo mark, if any


@dataclass(frozen=True)
class Chord:
    t0: float
    t1: float
    root: int  # pitch class
    ivs: tuple[int, int, int]  # triad intervals above the root


@dataclass(frozen=True)
class Song:
    parts: dict[str, list[NoteQ]]  # stem name -> notes in seconds
    seconds: float
    qpm: float
    tempo_factor: float
    start_q: float
    transpose: int
    key_name: str


@lru_cache(maxsize=1)
def _corpus_paths() -> tuple[str, ...]:
    from music21 import common, corpus

    root = common.getCorpusFilePath()
    return tuple(sorted(str(p.relative_to(root)) for p in corpus.getCorePaths()))


def catalogue(kind: str) -> tuple[str, ...]:
    """Corpus paths of one source kind (sorted, so a seed always picks the same scores)."""
    paths = _corpus_paths()
    if kind == "chorale":
        return tuple(p for p in paths if p.startswith("bach/bwv") and p.endswith(".mxl"))
    if kind == "quartet":
        return tuple(p for p in _QUARTETS if p in set(paths))
    if kind == "madrigal":
        return tuple(p for p in paths if (p.startswith("monteverdi/") and p.endswith(".mxl"))
                     or (p.startswith("palestrina/") and p.endswith(".krn")))
    if kind == "folk":
        return tuple(p for p in paths if p.startswith("ryansMammoth/") and p.endswith(".abc"))
    raise ValueError(f"unknown source kind {kind!r}; known: {', '.join(SOURCE_KINDS)}")


@lru_cache(maxsize=32)
def load_score(source: str, kind: str) -> Score:
    """Parse a corpus score into note lists (ties merged, grace notes and chord symbols dropped)."""
    from music21 import chord, corpus, harmony, meter, note, stream, tempo

    s = corpus.parse(source)
    if isinstance(s, stream.Opus):
        s = s.scores[0]
    if kind == "folk":
        try:  # play the tune's repeats as written
            s = s.expandRepeats()
        except Exception:  # noqa: BLE001 -- music21 raises many types on odd repeat marks
            pass
    ts = s.recurse().getElementsByClass(meter.TimeSignature).first()
    bar_q = float(ts.barDuration.quarterLength) if ts else 4.0
    beat_q = float(ts.beatDuration.quarterLength) if ts else 1.0
    mm = s.recurse().getElementsByClass(tempo.MetronomeMark).first()
    qpm = float(mm.getQuarterBPM()) if mm is not None and mm.number else None
    parts = []
    for p in s.parts:
        notes = []
        for n in p.stripTies().flatten().notes:
            if isinstance(n, harmony.ChordSymbol) or not isinstance(n, (note.Note, chord.Chord)):
                continue
            ql = float(n.quarterLength)
            if ql > 0 and not n.duration.isGrace:
                notes += [(float(n.offset), ql, int(x.midi)) for x in n.pitches]
        if len(notes) >= 4:
            parts.append(tuple(sorted(notes)))
    parts.sort(key=lambda ns: -float(np.mean([n[2] for n in ns])))
    measures = tuple(float(m.offset) for m in s.parts[0].getElementsByClass(stream.Measure)) if s.parts else ()
    return Score(source, kind, tuple(parts), bar_q, beat_q, measures or (0.0,), float(s.highestTime), qpm)


def load_source(kind: str, rng: np.random.Generator) -> Score:
    """A random usable score of ``kind`` (multi-part kinds need >= 4 parts); retries on bad files."""
    paths = catalogue(kind)
    if not paths:
        raise ValueError(f"music21 corpus has no scores of kind {kind!r}")
    need = 1 if kind == "folk" else 4
    for _ in range(12):
        src = paths[int(rng.integers(len(paths)))]
        try:
            score = load_score(src, kind)
        except Exception:  # noqa: BLE001 -- a corpus file music21 cannot parse: pick another
            continue
        if len(score.parts) >= need and score.bar_q > 0 and score.end_q > score.bar_q:
            return score
    raise ValueError(f"no usable {kind} score found in 12 tries")


def estimate_key(parts) -> tuple[int, str]:
    """(tonic pitch class, 'major'|'minor') by correlation with Krumhansl-Kessler profiles."""
    h = np.zeros(12)
    for ns in parts:
        for _, d, k, *_ in ns:
            h[k % 12] += d
    best = (-2.0, 0, "major")
    for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
        for t in range(12):
            r = float(np.corrcoef(h, np.roll(prof, t))[0, 1]) if h.any() else 0.0
            best = max(best, (r, t, mode), key=lambda b: b[0])
    return best[1], best[2]


def estimate_chords(parts, length_q: float, seg_q: float, tonic: int, mode: str) -> list[Chord]:
    """One diatonic triad per segment: most weight on chord tones, priors for I/V/IV and staying."""
    cands = [((tonic + deg) % 12, ivs, _PRIOR.get(deg, 0.0) - (0.1 if ivs == _DIM else 0.0))
             for deg, ivs in _DIATONIC[mode]]
    chords: list[Chord] = []
    prev = (tonic, _DIATONIC[mode][0][1])
    for t0 in np.arange(0.0, length_q - 1e-6, seg_q):
        t1 = min(length_q, t0 + seg_q)
        w = np.zeros(12)
        for i, ns in enumerate(parts):
            bass = 1.5 if (len(parts) > 1 and i == len(parts) - 1) else 1.0
            for on, d, k in ns:
                ov = min(on + d, t1) - max(on, t0)
                if ov > 0:
                    w[k % 12] += ov * bass * (1.3 if abs(on - t0) < 1e-6 else 1.0)
        if w.sum() > 0:
            w /= w.sum()
            score = [w[[(r + iv) % 12 for iv in ivs]].sum() * 1.6 - 0.6 + pr + (0.05 if (r, ivs) == prev else 0)
                     for r, ivs, pr in cands]
            r, ivs, _ = cands[int(np.argmax(score))]
            prev = (r, ivs)
        chords.append(Chord(float(t0), float(t1), prev[0], prev[1]))
    return chords


# ---------------------------------------------------------------------------------------------
# Parts.


@dataclass
class _Ctx:
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


def program_range(program: int) -> tuple[int, int]:
    return [(lo, hi) for start, lo, hi in _RANGES if program >= start][-1]


def _fit(notes: list[NoteQ], program: int) -> list[NoteQ]:
    """Move a part by the fewest whole octaves that bring most notes into the instrument's range
    (ties: nearer the range centre); fold the remaining stray notes by octaves."""
    if not notes:
        return []
    lo, hi = program_range(program)
    keys = np.array([n[2] for n in notes])
    centre = (lo + hi) / 2

    def cost(k: int) -> tuple[float, int, float]:
        outside = int(np.sum((keys + 12 * k < lo) | (keys + 12 * k > hi)))
        return (outside / len(keys) > 0.02, abs(k), abs(float(np.median(keys)) + 12 * k - centre))

    shift = 12 * min(range(-4, 5), key=cost)
    out = []
    for on, d, k, v in notes:
        k += shift
        while k < lo:
            k += 12
        while k > hi:
            k -= 12
        out.append((on, d, k, v))
    return out


def _source(ctx: _Ctx, idx: int, base: float, program: int) -> list[NoteQ]:
    if idx >= len(ctx.parts) or -idx > len(ctx.parts):
        return []
    return _fit([(on, max(0.05, d * 0.94), k, ctx.vel(on, base)) for on, d, k in ctx.parts[idx]], program)


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


def _bass_roots(ctx: _Ctx, program: int) -> list[NoteQ]:
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


def _bass_walk(ctx: _Ctx, program: int) -> list[NoteQ]:
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


def _strum(ctx: _Ctx, program: int) -> list[NoteQ]:
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


def _arp(ctx: _Ctx, program: int) -> list[NoteQ]:
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


def _comp(ctx: _Ctx, program: int) -> list[NoteQ]:
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


def _jazz_comp(ctx: _Ctx, program: int) -> list[NoteQ]:
    out, prev, b = [], 60.0, ctx.beat_q
    for c in ctx.chords:
        deg = (c.root - ctx.tonic) % 12
        seventh = 9 if c.ivs == _DIM else 11 if (c.ivs == _MAJ and deg in (0, 5)) else 10
        voice = _close([(c.root + c.ivs[1]) % 12, (c.root + seventh) % 12, (c.root + 2) % 12], prev, 50, 70)
        prev = float(np.mean(voice))
        pattern = [(0.0,), (0.0, 1.5), (0.5,), (1.5,)][int(ctx.rng.integers(4))]
        for off in pattern:
            if c.t0 + off * b < c.t1 - 1e-6:
                dur = float(ctx.rng.uniform(0.4, 0.9))
                out += [(c.t0 + off * b, dur, k, ctx.vel(c.t0 + off * b, 64)) for k in voice]
    return out


def _pad(ctx: _Ctx, program: int) -> list[NoteQ]:
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


def _drums(ctx: _Ctx, program: int) -> list[NoteQ]:
    if ctx.style == "classical":
        return []
    n_bars = math.ceil(ctx.length_q / ctx.bar_q - 1e-6)
    return drum_part(ctx.style, start_q=0.0, n_bars=n_bars, bar_q=ctx.bar_q, beat_q=ctx.beat_q, rng=ctx.rng)


_GENERATORS = {"bass_roots": _bass_roots, "bass_walk": _bass_walk, "strum": _strum, "arp": _arp,
               "comp": _comp, "jazz_comp": _jazz_comp, "pad": _pad, "drums": _drums}


def _role_notes(ctx: _Ctx, role: str, program: int) -> list[NoteQ]:
    base = float(ctx.rng.uniform(70, 98))
    if role in ("melody", "upper", "inner"):
        return _source(ctx, ("melody", "upper", "inner").index(role), base, program)
    if role == "bass":
        if len(ctx.parts) > 1:
            return _source(ctx, -1, base, program)
        return _fit(_bass_roots(_Ctx(**{**ctx.__dict__, "style": "classical"}), program), program)
    if role == "melody_double":
        return _source(ctx, 0, base - 14, program)
    if role == "all_parts":
        return [n for i in range(len(ctx.parts)) for n in _source(ctx, i, base - 6, program)]
    if role not in _GENERATORS:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    notes = _GENERATORS[role](ctx, program)
    return notes if role == "drums" else _fit(notes, program)


def _clean(notes: list[NoteQ], length_q: float) -> list[NoteQ]:
    """Clip to the excerpt and cut a note where the same key is struck again (a re-strike)."""
    notes = sorted((on, min(d, length_q - on), k, v) for on, d, k, v in notes if 0 <= on < length_q)
    last: dict[int, int] = {}
    out: list[list] = []
    for on, d, k, v in notes:
        j = last.get(k)
        if j is not None and out[j][0] + out[j][1] > on:
            if on - out[j][0] < 1e-6:
                continue  # doubled note (two parts on one key): keep one
            out[j][1] = on - out[j][0]
        last[k] = len(out)
        out.append([on, d, k, v])
    return [tuple(n) for n in out if n[1] > 1e-6]


def _swing(t: float) -> float:
    """Straight eighths -> swung (2:1) within each beat (quarter)."""
    b, f = divmod(t, 1.0)
    return b + (f * 4 / 3 if f <= 0.5 else 2 / 3 + (f - 0.5) * 2 / 3)


def _humanize(notes: list[NoteQ], spq: float, spread_s: float, rng: np.random.Generator) -> list[NoteQ]:
    """Quarters -> seconds with a random timing offset shared by all notes in one sixteenth slot
    (so chords stay together and strums keep their string order)."""
    shift: dict[int, float] = {}
    out = []
    for on, d, k, v in notes:
        slot = math.floor(on * 4 + 1e-6)
        if slot not in shift:
            shift[slot] = float(rng.normal(0, spread_s))
        out.append((max(0.0, on / spq + shift[slot]), d / spq, k, v))
    return out


def _excerpt(score: Score, need_q: float, rng: np.random.Generator) -> tuple[float, list, float]:
    """(start, parts shifted to start at 0 and looped if short (folk), length) in quarters."""
    ms = list(score.measures)
    pickup = len(ms) > 1 and ms[1] - ms[0] < score.bar_q - 1e-6
    starts = ms[1:] if pickup else ms
    feasible = [m for m in starts if score.end_q - m >= need_q]
    start = float(rng.choice(feasible)) if feasible else float(starts[0])
    span = score.end_q - start
    period = math.ceil(span / score.bar_q - 1e-6) * score.bar_q
    reps = max(1, math.ceil(need_q / period)) if score.kind == "folk" else 1
    parts = [[(on - start + r * period, d, k) for r in range(reps) for on, d, k in ns if on >= start - 1e-6]
             for ns in score.parts]
    end = max(on + d for ns in parts for on, d, _ in ns)
    length = min(need_q, end)
    if length == need_q and need_q >= score.bar_q:
        length = math.floor(need_q / score.bar_q) * score.bar_q  # end on a bar line
    parts = [[(on, min(d, length - on), k) for on, d, k in ns if on < length - 1e-6] for ns in parts]
    return start, [ns for ns in parts if ns] or parts[:1], float(length)


def arrange(score: Score, plan, *, rng: np.random.Generator, max_seconds: float) -> Song:
    """Notes in seconds for every stem of ``plan`` (a render.TrackPlan) from an excerpt of ``score``."""
    default, lo, hi = _QPM[score.kind]
    scale = 1.4 if score.beat_q == 1.5 else 1.0  # compound metres: dotted-quarter beats
    qpm0 = float(np.clip(score.qpm or default * scale, lo * scale, hi * scale))
    factor = float(rng.uniform(0.8, 1.2))
    qpm = qpm0 * factor
    spq = qpm / 60.0
    start, parts, length_q = _excerpt(score, max_seconds * spq, rng)
    transpose = int(rng.integers(-3, 4))
    parts = [[(on, d, k + transpose) for on, d, k in ns] for ns in parts]
    tonic, mode = estimate_key(parts)
    seg_q = score.bar_q if score.bar_q <= 3 else score.bar_q / 2
    chords = estimate_chords(parts, length_q, seg_q, tonic, mode)
    ctx = _Ctx(parts, chords, score.bar_q, score.beat_q, length_q, spq, plan.style, tonic, rng)
    swing = plan.style == "jazz" and score.beat_q == 1.0
    out = {}
    for sp in plan.stems:
        notes = _role_notes(ctx, sp.role, sp.program)
        if swing and not sp.is_drum:
            notes = [(_swing(on), _swing(on + d) - _swing(on), k, v) for on, d, k, v in notes]
        out[sp.name] = _humanize(_clean(notes, length_q), spq, 0.003 if sp.is_drum else 0.008, rng)
    key_name = f"{_PC_NAMES[tonic]} {mode}"
    return Song(out, length_q / spq, qpm, factor, start, transpose, key_name)
