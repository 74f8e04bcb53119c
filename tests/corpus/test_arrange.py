"""Arranging score parts for an ensemble (keras_inst.corpus.arrange)."""

from __future__ import annotations

from keras_inst.corpus import arrange


def test_fit_moves_parts_by_octaves_into_range():
    notes = [(0.0, 1.0, k, 80) for k in (84, 88, 91, 96)]  # high melody -> cello (36..76)
    fitted = arrange.fit_range(notes, 42)
    assert [k for _, _, k, _ in fitted] == [60, 64, 67, 72]  # the smallest shift that fits
    chorale_alto = [(0.0, 1.0, k, 80) for k in (60, 64, 67)]  # fits a violin: stays at pitch
    assert arrange.fit_range(chorale_alto, 40) == chorale_alto
    low = arrange.fit_range([(0.0, 1.0, 20, 80), (1.0, 1.0, 50, 80)], 40)  # violin 55..100
    assert [k for _, _, k, _ in low] == [56, 86]  # three octaves up: both fit
