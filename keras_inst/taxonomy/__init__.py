"""The paper's two-level instrument taxonomy (§2.2) and the maps from every source vocabulary.

15 outputs in a fixed order: 8 families, then 7 instruments. An instrument implies its family.
Every label of every source vocabulary (MedleyDB, Mixing Secrets, Slakh/General MIDI,
MTG-Jamendo) is named explicitly in a table below; labels that carry no class map to the empty
set on purpose. An unknown label raises :class:`UnknownLabelError` -- there is no fall-through.
"""

from __future__ import annotations

import argparse
import functools
import operator
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np

from keras_inst.taxonomy import tables as _t

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


# ---------------------------------------------------------------------------------------------
# Source vocabularies -> class sets. The label data lives in keras_inst/taxonomy/tables.py.


def _build(groups: Iterable[tuple], vocabulary: str) -> dict:
    """{label: closed class set} from (classes, labels, reason) groups; no label twice."""
    out: dict = {}
    for classes, labels, _reason in groups:
        closed = close(classes)
        for label in labels:
            if label in out:
                raise ValueError(f"{vocabulary} table: label {label!r} is listed twice")
            out[label] = closed
    return out


@functools.cache
def _tables() -> dict[str, Mapping]:
    """The four closed tables, keyed by canonical label (MedleyDB spelling, full Jamendo tag)."""
    medleydb = _build(_t.MEDLEYDB, "medleydb")
    by_fold = {k.casefold(): v for k, v in medleydb.items()}
    mixing = {}
    for label in _t.MIXING_SECRETS_SHARED:
        if label not in by_fold:
            raise ValueError(f"mixing_secrets table: shared label {label!r} is not in MedleyDB's")
        mixing[label] = by_fold[label]
    for label, classes in _build(_t.MIXING_SECRETS_OWN, "mixing_secrets").items():
        if label in mixing or label in by_fold:
            raise ValueError(f"mixing_secrets table: label {label!r} is listed twice")
        mixing[label] = classes
    slakh = _build(_t.SLAKH, "slakh")
    if sorted(slakh) != list(range(129)):
        raise ValueError("slakh table must name every program 0..128 exactly once")
    jamendo = {_t.JAMENDO_PREFIX + k: v for k, v in _build(_t.MTG_JAMENDO, "mtg_jamendo").items()}
    tables = {"medleydb": medleydb, "mixing_secrets": mixing, "slakh": slakh,
              "mtg_jamendo": jamendo}
    return {name: MappingProxyType(dict(sorted(tab.items(), key=lambda kv: _sort_key(kv[0]))))
            for name, tab in tables.items()}


def _sort_key(label: str | int) -> tuple:
    return (0, label, "") if isinstance(label, int) else (1, 0, label.casefold())


@functools.cache
def _folded(vocabulary: str) -> dict[str, frozenset[str]]:
    """Case-folded lookup index of a string-labelled table."""
    return {k.casefold(): v for k, v in _tables()[vocabulary].items()}


def _check_vocabulary(vocabulary: str) -> None:
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"unknown vocabulary {vocabulary!r}; known: {', '.join(VOCABULARIES)}")


def table(vocabulary: str) -> Mapping[str | int, frozenset[str]]:
    """Read-only {label: closed class set} of a vocabulary, every label it names (sorted)."""
    _check_vocabulary(vocabulary)
    return _tables()[vocabulary]


def _slakh_program(label: object) -> int | None:
    """GM program 0..128 from an int or a string of digits (128 = drums); None if neither."""
    if isinstance(label, bool):  # True would otherwise read as program 1
        return None
    if isinstance(label, str):
        text = label.strip()
        return int(text) if text.isdigit() else None
    try:
        return operator.index(label)  # int, numpy integer
    except TypeError:
        return None


def classes_for(vocabulary: str, label: str | int) -> frozenset[str]:
    """Closed class set of one source label; raises UnknownLabelError if the table lacks it.

    medleydb / mixing_secrets: the `instrument` string (surrounding space and case ignored).
    slakh: the GM program 0..127 as int or digit string; the caller passes 128 for drums
    (is_drum: true). mtg_jamendo: a tag with or without the "instrument---" prefix.
    """
    _check_vocabulary(vocabulary)
    if vocabulary == "slakh":
        program = _slakh_program(label)
        if program is None or program not in _tables()["slakh"]:
            raise UnknownLabelError(vocabulary, label)
        return _tables()["slakh"][program]
    if not isinstance(label, str):
        raise UnknownLabelError(vocabulary, label)
    key = label.strip().casefold()
    if vocabulary == "mtg_jamendo" and not key.startswith(_t.JAMENDO_PREFIX):
        key = _t.JAMENDO_PREFIX + key
    try:
        return _folded(vocabulary)[key]
    except KeyError:
        raise UnknownLabelError(vocabulary, label) from None


