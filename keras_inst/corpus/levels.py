"""Levels of the sample sources per program x velocity, and the correction the render applies.

Every stem is loudness-normalised after rendering, so a preset's overall level does not reach
the corpus; what does is how its loudness *changes with velocity*: some presets jump by 10-25 dB
between velocity layers, so a phrase with crescendos or accents (drum ghost notes, comping)
sounds different per sample set. :func:`measure` renders a test phrase per (source, program,
velocity) and takes its BS.1770 loudness; the table lives in :mod:`keras_inst.corpus.source_levels`
(regenerate with ``python -m keras_inst.corpus.levels``). :func:`velocity_gains` turns it into
per-velocity-band gains that give each source the median velocity curve of all sources for that
program; :func:`dropped` lists presets that play wrong (silent, a jump of more than
``MAX_STEP_DB`` between neighbouring velocities or a fall of more than ``-MIN_STEP_DB``, or a curve
more than ``MAX_CORRECTION_DB`` off the median), which the draw skips.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache

import numpy as np

VELOCITIES = (40, 64, 88, 112, 127)
REF_VELOCITY = 88  # curves are relative to the level at this velocity
BAND_TOPS = (52, 76, 100, 119, 127)  # midpoints: each note takes the nearest measured velocity
MAX_CORRECTION_DB = 12.0  # a curve further off the median than this is a broken preset: dropped
MAX_STEP_DB = 12.0  # louder by more than this from one measured velocity to the next: broken layer
MIN_STEP_DB = -3.0  # a harder note this much quieter than a softer one: broken layer
MIN_LEVEL_LUFS = -70.0  # a quieter phrase is silent (no sample for the program)
SAMPLE_RATE = 16000
_BASS = {32, 33, 34, 35, 36, 37, 38, 39, 43, 58, 70}  # programs played two octaves down


def _band(velocity: int, velocity_gains: tuple[tuple[int, float], ...]) -> int:
    return next((i for i, (top, _) in enumerate(velocity_gains) if velocity <= top), len(velocity_gains) - 1)


def band_gain_db(velocity: int, velocity_gains: tuple[tuple[int, float], ...]) -> float:
    """Gain of the first ((max_velocity, gain_db), ...) band holding ``velocity`` (0 dB if none)."""
    return velocity_gains[_band(velocity, velocity_gains)][1] if velocity_gains else 0.0


def split_bands(notes: list, velocity_gains: tuple[tuple[int, float], ...]) -> list[tuple[float, list]]:
    """[(gain_db, notes of that band), ...] for renderers that apply the correction per pass."""
    if not velocity_gains:
        return [(0.0, list(notes))] if notes else []
    parts: list[list] = [[] for _ in velocity_gains]
    for n in notes:
        parts[_band(n[3], velocity_gains)].append(n)
    return [(g, p) for (_, g), p in zip(velocity_gains, parts, strict=True) if p]


def phrase(program: int, velocity: int, *, variant: int = 0) -> tuple[list[tuple[float, float, int, int]], int]:
    """Test phrase (notes, n_samples): six notes (drums: six kit pieces) at one velocity.

    ``variant`` 1 plays other keys and durations (the held-out phrase of the tests).
    """
    if program == 128:
        keys = (36, 38, 42, 46, 49, 45) if variant == 0 else (38, 36, 42, 51, 47, 36)
        notes = [(0.05 + 0.4 * i, 0.25, k, velocity) for i, k in enumerate(keys)]
    else:
        base = 60 - (24 if program in _BASS else 0)
        steps = (0, 4, 7, 12, 7, 2) if variant == 0 else (-5, 0, 3, 5, 10, -1)
        dur = 0.45 if variant == 0 else 0.3
        notes = [(0.05 + 0.5 * i, dur, base + s, velocity) for i, s in enumerate(steps)]
    return notes, int(SAMPLE_RATE * (notes[-1][0] + 1.0))


def measure(
    names: list[str] | None = None, programs: list[int] | None = None, *, variant: int = 0,
    corrected: bool = False,
) -> dict[str, dict[int, list[float]]]:
    """LUFS of the test phrase: {source: {program: [loudness at each of VELOCITIES]}} (installed only)."""
    from keras_inst.corpus.sources import discover, play
    from keras_inst.corpus.synth import integrated_loudness

    found = discover(names, complete=False)
    out: dict[str, dict[int, list[float]]] = {}
    for src in found.available:
        progs = sorted(src.programs) if programs is None else [p for p in programs if p in src.programs]
        for prog in progs:
            gains = velocity_gains(src.name, prog) if corrected else ()
            row = []
            for vel in VELOCITIES:
                notes, n = phrase(prog, vel, variant=variant)
                x, _ = play(src, found.paths[src.name], notes, program=prog, sample_rate=SAMPLE_RATE,
                            n_samples=n, seed=0, velocity_gains=gains)
                lufs = integrated_loudness(x, SAMPLE_RATE)
                row.append(round(lufs, 2) if lufs > MIN_LEVEL_LUFS else float("-inf"))
            out.setdefault(src.name, {})[prog] = row
    return out


def _curve(row: list[float]) -> np.ndarray:
    return np.asarray(row, dtype=float) - row[VELOCITIES.index(REF_VELOCITY)]


@lru_cache(maxsize=1)
def _analysis() -> tuple[dict[tuple[str, int], tuple[float, ...]], dict[tuple[str, int], str]]:
    """(per-band corrections in dB, dropped presets with the reason) from the stored table."""
    from keras_inst.corpus.source_levels import LEVELS

    by_prog: dict[int, dict[str, list[float]]] = {}
    for name, rows in LEVELS.items():
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
        median = np.median([_curve(r) for r in ok.values()], axis=0)
        for n, r in ok.items():
            corr = median - _curve(r)
            if np.max(np.abs(corr)) > MAX_CORRECTION_DB:
                bad[(n, prog)] = f"velocity curve {np.max(np.abs(corr)):.1f} dB off the median"
            gains[(n, prog)] = tuple(float(c) for c in corr)
    return gains, bad


def velocity_gains(name: str, program: int) -> tuple[tuple[int, float], ...]:
    """((band top velocity, gain dB), ...) for a source's program; () where not measured."""
    corr = _analysis()[0].get((name, program))
    return tuple(zip(BAND_TOPS, (round(c, 2) for c in corr), strict=True)) if corr else ()


