"""The paper's two-level instrument taxonomy (§2.2) and the maps from every source vocabulary.

15 outputs in a fixed order: 8 families, then 7 instruments. An instrument implies its family.
Every label of every source vocabulary (MedleyDB, Mixing Secrets, Slakh/General MIDI,
MTG-Jamendo) is named explicitly in a table below; labels that carry no class map to the empty
set on purpose. An unknown label raises :class:`UnknownLabelError` -- there is no fall-through.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

FAMILIES: tuple[str, ...] = (
    "voice",
    "percussion",
    "bowed_string",
    "plucked_string",
    "woodwind",
    "brass",
    "key",
    "synth",
)
INSTRUMENTS: tuple[str, ...] = (
    "singer",
    "drums",
    "violin",
    "electric_guitar",
    "acoustic_guitar",
    "electric_bass",
    "piano",
)
CLASSES: tuple[str, ...] = FAMILIES + INSTRUMENTS
NUM_CLASSES = len(CLASSES)
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}

FAMILY_OF: dict[str, str] = {
    "singer": "voice",
    "drums": "percussion",
    "violin": "bowed_string",
    "electric_guitar": "plucked_string",
    "acoustic_guitar": "plucked_string",
    "electric_bass": "plucked_string",
    "piano": "key",
}

VOCABULARIES: tuple[str, ...] = ("medleydb", "mixing_secrets", "slakh", "mtg_jamendo")


class UnknownLabelError(KeyError):
    """A source label that the taxonomy tables do not name."""

    def __init__(self, vocabulary: str, label: object) -> None:
        super().__init__(f"{vocabulary} label {label!r} is not in the taxonomy table")
        self.vocabulary = vocabulary
        self.label = label

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return self.args[0]


def close(classes: Iterable[str]) -> frozenset[str]:
    """Add the family implied by every instrument; reject names outside :data:`CLASSES`."""
    out = set()
    for c in classes:
        if c not in CLASS_INDEX:
            raise ValueError(f"unknown class {c!r}; classes are {', '.join(CLASSES)}")
        out.add(c)
        if c in FAMILY_OF:
            out.add(FAMILY_OF[c])
    return frozenset(out)


def multi_hot(classes: Iterable[str]) -> np.ndarray:
    """float32 [15] target vector of a class set (closed under the hierarchy)."""
    y = np.zeros(NUM_CLASSES, dtype=np.float32)
    for c in close(classes):
        y[CLASS_INDEX[c]] = 1.0
    return y


def classes_of(vector: Iterable[float], threshold: float = 0.5) -> frozenset[str]:
    """Class names whose score is >= threshold, made hierarchy-consistent."""
    v = np.asarray(list(vector), dtype=np.float64)
    if v.shape != (NUM_CLASSES,):
        raise ValueError(f"expected {NUM_CLASSES} scores, got shape {v.shape}")
    return close(CLASSES[i] for i in np.flatnonzero(v >= threshold))