def classes_for_labels(vocabulary: str, labels: Iterable[str | int] | str | int) -> frozenset[str]:
    """Union of :func:`classes_for` over labels; a single str/int counts as a one-label list.

    For MedleyDB-style `instrument` fields that are a string or a list of strings.
    """
    if isinstance(labels, (str, int, np.integer)):
        labels = [labels]
    out: set[str] = set()
    for label in labels:
        out |= classes_for(vocabulary, label)
    return frozenset(out)


# ---------------------------------------------------------------------------------------------
# Documentation

_TITLES = {
    "medleydb": "MedleyDB (`instrument` of stems and raw tracks, resources/taxonomy.yaml)",
    "mixing_secrets": "Mixing Secrets (lower-cased stem `instrument` labels)",
    "slakh": "Slakh2100 (General MIDI `program_num`; 128 = `is_drum`)",
    "mtg_jamendo": "MTG-Jamendo (autotagging_instrument.tsv tags)",
}


def _fmt(classes: frozenset[str]) -> str:
    """Class set in CLASSES order, or an explicit marker for the empty set."""
    return ", ".join(c for c in CLASSES if c in classes) or "(none)"


def _groups(vocabulary: str) -> list[tuple[tuple, tuple, str]]:
    if vocabulary == "medleydb":
        return list(_t.MEDLEYDB)
    if vocabulary == "mixing_secrets":
        return list(_t.MIXING_SECRETS_OWN)
    if vocabulary == "slakh":
        return list(_t.SLAKH)
    return [(c, tuple(_t.JAMENDO_PREFIX + x for x in ls), r) for c, ls, r in _t.MTG_JAMENDO]


def _label_text(vocabulary: str, label: str | int) -> str:
    return f"{label} {_t.GM_PROGRAM_NAMES[label]}" if vocabulary == "slakh" else str(label)


def _slakh_inst_class(program: int) -> str:
    return [name for start, name in _t.SLAKH_INST_CLASS_STARTS if start <= program][-1]


def render_markdown() -> str:
    """docs/taxonomy.md: classes, principles, every vocabulary's table and each class's feeders."""
    lines = [
        "# Instrument taxonomy",
        "",
        "Generated by `python -m keras_inst.taxonomy --markdown > docs/taxonomy.md` from",
        "`keras_inst/taxonomy/tables.py`; do not edit by hand.",
        "",
        "## Classes",
        "",
        "| index | class | level | family |",
        "|---|---|---|---|",
    ]
    for i, c in enumerate(CLASSES):
        level = "family" if c in FAMILIES else "instrument"
        lines.append(f"| {i} | {c} | {level} | {FAMILY_OF.get(c, c)} |")
    lines += ["", "## Mapping principles", ""] + [f"- {p}" for p in _t.PRINCIPLES]
    counts = ", ".join(f"{v}: {len(table(v))}" for v in VOCABULARIES)
    lines += ["", f"Labels per vocabulary: {counts}.", ""]
    for voc in VOCABULARIES:
        lines += [f"## {_TITLES[voc]}", "", "Decisions:", ""]
        for classes, labels, reason in _groups(voc):
            if reason:
                names = ", ".join(f"`{x}`" for x in labels)
                lines.append(f"- {names} -> {_fmt(close(classes))}: {reason}")
        if voc == "mixing_secrets":
            lines.append("- labels shared with MedleyDB take MedleyDB's class set")
        lines.append("")
        if voc == "slakh":
            lines += ["| program | name | Slakh inst_class | classes |", "|---|---|---|---|"]
            for p, cl in table(voc).items():
                name, inst_class = _t.GM_PROGRAM_NAMES[p], _slakh_inst_class(p)
                lines.append(f"| {p} | {name} | {inst_class} | {_fmt(cl)} |")
        else:
            lines += ["| label | classes |", "|---|---|"]
            lines += [f"| {label} | {_fmt(cl)} |" for label, cl in table(voc).items()]
        lines.append("")
    lines += ["## Labels feeding each class", ""]
    for c in CLASSES:
        lines += [f"### {c}", ""]
        for voc in VOCABULARIES:
            feeders = [_label_text(voc, label) for label, cl in table(voc).items() if c in cl]
            lines.append(f"- {voc} ({len(feeders)}): {', '.join(feeders) or '(none)'}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python -m keras_inst.taxonomy --markdown` prints docs/taxonomy.md."""
    parser = argparse.ArgumentParser(prog="python -m keras_inst.taxonomy", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print docs/taxonomy.md")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.error("nothing to do: pass --markdown")
    print(render_markdown(), end="")
    return 0