def dropped() -> dict[tuple[str, int], str]:
    """{(source, program): why} of the presets that play wrong."""
    return _analysis()[1]


def _write_table(table: dict[str, dict[int, list[float]]], path: str) -> None:
    from keras_inst.atomic import write_text

    lines = [
        '"""Measured LUFS of keras_inst.corpus.levels.phrase per source, program and velocity',
        f"{VELOCITIES}; generated by `python -m keras_inst.corpus.levels` (do not edit by hand).",
        '-inf: the preset was silent."""',
        "",
        "inf = float(\"inf\")",
        "LEVELS: dict[str, dict[int, list[float]]] = {",
    ]
    for name, rows in table.items():
        lines.append(f"    {name!r}: {{")
        lines += [f"        {p}: {[v if np.isfinite(v) else '-inf' for v in r]},".replace("'-inf'", "-inf")
                  for p, r in sorted(rows.items())]
        lines.append("    },")
    write_text(path, "\n".join(lines + ["}", ""]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="measure sample-source levels per program x velocity")
    ap.add_argument("--out", default=None, help="write the table as a Python module (source_levels.py)")
    ap.add_argument("--sources", default=None, help="comma-separated source names (default: all installed)")
    args = ap.parse_args(argv)
    table = measure(args.sources.split(",") if args.sources else None)
    if args.out:
        _write_table(table, args.out)
    else:
        json.dump(table, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
