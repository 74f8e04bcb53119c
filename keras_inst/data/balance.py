"""Class-balanced stem draws for non-musical mixes (``mixing.stem_balance`` [open], beyond the paper).

The paper's non-musical mix takes N distinct songs of a dataset uniformly and one stem of each
uniformly, so a class is heard as often as the corpus happens to hold it: in the main job's
100-song corpus bass is in 76 songs, woodwinds (reed and pipe) in ~20 -- and woodwind is the class
every model here reads worst, in domain and held out. With exponent ``a`` > 0 stem k is drawn
with weight ``f_k ** -a``, ``f_k`` the share of the dataset's stems holding stem k's rarest class
(``a`` = 0.5: "square-root" re-sampling, between the corpus's frequencies at 0 and equal classes
at 1). Songs are drawn by their mean stem weight, then a stem within the song by its weight, so
``a`` = 0 gives back the paper's uniform song-then-stem draw exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def stem_weights(classes: np.ndarray, exponent: float) -> np.ndarray:
    """``classes`` multi-hot ``[K, C]`` of one dataset's stems -> draw weights ``[K]`` (mean 1).

    A stem with no class (silence, an unmapped instrument) is weighted as the commonest class."""
    classes = np.asarray(classes, bool)
    if classes.shape[0] == 0:
        return np.zeros(0, np.float64)
    share = classes.mean(axis=0)  # [C]: share of stems holding each class
    rarest = np.where(classes, share[None, :], np.inf).min(axis=1)  # [K]
    rarest = np.where(np.isfinite(rarest), rarest, share.max() if share.max() > 0 else 1.0)
    w = rarest ** -float(exponent)
    return w / w.mean()


def balanced_songs_and_stems(rng: np.random.Generator, songs: np.ndarray, song_stems: list[np.ndarray],
                             weights: np.ndarray, song_weights: np.ndarray, n: int) -> np.ndarray:
    """min(n, len(songs)) stems of distinct ``songs``: each song by its stems' mean weight
    ``song_weights`` (indexed by song; without replacement), then one of its stems by weight
    (``weights``, indexed by stem)."""
    song_w = song_weights[songs]  # [S]
    picked = rng.choice(songs.size, min(n, songs.size), replace=False, p=song_w / song_w.sum())
    out = []
    for j in picked:
        stems = song_stems[songs[j]]
        w = weights[stems]
        out.append(stems[rng.choice(stems.size, p=w / w.sum())])
    return np.asarray(out, np.int32)


def table_stem_weights(table: Any, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`stem_weights` of a :class:`~keras_inst.data.mixing.SourceTable`'s stems ``[K]``,
    computed dataset by dataset (a class's share is counted within the dataset its mixes draw
    from), each song's mean stem weight ``[S]``): fixed for the table, so computed once."""
    out = np.zeros(len(table.entries), np.float64)
    for d in range(len(table.datasets)):
        stems = np.concatenate([table.song_stems[s] for s in table.songs_of(d)] or [np.zeros(0, np.int32)])
        out[stems] = stem_weights(table.classes[stems] > 0, exponent)
    return out, np.array([out[stems].mean() for stems in table.song_stems], np.float64)


def non_musical_class_shares(song_classes: list[np.ndarray], exponent: float) -> np.ndarray:
    """The share of one dataset's single-source non-musical draws holding each class ``[C]``,
    exactly (the first source of any non-musical mix; later ones, from the songs not yet drawn,
    differ slightly): ``song_classes[s]`` is song s's stems' multi-hot classes ``[K_s, C]``; songs
    by their stems' mean weight (uniform at ``exponent`` 0), then a stem by weight."""
    if not song_classes:
        raise ValueError("no songs: nothing to draw from")
    w = stem_weights(np.concatenate(song_classes), exponent)
    per_song = np.split(w, np.cumsum([len(c) for c in song_classes])[:-1])  # each song's stem weights
    song_p = np.array([ws.mean() for ws in per_song])
    song_p /= song_p.sum()
    out = np.zeros(song_classes[0].shape[1])
    for p, ws, cls in zip(song_p, per_song, song_classes, strict=True):
        out += p * (ws[:, None] / ws.sum() * np.asarray(cls, bool)).sum(axis=0)
    return out
