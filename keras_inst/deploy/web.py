"""The in-browser app's files: the page, the model, its metadata and the LiteRT.js runtime.

A *site* is a flat mapping ``{site path: file or bytes}`` (:func:`build_site`) that
``keras-inst serve`` (:mod:`keras_inst.deploy.serve`) serves from memory and
``keras-inst export MODEL --formats web --out DIR`` (:func:`export_web`) writes as a static
folder any web server can host::

    index.html app.js analysis.js timeline.js style.css   the app (package data, keras_inst/web/)
    model.tflite      the model with its batch fixed at 1 (keras_inst.deploy.web_model)
    site.json         class names, thresholds, presence rule, windows, taxonomy rows, variant
    runtime/          LiteRT.js: its two ES modules and two WASM variants, of which the page
                      loads ONE (WASM_VARIANTS: threaded where the page is cross-origin
                      isolated, else compat)

site.json is where the page learns every rule it applies, so nothing of the taxonomy or of
``predict``'s defaults is written twice: thresholds and presence rule are resolved exactly as
``predict`` resolves its defaults (``--threshold auto``, the model's rule else the default), the
windows are ``predict``'s (window = the model's input, hop = half a window, a last window needs
half a window of audio: :func:`keras_inst.runtime.windows.window_starts`).

LiteRT.js comes from npm (``@litertjs/core`` :data:`LITERTJS_VERSION`, Apache-2.0), installed by
``scripts/setup_web.sh`` under :data:`NPM_PREFIX` (or ``$KERAS_INST_WEB_RUNTIME``). Its threaded
variant uses SharedArrayBuffer, which a browser allows only to a cross-origin isolated page: the
server must send :data:`ISOLATION_HEADERS` (``keras-inst serve`` does; a static host must be told to).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from keras_inst import atomic
from keras_inst.deploy.web_model import batch_one_file
from keras_inst.runtime.artifacts import INPUT_NAME, VARIANT_FILES

LITERTJS_VERSION = "2.5.3"
NPM_PREFIX = Path("/opt/keras_inst/npm/web")  # its own prefix: an npm install elsewhere prunes it
RUNTIME_ENV = "KERAS_INST_WEB_RUNTIME"  # an npm prefix holding node_modules/@litertjs/core
SETUP_COMMAND = "sudo bash scripts/setup_web.sh"
# The WASM variants shipped; the page loads one. "compat" runs on any browser with WebAssembly
# SIMD and is the smallest (9.33 MB; plain 9.37, threaded 9.45, jspi 9.62); "threaded" (relaxed
# SIMD + SharedArrayBuffer, so cross-origin isolation) runs the model on several threads. The plain
# and jspi variants are left out: no faster than compat on one thread (docs/deploying.md).
WASM_VARIANT = "litert_wasm_compat_internal"
THREADED_VARIANT = "litert_wasm_threaded_internal"
WASM_VARIANTS = {"compat": WASM_VARIANT, "threaded": THREADED_VARIANT}
# The threaded variant's thread count: navigator.hardwareConcurrency, at most this. A cap because
# the model runs one 4-s window per call, which gains little from many threads (only 2 were
# measured here: docs/deploying.md), and a big machine's other cores are the user's.
MAX_THREADS = 4
# What makes a page cross-origin isolated (crossOriginIsolated === true): COOP + COEP on the page
# (and on the runtime's worker script, which spawns the threads); CORP states that the site's own
# files may be embedded by a require-corp page (same-origin files pass without it).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}
APP_FILES = ("index.html", "app.js", "analysis.js", "timeline.js", "style.css")
MODEL_FILE, METADATA_FILE = "model.tflite", "site.json"
SiteFiles = dict[str, Path | bytes]


class WebRuntimeMissing(ValueError):
    """LiteRT.js is not installed where the site is built from (says which file and how to get it)."""


def npm_prefix() -> Path:
    """Where LiteRT.js is looked for: ``$KERAS_INST_WEB_RUNTIME`` if set, else :data:`NPM_PREFIX`."""
    env = os.environ.get(RUNTIME_ENV, "").strip()
    return Path(env).expanduser() if env else NPM_PREFIX


def runtime_sources(prefix: Path | None = None) -> dict[str, Path]:
    """``{site path: installed file}`` of the LiteRT.js files the page may load (the threaded
    variant only where it is installed); WebRuntimeMissing naming the first missing file of the
    others and the command that installs it."""
    root = (prefix or npm_prefix()) / "node_modules" / "@litertjs"
    wasm = root / "core" / "wasm"
    files = {
        "runtime/litertjs-core.js": root / "core" / "dist" / "index.js",
        "runtime/litertjs-wasm-utils.js": root / "wasm-utils" / "dist" / "index.js",
        f"runtime/{WASM_VARIANT}.js": wasm / f"{WASM_VARIANT}.js",
        f"runtime/{WASM_VARIANT}.wasm": wasm / f"{WASM_VARIANT}.wasm",
    }
    threaded = {f"runtime/{THREADED_VARIANT}{ext}": wasm / f"{THREADED_VARIANT}{ext}" for ext in (".js", ".wasm")}
    if all(p.is_file() for p in threaded.values()):
        files |= threaded
    for path in files.values():
        if not path.is_file():
            raise WebRuntimeMissing(
                f"the in-browser runtime LiteRT.js is not installed: {path} is missing. Install it with "
                f"`{SETUP_COMMAND}` (npm @litertjs/core@{LITERTJS_VERSION} under {NPM_PREFIX}), or set "
                f"${RUNTIME_ENV} to an npm prefix where `npm install @litertjs/core@{LITERTJS_VERSION}` was run")
    return files


def app_sources() -> dict[str, Path]:
    """``{site path: file}`` of the app itself (package data ``keras_inst/web/``)."""
    folder = Path(str(resources.files("keras_inst") / "web"))
    missing = [n for n in APP_FILES if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"the web app's files {missing} are missing from {folder}: reinstall keras_inst")
    return {n: folder / n for n in APP_FILES}


@dataclass(frozen=True)
class WebModel:
    """The model the page runs: its ``.tflite`` file, variant name and site.json document."""

    path: Path
    variant: str
    metadata: dict[str, Any]


def default_model() -> Path:
    """The shipped model's folder (issue K: keras_inst.runtime.shipped); ValueError if none is installed."""
    try:
        from keras_inst.runtime.shipped import default_model as shipped_default
    except ImportError:
        raise ValueError("no shipped model installed; pass --model (an export folder or a .tflite file "
                         "with its export.json beside it)") from None
    return shipped_default()


