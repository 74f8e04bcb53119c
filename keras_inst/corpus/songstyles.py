"""Styles of the generated songs (pop, rock, electronic, funk, jazz, electropop) and their track plans.

The evaluation on real produced songs showed a model trained on arranged classical and folk
scores does not know modern produced music (synths, drum machines, pop arrangements, parts that
enter and leave). :data:`STYLES` is that music as data: per style a tempo range, metres, chord
progressions in Roman numerals (one chord per bar; ``a/b`` splits a bar), song forms, and the
stems with their roles, GM programs, probability and the sections they play in. A style may
borrow another's part writing (``idiom``: electropop writes its bass, keys and leads as electronic
does, in a sung verse / chorus form).
:func:`plan_generated` draws one song's plan (a :class:`~keras_inst.corpus.ensembles.TrackPlan`
with ``source_kind == "generated"``); :mod:`keras_inst.corpus.songwriter` writes its notes.
Pure and fast, like :mod:`keras_inst.corpus.ensembles`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from keras_inst.config.schema import SONG_STYLES
from keras_inst.corpus.ensembles import LEVEL_SPREAD_DB, StemPlan, TrackPlan, _track_seed

GENERATED_KIND = "generated"  # TrackPlan.source_kind of a generated song
SONG_ROLES = ("drums", "bass", "strum", "keys", "pad", "arp", "lead", "riff", "horns", "vocal")
VOCAL_RANGE = (55, 74)  # G3..D5: the built-in singer (GM 53) sounds natural here
_SECTION_BARS = {"intro": 4, "verse": 8, "pre": 4, "chorus": 8, "bridge": 4, "solo": 8, "outro": 4,
                 "build": 8, "drop": 8, "breakdown": 8, "groove": 8, "break": 4, "head": 8}


@dataclass(frozen=True)
class _Stem:
    role: str  # SONG_ROLES
    programs: tuple[int, ...]  # GM, one drawn per song; 128 = drums
    p: float  # probability that the song has the stem
    sections: frozenset[str]  # where it plays: instruments that play in part of the song only


@dataclass(frozen=True)
class SongStyle:
    name: str
    drum_style: str  # keras_inst.corpus.drums.DRUM_STYLES
    qpm: tuple[float, float]  # quarter notes per minute, uniform
    meters: tuple[tuple[float, float], ...]  # (bar_q, beat_q) choices
    progressions: tuple[str, ...]
    forms: tuple[tuple[str, ...], ...]
    stems: tuple[_Stem, ...]
    swing: bool = False
    idiom: str = ""  # the style whose part writing (bass, keys, lead patterns) it borrows; "": its own


def _st(role: str, programs: tuple[int, ...] | range, p: float, sections: str) -> _Stem:
    return _Stem(role, tuple(programs), p, frozenset(sections.split()))


_POP_FORM = ("intro", "verse", "pre", "chorus", "verse", "pre", "chorus", "bridge", "chorus", "outro")
_ROCK_FORM = ("intro", "verse", "chorus", "verse", "chorus", "solo", "chorus", "outro")
_EDM_FORM = ("intro", "build", "drop", "breakdown", "build", "drop", "outro")
_FUNK_FORM = ("intro", "groove", "chorus", "groove", "break", "chorus", "outro")
_JAZZ_FORM = ("intro", "head", "solo", "solo", "head", "outro")
# Electronic pop as on the radio: verses and choruses sung over synths and a drum machine, where
# the electronic style's intro / build / drop sings in its drops alone (a third of a 30-s excerpt's bars).
_EPOP_FORM = ("intro", "verse", "pre", "chorus", "verse", "pre", "chorus", "breakdown", "chorus", "outro")
_ALL_POP = "intro verse pre chorus bridge outro"

STYLES: dict[str, SongStyle] = {s.name: s for s in (
    SongStyle("pop", "pop", (80.0, 126.0), ((4.0, 1.0),),
              ("I V vi IV", "vi IV I V", "I vi IV V", "IV I V vi", "I IV vi V", "I V vi iii IV I IV V"),
              (_POP_FORM, _POP_FORM[:7] + ("outro",)), (
        _st("drums", (128,), 0.95, "verse pre chorus bridge outro"),
        _st("bass", (33, 34, 35, 38), 1.0, "verse pre chorus bridge outro"),
        _st("strum", (24, 25), 0.7, _ALL_POP),
        _st("keys", (0, 1, 4), 0.8, _ALL_POP),
        _st("pad", (48, 49, 88, 89, 91), 0.6, "chorus bridge"),
        _st("lead", (80, 81, 73, 11), 0.5, "intro bridge outro"),
        _st("vocal", (53,), 0.9, "verse pre chorus bridge"))),
    SongStyle("rock", "rock", (96.0, 160.0), ((4.0, 1.0),),
              ("I bVII IV I", "I5 bVII5 IV5 I5", "I IV V IV", "i5 bVI5 bVII5 i5", "I5 bIII5 IV5 I5"),
              (_ROCK_FORM,), (
        _st("drums", (128,), 1.0, "verse chorus solo outro"),
        _st("bass", (33, 34), 1.0, "verse chorus solo outro"),
        _st("strum", (29, 30), 1.0, "intro verse chorus solo outro"),
        _st("keys", (16, 17, 18), 0.35, "chorus solo outro"),
        _st("riff", (29, 30), 0.7, "intro solo outro"),
        _st("vocal", (53,), 0.85, "verse chorus"))),
    SongStyle("electronic", "dance", (118.0, 132.0), ((4.0, 1.0),),
              ("i bVI bIII bVII", "i bVII bVI bVII", "i iv bVI bVII", "i9 bVImaj7 bIIImaj7 bVII"),
              (_EDM_FORM,), (
        _st("drums", (128,), 1.0, "build drop outro"),
        _st("bass", (38, 39), 1.0, "build drop"),
        _st("pad", range(88, 96), 0.9, "intro breakdown build drop"),
        _st("arp", range(80, 88), 0.8, "build drop breakdown"),
        _st("lead", range(80, 88), 0.7, "drop"),
        _st("keys", (81, 87, 90, 4), 0.5, "drop outro"),
        _st("vocal", (53,), 0.6, "breakdown drop"))),
    SongStyle("funk", "funk", (90.0, 118.0), ((4.0, 1.0),),
              ("i7 i7 i7 i7", "I9 I9 IV9 IV9", "i7 i7 IV9 IV9", "i9 i9 i9 IV7", "I7 I7 I7 bVII9"),
              (_FUNK_FORM,), (
        _st("drums", (128,), 1.0, "groove chorus break outro"),
        _st("bass", (36, 37, 33), 1.0, "groove chorus break outro"),
        _st("strum", (27, 28), 0.9, "intro groove chorus outro"),
        _st("keys", (7, 4, 5), 0.8, "groove chorus outro"),
        _st("horns", (61, 56, 57, 65, 66), 0.7, "chorus outro"),
        _st("vocal", (53,), 0.8, "groove chorus"))),
    SongStyle("jazz", "jazz", (100.0, 200.0), ((4.0, 1.0), (3.0, 1.0)),
              ("ii9 V13 Imaj9 Imaj7 ii7 V7 Imaj7/vi7 ii7/V7", "Imaj7 vi7 ii7 V7 iii7 VI7 ii7 V7",
               "iih7 V7 i7 i7 iih7 V7 i7 ii7/V7", "ii7 V7 Imaj7 VI7 ii7 V13 Imaj9 ii7/V7"),
              (_JAZZ_FORM,), (
        _st("drums", (128,), 1.0, "head solo outro"),
        _st("bass", (32,), 1.0, "head solo outro"),
        _st("keys", (0, 1, 4), 1.0, "intro head solo outro"),
        _st("lead", (65, 66, 56, 57, 26, 71), 0.9, "head solo outro"),
        _st("vocal", (53,), 0.35, "head")), swing=True),
    SongStyle("electropop", "pop", (96.0, 128.0), ((4.0, 1.0),),
              ("vi IV I V", "I V vi IV", "IV I V vi", "i bVI bIII bVII", "i iv bVI bVII", "i bVII bVI bVII"),
              (_EPOP_FORM, _EPOP_FORM[:2] + _EPOP_FORM[3:5] + _EPOP_FORM[6:]), (
        _st("drums", (128,), 0.95, "verse pre chorus outro"),
        _st("bass", (38, 39), 1.0, "verse pre chorus breakdown outro"),
        _st("pad", range(88, 96), 0.8, "intro pre chorus breakdown outro"),
        _st("arp", range(80, 88), 0.6, "intro verse breakdown"),
        _st("lead", range(80, 88), 0.6, "intro chorus outro"),
        _st("keys", (4, 5, 81, 90), 0.5, "verse chorus"),
        _st("vocal", (53,), 0.95, "verse pre chorus breakdown")), idiom="electronic"),
)}

# Roman numeral -> semitones above the tonic; suffix -> intervals above the chord root
_ROMAN = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
_UPPER = {"": (0, 4, 7), "5": (0, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "9": (0, 4, 7, 10, 14),
          "13": (0, 4, 10, 14, 21), "maj9": (0, 4, 7, 11, 14), "6": (0, 4, 7, 9)}
_LOWER = {"": (0, 3, 7), "5": (0, 7), "7": (0, 3, 7, 10), "9": (0, 3, 7, 10, 14), "h7": (0, 3, 6, 10)}
_SYMBOL = re.compile(r"^(b|#)?(VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)(.*)$")


def parse_chord(symbol: str) -> tuple[int, tuple[int, ...]]:
    """``"bVImaj7"`` -> (root semitones above the tonic, intervals above the root)."""
    m = _SYMBOL.match(symbol)
    table = _UPPER if m and m.group(2).isupper() else _LOWER
    if not m or m.group(3) not in table:
        raise ValueError(f"chord symbol {symbol!r}: expected [b|#]<roman numeral>[{'|'.join(table)}]")
    shift = {"b": -1, "#": 1}.get(m.group(1) or "", 0)
    return (_ROMAN[m.group(2).upper()] + shift) % 12, table[m.group(3)]


def section_bars(name: str) -> int:
    return _SECTION_BARS[name]


def plan_generated(index: int, seed: int, styles: tuple[str, ...]) -> TrackPlan:
    """The plan of generated track ``index``: a style drawn among ``styles``, then its stems."""
    unknown = [s for s in styles if s not in STYLES]
    if not styles or unknown:
        raise ValueError(f"song styles {list(styles)}: expected some of {', '.join(SONG_STYLES)}")
    tseed = _track_seed(seed, index)
    rng = np.random.default_rng([tseed, 7])
    style = STYLES[str(rng.choice(list(styles)))]
    stems = []
    for st in style.stems:
        program = int(rng.choice(st.programs))
        level = float(rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB))
        if rng.random() < st.p:
            stems.append(StemPlan(f"S{len(stems):02d}", st.role, program, round(level, 3)))
    return TrackPlan(index, tseed, f"songwriter_{style.name}", style.name, GENERATED_KIND, tuple(stems))


def is_generated(index: int, seed: int, share: float) -> bool:
    """Whether track ``index`` of a corpus with ``share`` generated songs is generated (seeded,
    on its own stream: the other tracks keep their plans)."""
    return float(np.random.default_rng([seed, index, 0x50A6]).random()) < share
