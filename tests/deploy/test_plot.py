"""predict --plot: what is drawn equals the timeline, the PNGs have the promised size and pages."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from keras_inst.deploy import plot as PL

NAMES = ["voice", "drums", "piano"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header (IHDR)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def fake_result(name: str, probs: np.ndarray, hop: float = 0.5, window: float = 1.0) -> dict:
    """A predict result with a timeline of ``probs`` [n, C] (windows every ``hop`` s)."""
    n = len(probs)
    duration = (n - 1) * hop + window - 0.2  # the last window is cut at the file's end
    return {
        "path": f"/audio/{name}", "duration_seconds": duration, "classes": ["drums"],
        "timeline": [
            {"start": i * hop, "end": min(i * hop + window, duration), "probabilities": dict(zip(NAMES, map(float, row), strict=True))}
            for i, row in enumerate(probs)
        ],
    }


def test_the_drawn_matrix_is_the_timeline(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 3)), rng.random((3, 3))
    a[2:5, 1] = 0.9  # one run of drums above its threshold
    thresholds = np.array([0.5, 0.8, 0.95])
    drawn = PL.plot_timelines([fake_result("a.wav", a), fake_result("b.wav", b)], NAMES, thresholds, tmp_path / "t.png")
    assert [Path(d["path"]).name for d in drawn] == ["a.wav", "b.wav"]
    for d, p in zip(drawn, (a, b), strict=True):
        np.testing.assert_array_equal(d["probabilities"], p.T)  # [C, n]: classes are rows
        np.testing.assert_array_equal(d["above"], p.T >= thresholds[:, None])
        assert d["edges"][:-1] == pytest.approx(np.arange(len(p)) * 0.5)
        assert d["edges"][-1] == pytest.approx((len(p) - 1) * 0.5 + 0.8)  # the file's end
        assert d["png"] == tmp_path / "t.png"
    # One PNG, two panels of 3 class rows: 12 in x 2 * (0.22 * 3 + 1.3) in at 100 dpi.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.png"]
    assert png_size(tmp_path / "t.png") == (1200, round(2 * (0.22 * 3 + 1.3) * 100))


def test_many_files_continue_in_numbered_pngs(tmp_path):
    results = [fake_result(f"f{i}.wav", np.full((2, 3), i / 10)) for i in range(PL.PANELS_PER_PNG + 1)]
    drawn = PL.plot_timelines(results, NAMES, np.full(3, 0.5), tmp_path / "all.png")
    assert [d["png"].name for d in drawn] == ["all.png"] * PL.PANELS_PER_PNG + ["all-2.png"]
    assert png_size(tmp_path / "all.png")[1] == round(PL.PANELS_PER_PNG * PL.panel_height(3) * 100)
    assert png_size(tmp_path / "all-2.png") == (1200, round(PL.panel_height(3) * 100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all-2.png", "all.png"]  # no temporary files left


def test_nothing_to_plot_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no analysed file"):
        PL.plot_timelines([], NAMES, np.full(3, 0.5), tmp_path / "x.png")
    with pytest.raises(ValueError, match="a.wav: no timeline"):
        PL.timeline_matrix({"path": "a.wav"}, NAMES)


def test_present_classes_are_marked_only_for_a_presence_result(tmp_path):
    probs = np.full((6, 3), 0.1)
    probs[1:3, 1] = 0.9
    res = fake_result("p.wav", probs) | {"active_share": {"voice": 0.0, "drums": 2 / 6, "piano": 0.0},
                                         "segments": {"voice": [], "drums": [[0.5, 2.0]], "piano": []}}
    drawn = PL.plot_timelines([res, fake_result("m.wav", probs)], NAMES, np.full(3, 0.5), tmp_path / "t.png")
    assert drawn[0]["present"].tolist() == [False, True, False]  # classes == ["drums"], with segments: presence
    assert drawn[1]["present"].tolist() == [False, False, False]  # a mean/max result: nothing marked
