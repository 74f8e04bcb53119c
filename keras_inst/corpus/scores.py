"""Source scores for the rendered corpus: music21's bundled corpus, parsed, and its implied harmony.

:func:`catalogue` lists the usable corpus files of each kind (Bach chorales, small string-quartet
movements, madrigals, folk tunes); :func:`load_score` parses one into note lists
``(onset_q, duration_q, key)`` per part, highest part first (ties merged, grace notes and chord
symbols dropped); :func:`load_source` picks a usable score at random. :func:`estimate_key`
(Krumhansl-Kessler profiles) and :func:`estimate_chords` (the best diatonic triad per segment)
give the harmony that :mod:`keras_inst.corpus.accompaniment` generates parts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SOURCE_KINDS = ("chorale", "quartet", "madrigal", "folk")
# Small movements only: the long quartet movements take 3-20 s each to parse.
_QUARTETS = tuple(
    [f"haydn/opus1no1/movement{i}.mxl" for i in (1, 2, 4, 5)] + ["haydn/opus74no1/movement3.mxl"]
    + [f"mozart/k155/movement{i}.mxl" for i in (2, 3)] + [f"mozart/k156/movement{i}.mxl" for i in (1, 2, 3, 4)]
    + [f"mozart/k80/movement{i}.mxl" for i in (1, 2, 3, 4)] + ["mozart/k458/movement2.mxl"]
)
_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MAJOR_TRIAD, MINOR_TRIAD, DIMINISHED_TRIAD = (0, 4, 7), (0, 3, 7), (0, 3, 6)  # root intervals
_MAJ, _MIN, _DIM = MAJOR_TRIAD, MINOR_TRIAD, DIMINISHED_TRIAD  # short names for the table
_DIATONIC = {  # (degree semitones, triad) per mode; minor uses the harmonic-minor dominant
    "major": ((0, _MAJ), (2, _MIN), (4, _MIN), (5, _MAJ), (7, _MAJ), (9, _MIN), (11, _DIM)),
    "minor": ((0, _MIN), (2, _DIM), (3, _MAJ), (5, _MIN), (7, _MAJ), (8, _MAJ), (10, _MAJ)),
}
_PRIOR = {0: 0.12, 7: 0.08, 5: 0.06}


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
    cands = [((tonic + deg) % 12, ivs, _PRIOR.get(deg, 0.0) - (0.1 if ivs == DIMINISHED_TRIAD else 0.0))
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
