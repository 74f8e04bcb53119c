"""Level corrections the renderers apply, looked up from the measured table ``source_levels.json``.

Every stem is loudness-normalised after rendering, so a preset's overall level does not reach
the corpus; what does is how its loudness *changes with velocity*: some presets jump by 10-25 dB
between velocity layers, so a phrase with crescendos or accents (drum ghost notes, comping)
sounds different per sample set. The table (LUFS per source, program and velocity, and per
drum kit and group) is measured by :mod:`keras_inst.corpus.levels`
(``python -m keras_inst.corpus.levels``), which plays the sources; this module only reads it,
so the renderers can import it without importing the sources.

:func:`velocity_gains` turns the table into per-velocity-band gains that give each source the
median velocity curve of all sources for that program; :func:`key_gains` gives each drum kit
the median kit's balance (snare, hi-hats, cymbals and toms against the kick: kits differ by up to
22 dB there); :func:`dropped` lists presets that play wrong (silent, a jump of more than
``MAX_STEP_DB`` between neighbouring velocities or a fall of more than ``-MIN_STEP_DB``, or a
curve more than ``MAX_CORRECTION_DB`` off the median), which the draw skips. The medians leave
out the table's ``opt_in`` sources (the built-in synthesizer and drum machine), which are brought
to the median of the others: adding them changes no other source's correction, so renders
without them stay identical.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

TABLE_FILE = "source_levels.json"  # beside this module: the measured table (package data)
VELOCITIES = (40, 64, 88, 112, 127)
REF_VELOCITY = 88  # curves are relative to the level at this velocity
BAND_TOPS = (52, 76, 100, 119, 127)  # midpoints: each note takes the nearest measured velocity
MAX_CORRECTION_DB = 12.0  # a curve further off the median than this is a broken preset: dropped
MAX_STEP_DB = 12.0  # louder by more than this from one measured velocity to the next: broken layer
MIN_STEP_DB = -3.0  # a harder note this much quieter than a softer one: broken layer

Gains = tuple[tuple[int, float], ...]  # ((max velocity or drum key, gain dB), ...)
# Drum kit balance: each group's loudness relative to the kick, measured on its first key.
DRUM_GROUPS = {"kick": (36, 35), "snare": (38, 37, 39, 40), "closed_hat": (42, 44), "open_hat": (46,),
               "crash": (49, 52, 55, 57), "ride": (51, 53, 59), "tom": (45, 41, 43, 47, 48, 50)}
MAX_BALANCE_DB = 12.0  # a larger balance correction is clipped (a kit may mean it)


def _band(velocity: int, velocity_gains: Gains) -> int:
    return next((i for i, (top, _) in enumerate(velocity_gains) if velocity <= top), len(velocity_gains) - 1)


def band_gain_db(velocity: int, velocity_gains: Gains) -> float:
    """Gain of the first ((max_velocity, gain_db), ...) band holding ``velocity`` (0 dB if none)."""
    return velocity_gains[_band(velocity, velocity_gains)][1] if velocity_gains else 0.0


def note_gain_db(velocity: int, key: int, velocity_gains: Gains, key_gains: Gains = ()) -> float:
    """Correction of one note: its velocity band's gain plus its drum key's balance gain."""
    return band_gain_db(velocity, velocity_gains) + dict(key_gains).get(key, 0.0)


def split_gains(notes: list, velocity_gains: Gains, key_gains: Gains = ()) -> list[tuple[float, list]]:
    """[(gain_db, notes), ...] grouped by correction, for renderers that apply it per pass."""
    parts: dict[float, list] = {}
    for n in notes:
        parts.setdefault(round(note_gain_db(n[3], n[2], velocity_gains, key_gains), 2), []).append(n)
    return sorted(parts.items())


@lru_cache(maxsize=1)
def _document() -> dict:
    from importlib import resources

    return json.loads(resources.files("keras_inst.corpus").joinpath(TABLE_FILE).read_text("utf-8"))


def opt_in_sources() -> frozenset[str]:
    """Sources of the table left out of the medians (opt-in ones: see the module docstring)."""
    return frozenset(_document().get("opt_in", ()))


@lru_cache(maxsize=1)
def stored_table() -> tuple[dict[str, dict[int, list[float]]], dict[str, dict[str, float]]]:
    """(levels, balance) from ``source_levels.json``: LUFS per source, program and velocity
    (-inf where the preset was silent), and LUFS per drum source and group."""
    doc = _document()
    levels = {s: {int(p): [-float("inf") if v is None else float(v) for v in r] for p, r in rows.items()}
              for s, rows in doc["levels"].items()}
    return levels, doc["balance"]


def _curve(row: list[float]) -> np.ndarray:
    return np.asarray(row, dtype=float) - row[VELOCITIES.index(REF_VELOCITY)]


@lru_cache(maxsize=1)
def _analysis() -> tuple[dict[tuple[str, int], tuple[float, ...]], dict[tuple[str, int], str]]:
    """(per-band corrections in dB, dropped presets with the reason) from the stored table."""
    levels, _ = stored_table()
    by_prog: dict[int, dict[str, list[float]]] = {}
    for name, rows in levels.items():
        for prog, row in rows.items():
            by_prog.setdefault(int(prog), {})[name] = row
    gains, bad = {}, {}
    for prog, rows in by_prog.items():
        ok = {}
        for n, r in rows.items():
            steps = np.diff(r)
            if not np.all(np.isfinite(r)):
                bad[(n, prog)] = "silent at some velocity"
            elif steps.max() > MAX_STEP_DB or steps.min() < MIN_STEP_DB:
                bad[(n, prog)] = f"velocity layers jump {steps.min():+.1f}..{steps.max():+.1f} dB"
            else:
                ok[n] = r
        if not ok:
            continue
        ref = [r for n, r in ok.items() if n not in opt_in_sources()] or list(ok.values())
        median = np.median([_curve(r) for r in ref], axis=0)
        for n, r in ok.items():
            corr = median - _curve(r)
            if np.max(np.abs(corr)) > MAX_CORRECTION_DB:
                bad[(n, prog)] = f"velocity curve {np.max(np.abs(corr)):.1f} dB off the median"
            gains[(n, prog)] = tuple(float(c) for c in corr)
    return gains, bad


def velocity_gains(name: str, program: int) -> Gains:
    """((band top velocity, gain dB), ...) for a source's program; () where not measured."""
    corr = _analysis()[0].get((name, program))
    return tuple(zip(BAND_TOPS, (round(c, 2) for c in corr), strict=True)) if corr else ()


def dropped() -> dict[tuple[str, int], str]:
    """{(source, program): why} of the presets that play wrong."""
    return _analysis()[1]


@lru_cache(maxsize=1)
def _balance_gains() -> dict[str, Gains]:
    _, balance = stored_table()
    rel = {n: {g: v - b["kick"] for g, v in b.items()} for n, b in balance.items() if "kick" in b}
    ref = [r for n, r in rel.items() if n not in opt_in_sources()] or list(rel.values())
    out = {}
    for name, groups in rel.items():
        gains = []
        for group, level in groups.items():
            median = float(np.median([r[group] for r in ref if group in r]))
            corr = float(np.clip(median - level, -MAX_BALANCE_DB, MAX_BALANCE_DB))
            gains += [(k, round(corr, 2)) for k in DRUM_GROUPS[group]]
        out[name] = tuple(sorted(gains))
    return out


def key_gains(name: str) -> Gains:
    """((GM drum key, gain dB), ...) that bring a kit's balance (group vs kick) to the median kit's."""
    return _balance_gains().get(name, ())
