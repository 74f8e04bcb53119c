"""General-MIDI drum parts of the rendered corpus (keras_inst.corpus.drums)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_inst.corpus.drums import CRASH, HAT_CLOSED, KICK, SNARE, TOMS, drum_part


def test_drum_part_rock_groove_and_fill():
    rng = np.random.default_rng(0)
    hits = drum_part("rock", start_q=0.0, n_bars=9, bar_q=4.0, beat_q=1.0, rng=rng)
    bar2 = [(t - 4.0, k) for t, _, k, _ in hits if 4.0 <= t < 8.0]  # no crash, no fill
    assert {t for t, k in bar2 if k == SNARE} == {1.0, 3.0}
    assert {0.0, 2.0} <= {t for t, k in bar2 if k == KICK} <= {0.0, 1.5, 2.0}
    assert sorted(t for t, k in bar2 if k == HAT_CLOSED) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    fill = [(t - 28.0, k) for t, _, k, _ in hits if 31.0 <= t < 32.0]  # every 8th bar ends in a fill
    assert [t for t, _ in fill] == [3.0, 3.25, 3.5, 3.75]
    assert all(k in set(TOMS) | {SNARE} for _, k in fill)
    assert [k for t, _, k, _ in hits if t == 0.0].count(CRASH) == 1
    assert all(0 <= t < 36.0 and 20 <= v <= 127 for t, _, _, v in hits)
    with pytest.raises(ValueError, match="unknown drum style"):
        drum_part("polka", start_q=0, n_bars=1, bar_q=4, beat_q=1, rng=rng)
