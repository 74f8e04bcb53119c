"""Measure the levels of the sample sources per program x velocity: ``python -m keras_inst.corpus.levels``.

:func:`measure` renders a test phrase per (source, program, velocity) and takes its BS.1770
loudness; :func:`measure_balance` does the same per drum kit and group (snare, hi-hats, cymbals,
toms, kick). ``--out`` writes both as the table ``source_levels.json`` that
:mod:`keras_inst.corpus.gains` turns into the renderers' corrections (why the corrections exist
is written there). This module plays the sources (:mod:`keras_inst.corpus.sources`); the
renderers only read the table, so they never import it.

A built-in engine that draws a patch or kit per stem (``SampleSource.draws`` > 1: the synthesizer,
the drum machine) has no single velocity curve: each patch draws its own (amplitude ~ velocity **
0.6..2.0). Its row is the mean LUFS over ``draws`` seeds, so the correction brings the *average*
drawn patch to the median curve, and the spread between patches stays (a drawn velocity response
is part of the variety those engines add; the pipe organ draws a registration per stem the same
way, and its pipes have no velocity response: its row is flat, and the correction gives it the
median organ curve). ``--add`` measures some sources into an existing table and keeps the other
entries as they are.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from keras_inst.corpus.gains import DRUM_GROUPS, VELOCITIES, key_gains, velocity_gains
from keras_inst.corpus.sources import DRUMS, SampleSource, discover, drum_keys_covered, play
from keras_inst.corpus.synth import integrated_loudness

MIN_LEVEL_LUFS = -70.0  # a quieter phrase is silent (no sample for the program)
SAMPLE_RATE = 16000
_BASS = {32, 33, 34, 35, 36, 37, 38, 39, 43, 58, 70}  # programs played two octaves down


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


def _lufs(src: SampleSource, path: str, notes: list, n: int, program: int, **gains) -> float:
    """Loudness of a phrase on a source: the mean over its ``draws`` seeds (one for sample sets)."""
    got = [integrated_loudness(play(src, path, notes, program=program, sample_rate=SAMPLE_RATE, n_samples=n,
                                    seed=seed, **gains)[0], SAMPLE_RATE) for seed in range(src.draws)]
    return float(np.mean(got)) if all(np.isfinite(got)) else float("-inf")


def measure(
    names: list[str] | None = None, programs: list[int] | None = None, *, variant: int = 0,
    corrected: bool = False,
) -> dict[str, dict[int, list[float]]]:
    """LUFS of the test phrase: {source: {program: [loudness at each of VELOCITIES]}} (installed only)."""
    found = discover(names, complete=False, modern=names is None)  # named: those only
    out: dict[str, dict[int, list[float]]] = {}
    for src in found.available:
        progs = sorted(src.programs) if programs is None else [p for p in programs if p in src.programs]
        for prog in progs:
            gains = velocity_gains(src.name, prog) if corrected else ()
            row = []
            for vel in VELOCITIES:
                notes, n = phrase(prog, vel, variant=variant)
                lufs = _lufs(src, found.paths[src.name], notes, n, prog, velocity_gains=gains)
                row.append(round(lufs, 2) if lufs > MIN_LEVEL_LUFS else float("-inf"))
            out.setdefault(src.name, {})[prog] = row
    return out


def balance_phrase(group: str, *, variant: int = 0) -> tuple[list[tuple[float, float, int, int]], int]:
    """Hits on a drum group's first key at velocity 100: four, 0.5 s apart (variant 1: three, 0.3 s
    apart; the velocity response is the other table's business)."""
    key = DRUM_GROUPS[group][0]
    step, n, vel = (0.5, 4, 100) if variant == 0 else (0.3, 3, 100)
    notes = [(0.05 + step * i, 0.2, key, vel) for i in range(n)]
    return notes, int(SAMPLE_RATE * (notes[-1][0] + 1.5))


def measure_balance(
    names: list[str] | None = None, *, variant: int = 0, corrected: bool = False,
) -> dict[str, dict[str, float]]:
    """LUFS of :func:`balance_phrase` per drum source and group it plays: {source: {group: LUFS}}."""
    found = discover(names, complete=False, modern=names is None)  # named: those only
    out: dict[str, dict[str, float]] = {}
    for src in found.available:
        if DRUMS not in src.programs:
            continue
        path = found.paths[src.name]
        for group, keys in DRUM_GROUPS.items():
            if not drum_keys_covered(src, path, {keys[0]}):
                continue
            notes, n = balance_phrase(group, variant=variant)
            lufs = _lufs(src, path, notes, n, DRUMS, key_gains=key_gains(src.name) if corrected else ())
            out.setdefault(src.name, {})[group] = round(lufs, 2)
    return out


def format_table(obj, indent: int = 0) -> str:
    """JSON with one line per row (a list or object of plain values): the stored table's layout,
    so that adding a source to it (``--add``) leaves the other sources' lines untouched."""
    values = obj.values() if isinstance(obj, dict) else obj
    if not isinstance(obj, (dict, list)) or not any(isinstance(v, (dict, list)) for v in values):
        return json.dumps(obj, separators=(", ", ": "))
    pad = " " * (indent + 2)
    items = ([f"{pad}{json.dumps(k)}: {format_table(v, indent + 2)}" for k, v in obj.items()]
             if isinstance(obj, dict) else [pad + format_table(v, indent + 2) for v in obj])
    ends = "{}" if isinstance(obj, dict) else "[]"
    return ends[0] + "\n" + ",\n".join(items) + "\n" + " " * indent + ends[1]


def _write_table(table: dict[str, dict[int, list[float]]], balance: dict[str, dict[str, float]], path: str,
                 *, add: bool = False) -> None:
    """Write the table; ``add``: merge into the one at ``path``, keeping its other sources' entries."""
    from pathlib import Path

    from keras_inst.atomic import write_text
    from keras_inst.corpus.sources import REGISTRY

    about = ("Measured LUFS of keras_inst.corpus.levels.phrase per source, GM program and velocity "
             f"{list(VELOCITIES)} (null: the preset was silent) and of balance_phrase per drum source "
             "and group. Generated by `python -m keras_inst.corpus.levels --out FILE`; do not edit by hand.")
    levels = {s: {str(p): [v if np.isfinite(v) else None for v in r] for p, r in sorted(rows.items())}
              for s, rows in table.items()}
    if add and Path(path).is_file():  # the other sources' entries and the description stay as they are
        old = json.loads(Path(path).read_text())
        levels, balance, about = {**old["levels"], **levels}, {**old["balance"], **balance}, old["about"]
    opt_in = [s.name for s in REGISTRY if s.opt_in and s.name in levels]  # left out of the medians (gains.py)
    doc = {"about": about, "levels": levels, "balance": balance, **({"opt_in": opt_in} if opt_in else {})}
    write_text(path, format_table(doc) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="measure sample-source levels per program x velocity")
    ap.add_argument("--out", default=None, help="write the table as JSON (keras_inst/corpus/source_levels.json)")
    ap.add_argument("--sources", default=None, help="comma-separated source names (default: all installed)")
    ap.add_argument("--add", action="store_true", help="merge into the table at --out, keeping the other sources")
    args = ap.parse_args(argv)
    names = args.sources.split(",") if args.sources else None
    table, balance = measure(names), measure_balance(names)
    if args.out:
        _write_table(table, balance, args.out, add=args.add)
    else:
        json.dump({"levels": table, "balance": balance}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
