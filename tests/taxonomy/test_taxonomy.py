"""The taxonomy tables against every label of the real dataset fixtures, and their API."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from keras_inst import taxonomy as tx
from keras_inst.taxonomy import tables as tt

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _labels_of(value: object) -> list[str]:
    """An `instrument` field is a string or (in some files) a list of strings."""
    return list(value) if isinstance(value, list) else [value]


def _metadata_labels(folder: Path, *, with_raw: bool) -> tuple[int, Counter]:
    """(number of *_METADATA.yaml files, Counter of every `instrument` label in them)."""
    files = sorted(folder.glob("*_METADATA.yaml"))
    labels: Counter = Counter()
    for f in files:
        meta = yaml.load(f.read_text(encoding="utf-8"), Loader=Loader)
        for stem in (meta.get("stems") or {}).values():
            labels.update(_labels_of(stem["instrument"]))
            if with_raw:
                for raw in (stem.get("raw") or {}).values():
                    labels.update(_labels_of(raw["instrument"]))
    return len(files), labels


def _yaml_leaves(node: object) -> list[str]:
    if isinstance(node, dict):
        return [x for v in node.values() for x in _yaml_leaves(v)]
    if isinstance(node, list):
        return [x for v in node for x in _yaml_leaves(v)]
    return [node]


def _unknown(vocabulary: str, labels) -> list:
    out = []
    for label in labels:
        try:
            tx.classes_for(vocabulary, label)
        except tx.UnknownLabelError:
            out.append(label)
    return sorted(out, key=str)


@pytest.fixture(scope="module")
def medleydb_taxonomy_labels(fixtures_dir: Path) -> list[str]:
    text = (fixtures_dir / "medleydb/resources/taxonomy.yaml").read_text(encoding="utf-8")
    return _yaml_leaves(yaml.safe_load(text))


@pytest.fixture(scope="module")
def medleydb_metadata(fixtures_dir: Path) -> tuple[int, Counter]:
    return _metadata_labels(fixtures_dir / "medleydb/Metadata", with_raw=True)


@pytest.fixture(scope="module")
def mixing_secrets_metadata(fixtures_dir: Path) -> tuple[int, Counter]:
    # Raw-track `instrument` values in Mixing Secrets are file-name stems ("HiHat", "SynthLead"),
    # not curated labels; readers use the stem labels only.
    return _metadata_labels(fixtures_dir / "mixing_secrets/metadata", with_raw=False)


@pytest.fixture(scope="module")
def mixing_secrets_csv(fixtures_dir: Path) -> list[str]:
    with open(fixtures_dir / "mixing_secrets/mixing_secrets_insts.csv", newline="") as f:
        return [row[0] for row in csv.reader(f)]


@pytest.fixture(scope="module")
def jamendo_tags(fixtures_dir: Path) -> Counter:
    """Tags of the real TSV: CRLF line ends, tags continue as extra tab-separated columns."""
    raw = (fixtures_dir / "mtg_jamendo/metadata/autotagging_instrument.tsv").read_bytes()
    assert b"\r\n" in raw  # the quirk this reader handles
    rows = raw.decode("utf-8").split("\r\n")
    assert rows[0].split("\t")[5] == "TAGS"
    tags: Counter = Counter()
    for row in rows[1:]:
        if row:
            tags.update(row.split("\t")[5:])
    return tags


# --- every real label is named ------------------------------------------------------------


def test_medleydb_taxonomy_yaml_labels_all_named(medleydb_taxonomy_labels):
    assert len(medleydb_taxonomy_labels) == 122
    assert _unknown("medleydb", medleydb_taxonomy_labels) == []


def test_medleydb_metadata_labels_all_named(medleydb_metadata, medleydb_taxonomy_labels):
    n_files, labels = medleydb_metadata
    assert n_files == 330
    assert len(labels) == 101
    assert set(labels) - set(medleydb_taxonomy_labels) == {"woodwind section"}
    assert _unknown("medleydb", labels) == []
    # the table names exactly these labels: a typo in the table would show up as an extra
    assert set(tx.table("medleydb")) == set(labels) | set(medleydb_taxonomy_labels)
    assert len(tx.table("medleydb")) == 123


def test_mixing_secrets_metadata_labels_all_named(mixing_secrets_metadata, mixing_secrets_csv):
    n_files, labels = mixing_secrets_metadata
    assert n_files == 258
    assert len(labels) == 230
    assert _unknown("mixing_secrets", labels) == []
    assert _unknown("mixing_secrets", mixing_secrets_csv) == []
    # the CSV (label,count) also lists four labels that the final metadata no longer uses
    assert set(mixing_secrets_csv) - set(labels) == {"hammond", "organ", "rhodes", "strings"}
    assert set(tx.table("mixing_secrets")) == set(labels) | set(mixing_secrets_csv)
    assert len(tx.table("mixing_secrets")) == 234


def test_slakh_programs_all_named_and_gm_names_match(fixtures_dir):
    path = fixtures_dir / "slakh/metadata/midi_inst_values/general_midi_inst_0based.json"
    gm = json.loads(path.read_text(encoding="utf-8"))
    assert sorted(int(k) for k in gm) == list(range(129))
    assert _unknown("slakh", range(129)) == []
    assert list(tx.table("slakh")) == list(range(129))
    for key, entry in gm.items():
        program = int(key)
        assert tt.GM_PROGRAM_NAMES[program] == entry["name"]
        assert tx._slakh_inst_class(program) == entry["class"]


def test_slakh_fixture_stems_resolve(fixtures_dir):
    found = []
    for meta in sorted((fixtures_dir / "slakh").glob("*/**/metadata.yaml")):
        for stem in yaml.safe_load(meta.read_text(encoding="utf-8"))["stems"].values():
            program = 128 if stem["is_drum"] else stem["program_num"]
            found.append((program, tx.classes_for("slakh", program)))
    assert len(found) >= 10
    assert (30, frozenset({"electric_guitar", "plucked_string"})) in found
    assert (128, frozenset({"drums", "percussion"})) in found


def test_jamendo_tags_all_named(jamendo_tags):
    assert len(jamendo_tags) == 41
    assert all(t.startswith("instrument---") for t in jamendo_tags)
    assert _unknown("mtg_jamendo", jamendo_tags) == []
    assert set(tx.table("mtg_jamendo")) == set(jamendo_tags)
    for tag in jamendo_tags:  # the bare tag and a CR-terminated one resolve to the same set
        bare = tag.removeprefix("instrument---")
        assert tx.classes_for("mtg_jamendo", bare) == tx.classes_for("mtg_jamendo", tag + "\r")


# --- exact sets ------------------------------------------------------------------------------

EXACT = [
    ("medleydb", "female singer", {"voice", "singer"}),
    ("medleydb", "Main System", set()),
    ("medleydb", "main system", set()),
    ("medleydb", "male rapper", {"voice"}),
    ("medleydb", "choir", {"voice"}),
    ("medleydb", "kick drum", {"drums", "percussion"}),
    ("medleydb", "cymbal", {"percussion"}),
    ("medleydb", "tack piano", {"piano", "key"}),
    ("medleydb", "harpsichord", {"key"}),
    ("medleydb", "double bass", {"bowed_string"}),
    ("medleydb", "violin section", {"violin", "bowed_string"}),
    ("medleydb", "fx/processed sound", set()),
    ("medleydb", "drum machine", {"drums", "percussion"}),
    ("mixing_secrets", "male singer", {"voice", "singer"}),
    ("mixing_secrets", "leadvoxdt", {"voice", "singer"}),
    ("mixing_secrets", "distorted electric guitar", {"electric_guitar", "plucked_string"}),
    ("mixing_secrets", "violinsamples", {"violin", "bowed_string"}),
    ("mixing_secrets", "bass synth", {"synth"}),
    ("mixing_secrets", "didgeridoo", {"brass"}),
    ("mixing_secrets", "room_stereo", set()),
    ("mixing_secrets", " Hammond ", {"key"}),
    ("slakh", 0, {"piano", "key"}),
    ("slakh", 4, {"key"}),
    ("slakh", 32, {"plucked_string"}),
    ("slakh", 33, {"electric_bass", "plucked_string"}),
    ("slakh", 38, {"synth"}),
    ("slakh", 52, {"voice"}),
    ("slakh", 53, {"singer", "voice"}),
    ("slakh", 110, {"violin", "bowed_string"}),
    ("slakh", 127, set()),
    ("slakh", "128", {"drums", "percussion"}),
    ("slakh", np.int64(25), {"acoustic_guitar", "plucked_string"}),
    ("mtg_jamendo", "instrument---voice", {"voice"}),
    ("mtg_jamendo", "classicalguitar", {"acoustic_guitar", "plucked_string"}),
    ("mtg_jamendo", "instrument---orchestra", set()),
    ("mtg_jamendo", "Instrument---Rhodes", {"key"}),
]


@pytest.mark.parametrize(("vocabulary", "label", "expected"), EXACT)
def test_exact_class_sets(vocabulary, label, expected):
    assert tx.classes_for(vocabulary, label) == frozenset(expected)


def test_list_valued_instrument_is_the_union():
    got = tx.classes_for_labels("mixing_secrets", ["male singer", "electronic organ"])
    assert got == {"voice", "singer", "key"}
    assert tx.classes_for_labels("medleydb", "cello") == {"bowed_string"}  # a bare string
    assert tx.classes_for_labels("slakh", 128) == {"drums", "percussion"}
    assert tx.classes_for_labels("medleydb", []) == frozenset()


# --- structure -------------------------------------------------------------------------------


def test_every_table_value_is_closed_and_valid():
    for vocabulary in tx.VOCABULARIES:
        for label, classes in tx.table(vocabulary).items():
            assert isinstance(classes, frozenset), (vocabulary, label)
            assert classes == tx.close(classes), (vocabulary, label)
            instruments = classes & set(tx.INSTRUMENTS)
            assert len(instruments) <= 1, (vocabulary, label, instruments)
            assert tx.classes_of(tx.multi_hot(classes)) == classes


def test_same_name_same_set_across_vocabularies():
    md = {k.casefold(): v for k, v in tx.table("medleydb").items()}
    ms = tx.table("mixing_secrets")
    shared = set(md) & set(ms)
    assert len(shared) == 59
    assert [x for x in sorted(shared) if md[x] != ms[x]] == []
    same = [
        (("medleydb", "whistle"), ("slakh", 78), ("mixing_secrets", "whistle")),
        (("medleydb", "violin"), ("slakh", 110), ("mixing_secrets", "fiddle")),
        (("medleydb", "electric piano"), ("slakh", 4), ("mtg_jamendo", "rhodes")),
        (("medleydb", "accordion"), ("slakh", 21), ("mtg_jamendo", "accordion")),
        (("medleydb", "harpsichord"), ("slakh", 6), ("mixing_secrets", "harpsichord")),
        (("medleydb", "dulcimer"), ("slakh", 15), ("mixing_secrets", "dulcimer")),
        (("medleydb", "double bass"), ("slakh", 43), ("mtg_jamendo", "doublebass")),
        (("medleydb", "choir"), ("slakh", 52), ("mixing_secrets", "samplechoir")),
        (("medleydb", "drum set"), ("slakh", 128), ("mtg_jamendo", "drummachine")),
        (("medleydb", "synthesizer"), ("slakh", 81), ("mtg_jamendo", "computer")),
        (("mixing_secrets", "kalimba"), ("slakh", 108), ("medleydb", "marimba")),
        (("mixing_secrets", "bass"), ("slakh", 33), ("mtg_jamendo", "bass")),
    ]
    for group in same:
        sets = {tx.classes_for(v, label) for v, label in group}
        assert len(sets) == 1, group


@pytest.mark.parametrize("vocabulary", ["medleydb", "mixing_secrets", "slakh"])
def test_every_class_is_reachable(vocabulary):
    reached = set().union(*tx.table(vocabulary).values())
    assert set(tx.CLASSES) - reached == set()


def test_slakh_reaches_singer_only_through_program_53():
    assert [p for p, c in tx.table("slakh").items() if "singer" in c] == [53]


@pytest.mark.parametrize(
    ("vocabulary", "label"),
    [
        ("medleydb", "kazoo"),
        ("medleydb", "Male Singers"),
        ("medleydb", None),
        ("mixing_secrets", "HiHat"),
        ("mixing_secrets", ""),
        ("slakh", 129),
        ("slakh", -1),
        ("slakh", True),
        ("slakh", "program 33"),
        ("slakh", 33.0),
        ("mtg_jamendo", "genre---rock"),
        ("mtg_jamendo", "instrument---kazoo"),
    ],
)
def test_unknown_label_raises(vocabulary, label):
    with pytest.raises(tx.UnknownLabelError, match="not in the taxonomy table") as info:
        tx.classes_for(vocabulary, label)
    assert isinstance(info.value, KeyError)
    assert (info.value.vocabulary, info.value.label) == (vocabulary, label)


def test_unknown_label_inside_a_list_raises():
    with pytest.raises(tx.UnknownLabelError, match="'kazoo'"):
        tx.classes_for_labels("medleydb", ["piano", "kazoo"])


def test_unknown_vocabulary_raises_value_error():
    with pytest.raises(ValueError, match="unknown vocabulary 'openmic'"):
        tx.classes_for("openmic", "piano")
    with pytest.raises(ValueError, match="unknown vocabulary"):
        tx.table("MedleyDB")


def test_tables_are_read_only():
    with pytest.raises(TypeError):
        tx.table("medleydb")["kazoo"] = frozenset()  # type: ignore[index]


def test_duplicate_label_in_a_table_is_rejected():
    groups = ((("piano",), ("piano",), ""), (("key",), ("piano",), ""))
    with pytest.raises(ValueError, match="'piano' is listed twice"):
        tx._build(groups, "medleydb")


# --- documentation ---------------------------------------------------------------------------


def test_markdown_content():
    md = tx.render_markdown()
    assert "| female singer | voice, singer |" in md
    assert "| Main System | (none) |" in md
    assert "| 33 | Electric Bass (finger) | Bass | plucked_string, electric_bass |" in md
    assert "| instrument---orchestra | (none) |" in md
    assert "Labels per vocabulary: medleydb: 123, mixing_secrets: 234, slakh: 129, " in md
    assert "- slakh (1): 53 Voice Oohs" in md  # the singer feeders


def test_docs_file_is_up_to_date(repo_dir):
    doc = repo_dir / "docs" / "taxonomy.md"
    current = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    assert current == tx.render_markdown(), (
        "docs/taxonomy.md is stale; regenerate it with "
        "`python -m keras_inst.taxonomy --markdown > docs/taxonomy.md`"
    )


def test_cli_prints_markdown(capsys):
    tx.main(["--markdown"])
    assert capsys.readouterr().out == tx.render_markdown()
    with pytest.raises(SystemExit):
        tx.main([])
