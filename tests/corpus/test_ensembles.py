"""Corpus plan: every class in many songs, shuffled round robin of ensembles, determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from keras_inst.corpus.ensembles import ENSEMBLES
from keras_inst.corpus.plans import plan_corpus
from keras_inst.taxonomy import CLASSES, classes_for


def plan_classes(plan) -> frozenset[str]:
    """The taxonomy classes of a plan's stems (also used by test_render)."""
    out: set[str] = set()
    for s in plan.stems:
        out |= classes_for("slakh", s.program)
    return frozenset(out)


def test_plan_covers_every_class_in_many_songs():
    plans = plan_corpus(100, 0)
    counts = Counter(c for p in plans for c in plan_classes(p))
    assert set(counts) == set(CLASSES)
    assert min(counts.values()) >= 10, counts
    # shuffled round robin: each block of len(ENSEMBLES) tracks holds every ensemble once
    n = len(ENSEMBLES)
    for b in range(100 // n):
        assert sorted(p.ensemble for p in plans[b * n : (b + 1) * n]) == sorted(e.name for e in ENSEMBLES)
    for p in plans:
        assert [s.name for s in p.stems] == [f"S{i:02d}" for i in range(len(p.stems))]
        assert all(abs(s.level_db) <= 3.0 for s in p.stems)
        assert all(s.is_drum == (s.program == 128) for s in p.stems)


def test_plan_is_deterministic_and_prefix_stable():
    assert plan_corpus(100, 0)[:30] == plan_corpus(30, 0)
    assert plan_corpus(30, 0) == plan_corpus(30, 0)
    assert plan_corpus(30, 0) != plan_corpus(30, 1)
    with pytest.raises(ValueError, match="songs"):
        plan_corpus(0, 0)
