"""Generated songs in produced-music styles (pop, rock, electronic, funk, jazz, electropop) for the corpus.

A generated track's plan (:func:`keras_inst.corpus.songstyles.plan_generated`) names its style
and stems; :func:`compose` draws a tempo and metre in the style's ranges, a key, a chord
progression per section name from the style's table, and a song form (intro, verse, chorus, ...;
bars per section from :func:`~keras_inst.corpus.songstyles.section_bars`). Each stem plays in
the sections its style gives it (drums enter after the intro, pads in choruses, ...), less a
section now and then: instruments that play in part of the song only are what a model must learn
from produced music. The excerpt starts at a section boundary (the first section half the time)
and lasts ``max_seconds`` rounded down to a bar. :func:`write_song` returns it as the
:class:`~keras_inst.corpus.arrange.Song` that :func:`~keras_inst.corpus.arrange.arrange`
returns for a score, so the renderer renders it unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from keras_inst.corpus.accompaniment import NoteQ
from keras_inst.corpus.arrange import Song, clean_notes, fit_range, humanize, swing_time
from keras_inst.corpus.ensembles import TrackPlan
from keras_inst.corpus.songparts import WRITERS, Section, SongChord, SongContext
from keras_inst.corpus.songstyles import STYLES, parse_chord, section_bars

_PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_CORE = ("drums", "bass")  # never drop a section of their own (the groove holds the song)
SONGWRITER_VERSION = 1  # in a corpus's identity: another version writes other songs
P_DROP_SECTION = 0.15  # another stem sits out one of its sections


@dataclass(frozen=True)
class Composition:
    """A generated song in quarter notes, excerpt-relative (0 = the excerpt's start)."""

    style: str
    qpm: float
    bar_q: float
    beat_q: float
    tonic: int  # pitch class
    mode: str  # major | minor
    progressions: dict[str, str]  # section name -> progression (style table)
    chords: tuple[SongChord, ...]
    sections: tuple[Section, ...]
    parts: dict[str, list[NoteQ]]  # stem name -> notes
    playing: dict[str, tuple[bool, ...]]  # stem name -> plays in section i
    start_q: float  # the excerpt's start in the whole form
    length_q: float

    @property
    def key_name(self) -> str:
        return f"{_PC_NAMES[self.tonic]} {self.mode}"


def _mode(progression: str) -> str:
    """"minor" when the progression has a minor tonic chord (``i``, ``i7``, ``bVI`` beside it)."""
    return "minor" if re.search(r"(^|[ /])i(?![iv])", progression) else "major"


def _chords(sections: list[Section], progressions: dict[str, str], bar_q: float,
            beat_q: float, tonic: int) -> list[SongChord]:
    """Each section's progression, one token per bar from its start, cycled; ``a/b`` splits a
    bar (in 3/4: two beats, then one)."""
    out = []
    for sec in sections:
        tokens = progressions[sec.name].split()
        for i, t0 in enumerate(np.arange(sec.t0, sec.t1 - 1e-6, bar_q)):
            halves = tokens[i % len(tokens)].split("/")
            cut = bar_q if len(halves) == 1 else math.ceil(bar_q / beat_q / 2) * beat_q
            for sym, a, b in zip(halves, (0.0, cut), (cut, bar_q), strict=False):
                deg, ivs = parse_chord(sym)
                out.append(SongChord(float(t0 + a), float(t0 + b), (tonic + deg) % 12, ivs, sym))
    return out


def _playing(plan: TrackPlan, names: list[str], rng: np.random.Generator) -> dict[str, tuple[bool, ...]]:
    style = STYLES[plan.style]
    sections_of = {}
    for st in style.stems:
        sections_of.setdefault(st.role, st.sections)
    out = {}
    for sp in plan.stems:
        on = [n in sections_of[sp.role] for n in names]
        if sp.role not in _CORE and sum(on) > 1 and rng.random() < P_DROP_SECTION:
            on[int(rng.choice(np.flatnonzero(on)))] = False
        out[sp.name] = tuple(on)
    return out


def _excerpt(sections: list[Section], need_q: float, bar_q: float, rng: np.random.Generator) -> tuple[float, float]:
    """(start, length) in quarters: from a section boundary, whole bars."""
    end = sections[-1].t1
    starts = [s.t0 for s in sections if end - s.t0 >= need_q] or [0.0]
    start = 0.0 if rng.random() < 0.5 else float(rng.choice(starts))
    length = min(need_q, end - start)
    return start, max(bar_q, math.floor(length / bar_q + 1e-6) * bar_q)


def _masked(notes: list[NoteQ], sections: list[Section], on: tuple[bool, ...]) -> list[NoteQ]:
    """Notes whose onset is in a playing section, cut at that section's end."""
    out = []
    for t, d, k, v in notes:
        i = next((j for j, s in enumerate(sections) if s.t0 - 1e-6 <= t < s.t1 - 1e-6), None)
        if i is not None and on[i]:
            out.append((t, min(d, sections[i].t1 - t), k, v))
    return out


def compose(plan: TrackPlan, *, rng: np.random.Generator, max_seconds: float) -> Composition:
    """The notes (quarters) of every stem of a generated ``plan`` in its style; deterministic
    for ``rng``'s state."""
    if plan.style not in STYLES:
        raise ValueError(f"{plan.name}: unknown song style {plan.style!r}; known: {', '.join(STYLES)}")
    style = STYLES[plan.style]
    qpm = float(rng.uniform(*style.qpm))
    bar_q, beat_q = style.meters[int(rng.integers(len(style.meters)))]
    form = style.forms[int(rng.integers(len(style.forms)))]
    mode = _mode(str(rng.choice(style.progressions)))
    pool = [p for p in style.progressions if _mode(p) == mode]  # one key for the whole song
    progressions = {n: str(rng.choice(pool)) for n in dict.fromkeys(form)}
    tonic = int(rng.integers(12))
    sections, t = [], 0.0
    for name in form:
        sections.append(Section(name, t, t + section_bars(name) * bar_q))
        t = sections[-1].t1
    chords = _chords(sections, progressions, bar_q, beat_q, tonic)
    ctx = SongContext(chords, sections, bar_q, beat_q, plan.style, tonic, mode, rng)
    playing = _playing(plan, list(form), rng)
    start, length = _excerpt(sections, max_seconds * qpm / 60.0, bar_q, rng)
    parts = {}
    for sp in plan.stems:
        notes = _masked(WRITERS[sp.role](ctx, sp.program), sections, playing[sp.name])
        parts[sp.name] = [(on - start, d, k, v) for on, d, k, v in notes if start - 1e-6 <= on < start + length - 1e-6]
    cut = [Section(s.name, max(s.t0, start) - start, min(s.t1, start + length) - start)
           for s in sections if s.t1 > start + 1e-6 and s.t0 < start + length - 1e-6]
    first = next(i for i, s in enumerate(sections) if s.t1 > start + 1e-6)
    cut_chords = tuple(SongChord(c.t0 - start, c.t1 - start, c.root, c.ivs, c.symbol) for c in chords
                       if start - 1e-6 <= c.t0 < start + length - 1e-6)
    playing = {k: v[first : first + len(cut)] for k, v in playing.items()}
    return Composition(plan.style, qpm, bar_q, beat_q, tonic, mode, progressions, cut_chords, tuple(cut),
                       parts, playing, start, length)


def write_song(plan: TrackPlan, *, rng: np.random.Generator, max_seconds: float) -> Song:
    """A generated song for ``plan`` as :func:`~keras_inst.corpus.arrange.arrange` returns one:
    notes in seconds per stem (fitted to the instrument's range, swung in jazz, humanised)."""
    comp = compose(plan, rng=rng, max_seconds=max_seconds)
    spq = comp.qpm / 60.0
    out = {}
    for sp in plan.stems:
        notes = comp.parts[sp.name]
        if not sp.is_drum:
            notes = fit_range(notes, sp.program) if sp.role != "vocal" else notes
            if STYLES[comp.style].swing:
                notes = [(swing_time(on), swing_time(on + d) - swing_time(on), k, v) for on, d, k, v in notes]
        out[sp.name] = humanize(clean_notes(notes, comp.length_q), spq, 0.003 if sp.is_drum else 0.008, rng)
    form = tuple((s.name, round(s.t0 / spq, 3), round(s.t1 / spq, 3)) for s in comp.sections)
    progs = tuple(sorted(comp.progressions.items()))
    return Song(out, comp.length_q / spq, comp.qpm, 1.0, comp.start_q, 0, comp.key_name, form, progs)
