"""The page's port of predict's rules (keras_inst/web/analysis.js), run in Node against the Python
originals: window starts, presence (active windows, segments, the rule), rounding and the CSV."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import numpy as np
import pytest

from keras_inst.deploy.outputs import format_csv
from keras_inst.deploy.predict import detected_classes
from keras_inst.deploy.web import app_sources, site_metadata
from keras_inst.runtime.presence import PresenceRule, presence
from keras_inst.runtime.windows import window_starts
from keras_inst.taxonomy import CLASSES

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (the page's JavaScript is checked in Node)")

RUNNER = """
import * as A from "./analysis.mjs";
let text = "";
process.stdin.on("data", (d) => { text += d; });
process.stdin.on("end", () => {
  const q = JSON.parse(text);
  const out = {
    starts: q.starts.map(([n, w, h, m]) => A.windowStarts(n, w, h, m ?? undefined)),
    rounded: q.rounding.map((x) => A.round(x, 3)),
    files: q.files.map((f) => A.fileResult({file: f.file, site: q.site, probs: f.probs, starts: f.starts, numSamples: f.numSamples})),
  };
  out.csv = out.files.length ? A.resultCSV(out.files[0], q.site) : "";
  out.resampled = (q.resample || []).map(([x, a, b]) => Array.from(A.resamplePoly(Float32Array.from(x), a, b)));
  out.headerRates = (q.headers || []).map((b64) => A.headerSampleRate(new Uint8Array(Buffer.from(b64, "base64"))));
  process.stdout.write(JSON.stringify(out));
});
"""


def run_node(tmp_path, query: dict) -> dict:
    shutil.copyfile(app_sources()["analysis.js"], tmp_path / "analysis.mjs")
    (tmp_path / "run.mjs").write_text(RUNNER)
    proc = subprocess.run([NODE, "run.mjs"], cwd=tmp_path, input=json.dumps(query), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def random_files(rng, site, count):
    """Window probabilities [n, C] of files of random lengths, with runs of high values."""
    files = []
    for k in range(count):
        samples = int(rng.integers(100, 40 * site["sample_rate"]))
        starts = window_starts(samples, window=site["input_samples"], hop=site["hop_samples"])
        probs = rng.uniform(0, 1, (len(starts), len(CLASSES))) ** 3
        probs[rng.uniform(size=probs.shape) < 0.15] = rng.uniform(0.6, 1.0)
        files.append({"file": f"f{k}.wav", "probs": probs.tolist(), "starts": starts.tolist(), "numSamples": samples})
    return files


def test_window_starts_match_python(tmp_path):
    rng = np.random.default_rng(0)
    cases = [[int(n), w, h, None] for n in [0, 1, 7999, 8000, 16000, 16001, 24000, 24001, 100_000] for w, h in
             [(16000, 8000), (16000, 16000), (16000, 20000), (64000, 32000), (100, 1)]]
    cases += [[int(rng.integers(1, 200_000)), int(w), int(rng.integers(1, 2 * w)), int(rng.integers(1, w + 1))]
              for w in rng.integers(10, 70_000, 150)]
    got = run_node(tmp_path, {"starts": cases, "rounding": [], "files": random_files(rng, _site(), 1), "site": _site()})
    for (n, w, h, m), starts in zip(cases, got["starts"], strict=True):
        assert starts == window_starts(n, window=w, hop=h, min_last=m).tolist(), (n, w, h, m)


def _site(rule: PresenceRule | None = None, thresholds=None) -> dict:
    rule = rule or PresenceRule.default(CLASSES)
    return site_metadata(list(CLASSES), sample_rate=16000, input_samples=16000, variant="tflite",
                         thresholds=list(thresholds if thresholds is not None else [0.5] * len(CLASSES)),
                         threshold_source="test", presence_rule=rule.to_json())


def test_presence_and_probabilities_match_python(tmp_path):
    rng = np.random.default_rng(1)
    rule = PresenceRule({c: int(rng.integers(1, 6)) for c in CLASSES}, {c: float(rng.uniform(0.05, 1)) for c in CLASSES})
    thresholds = rng.uniform(0.3, 0.9, len(CLASSES))
    site = _site(rule, thresholds)
    files = random_files(rng, site, 40)
    ties = [6.3125, 30.9325, 0.0625, 2.0005, 1.2345, 3.0, 7.9999, -1.0625]
    got = run_node(tmp_path, {"starts": [], "rounding": ties, "files": files, "site": site})
    assert got["rounded"] == [round(x, 3) for x in ties]
    for f, res in zip(files, got["files"], strict=True):
        probs, starts_s = np.array(f["probs"]), np.array(f["starts"]) / 16000
        want = presence(probs, starts_s, window_s=1.0, duration_s=f["numSamples"] / 16000, thresholds=thresholds,
                        rule=rule, class_names=CLASSES)
        assert res["classes"] == want.present and res["windows"] == len(probs)
        assert res["segments"] == want.segments
        assert res["active_share"] == {c: round(float(v), 4) for c, v in zip(CLASSES, want.share, strict=True)}
        assert res["probabilities"] == pytest.approx({c: round(float(p), 6) for c, p in zip(CLASSES, probs.mean(0), strict=True)}, abs=1e-6)


def test_csv_matches_predicts(tmp_path):
    """The page's CSV has predict's columns and rows (format_csv of the same answer, --timeline)."""
    rng = np.random.default_rng(2)
    site = _site()
    files = random_files(rng, site, 1)
    res = run_node(tmp_path, {"starts": [], "rounding": [], "files": files, "site": site})["files"][0]
    t = np.array(site["thresholds"])
    timeline = [{"start": s, "end": round(min(s + 1.0, res["duration_seconds"]), 3),
                 "probabilities": dict(zip(CLASSES, row, strict=True)), "classes": detected_classes(np.array(row), t, CLASSES)}
                for s, row in zip(res["starts"], res["timeline"], strict=True)]
    doc = {"class_names": list(CLASSES), "aggregate": "presence",
           "files": [{"path": res["file"], **{k: res[k] for k in ("duration_seconds", "probabilities", "classes", "segments", "active_share")},
                      "timeline": timeline}]}
    page = list(csv.reader(io.StringIO(run_node(tmp_path, {"starts": [], "rounding": [], "files": files, "site": site})["csv"])))
    want = list(csv.reader(io.StringIO(format_csv(doc))))
    assert len(page) == len(want) and page[0] == want[0]
    for a, b in zip(page[1:], want[1:], strict=True):
        for x, y in zip(a, b, strict=True):
            try:
                assert float(x) == pytest.approx(float(y), abs=1e-9)
            except ValueError:
                assert x == y


def test_resampling_matches_predicts(tmp_path):
    """resamplePoly is scipy's resample_poly as audio_io.resample calls it (float32 rounding apart)."""
    from keras_inst.deploy.audio_io import resample

    rng = np.random.default_rng(4)
    cases = [(44100 * 2 + 17, 44100), (1000, 48000), (5000, 22050), (777, 8000), (3000, 11025), (400, 16000), (1, 44100)]
    signals = [(rng.standard_normal(n) * 0.3).astype(np.float32) for n, _ in cases]
    got = run_node(tmp_path, {"starts": [], "rounding": [], "files": [], "site": _site(),
                              "resample": [[x.tolist(), rate, 16000] for x, (_, rate) in zip(signals, cases, strict=True)]})
    for x, (_, rate), y in zip(signals, cases, got["resampled"], strict=True):
        want = resample(x, rate, 16000)
        assert len(y) == len(want)
        np.testing.assert_allclose(y, want, atol=1e-6)


def test_header_sample_rates(tmp_path):
    """The page decodes WAV / FLAC / Ogg Vorbis at their own rate: it reads it from the header."""
    import base64

    import soundfile as sf

    x = np.zeros((2205, 2), np.float32)
    written = []
    for name, rate, kw in [("a.wav", 44100, {}), ("b.wav", 8000, {"subtype": "PCM_24"}), ("c.flac", 48000, {}),
                           ("d.flac", 22050, {}), ("e.ogg", 32000, {"subtype": "VORBIS"})]:
        sf.write(tmp_path / name, x, rate, **kw)
        written.append(rate)
    blobs = [base64.b64encode((tmp_path / n).read_bytes()).decode() for n in ("a.wav", "b.wav", "c.flac", "d.flac", "e.ogg")]
    blobs += [base64.b64encode(b"ID3\x03 not a header we read").decode(), base64.b64encode(np.random.default_rng(0).bytes(64)).decode()]
    got = run_node(tmp_path, {"starts": [], "rounding": [], "files": [], "site": _site(), "headers": blobs})
    assert got["headerRates"] == [*written, None, None]
