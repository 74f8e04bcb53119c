"""Which instruments play in a file, and when: window decisions -> segments -> presence.

A file is analysed in windows (:func:`keras_inst.deploy.audio_io.window_starts`); the model
gives probabilities ``[n, C]``. Here (NumPy only, no TensorFlow: the TFLite path imports it):

- **active windows**: ``probability >= class threshold``, made hierarchy-consistent per window
  (a window where piano is active has key active too), as ``predict --timeline`` shows them.
- **segments** of a class: its active windows merged, each from its window's start to its
  end (the last one cut at the file's end). Consecutive active windows merge, and so do
  active windows whose extents overlap (a hop below half a window); windows that only touch
  with an inactive window between them stay separate segments.
- **active share**: the fraction of the file's windows in which the class is active (about
  the fraction of its duration; the rule below counts windows, so the share does too).
- **presence** (:class:`PresenceRule`, per class ``k = min_windows`` and ``s = min_share``): a
  class is present when it is active in at least ``max(1, min(k, ceil(s * n)))`` of the file's
  ``n`` windows: ``k`` windows, or, in a file too short for that to be a small part of it, the
  share ``s`` of its windows. The present set is then closed like today's answer (an
  instrument present implies its family).

Why not the mean over windows (``predict --aggregate mean``): an instrument that plays in part
of a song is averaged away; the max (``--aggregate max``) calls a class on one stray window.
The rule's ``k`` is calibrated per class on held-out songs with known song-level labels
(:func:`calibrate_presence`, maximising song-level F1); :func:`song_level_scores` scores sets.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_inst.runtime.artifacts import PRESENCE_RULE_KEY

# The rule a model without a calibrated one gets: active in >= 2 windows (about 6 s of a file
# at 4-second windows every 2 s), or in >= 10 % of the windows of a shorter file (< 20 windows).
DEFAULT_MIN_WINDOWS, DEFAULT_MIN_SHARE = 2, 0.1
DEFAULT_SOURCE = (f"default: active in >= {DEFAULT_MIN_WINDOWS} windows, or in >= "
                  f"{DEFAULT_MIN_SHARE:.0%} of the windows of a shorter file")
# Calibration: k is searched in CALIBRATION_MIN_WINDOWS..DEFAULT_MAX_WINDOWS, with s = 1 (a file
# shorter than k windows needs all of them), so k alone decides on every calibration song. Not
# k = 1: with the 2-4 positive validation songs a class may have, one window "won" for electric
# guitar and bass in one run (2026-12-07), and a single 4-s window of a synth line then reported a
# guitar (that run's false alarms on 30 electronic songs: 28 with k = 1, 20 searched from 2;
# docs/results.md "The per-file answer").
DEFAULT_MAX_WINDOWS, CALIBRATION_SHARE, CALIBRATION_MIN_WINDOWS = 10, 1.0, 2


@dataclass(frozen=True)
class PresenceRule:
    """Per class: ``min_windows`` k >= 1 and ``min_share`` s in (0, 1] (module doc), and where
    the rule comes from (``source``: "default: ...", "calibrated on N validation songs")."""

    min_windows: Mapping[str, int]
    min_share: Mapping[str, float]
    source: str = DEFAULT_SOURCE
    class_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if set(self.min_windows) != set(self.min_share):
            raise ValueError("PresenceRule: min_windows and min_share must name the same classes, got "
                             f"{sorted(self.min_windows)} and {sorted(self.min_share)}")
        bad = [c for c, k in self.min_windows.items() if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1]
        bad += [c for c, s in self.min_share.items() if isinstance(s, bool) or not isinstance(s, float | int) or not 0.0 < s <= 1.0]
        if bad:
            raise ValueError(f"PresenceRule: min_windows must be integers >= 1 and min_share in (0, 1]; bad for {sorted(set(bad))}")
        object.__setattr__(self, "class_names", tuple(self.min_windows))

    @classmethod
    def default(cls, class_names: Sequence[str]) -> PresenceRule:
        """The documented default for every class (:data:`DEFAULT_SOURCE`)."""
        return cls({c: DEFAULT_MIN_WINDOWS for c in class_names}, {c: DEFAULT_MIN_SHARE for c in class_names})

    def required_windows(self, num_windows: int, class_names: Sequence[str]) -> np.ndarray:
        """Active windows ``[C]`` a class needs in a file of ``num_windows`` windows."""
        out = []
        for c in class_names:
            share = math.ceil(self.min_share[c] * num_windows - 1e-9)  # 0.1 * 30 is 3, not 4
            out.append(max(1, min(int(self.min_windows[c]), share)))
        return np.array(out, dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        """``{"min_windows": {class: k}, "min_share": {class: s}, "source": str}``."""
        return {"min_windows": {c: int(k) for c, k in self.min_windows.items()},
                "min_share": {c: float(s) for c, s in self.min_share.items()}, "source": self.source}

    @classmethod
    def from_json(cls, data: Any, class_names: Sequence[str], *, where: str, key: str = PRESENCE_RULE_KEY) -> PresenceRule:
        """The rule :meth:`to_json` wrote, read at ``where`` (a file, named in every error)."""
        what = (f"{where}: '{key}' must be an object with 'min_windows' (class -> integer >= 1) and 'min_share' "
                f"(class -> number in (0, 1]) for every class ({', '.join(class_names)}), and optionally 'source'")
        if not isinstance(data, Mapping) or not {"min_windows", "min_share"} <= set(data) <= {"min_windows", "min_share", "source"}:
            raise ValueError(what)
        k, s = data["min_windows"], data["min_share"]
        if not (isinstance(k, Mapping) and isinstance(s, Mapping) and set(k) == set(s) == set(class_names)):
            raise ValueError(what)
        try:
            return cls({c: k[c] for c in class_names}, {c: s[c] for c in class_names},
                       str(data.get("source", f"read from {where}")))
        except ValueError as e:
            raise ValueError(f"{what} ({e})") from None


def read_presence_rule(doc: Mapping[str, Any] | None, class_names: Sequence[str], *, where: str,
                       key: str = PRESENCE_RULE_KEY) -> PresenceRule | None:
    """The rule under ``key`` of a JSON object read from ``where`` (a run's report.json, an
    export.json); None when ``doc`` or the key is missing; ValueError naming ``where`` if malformed."""
    if doc is None or doc.get(key) is None:
        return None
    return PresenceRule.from_json(doc[key], class_names, where=where, key=key)


def family_closure(class_names: Sequence[str]) -> np.ndarray:
    """bool ``[C, C]``: row c marks c and the family it implies (taxonomy classes; identity else)."""
    from keras_inst.taxonomy import FAMILY_OF

    index = {c: i for i, c in enumerate(class_names)}
    m = np.eye(len(class_names), dtype=bool)
    for c, fam in FAMILY_OF.items():
        if c in index and fam in index:
            m[index[c], index[fam]] = True
    return m


def active_windows(probs: np.ndarray, thresholds: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """bool ``[n, C]``: ``probs [n, C] >= thresholds [C]``, closed per window (instrument -> family)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(class_names) or np.shape(thresholds) != (len(class_names),):
        raise ValueError(f"expected probabilities [n, {len(class_names)}] and thresholds [{len(class_names)}], "
                         f"got {probs.shape} and {np.shape(thresholds)}")
    above = probs >= np.asarray(thresholds, dtype=np.float64)[None, :]
    return (above.astype(np.int64) @ family_closure(class_names).astype(np.int64)) > 0  # [n, C]


