"""Scores -> ensemble parts for the rendered corpus: excerpt, tempo, roles, ranges, timing.

A song is an excerpt of a source score (:mod:`keras_inst.corpus.scores`) in quarter notes, at a
tempo near the score's own, transposed by a few semitones. Its harmony is estimated per half
bar from all parts (key, then the best diatonic triad), and each stem's role either takes a
score part (``melody`` = highest part, ``bass`` = lowest, ...) moved by octaves into the
instrument's range, or is generated from the harmony (:mod:`keras_inst.corpus.accompaniment`). Parts
are then cleaned of re-struck overlaps, swung for jazz and humanised.
Notes are ``(onset, duration, key, velocity)``; :func:`arrange` returns them in seconds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from keras_inst.corpus.accompaniment import GENERATORS, NoteQ, PartContext
from keras_inst.corpus.scores import Score, estimate_chords, estimate_key

ROLES = ("melody", "upper", "inner", "bass", "all_parts", "melody_double", "bass_roots",
         "bass_walk", "strum", "arp", "comp", "jazz_comp", "pad", "drums")
_QPM = {"chorale": (80, 60, 100), "quartet": (100, 60, 150), "madrigal": (140, 100, 170), "folk": (110, 90, 140)}
# GM program ranges -> playable MIDI keys (lo, hi)
_RANGES = ((0, 21, 108), (8, 60, 96), (16, 36, 96), (24, 40, 86), (32, 28, 60), (40, 55, 100),
           (41, 48, 88), (42, 36, 76), (43, 28, 60), (44, 36, 96), (52, 40, 81), (55, 36, 96),
           (56, 55, 82), (57, 40, 72), (58, 28, 58), (59, 55, 82), (60, 41, 77), (61, 40, 84),
           (64, 56, 87), (65, 49, 81), (66, 44, 76), (67, 36, 69), (68, 58, 91), (69, 52, 81),
           (70, 34, 72), (71, 50, 91), (72, 74, 108), (73, 60, 96), (80, 48, 96), (88, 36, 84),
           (96, 36, 96))
_PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Song:
    parts: dict[str, list[NoteQ]]  # stem name -> notes in seconds
    seconds: float
    qpm: float
    tempo_factor: float
    start_q: float
    transpose: int
    key_name: str
    # generated songs only (keras_inst.corpus.songwriter): (section, start s, end s) and the
    # chord progression per section name; empty for arranged scores
    form: tuple[tuple[str, float, float], ...] = ()
    progressions: tuple[tuple[str, str], ...] = ()


def program_range(program: int) -> tuple[int, int]:
    return [(lo, hi) for start, lo, hi in _RANGES if program >= start][-1]


def fit_range(notes: list[NoteQ], program: int) -> list[NoteQ]:
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


def _source(ctx: PartContext, idx: int, base: float, program: int) -> list[NoteQ]:
    if idx >= len(ctx.parts) or -idx > len(ctx.parts):
        return []
    return fit_range([(on, max(0.05, d * 0.94), k, ctx.vel(on, base)) for on, d, k in ctx.parts[idx]], program)


def _role_notes(ctx: PartContext, role: str, program: int) -> list[NoteQ]:
    base = float(ctx.rng.uniform(70, 98))
    if role in ("melody", "upper", "inner"):
        return _source(ctx, ("melody", "upper", "inner").index(role), base, program)
    if role == "bass":
        if len(ctx.parts) > 1:
            return _source(ctx, -1, base, program)
        return fit_range(GENERATORS["bass_roots"](dataclasses.replace(ctx, style="classical"), program), program)
    if role == "melody_double":
        return _source(ctx, 0, base - 14, program)
    if role == "all_parts":
        return [n for i in range(len(ctx.parts)) for n in _source(ctx, i, base - 6, program)]
    if role not in GENERATORS:
        raise ValueError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    notes = GENERATORS[role](ctx, program)
    return notes if role == "drums" else fit_range(notes, program)


def clean_notes(notes: list[NoteQ], length_q: float) -> list[NoteQ]:
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


def swing_time(t: float) -> float:
    """Straight eighths -> swung (2:1) within each beat (quarter)."""
    b, f = divmod(t, 1.0)
    return b + (f * 4 / 3 if f <= 0.5 else 2 / 3 + (f - 0.5) * 2 / 3)


def humanize(notes: list[NoteQ], spq: float, spread_s: float, rng: np.random.Generator) -> list[NoteQ]:
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
    """Notes in seconds for every stem of ``plan`` (an :class:`keras_inst.corpus.ensembles.TrackPlan`)
    from an excerpt of ``score``."""
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
    ctx = PartContext(parts, chords, score.bar_q, score.beat_q, length_q, spq, plan.style, tonic, rng)
    swing = plan.style == "jazz" and score.beat_q == 1.0
    out = {}
    for sp in plan.stems:
        notes = _role_notes(ctx, sp.role, sp.program)
        if swing and not sp.is_drum:
            notes = [(swing_time(on), swing_time(on + d) - swing_time(on), k, v) for on, d, k, v in notes]
        out[sp.name] = humanize(clean_notes(notes, length_q), spq, 0.003 if sp.is_drum else 0.008, rng)
    key_name = f"{_PC_NAMES[tonic]} {mode}"
    return Song(out, length_q / spq, qpm, factor, start, transpose, key_name)