def variant_name(path: Path) -> str:
    """The export variant a file name stands for (``model_float16.tflite`` -> ``tflite_fp16``)."""
    return next((v for v, name in VARIANT_FILES.items() if name == path.name), path.stem)


def load_web_model(model: str | Path | None, *, variant: str | None = None) -> WebModel:
    """The TFLite model to serve (``None``: the shipped one) with the rules ``predict`` applies
    to it by default; ValueError for a model form the page cannot run."""
    from keras_inst.deploy.predict import resolve_presence_rule, resolve_thresholds
    from keras_inst.runtime.loader import load_artifact, locate

    model = default_model() if model is None else model
    kind, target, _ = locate(model, variant=variant)
    if kind != "tflite":
        raise ValueError(f"{model}: the page runs TFLite models, and this is a {kind} model; pass an export "
                         "folder or a .tflite file (make one with `keras-inst export RUN --formats tflite --out DIR`)")
    clf = load_artifact(target, kinds=("tflite",))
    thresholds, t_source = resolve_thresholds(clf, "auto")
    rule, rule_source = resolve_presence_rule(clf)
    name = variant_name(target)
    meta = site_metadata(clf.class_names, sample_rate=clf.sample_rate, input_samples=clf.input_samples,
                         thresholds=[float(t) for t in thresholds], threshold_source=t_source,
                         presence_rule=rule.to_json() | {"source": rule_source}, variant=name)
    return WebModel(path=target, variant=name, metadata=meta)


def taxonomy_rows(class_names: list[str]) -> list[dict[str, Any]]:
    """The timeline's rows: each family, then its instruments (level 1), then classes outside
    the taxonomy; ``index`` is the class's output column."""
    from keras_inst.taxonomy import FAMILIES, FAMILY_OF

    index = {c: i for i, c in enumerate(class_names)}
    rows: list[dict[str, Any]] = []
    for fam in FAMILIES:
        if fam in index:
            rows.append({"class": fam, "index": index[fam], "level": 0})
            rows += [{"class": c, "index": index[c], "level": 1} for c in class_names if FAMILY_OF.get(c) == fam]
    placed = {r["class"] for r in rows}
    return rows + [{"class": c, "index": i, "level": 0} for c, i in index.items() if c not in placed]


