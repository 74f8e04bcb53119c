"""The in-browser app in a real headless Chromium: the page's answer equals ``keras-inst predict``'s.

The toy classifier of tests/toy_models.py (1-second windows at 16 kHz; tones -> piano/key,
noise -> drums/percussion; tuned thresholds that differ from 0.5) is exported to float32 TFLite
and served by :func:`keras_inst.deploy.serve.serve_in_thread` (with the isolation headers: the
threaded LiteRT.js; without them, as a plain static host: compat); selenium drives Debian's
chromium + chromium-driver (scripts/setup_web.sh installs them and LiteRT.js). Skipped, saying
what is missing, where any of them is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from toy_models import export_toy_run, toy_audio

from keras_inst.deploy import predict as P
from keras_inst.deploy.web import (
    MAX_THREADS,
    THREADED_VARIANT,
    WASM_VARIANT,
    WebRuntimeMissing,
    build_site,
    load_web_model,
    runtime_sources,
)

FIXTURES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures").resolve()
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOLERANCE = 0.02  # per-class probability, page vs predict (issue 19)


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} is missing (sudo bash scripts/setup_web.sh installs chromium + chromium-driver)"
    try:
        runtime_sources()
    except WebRuntimeMissing as e:
        return str(e)
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=f"browser stack: {_missing()}")


@pytest.fixture(scope="module")
def toy_export(tmp_path_factory):
    return export_toy_run(tmp_path_factory.mktemp("web_toy"))


@pytest.fixture(scope="module")
def site_url(toy_export):
    from keras_inst.deploy.serve import serve_in_thread

    server, url = serve_in_thread(build_site(load_web_model(toy_export)))
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def plain_url(toy_export):
    """The same site without the isolation headers, as `python3 -m http.server` serves an export."""
    from keras_inst.deploy.serve import serve_in_thread

    server, url = serve_in_thread(build_site(load_web_model(toy_export)), isolate=False)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Generated files (tone then noise: both answers in one file) and two real-format fixtures."""
    root = tmp_path_factory.mktemp("web_audio")
    rng = np.random.default_rng(3)
    x16 = np.concatenate([toy_audio(rng, "tone", 16000 * 3), toy_audio(rng, "noise", 16000 * 3 + 5000)])
    sf.write(root / "tone_noise_16k.wav", x16, 16000)
    x48 = np.concatenate([toy_audio(rng, "noise", 48000 * 4, 48000), toy_audio(rng, "tone", 48000 * 5, 48000)])
    sf.write(root / "noise_tone_48k_stereo.flac", np.stack([x48, 0.6 * x48], axis=1), 48000)
    (root / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(20000))
    return root


def analyse_in_page(driver, url: str, path: Path, timeout: float = 90.0) -> dict:
    """Load the page, send ``path`` through its file input, wait for window.kerasInst."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.ID, "input").send_keys(str(path))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script("const k = window.kerasInst; return k && {result: k.result, error: k.error};")
        if state and (state["result"] or state["error"]):
            return state
        time.sleep(0.2)
    raise AssertionError(f"the page gave neither a result nor an error for {path.name} in {timeout} s")


def wasm_loaded(driver) -> list[str]:
    """The names of the .wasm files the page fetched since it was loaded."""
    names = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    return sorted(Path(n).name for n in names if n.endswith(".wasm"))


def predict_json(model: Path, path: Path, tmp_path: Path) -> dict:
    out = tmp_path / f"{path.name}.json"
    assert P.main([str(path), "--model", str(model), "--format", "json", "--output", str(out), "--no-progress"]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", ["tone_noise_16k.wav", "noise_tone_48k_stereo.flac",
                                  "slakh/slakh2100_flac_redux/train/Track00001/mix.flac",
                                  "medleydb/medleydb_melody/audio/MusicDelta_Beethoven_MIX.wav"])
def test_page_answers_as_predict(name, audio, toy_export, site_url, browser, tmp_path):
    path = audio / name if (audio / name).is_file() else FIXTURES / name
    page = analyse_in_page(browser, site_url, path)
    assert page["error"] is None
    got = page["result"]
    doc = predict_json(toy_export, path, tmp_path)
    want = doc["files"][0]
    assert got["file"] == path.name and got["variant"] == "tflite"
    assert got["windows"] == want["windows"] and len(got["timeline"]) == want["windows"]
    assert got["window_seconds"] == doc["window_seconds"] and got["hop_seconds"] == doc["hop_seconds"]
    assert got["classes"] == want["classes"]
    diffs = {c: abs(got["probabilities"][c] - p) for c, p in want["probabilities"].items()}
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert got["segments"] == want["segments"]
    if name.startswith("tone_noise"):  # decoded at the model's rate: no resampler between them
        assert max(diffs.values()) < 1e-4
        # the tuned thresholds (piano's 0.999999) are the page's too: key without piano
        assert got["classes"] == ["percussion", "key", "drums"]
    # serve's headers make the page cross-origin isolated: the threaded runtime, and only it, runs
    assert got["runtime"] == {"wasm": "threaded", "threads": min(os.cpu_count(), MAX_THREADS),
                              "cross_origin_isolated": True, "reason": None}
    assert wasm_loaded(browser) == [f"{THREADED_VARIANT}.wasm"]


def test_page_without_isolation_headers_runs_compat_with_the_same_answer(audio, toy_export, plain_url, browser,
                                                                          tmp_path):
    from selenium.webdriver.common.by import By

    path = audio / "tone_noise_16k.wav"
    got = analyse_in_page(browser, plain_url, path)["result"]
    assert got["runtime"]["wasm"] == "compat" and got["runtime"]["threads"] == 1
    assert not got["runtime"]["cross_origin_isolated"] and "not cross-origin isolated" in got["runtime"]["reason"]
    assert wasm_loaded(browser) == [f"{WASM_VARIANT}.wasm"]
    assert "compat WASM, one thread" in browser.find_element(By.ID, "model").text
    want = predict_json(toy_export, path, tmp_path)["files"][0]
    assert got["classes"] == want["classes"] and got["segments"] == want["segments"]
    assert max(abs(got["probabilities"][c] - p) for c, p in want["probabilities"].items()) < 1e-4


def test_corrupt_file_gives_a_visible_error(audio, site_url, browser):
    from selenium.webdriver.common.by import By

    page = analyse_in_page(browser, site_url, audio / "corrupt.wav")
    assert page["result"] is None
    assert "corrupt.wav" in page["error"] and "cannot decode" in page["error"]
    shown = browser.find_element(By.ID, "error")
    assert shown.is_displayed() and shown.text == page["error"]


def test_timeline_is_drawn(audio, site_url, browser, tmp_path):
    page = analyse_in_page(browser, site_url, audio / "tone_noise_16k.wav")
    assert page["result"] is not None
    # Pixels of the cells (right of the labels): coloured, i.e. not all white.
    coloured = browser.execute_script("""
        const c = document.getElementById('timeline');
        const d = c.getContext('2d').getImageData(Math.round(c.width * 0.2), 0, Math.round(c.width * 0.75), c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200) n++;
        return {n, total: d.length / 4, rows: document.getElementById('timeline').height};""")
    assert coloured["n"] > 0.05 * coloured["total"], coloured
    assert "threaded WASM" in browser.execute_script("return document.getElementById('model').textContent")
    shot = tmp_path / "web_app.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    assert browser.execute_script("return window.kerasInst.results.length") >= 1
