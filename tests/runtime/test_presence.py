"""Presence rule: segments, active share, presence, calibration and song-level scores on
constructed window probabilities whose answers are known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_inst.runtime import presence as PR
from keras_inst.taxonomy import CLASSES

NAMES = ["a", "b", "c"]  # not the taxonomy: no family closure


def window_probs(active: dict[str, list[int]], n: int, names=NAMES, on=0.9, off=0.1) -> np.ndarray:
    """``[n, C]`` probabilities: ``on`` in the listed windows of each class, ``off`` elsewhere."""
    p = np.full((n, len(names)), off)
    for c, wins in active.items():
        p[wins, names.index(c)] = on
    return p


def test_segments_merge_consecutive_and_overlapping_windows_only():
    # 21 s, 4-second windows every 2 s: starts 0, 2, ..., 18 (10 windows), the last cut at 21 s.
    starts = np.arange(10) * 2.0
    active = np.zeros(10, bool)
    active[[2, 3, 4, 7, 9]] = True
    # 2..4 -> one segment; 7 and 9 only touch at 18 s, with inactive window 8 between: two.
    assert PR.segments(active, starts, window_s=4.0, duration_s=21.0) == [[4.0, 12.0], [14.0, 18.0], [18.0, 21.0]]
    # Every second: windows 0 and 2 ([0, 4] and [2, 6]) overlap although window 1 is inactive.
    active = np.array([True, False, True, False, False, False, True])
    assert PR.segments(active, np.arange(7.0), window_s=4.0, duration_s=10.0) == [[0.0, 6.0], [6.0, 10.0]]
    # A hop of a whole window: consecutive windows touch and merge.
    assert PR.segments(np.array([True, True, False]), np.array([0.0, 4.0, 8.0]), window_s=4.0, duration_s=12.0) == [[0.0, 8.0]]
    assert PR.segments(np.zeros(3, bool), np.arange(3.0), window_s=4.0, duration_s=6.0) == []


def test_required_windows_k_or_the_share_of_a_shorter_file():
    rule = PR.PresenceRule.default(NAMES)  # k = 2, s = 10 %
    assert [int(rule.required_windows(n, NAMES)[0]) for n in (1, 5, 10, 11, 20, 30, 90)] == [1, 1, 1, 2, 2, 2, 2]
    strict = PR.PresenceRule({c: 6 for c in NAMES}, {c: 1.0 for c in NAMES})
    assert [int(strict.required_windows(n, NAMES)[0]) for n in (1, 4, 6, 50)] == [1, 4, 6, 6]  # short: all windows
    mixed = PR.PresenceRule({"a": 8, "b": 3, "c": 1}, {"a": 0.1, "b": 0.5, "c": 1.0})
    assert mixed.required_windows(30, NAMES).tolist() == [3, 3, 1]


def test_a_part_time_class_is_present_where_the_mean_misses_it():
    # 30 windows every 2 s: "a" plays in windows 10..13 (4 of 30), "b" throughout, "c" in one stray window.
    probs = window_probs({"a": [10, 11, 12, 13], "b": list(range(30)), "c": [20]}, 30, off=0.05)
    thresholds = np.full(3, 0.5)
    assert probs.mean(axis=0)[0] < 0.5  # the mean averages "a" away
    found = PR.presence(probs, np.arange(30) * 2.0, window_s=4.0, duration_s=62.0, thresholds=thresholds,
                        rule=PR.PresenceRule.default(NAMES), class_names=NAMES)
    assert found.present == ["a", "b"]  # "c": 1 window < k = 2
    assert found.active_windows.tolist() == [4, 30, 1] and found.required.tolist() == [2, 2, 2]
    assert found.share.tolist() == pytest.approx([4 / 30, 1.0, 1 / 30])
    assert found.segments == {"a": [[20.0, 30.0]], "b": [[0.0, 62.0]], "c": [[40.0, 44.0]]}
    # With k = 1 for "c" (the max over windows) the stray window counts.
    rule = PR.PresenceRule({"a": 2, "b": 2, "c": 1}, {c: 0.1 for c in NAMES})
    assert PR.presence(probs, np.arange(30) * 2.0, window_s=4.0, duration_s=62.0, thresholds=thresholds, rule=rule,
                       class_names=NAMES).present == NAMES


def test_window_decisions_and_presence_are_hierarchy_consistent():
    # piano active in 3 windows, key's own probability never: key is active where piano is.
    probs = np.full((10, len(CLASSES)), 0.1)
    probs[[1, 2, 3], CLASSES.index("piano")] = 0.9
    rule = PR.PresenceRule({c: 2 for c in CLASSES} | {"key": 5}, {c: 1.0 for c in CLASSES})
    found = PR.presence(probs, np.arange(10.0), window_s=2.0, duration_s=11.0, thresholds=np.full(len(CLASSES), 0.5),
                        rule=rule, class_names=CLASSES)
    assert found.active[:, CLASSES.index("key")].tolist() == found.active[:, CLASSES.index("piano")].tolist()
    assert found.present == ["key", "piano"]  # key needed 5 windows, but piano implies it
    assert found.segments["key"] == found.segments["piano"] == [[1.0, 5.0]]


def test_calibration_picks_the_k_that_maximises_song_level_f1():
    # 6 songs of 20 windows; "a" is active in (positives) 5, 6, 9 and (negatives) 0, 2, 3 windows.
    # F1 by k: 1, 2: 0.75; 3: 6/7; 4, 5: 1.0; 6: 0.8; ... -> the best plateau {4, 5}: its lower middle, 4.
    # "b" (positives 7, 8, 12, negatives 1, 4, 6): F1 1.0 at k = 7 only.
    # "c" sounds in every song: nothing to trade off, the default k stays.
    a_counts, b_counts = [5, 6, 9, 0, 2, 3], [7, 8, 12, 1, 4, 6]
    probs = [window_probs({"a": list(range(ka)), "b": list(range(kb)), "c": list(range(20))}, 20)
             for ka, kb in zip(a_counts, b_counts, strict=True)]
    labels = [{"a", "b", "c"}] * 3 + [{"c"}] * 3
    rule, details = PR.calibrate_presence(probs, labels, np.full(3, 0.5), class_names=NAMES, max_windows=10)
    assert dict(rule.min_windows) == {"a": 4, "b": 7, "c": PR.DEFAULT_MIN_WINDOWS}
    assert dict(rule.min_share) == {"a": 1.0, "b": 1.0, "c": PR.DEFAULT_MIN_SHARE}
    assert details["a"] == {"positives": 3, "negatives": 3, "k": 4, "calibrated": True, "f1": 1.0}
    assert details["c"]["calibrated"] is False and details["c"]["f1"] is None
    assert rule.source == "calibrated on 6 validation songs (song-level F1, k in 2..10)"
    # Capped search: k <= 6 leaves "b" the best reachable plateau {5, 6} (F1 6/7), its lower middle 5.
    capped, d = PR.calibrate_presence(probs, labels, np.full(3, 0.5), class_names=NAMES, max_windows=6)
    assert capped.min_windows["b"] == 5 and d["b"]["f1"] == pytest.approx(6 / 7)
    # The calibrated rule gives back the validation songs' labels.
    got = [PR.presence(p, np.arange(20.0), window_s=2.0, duration_s=21.0, thresholds=np.full(3, 0.5), rule=rule,
                       class_names=NAMES).present for p in probs]
    assert [set(g) for g in got] == labels
    # "c" true in half the songs but never active: F1 0 for every k, so the default stays.
    never, d = PR.calibrate_presence(probs, [{"a", "b", "c"}] * 3 + [set()] * 3, np.array([0.5, 0.5, 0.95]), class_names=NAMES)
    assert never.min_windows["c"] == PR.DEFAULT_MIN_WINDOWS and d["c"]["calibrated"] is False and d["c"]["positives"] == 3
    with pytest.raises(ValueError, match="one label set per song"):
        PR.calibrate_presence(probs, labels[:2], np.full(3, 0.5), class_names=NAMES)
    with pytest.raises(ValueError, match="max_windows must be >= 2"):
        PR.calibrate_presence(probs, labels, np.full(3, 0.5), class_names=NAMES, max_windows=1)


def test_calibration_never_trusts_a_single_window():
    """"a" active in 1, 2, 3 windows of its 3 songs and in 0, 0, 1 of the others: F1 by k is 6/7
    (k = 1), 4/5 (k = 2), 1/2 (k = 3); one window would win, the search starts at 2."""
    probs = [window_probs({"a": list(range(k)), "b": list(range(20)), "c": [0, 1]}, 20) for k in (1, 2, 3, 0, 0, 1)]
    labels = [{"a", "b"}] * 3 + [{"b"}] * 3
    rule, details = PR.calibrate_presence(probs, labels, np.full(3, 0.5), class_names=NAMES)
    assert PR.CALIBRATION_MIN_WINDOWS == 2
    assert rule.min_windows["a"] == 2 and details["a"]["f1"] == pytest.approx(4 / 5)


def test_song_level_scores_exact():
    pred = [{"a"}, {"a", "b"}, set()]
    true = [{"a"}, {"b"}, {"b"}]
    s = PR.song_level_scores(pred, true, NAMES)
    assert s["songs"] == 3
    assert s["per_class"]["a"] == {"tp": 1, "fp": 1, "fn": 0, "positives": 1, "precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}
    assert s["per_class"]["b"] == {"tp": 1, "fp": 0, "fn": 1, "positives": 2, "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert s["per_class"]["c"] == {"tp": 0, "fp": 0, "fn": 0, "positives": 0, "precision": None, "recall": None, "f1": None}
    assert s["micro"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert s["macro"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 2 / 3})
    # A class predicted but never true counts in the macro F1 (as 0).
    s = PR.song_level_scores([{"c"}], [{"a"}], NAMES)
    assert s["per_class"]["c"]["f1"] == 0.0 and s["macro"]["f1"] == 0.0 and s["macro"]["recall"] == 0.0
    with pytest.raises(ValueError, match=r"unknown classes \['z'\]"):
        PR.song_level_scores([{"z"}], [set()], NAMES)


def test_rule_json_round_trip_and_errors_name_the_file():
    rule = PR.PresenceRule({"a": 3, "b": 1, "c": 10}, {"a": 1.0, "b": 0.25, "c": 0.1}, "calibrated on 4 songs")
    doc = json.loads(json.dumps({"presence_rule": rule.to_json()}))
    assert PR.read_presence_rule(doc, NAMES, where="run/report.json") == rule
    assert PR.read_presence_rule({"thresholds": {}}, NAMES, where="x") is None
    assert PR.read_presence_rule(None, NAMES, where="x") is None
    bad = [
        {"min_windows": {"a": 3, "b": 1}, "min_share": {"a": 1.0, "b": 1.0}},  # a class missing
        {"min_windows": {"a": 0, "b": 1, "c": 1}, "min_share": {c: 1.0 for c in NAMES}},  # k < 1
        {"min_windows": {"a": 2.5, "b": 1, "c": 1}, "min_share": {c: 1.0 for c in NAMES}},  # not an integer
        {"min_windows": {c: 1 for c in NAMES}, "min_share": {"a": 0.0, "b": 1.0, "c": 1.0}},  # s outside (0, 1]
        {"min_windows": {c: 1 for c in NAMES}, "min_share": {c: "1" for c in NAMES}},
        {"min_windows": {c: 1 for c in NAMES}, "min_share": {c: 1.0 for c in NAMES}, "typo": 1},  # unknown key
        [1, 2],
    ]
    for data in bad:
        with pytest.raises(ValueError, match=r"run/report.json: 'presence_rule' must be an object with 'min_windows'"):
            PR.read_presence_rule({"presence_rule": data}, NAMES, where="run/report.json")


def test_presence_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, keras_inst.runtime.presence, keras_inst.runtime.windows; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
