"""The corpus plan: which tracks are arranged scores and which are generated songs.

:func:`plan_corpus` combines :mod:`keras_inst.corpus.ensembles` (arranged music21 scores) and
:mod:`keras_inst.corpus.songstyles` (generated pop / rock / electronic / funk / jazz songs); it
lives apart from both so that each of them imports only the plan records, never the other.
"""

from __future__ import annotations

from keras_inst.corpus.ensembles import TrackPlan, plan_track
from keras_inst.corpus.songstyles import is_generated, plan_generated


def plan_corpus(songs: int, seed: int, *, styles: tuple[str, ...] = (),
                generated_share: float = 0.5) -> list[TrackPlan]:
    """Plans of tracks 1..songs (pure and fast; what render_corpus renders).

    With ``styles`` (of :data:`keras_inst.corpus.songstyles.SONG_STYLES`), a seeded
    ``generated_share`` of the tracks are generated songs in one of those styles
    (:mod:`keras_inst.corpus.songwriter`) instead of arranged scores; the other tracks keep the
    plans they have without ``styles``.
    """
    if songs < 1:
        raise ValueError(f"songs must be >= 1, got {songs}")
    if not styles:
        return [plan_track(i, seed) for i in range(1, songs + 1)]
    if not 0.0 < generated_share <= 1.0:
        raise ValueError(f"generated_share must be in (0, 1], got {generated_share}")
    return [plan_generated(i, seed, tuple(styles)) if is_generated(i, seed, generated_share)
            else plan_track(i, seed) for i in range(1, songs + 1)]

