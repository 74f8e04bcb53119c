"""Sliding analysis windows over a mono signal, and the model's probabilities per window.

NumPy only: ``predict`` (:mod:`keras_inst.deploy.predict`, TFLite path included) and
``evaluate``'s song-level scores (:mod:`keras_inst.training.evaluate`) cut files and songs into
windows the same way here (:mod:`keras_inst.deploy.audio_io` re-exports the window functions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def window_starts(num_samples: int, *, window: int, hop: int, min_last: int | None = None) -> np.ndarray:
    """Start samples of the sliding windows over ``num_samples`` samples.

    Windows start at ``0, hop, 2 * hop, ...``. The first always exists (a signal shorter than a
    window is one zero-padded window); a later one is added only while the previous window has
    not reached the end of the signal *and* it holds at least ``min_last`` real samples (default
    half a window). With ``hop <= window / 2`` this is ``1 + ceil((n - window) / hop)`` windows,
    the last one reaching the end; with a longer hop a tail shorter than ``min_last`` is left out
    rather than analysed as a window that is mostly padding (whose answer would weigh as much as
    a full window's in the file's aggregate).
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be > 0 samples, got window={window}, hop={hop}")
    min_last = (window + 1) // 2 if min_last is None else int(min_last)
    if not 1 <= min_last <= window:
        raise ValueError(f"min_last must be in [1, window={window}] samples, got {min_last}")
    if num_samples <= window:
        return np.zeros(1, dtype=np.int64)
    # Window k >= 1 exists iff (k - 1) * hop + window < n (the previous one stops short of the
    # end) and n - k * hop >= min_last; both bounds fall with k, so the last k is their minimum.
    reach_end = -(-(num_samples - window) // hop)
    enough_audio = (num_samples - min_last) // hop
    return np.arange(1 + max(0, min(reach_end, enough_audio)), dtype=np.int64) * hop


def _zero_padded(x: np.ndarray, end: int) -> np.ndarray:
    """``x`` ``[n]`` zero-padded to ``end`` samples, or ``x`` itself when it is longer: with a hop
    above the window a left-out tail lies past the last window's end."""
    if end <= len(x):
        return x
    padded = np.zeros(end, dtype=np.float32)
    padded[: len(x)] = x
    return padded


def frame_windows(x: np.ndarray, *, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a mono signal ``[n]`` into windows ``[num_windows, window]`` (float32, a copy).

    Returns ``(windows, starts)`` (starts: :func:`window_starts`); the last window is zero-padded
    past the end of ``x``.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono signal [samples], got shape {x.shape}")
    starts = window_starts(len(x), window=window, hop=hop)
    padded = _zero_padded(x, int(starts[-1]) + window)
    # [len(padded) - window + 1, window] view -> every hop-th row, copied.
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    return np.ascontiguousarray(view[starts]), starts


def iter_window_batches(x: np.ndarray, *, window: int, hop: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like :func:`frame_windows`, but ``(starts [b], windows [b, window])`` at most ``batch`` at a
    time, so an hour of audio never holds all its (overlapping) windows in memory at once."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 or batch < 1:
        raise ValueError(f"expected a mono signal [samples] and batch >= 1, got shape {x.shape}, batch {batch}")
    starts = window_starts(len(x), window=window, hop=hop)
    padded = _zero_padded(x, int(starts[-1]) + window)
    view = np.lib.stride_tricks.sliding_window_view(padded, window)  # no copy
    for i in range(0, len(starts), batch):
        yield starts[i : i + batch], np.ascontiguousarray(view[starts[i : i + batch]])


def window_probabilities(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, window: int, hop: int,
                         batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(window starts ``[n]`` in samples, float64 probabilities ``[n, C]``) of ``predict`` (float32
    windows ``[b, window]`` -> ``[b, C]``) over the windows of ``x`` (:func:`window_starts`)."""
    starts, parts = [], []
    for s, windows in iter_window_batches(x, window=window, hop=hop, batch=batch):
        starts.append(s)
        parts.append(np.asarray(predict(windows), dtype=np.float64))  # [b, C] for [b, window]
    return np.concatenate(starts), np.concatenate(parts)
