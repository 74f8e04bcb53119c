"""The shipped model: the release folder inside the package and its ``metadata.json``.

``keras-inst release --install`` (:mod:`keras_inst.deploy.release`) writes the shipped files into
the package folder ``keras_inst/release/`` (package data, so a wheel carries them):
``model_float16.tflite``, ``model_int8.tflite`` (``predict`` without TensorFlow), ``model.keras``
(fine-tuning, ``training.pretrained: keras_inst_release``), ``labels.txt`` and ``metadata.json``:
recipe name, sha256 of the resolved config, class names, thresholds, presence rule, window,
sample rate, per-file sha256 and size, the run's figures, the outputs recorded on fixed inputs.

A *shipped folder* is any folder with such a ``metadata.json`` (``"format":``
:data:`SHIPPED_FORMAT`); :func:`read_shipped` checks every listed file's size and sha256 before
anything is loaded from it, so a changed or truncated file is an error naming it.
``predict`` and ``evaluate`` without ``--model`` use :func:`default_model`: the folder named by
the environment variable :data:`RELEASE_ENV` (tests, a model kept elsewhere), else the package's.

Importing this module imports only the standard library (the TFLite-only install needs no more).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keras_inst.runtime.artifacts import LABELS_FILE, RUN_MODEL, VARIANT_FILES

SHIPPED_FORMAT = "keras_inst-release"  # metadata.json "format": what marks a shipped folder
SHIPPED_METADATA = "metadata.json"
RELEASE_ENV = "KERAS_INST_RELEASE"  # a shipped folder to use instead of the package's
# The shipped files by role; "keras" is the full model for fine-tuning and evaluation.
SHIPPED_FILES: dict[str, str] = {
    "tflite_fp16": VARIANT_FILES["tflite_fp16"],
    "tflite_int8": VARIANT_FILES["tflite_int8"],
    "keras": RUN_MODEL,
    "labels": LABELS_FILE,
}
# What predict runs when no --variant is asked for: float16 weights give the Keras model's
# answers (max|dp| 3.5e-3 on the main job's model, decisions 1.000); int8 is opt-in.
SHIPPED_VARIANT_ORDER: tuple[str, ...] = ("tflite_fp16", "tflite_int8")
MAX_SHIPPED_BYTES = 30_000_000  # everything in the wheel's release folder together (issue K)
REQUIRED_KEYS = ("format", "recipe", "config_sha256", "class_names", "sample_rate", "input_samples",
                 "thresholds", "files")


def package_release_dir() -> Path:
    """The release folder inside the installed package (``keras_inst/release/``)."""
    import keras_inst

    return Path(keras_inst.__file__).resolve().parent / "release"


def shipped_dir() -> Path:
    """Where the shipped model is looked for: ``$KERAS_INST_RELEASE`` if set, else the package's."""
    env = os.environ.get(RELEASE_ENV, "").strip()
    return Path(env).expanduser() if env else package_release_dir()


def is_shipped_dir(folder: str | Path) -> bool:
    """Whether ``folder`` holds a ``metadata.json`` of a shipped model."""
    p = Path(folder) / SHIPPED_METADATA
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("format") == SHIPPED_FORMAT
    except (ValueError, OSError, AttributeError):
        return False


def no_shipped_model_message(folder: Path) -> str:
    """What ``predict`` / ``evaluate`` say when they need the shipped model and there is none."""
    return (f"no shipped model is installed (no {SHIPPED_METADATA} in {folder}), and no --model was given. "
            "Pass --model (a run directory, .keras file, export directory or .tflite file), or make the "
            "shipped model: `keras-inst release --install` trains the release recipe (configs/release.yaml, "
            f"about two hours on 2 cores) and writes it there; ${RELEASE_ENV}=FOLDER names a shipped folder "
            "kept elsewhere (docs/deploying.md, 'The shipped model')")


def default_model() -> Path:
    """The shipped folder to load when no ``--model`` is given; ValueError saying how to get one."""
    folder = shipped_dir()
    if not is_shipped_dir(folder):
        raise ValueError(no_shipped_model_message(folder))
    return folder


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """``{"sha256", "bytes"}`` of one shipped file (metadata.json ``files`` entry)."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def read_shipped(folder: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The ``metadata.json`` of a shipped folder; with ``verify``, every listed file's size and
    sha256 checked first. ValueError naming the file for a missing key, a missing file or a
    file whose bytes differ from the recorded ones."""
    folder = Path(folder)
    meta_path = folder / SHIPPED_METADATA
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(no_shipped_model_message(folder)) from None
    except (ValueError, OSError) as e:
        raise ValueError(f"{meta_path}: not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != SHIPPED_FORMAT:
        raise ValueError(f"{meta_path}: not the metadata of a shipped model (\"format\" must be {SHIPPED_FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{meta_path}: missing keys {missing}")
    files = meta["files"]
    if not isinstance(files, Mapping) or not files:
        raise ValueError(f"{meta_path}: 'files' must map each shipped file to its sha256 and bytes")
    if verify:
        for name, rec in files.items():
            check_file(folder / name, rec, where=meta_path)
    return meta


def check_file(path: Path, rec: Any, *, where: Path) -> None:
    """ValueError unless ``path`` exists with the size and sha256 that ``rec`` records."""
    if not isinstance(rec, Mapping) or not {"sha256", "bytes"} <= set(rec):
        raise ValueError(f"{where}: files[{path.name!r}] must hold 'sha256' and 'bytes'")
    if not path.is_file():
        raise ValueError(f"shipped file {path} is missing (listed in {where})")
    size = path.stat().st_size
    if size != rec["bytes"] or sha256_file(path) != rec["sha256"]:
        raise ValueError(f"shipped file {path} does not match {where} (sha256 or size differ: {size} bytes, "
                         f"{rec['bytes']} recorded): the file was changed or damaged; reinstall the package or "
                         "re-run `keras-inst release --install`")


def variant_file(folder: Path, meta: Mapping[str, Any], variant: str | None) -> tuple[str, Path]:
    """(variant, TFLite file) of a shipped folder: ``variant``, else the first of
    :data:`SHIPPED_VARIANT_ORDER` it ships; ValueError naming the variants it has. (Its
    ``model.keras`` is loaded by passing the file's path.)"""
    have = [v for v in SHIPPED_VARIANT_ORDER if SHIPPED_FILES[v] in meta["files"]]
    if not have:
        raise ValueError(f"shipped folder {folder} has no TFLite model "
                         f"({' or '.join(SHIPPED_FILES[v] for v in SHIPPED_VARIANT_ORDER)})")
    if variant is not None and variant not in have:
        raise ValueError(f"shipped folder {folder} has no variant {variant!r}; it ships {', '.join(have)}")
    variant = variant or have[0]
    return variant, folder / SHIPPED_FILES[variant]