def site_metadata(class_names: list[str], *, sample_rate: int, input_samples: int, thresholds: list[float],
                  threshold_source: str, presence_rule: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """site.json: everything the page needs to answer as ``predict`` does by default."""
    from keras_inst.taxonomy import FAMILY_OF

    hop = input_samples // 2  # predict's default --hop: half a window
    return {
        "format": "keras_inst-web", "model": MODEL_FILE, "variant": variant, "class_names": list(class_names),
        "input_name": INPUT_NAME, "output_name": "probabilities",
        "sample_rate": int(sample_rate), "input_samples": int(input_samples),
        "window_seconds": input_samples / sample_rate, "hop_samples": hop, "hop_seconds": hop / sample_rate,
        "min_last_samples": (input_samples + 1) // 2,  # window_starts' default: half a window of audio
        "thresholds": thresholds, "threshold_source": threshold_source, "presence_rule": dict(presence_rule),
        "family_of": {c: f for c, f in FAMILY_OF.items() if c in class_names and f in class_names},
        "rows": taxonomy_rows(list(class_names)),
    }


def runtime_metadata(names: Iterable[str]) -> dict[str, Any]:
    """site.json's ``runtime``: the loader of each WASM variant among the site paths ``names``
    (``threaded``: null when absent) and the thread cap; the page picks one (app.js)."""
    names = set(names)
    threaded = f"runtime/{THREADED_VARIANT}.js"
    return {"package": f"@litertjs/core@{LITERTJS_VERSION}", "wasm": f"runtime/{WASM_VARIANT}.js",
            "threaded": threaded if threaded in names else None, "max_threads": MAX_THREADS}


def build_site(web_model: WebModel, *, prefix: Path | None = None) -> SiteFiles:
    """``{site path: file or bytes}`` of the whole site (module doc)."""
    import json

    files: SiteFiles = {**app_sources(), **runtime_sources(prefix)}
    files[MODEL_FILE] = batch_one_file(web_model.path)
    metadata = web_model.metadata | {"runtime": runtime_metadata(files)}
    files[METADATA_FILE] = (json.dumps(metadata, indent=2) + "\n").encode()
    files["runtime/NOTICE.txt"] = (f"LiteRT.js (npm @litertjs/core {LITERTJS_VERSION} and @litertjs/wasm-utils), "
                                   "Copyright Google LLC, Apache License 2.0: "
                                   "https://www.apache.org/licenses/LICENSE-2.0\n").encode()
    return files


def site_bytes(files: SiteFiles) -> int:
    """Bytes of the whole site (what ``export --formats web`` writes: both WASM variants)."""
    return sum(len(v) if isinstance(v, bytes) else v.stat().st_size for v in files.values())


def load_bytes(files: SiteFiles, *, wasm: str | None = None) -> int:
    """Bytes a browser downloads to open the site running WASM variant ``wasm`` (a key of
    :data:`WASM_VARIANTS`; None: the larger of those in the site): every file once, except the
    other variants' files."""
    present = [k for k, v in WASM_VARIANTS.items() if f"runtime/{v}.wasm" in files]
    if wasm is None:
        return max(load_bytes(files, wasm=k) for k in present)
    if wasm not in present:
        raise ValueError(f"WASM variant {wasm!r} is not in this site (it holds {present})")
    others = tuple(f"runtime/{v}." for k, v in WASM_VARIANTS.items() if k != wasm)
    return site_bytes({n: v for n, v in files.items() if not n.startswith(others)})


def check_out(out: str | Path, *, overwrite: bool) -> Path:
    """The resolved ``--out`` folder; ValueError if it exists and is not an empty folder (unless ``overwrite``)."""
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise ValueError(f"--out {out} exists and is not an empty folder; pass --overwrite to replace it")
    return out


def write_site(files: SiteFiles, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a site into ``out`` (built in a temporary folder beside it, renamed into place);
    ValueError if ``out`` exists and is not an empty folder, unless ``overwrite``."""
    out = check_out(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, src in files.items():
            dest = tmp / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, bytes):
                dest.write_bytes(src)
            else:
                shutil.copyfile(src, dest)
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a static host must read it
        atomic.publish_dir(tmp, out, if_exists="replace")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def export_web(args: Any, *, export: Any) -> int:
    """``keras-inst export MODEL --formats web --out DIR`` (dispatched by
    :func:`keras_inst.deploy.export.main`, whose parsed ``args`` these are): write the static site.

    MODEL is an export folder, a ``.tflite`` file or a shipped folder; a run directory or
    ``.keras`` file is first exported to float32 TFLite in a temporary folder by ``export``
    (export's own ``main``, passed in so that this module does not import it), with its checks.
    """
    import sys

    from keras_inst.runtime.loader import locate

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    try:
        if formats != ["web"]:
            raise ValueError(f"--formats web writes the in-browser app and is exported alone (got {args.formats!r}); "
                             "run export once for web and once for the other formats")
        runtime_sources()  # before any slow work: says what to install
        check_out(args.out, overwrite=args.overwrite)
        kind = locate(args.model)[0]
        with tempfile.TemporaryDirectory(prefix="keras_inst_web_") as tmp:
            model = args.model
            if kind == "keras":  # a run: its float32 TFLite model first, checked against Keras
                model = Path(tmp) / "export"
                rc = export([str(args.model), "--out", str(model), "--formats", "tflite", "--data", args.data,
                             "--check-examples", str(args.check_examples)])
                if rc:
                    return rc
            files = build_site(load_web_model(model))
            out = write_site(files, args.out, overwrite=args.overwrite)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote the in-browser app to {out} ({site_bytes(files) / 1e6:.1f} MB, of which the page loads "
          f"{load_bytes(files) / 1e6:.1f} MB: one WASM variant); serve the folder with any static web server, e.g. "
          f"`python3 -m http.server -d {out}` (one thread), or send these headers for the threaded runtime: "
          + ", ".join(f"{k}: {v}" for k, v in ISOLATION_HEADERS.items()))
    return 0