def segments(active: np.ndarray, starts_s: np.ndarray, *, window_s: float, duration_s: float) -> list[list[float]]:
    """``[[start, end], ...]`` seconds of one class's active windows ``[n]`` (module doc)."""
    out: list[list[float]] = []
    last = -2
    for i in np.flatnonzero(active):
        start, end = float(starts_s[i]), min(float(starts_s[i]) + window_s, duration_s)
        if out and (i == last + 1 or start < out[-1][1]):
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
        last = int(i)
    return [[round(a, 3), round(b, 3)] for a, b in out]


def closed_order(chosen: Collection[str], class_names: Sequence[str]) -> list[str]:
    """``chosen`` plus the families its instruments imply, in ``class_names`` order."""
    closure = family_closure(class_names)
    idx = [i for i, c in enumerate(class_names) if c in chosen]
    keep = closure[idx].any(axis=0) if idx else np.zeros(len(class_names), bool)
    return [c for c, k in zip(class_names, keep, strict=True) if k]


@dataclass(frozen=True)
class Presence:
    """One file's answer (:func:`presence`)."""

    active: np.ndarray  # bool [n, C]: hierarchy-closed window decisions
    active_windows: np.ndarray  # int [C]
    required: np.ndarray  # int [C]: active windows each class needed
    share: np.ndarray  # float [C]: active_windows / n
    segments: dict[str, list[list[float]]]  # class -> [[start, end], ...] seconds
    present: list[str]  # classes present, closed, in class order


