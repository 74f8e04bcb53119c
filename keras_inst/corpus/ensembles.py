"""Ensembles and the plan of the rendered corpus: which instruments play which roles in each track.

Pure and fast (no music21, no audio): :data:`ENSEMBLES` lists the ensembles (string quartet,
rock band, jazz combo, ...) as slots of alternative roles (:data:`keras_inst.corpus.arrange.ROLES`)
and GM programs; :func:`plan_track` picks, for one track index and corpus seed, the ensemble
(a shuffled round robin, so every class is in many songs), the source-score kind, and each
stem's role, program and level offset. :mod:`keras_inst.corpus.render` renders these plans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL_SPREAD_DB = 3.0  # per-stem random level offset, uniform in +-this


@dataclass(frozen=True)
class _Slot:
    roles: tuple[str, ...]  # one is chosen per song (see arrange.ROLES)
    programs: tuple[int, ...]  # GM program, one chosen per song; 128 = drums
    p: float = 1.0  # probability that the song has this stem


@dataclass(frozen=True)
class Ensemble:
    name: str
    kinds: tuple[str, ...]  # score kinds it can play (scores.SOURCE_KINDS)
    style: str  # accompaniment and drum style
    slots: tuple[_Slot, ...]


def _s(roles: str, *programs: int, p: float = 1.0) -> _Slot:
    return _Slot(tuple(roles.split("|")), programs, p)


ENSEMBLES: tuple[Ensemble, ...] = (
    Ensemble("rock_band", ("folk", "chorale"), "rock", (
        _s("melody", 53), _s("strum", 29, 30, 27), _s("bass_roots", 33, 34),
        _s("drums", 128), _s("comp", 0, 1, 16, 18, p=0.5))),
    Ensemble("pop_band", ("folk", "chorale"), "pop", (
        _s("melody", 53), _s("strum|arp", 25, 24), _s("bass_roots", 33, 35, 32),
        _s("comp", 0, 1, 2), _s("drums", 128, p=0.7), _s("pad", 89, 90, 92, p=0.3))),
    Ensemble("string_quartet", ("chorale", "quartet", "madrigal"), "classical", (
        _s("melody", 40), _s("upper", 40), _s("inner", 41), _s("bass", 42))),
    Ensemble("wind_quintet", ("chorale", "quartet", "madrigal"), "classical", (
        _s("melody", 73, 68, 72), _s("upper", 71, 68, 69), _s("inner", 60), _s("bass", 70, 67))),
    Ensemble("brass_quartet", ("chorale", "madrigal"), "classical", (
        _s("melody", 56, 59), _s("upper", 56, 60), _s("inner", 60, 57), _s("bass", 57, 58))),
    Ensemble("choir", ("chorale", "madrigal"), "classical", (
        _s("melody", 53), _s("upper", 52), _s("inner", 52), _s("bass", 52),
        _s("pad", 19, 16, 20, p=0.4))),
    Ensemble("hymn", ("chorale",), "classical", (
        _s("melody", 53), _s("all_parts", 0, 1, 19), _s("bass", 42, 43, p=0.3))),
    Ensemble("jazz_combo", ("folk", "chorale"), "jazz", (
        _s("melody", 65, 66, 64, 56, 26), _s("bass_walk", 32), _s("jazz_comp", 0, 1, 4),
        _s("drums", 128))),
    Ensemble("synth_pop", ("folk", "chorale"), "dance", (
        _s("melody", 80, 81, 84, 54), _s("bass_roots", 38, 39), _s("pad", 88, 89, 90, 91, 95),
        _s("comp", 4, 5, p=0.6), _s("drums", 128))),
    Ensemble("piano_trio", ("chorale", "quartet", "folk"), "classical", (
        _s("melody", 40), _s("bass", 42), _s("arp|comp", 0, 1))),
    Ensemble("folk_band", ("folk",), "folk", (
        _s("melody", 40), _s("strum", 24, 25), _s("bass_roots", 32, 33),
        _s("melody_double", 73, 78, 74, p=0.4), _s("drums", 128, p=0.4))),
    Ensemble("funk_band", ("folk", "chorale"), "funk", (
        _s("melody", 61, 56, 62, 63), _s("strum", 28, 27), _s("bass_roots", 36, 37, 33),
        _s("comp", 4, 5), _s("drums", 128))),
)


@dataclass(frozen=True)
class StemPlan:
    name: str  # "S00", ...
    role: str
    program: int  # GM program 0..127, 128 = drums
    level_db: float  # dB offset from the loudness target (render.TARGET_LUFS)

    @property
    def is_drum(self) -> bool:
        return self.program == 128


@dataclass(frozen=True)
class TrackPlan:
    index: int  # 1-based: Track00001 ...
    seed: int  # per-track seed from (corpus seed, index)
    ensemble: str
    style: str
    source_kind: str
    stems: tuple[StemPlan, ...]

    @property
    def name(self) -> str:
        return f"Track{self.index:05d}"


def _track_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def plan_track(index: int, seed: int) -> TrackPlan:
    """The ensemble, source kind and stems of track ``index`` (1-based); independent of songs.

    Ensembles follow a shuffled round robin (every block of len(ENSEMBLES) tracks holds each
    ensemble once), so every class is present in many songs of any corpus of >= 12 songs.
    """
    if index < 1:
        raise ValueError(f"track index must be >= 1, got {index}")
    n = len(ENSEMBLES)
    block = (index - 1) // n
    order = np.random.default_rng([seed, block, 0xE5]).permutation(n)
    ens = ENSEMBLES[int(order[(index - 1) % n])]
    tseed = _track_seed(seed, index)
    rng = np.random.default_rng([tseed, 1])
    kind = str(rng.choice(ens.kinds))
    stems = []
    for slot in ens.slots:
        role, program = str(rng.choice(slot.roles)), int(rng.choice(slot.programs))
        level = float(rng.uniform(-LEVEL_SPREAD_DB, LEVEL_SPREAD_DB))
        if rng.random() < slot.p:
            stems.append(StemPlan(f"S{len(stems):02d}", role, program, round(level, 3)))
    return TrackPlan(index, tseed, ens.name, ens.style, kind, tuple(stems))
