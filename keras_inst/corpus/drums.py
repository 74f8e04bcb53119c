"""Procedural drum parts for the rendered corpus: style grooves with fills on General-MIDI drum keys.

A part is a list of ``(onset_q, duration_q, key, velocity)`` tuples in quarter notes, written for
the drum channel (``is_drum``). Grooves follow the bar's meter: ``beat_q`` is 1 for x/4 and x/2
bars split into quarters, 1.5 for compound metres (6/8, 9/8, 12/8). Every 4th bar may end in a
short fill, every 8th always does, and the bar after a fill opens with a crash.
"""

from __future__ import annotations

import numpy as np

KICK, SIDE_STICK, SNARE, CLAP = 36, 37, 38, 39
HAT_CLOSED, HAT_PEDAL, HAT_OPEN = 42, 44, 46
TOMS = (50, 48, 47, 45, 43)  # high -> floor, for descending fills
CRASH, RIDE, TAMBOURINE, SHAKER = 49, 51, 54, 70

DRUM_STYLES = ("rock", "pop", "dance", "funk", "jazz", "folk")
_HIT_Q = 0.25  # drum samples decay on their own; the note-off only needs to come after the hit

Hit = tuple[float, float, int, int]


def _vel(rng: np.random.Generator, base: float, spread: float = 6.0) -> int:
    return int(np.clip(round(base + rng.normal(0.0, spread)), 20, 127))


def _groove(style: str, beats: int, beat_q: float, rng: np.random.Generator) -> list[tuple[float, int, float]]:
    """One bar of the style's groove as (offset_q, key, base velocity)."""
    hits: list[tuple[float, int, float]] = []
    compound = beat_q > 1.0
    sub = beat_q / 3 if compound else beat_q / 2  # eighth-note grid
    steps = int(round(beats * beat_q / sub))
    backbeats = [b for b in range(beats) if b % 2 == 1] or [beats - 1]
    if beats == 3 and not compound:  # waltz: boom-chick-chick
        backbeats = [1, 2]
    downbeats = [b for b in range(beats) if b not in backbeats]
    if style == "jazz":
        for b in range(beats):
            hits.append((b * beat_q, RIDE, 78 + (6 if b in backbeats else 0)))
            if b in backbeats:
                hits.append((b * beat_q + 2 * beat_q / 3, RIDE, 62))  # swung skip note
                hits.append((b * beat_q, HAT_PEDAL, 60))
            if rng.random() < 0.6:
                hits.append((b * beat_q, KICK, 42))  # feathered bass drum
        for _ in range(int(rng.integers(0, 3))):  # sparse snare comping on off-beats
            hits.append((int(rng.integers(0, beats)) * beat_q + 2 * beat_q / 3, SNARE, 50))
        return hits
    for s in range(steps):
        t = s * sub
        on_beat = abs(t / beat_q - round(t / beat_q)) < 1e-6
        if style == "dance":
            hits.append((t, HAT_OPEN if not on_beat else HAT_CLOSED, 70 if not on_beat else 58))
        elif style == "folk":
            hits.append((t, SHAKER if s % 2 else TAMBOURINE, 60 if on_beat else 48))
        elif style == "funk":
            for k in range(2):  # sixteenth hats, accented on the eighths
                hits.append((t + k * sub / 2, HAT_CLOSED, 80 if k == 0 else 55))
        else:
            hits.append((t, HAT_CLOSED, 82 if on_beat else 64))
    for b in range(beats):
        t = b * beat_q
        if style == "dance":
            hits.append((t, KICK, 108))
        elif b in downbeats:
            hits.append((t, KICK, 104 if b == 0 else 96))
        if b in backbeats:
            key = {"dance": CLAP, "folk": SIDE_STICK}.get(style, SNARE)
            hits.append((t, key, 102 if style != "folk" else 80))
    if style in ("pop", "rock") and beats >= 4 and rng.random() < 0.5:
        hits.append((backbeats[0] * beat_q + sub, KICK, 90))  # the "and" of the backbeat
    if style == "funk":
        hits.append((beat_q * 0.75, KICK, 92))
        for _ in range(int(rng.integers(2, 5))):  # ghost notes on random sixteenths
            hits.append((int(rng.integers(0, steps * 2)) * sub / 2, SNARE, 34))
    if style == "pop" and rng.random() < 0.4:
        hits.append(((steps - 1) * sub, HAT_OPEN, 72))
    return hits


def _fill(beats: int, beat_q: float, rng: np.random.Generator, *, jazz: bool) -> list[tuple[float, int, float]]:
    """Replace the last beat (or two) with a run of sixteenths (triplets in jazz) down the toms."""
    n_beats = 2 if (beats >= 4 and rng.random() < 0.5) else 1
    start = (beats - n_beats) * beat_q
    step = beat_q / 3 if (jazz or beat_q > 1.0) else beat_q / 4
    n = int(round(n_beats * beat_q / step))
    toms = list(TOMS) if rng.random() < 0.6 else [SNARE] * 2 + list(TOMS[:3])
    out = []
    for i in range(n):
        key = toms[min(len(toms) - 1, i * len(toms) // n)]
        out.append((start + i * step, key, (60 if jazz else 88) + 20 * i / max(1, n - 1)))
    return out


def drum_part(
    style: str,
    *,
    start_q: float,
    n_bars: int,
    bar_q: float,
    beat_q: float,
    rng: np.random.Generator,
) -> list[Hit]:
    """Drum hits for ``n_bars`` bars of ``bar_q`` quarters from ``start_q``, style in DRUM_STYLES."""
    if style not in DRUM_STYLES:
        raise ValueError(f"unknown drum style {style!r}; known: {', '.join(DRUM_STYLES)}")
    if bar_q <= 0 or beat_q <= 0:
        raise ValueError(f"bar_q and beat_q must be > 0, got {bar_q}, {beat_q}")
    beats = max(1, int(round(bar_q / beat_q)))
    hits: list[Hit] = []
    crash_next = True
    for bar in range(n_bars):
        groove = _groove(style, beats, beat_q, rng)
        is_fill = bar < n_bars - 1 and ((bar + 1) % 8 == 0 or ((bar + 1) % 4 == 0 and rng.random() < 0.6))
        if is_fill:
            fill = _fill(beats, beat_q, rng, jazz=style == "jazz")
            cut = fill[0][0]
            groove = [h for h in groove if h[0] < cut - 1e-6 or h[1] == KICK and h[0] == cut] + fill
        if crash_next:
            groove.append((0.0, CRASH, 96 if style != "jazz" else 70))
            groove = [h for h in groove if not (h[0] == 0.0 and h[1] in (HAT_CLOSED, RIDE))]
        crash_next = is_fill
        t0 = start_q + bar * bar_q
        for off, key, vel in groove:
            hits.append((t0 + off, _HIT_Q, key, _vel(rng, vel)))
    hits.sort(key=lambda h: (h[0], h[2]))
    return hits