def _present(active: np.ndarray, rule: PresenceRule, class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(active windows [C], required [C], present classes) of window decisions ``active [n, C]``."""
    counts = active.sum(axis=0)
    required = rule.required_windows(active.shape[0], class_names)
    return counts, required, closed_order([c for c, a, r in zip(class_names, counts, required, strict=True) if a >= r], class_names)


def present_classes(probs: np.ndarray, thresholds: np.ndarray, rule: PresenceRule, class_names: Sequence[str]) -> list[str]:
    """The classes present in a file of window probabilities ``[n, C]`` (closed, class order)."""
    return _present(active_windows(probs, thresholds, class_names), rule, class_names)[2]


def presence(probs: np.ndarray, starts_s: np.ndarray, *, window_s: float, duration_s: float, thresholds: np.ndarray,
             rule: PresenceRule, class_names: Sequence[str]) -> Presence:
    """Window probabilities ``[n, C]`` at window starts ``[n]`` (seconds) -> :class:`Presence`."""
    active = active_windows(probs, thresholds, class_names)
    n = active.shape[0]
    if n == 0 or len(starts_s) != n:
        raise ValueError(f"expected >= 1 window and one start per window, got {n} windows and {len(starts_s)} starts")
    counts, required, present = _present(active, rule, class_names)
    segs = {c: segments(active[:, j], np.asarray(starts_s), window_s=window_s, duration_s=duration_s)
            for j, c in enumerate(class_names)}
    return Presence(active, counts, required, counts / n, segs, present)


def song_level_scores(pred_sets: Sequence[Collection[str]], true_sets: Sequence[Collection[str]],
                      class_names: Sequence[str]) -> dict[str, Any]:
    """Song-level precision / recall / F1 of predicted class sets against true ones.

    Per class: ``tp``, ``fp``, ``fn``, ``positives`` (songs where it is true), precision (None
    when never predicted), recall (None when never true), F1 ``2tp / (2tp + fp + fn)`` (None when
    neither). ``micro``: the same over the pooled counts; ``macro``: the mean of each measure
    over the classes where it is defined (a class predicted but never true counts, with F1 0).
    """
    if len(pred_sets) != len(true_sets):
        raise ValueError(f"got {len(pred_sets)} predicted and {len(true_sets)} true sets")
    unknown = sorted({c for s in (*pred_sets, *true_sets) for c in s} - set(class_names))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; classes are {', '.join(class_names)}")
    per: dict[str, dict[str, Any]] = {}
    for c in class_names:
        pred = np.array([c in s for s in pred_sets], bool)
        true = np.array([c in s for s in true_sets], bool)
        per[c] = _prf(int(np.sum(pred & true)), int(np.sum(pred & ~true)), int(np.sum(~pred & true)))
    pooled = _prf(*(sum(p[k] for p in per.values()) for k in ("tp", "fp", "fn")))
    macro = {m: _mean([p[m] for p in per.values()]) for m in ("precision", "recall", "f1")}
    return {"songs": len(true_sets), "micro": {m: pooled[m] for m in ("precision", "recall", "f1")},
            "macro": macro, "per_class": per}


def _prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {"tp": tp, "fp": fp, "fn": fn, "positives": tp + fn,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None}


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def calibrate_presence(per_song_window_probs: Sequence[np.ndarray], per_song_labels: Sequence[Collection[str]],
                       thresholds: np.ndarray, *, class_names: Sequence[str], max_windows: int = DEFAULT_MAX_WINDOWS,
                       what: str = "validation songs") -> tuple[PresenceRule, dict[str, Any]]:
    """Per class, the ``min_windows`` k in ``CALIBRATION_MIN_WINDOWS..max_windows`` that maximises song-level F1.

    ``per_song_window_probs``: per song ``[n_i, C]``; ``per_song_labels``: per song the classes
    that sound in it (closed). Calibrated rules have ``min_share`` 1 (a song shorter than k
    windows needs all of them). Several best k: the middle one (lower median), so the rule does
    not sit at the edge where one more song flips. A class without positive or without negative
    songs keeps the default rule (nothing to trade off), and so does one that no k finds in any
    positive song (F1 0 for every k: the threshold fails, not k). Returns the rule and, per class, what
    was found (``k``, ``f1``, ``positives``, ``negatives``, ``calibrated``).
    """
    if len(per_song_window_probs) != len(per_song_labels) or not per_song_labels:
        raise ValueError(f"need one label set per song and >= 1 song, got {len(per_song_window_probs)} "
                         f"probability arrays and {len(per_song_labels)} label sets")
    if max_windows < CALIBRATION_MIN_WINDOWS:
        raise ValueError(f"max_windows must be >= {CALIBRATION_MIN_WINDOWS}, got {max_windows}")
    counts = np.stack([active_windows(p, thresholds, class_names).sum(axis=0) for p in per_song_window_probs])  # [S, C]
    n = np.array([len(p) for p in per_song_window_probs])  # [S]
    truth = np.array([[c in labels for c in class_names] for labels in per_song_labels], bool)  # [S, C]
    ks = np.arange(CALIBRATION_MIN_WINDOWS, max_windows + 1)
    k_out, s_out, details = {}, {}, {}
    for j, c in enumerate(class_names):
        pos = int(truth[:, j].sum())
        info: dict[str, Any] = {"positives": pos, "negatives": len(n) - pos}
        pred = counts[:, j][None, :] >= np.minimum(ks[:, None], n[None, :])  # [K, S]
        tp = (pred & truth[:, j]).sum(axis=1)
        f1 = 2 * tp / np.maximum(pred.sum(axis=1) + pos, 1)  # 2tp / (2tp + fp + fn): predicted + true songs
        if pos == 0 or pos == len(n) or f1.max() == 0:
            k_out[c], s_out[c] = DEFAULT_MIN_WINDOWS, DEFAULT_MIN_SHARE
            details[c] = info | {"k": DEFAULT_MIN_WINDOWS, "calibrated": False, "f1": None}
            continue
        best = ks[np.isclose(f1, f1.max())]
        k_out[c], s_out[c] = int(best[(len(best) - 1) // 2]), CALIBRATION_SHARE
        details[c] = info | {"k": k_out[c], "calibrated": True, "f1": float(f1.max())}
    source = f"calibrated on {len(n)} {what} (song-level F1, k in {CALIBRATION_MIN_WINDOWS}..{max_windows})"
    return PresenceRule(k_out, s_out, source), details
