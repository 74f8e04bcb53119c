"""The in-browser app's site without a browser: the batch-1 model, site.json, the static export,
the HTTP server and what ``serve`` says when something is missing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from toy_models import TOY_THRESHOLDS, export_toy_run

from keras_inst.deploy import export as E
from keras_inst.deploy import serve as S
from keras_inst.deploy import web as W
from keras_inst.deploy.web_model import batch_one, batch_one_file
from keras_inst.taxonomy import CLASSES, FAMILIES, FAMILY_OF


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    base = tmp_path_factory.mktemp("web_site_toy")
    return base / "run", export_toy_run(base)


def write_fake_runtime(prefix: Path, *, threaded: bool = True) -> Path:
    """An npm prefix with the LiteRT.js files the site takes (small stand-ins; the threaded
    variant's .wasm is 1000 bytes larger than compat's)."""
    root = prefix / "node_modules" / "@litertjs"
    variants = [W.WASM_VARIANT] + ([W.THREADED_VARIANT] if threaded else [])
    rels = ["core/dist/index.js", "wasm-utils/dist/index.js"]
    rels += [f"core/wasm/{v}{ext}" for v in variants for ext in (".js", ".wasm")]
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pad = b"\0" * 1000 if W.THREADED_VARIANT in rel else b""
        (root / rel).write_bytes(b"\0asm" + pad if rel.endswith(".wasm") else f"// {rel}\n".encode())
    return prefix


@pytest.fixture()
def fake_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv(W.RUNTIME_ENV, str(write_fake_runtime(tmp_path / "npm")))
    return tmp_path / "npm"


def test_batch_one_fixes_the_batch_and_keeps_the_outputs(toy):
    from ai_edge_litert.interpreter import Interpreter

    path = toy[1] / "model_float32.tflite"
    data, changed = batch_one(path.read_bytes())
    assert changed > 0 and len(data) == path.stat().st_size
    assert batch_one(data)[1] == 0  # nothing dynamic is left
    x = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.1
    outs = []
    for model in (path.read_bytes(), data):
        it = Interpreter(model_content=model)
        runner = it.get_signature_runner("serving_default")
        outs.append(runner(waveform=x)["probabilities"])
        shape_sig = it.get_input_details()[0]["shape_signature"]
    assert list(shape_sig) == [1, 16000]  # the fixed copy's; the export's says [-1, 16000]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_batch_one_refuses_what_is_not_a_tflite_model(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match=r"model\.tflite: not a TFLite model"):
        batch_one_file(bad)
    with pytest.raises(ValueError, match="cannot read the model"):
        batch_one_file(tmp_path / "missing.tflite")


def test_site_metadata_holds_predicts_rules_and_the_hierarchy(toy):
    meta = W.load_web_model(toy[1]).metadata
    assert meta["variant"] == "tflite" and meta["class_names"] == list(CLASSES)
    assert meta["thresholds"] == [TOY_THRESHOLDS[c] for c in CLASSES]
    assert meta["threshold_source"] == "tuned on validation"
    assert meta["presence_rule"]["min_windows"] == {c: 2 for c in CLASSES}
    assert meta["presence_rule"]["source"].startswith("default")
    assert (meta["input_samples"], meta["hop_samples"], meta["min_last_samples"]) == (16000, 8000, 8000)
    assert meta["family_of"] == FAMILY_OF
    rows = meta["rows"]
    assert [r["class"] for r in rows if r["level"] == 0] == list(FAMILIES)
    assert sorted(r["index"] for r in rows) == list(range(len(CLASSES)))
    for i, r in enumerate(rows):  # each instrument right under its family or a sibling
        if r["level"] == 1:
            above = rows[i - 1]["class"]
            assert above == FAMILY_OF[r["class"]] or FAMILY_OF.get(above) == FAMILY_OF[r["class"]]


def test_taxonomy_rows_keep_classes_outside_the_taxonomy():
    rows = W.taxonomy_rows(["key", "class_x", "piano"])
    assert [(r["class"], r["index"], r["level"]) for r in rows] == [("key", 0, 0), ("piano", 2, 1), ("class_x", 1, 0)]


def test_missing_runtime_is_named_with_the_command_that_installs_it(tmp_path, monkeypatch, toy, capsys):
    monkeypatch.setenv(W.RUNTIME_ENV, str(tmp_path / "empty"))
    with pytest.raises(W.WebRuntimeMissing) as e:
        W.runtime_sources()
    assert "litertjs" in str(e.value) and "core/dist/index.js is missing" in str(e.value)
    assert "scripts/setup_web.sh" in str(e.value) and "@litertjs/core@2.5.3" in str(e.value)
    assert S.main(["--model", str(toy[1]), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "LiteRT.js is not installed" in err and "setup_web.sh" in err


def test_serve_without_a_model_says_none_is_shipped(tmp_path, monkeypatch, capsys, fake_runtime):
    monkeypatch.setenv("KERAS_INST_RELEASE", str(tmp_path / "no_release"))
    assert S.main(["--port", "0"]) == 2
    assert "no shipped model is installed" in capsys.readouterr().err


def test_serve_refuses_a_model_the_page_cannot_run(toy, capsys, fake_runtime):
    assert S.main(["--model", str(toy[0]), "--port", "0"]) == 2
    assert "the page runs TFLite models" in capsys.readouterr().err


def test_runtime_metadata_names_both_variants_and_the_load_counts_one(toy, tmp_path):
    files = W.build_site(W.load_web_model(toy[1]), prefix=write_fake_runtime(tmp_path / "npm"))
    rt = json.loads(files[W.METADATA_FILE])["runtime"]
    assert rt == {"package": "@litertjs/core@2.5.3", "wasm": f"runtime/{W.WASM_VARIANT}.js",
                  "threaded": f"runtime/{W.THREADED_VARIANT}.js", "max_threads": W.MAX_THREADS}
    assert all(rt[k] in files for k in ("wasm", "threaded"))
    # each variant is 2 files: .js (its name's length + 17 bytes here) and .wasm (4 / 1004 bytes)
    sizes = {v: sum(W.site_bytes({n: f}) for n, f in files.items() if n.startswith(f"runtime/{v}."))
             for v in W.WASM_VARIANTS.values()}
    total = W.site_bytes(files)
    assert W.load_bytes(files, wasm="compat") == total - sizes[W.THREADED_VARIANT]
    assert W.load_bytes(files, wasm="threaded") == total - sizes[W.WASM_VARIANT]
    assert W.load_bytes(files) == W.load_bytes(files, wasm="threaded")  # the larger one
    assert sizes[W.THREADED_VARIANT] - sizes[W.WASM_VARIANT] == 1000 + len(W.THREADED_VARIANT) - len(W.WASM_VARIANT)


def test_a_runtime_without_the_threaded_variant_gives_a_compat_only_site(toy, tmp_path):
    files = W.build_site(W.load_web_model(toy[1]), prefix=write_fake_runtime(tmp_path / "npm", threaded=False))
    assert json.loads(files[W.METADATA_FILE])["runtime"]["threaded"] is None
    assert not any(W.THREADED_VARIANT in n for n in files)
    assert W.load_bytes(files) == W.site_bytes(files)
    with pytest.raises(ValueError, match="'threaded' is not in this site"):
        W.load_bytes(files, wasm="threaded")


def test_server_serves_the_site_with_the_right_types(toy, fake_runtime):
    files = W.build_site(W.load_web_model(toy[1]))
    server, url = S.serve_in_thread(files)
    try:
        with urllib.request.urlopen(url) as r:
            assert r.headers["Content-Type"].startswith("text/html") and b'type="file"' in r.read()
            # cross-origin isolation: the page may run the threaded runtime
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with urllib.request.urlopen(url + f"runtime/{W.WASM_VARIANT}.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm" and r.read() == b"\0asm"
            assert r.headers["Cross-Origin-Resource-Policy"] == "same-origin"
        with urllib.request.urlopen(url + f"runtime/{W.THREADED_VARIANT}.js") as r:
            assert r.headers["Content-Type"].startswith("text/javascript")
            assert all(r.headers[k] == v for k, v in W.ISOLATION_HEADERS.items())
        with urllib.request.urlopen(url + "site.json") as r:
            assert json.load(r)["model"] == W.MODEL_FILE
        with urllib.request.urlopen(url + W.MODEL_FILE) as r:
            assert r.read() == files[W.MODEL_FILE]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "../etc/passwd")
        assert e.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
    server, url = S.serve_in_thread(files, isolate=False)  # as a plain static host
    try:
        with urllib.request.urlopen(url) as r:
            assert not any(k in r.headers for k in W.ISOLATION_HEADERS)
    finally:
        server.shutdown()
        server.server_close()


def test_export_web_writes_a_static_site(toy, tmp_path, fake_runtime, capsys):
    out = tmp_path / "site"
    assert E.main([str(toy[1]), "--formats", "web", "--out", str(out)]) == 0
    names = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert names == {*W.APP_FILES, W.MODEL_FILE, W.METADATA_FILE, "runtime/NOTICE.txt",
                     *(n for n in W.runtime_sources() if n.startswith("runtime/"))}
    assert {f"runtime/{v}.wasm" for v in W.WASM_VARIANTS.values()} <= names  # both; the page loads one
    assert json.loads((out / W.METADATA_FILE).read_text())["thresholds"][CLASSES.index("piano")] == TOY_THRESHOLDS["piano"]
    assert (out / W.MODEL_FILE).read_bytes() == batch_one_file(toy[1] / "model_float32.tflite")
    said = capsys.readouterr().out
    assert "Wrote the in-browser app" in said and "Cross-Origin-Embedder-Policy: require-corp" in said
    assert E.main([str(toy[1]), "--formats", "web", "--out", str(out)]) == 2  # not empty
    assert "pass --overwrite" in capsys.readouterr().err
    assert E.main([str(toy[1]), "--formats", "web", "--out", str(out), "--overwrite"]) == 0
    assert E.main([str(toy[1]), "--formats", "tflite,web", "--out", str(tmp_path / "x")]) == 2
    assert "exported alone" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_export_web_from_a_run_exports_its_tflite_first(toy, tmp_path, fake_runtime):
    out = tmp_path / "site"
    assert E.main([str(toy[0]), "--formats", "web", "--out", str(out), "--data", "synthetic", "--check-examples", "8"]) == 0
    meta = json.loads((out / W.METADATA_FILE).read_text())
    assert meta["variant"] == "tflite" and meta["threshold_source"] == "tuned on validation"
    assert not list(tmp_path.glob(".site.tmp-*"))  # the temporary folder is gone


def test_app_files_are_package_data():
    sources = W.app_sources()
    assert set(sources) == set(W.APP_FILES)
    html = sources["index.html"].read_text()
    assert '<input id="input" type="file"' in html and "multiple" in html
    assert "http" not in html.split("<body>")[0].replace("http-equiv", "")  # no CDN: every file served locally
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert all(f"web/*{Path(n).suffix}" in pyproject for n in W.APP_FILES)
