"""Implied harmony of source scores: key and chords of a cadence, a minor key."""

from __future__ import annotations

from keras_inst.corpus import scores


def test_key_and_chords_of_a_cadence():
    # I - IV - V - I in C major, one bar (4 quarters) each, as whole-note triads + bass
    prog = [(0, (60, 64, 67), 48), (4, (60, 65, 69), 53), (8, (59, 62, 67), 55), (12, (60, 64, 67), 48)]
    upper = [(float(t), 4.0, k) for t, keys, _ in prog for k in keys]
    bass = [(float(t), 4.0, b) for t, _, b in prog]
    assert scores.estimate_key([upper, bass]) == (0, "major")
    chords = scores.estimate_chords([upper, bass], 16.0, 4.0, 0, "major")
    assert [(c.t0, c.root, c.ivs) for c in chords] == [(0.0, 0, (0, 4, 7)), (4.0, 5, (0, 4, 7)), (8.0, 7, (0, 4, 7)), (12.0, 0, (0, 4, 7))]
    a_minor = [(float(i), 1.0, k) for i, k in enumerate([57, 60, 64, 57, 59, 62, 64, 56, 57, 60, 64, 69])]
    assert scores.estimate_key([a_minor]) == (9, "minor")
