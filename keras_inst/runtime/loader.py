"""One loader for every form of a trained classifier: :func:`load_artifact`.

It takes a run directory (``model.keras``, ``config.yaml``, ``report.json``), a ``.keras`` file
(its folder's ``report.json`` and ``config.yaml`` are used when present), an export directory
(``export.json``; ``--variant`` picks the artifact, default the float32 TFLite model), a
SavedModel directory, a ``.tflite`` file or a shipped folder (``metadata.json`` of
:mod:`keras_inst.runtime.shipped`: ``--variant`` picks ``tflite_fp16`` (default) or
``tflite_int8``; every file's sha256 is checked against it before loading), and returns an :class:`Artifact`: callable on
float32 waveforms ``[n, samples]``, with class names, sample rate, input length, tuned
thresholds and the run's config or the export's metadata where known. An export's artifact
whose check failed (``export.json``; export keeps its file as ``*.FAILED.*``) is never picked:
asking for its variant raises ValueError naming the variant, the file and the failed check;
opening the file by its path works but prints a warning naming them.

Tuned thresholds are read here only (:func:`read_thresholds` for the JSON files,
:func:`check_thresholds` for every source), and so is the presence rule calibrated beside them
(key ``presence_rule`` of the same file, :func:`keras_inst.runtime.presence.read_presence_rule`).
Importing this module imports only NumPy and the
standard library; loading a ``.tflite`` model never imports TensorFlow or Keras, the other
forms import them when loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.atomic import read_json_object
from keras_inst.runtime.artifacts import (
    DEFAULT_VARIANT_ORDER,
    EXPORT_JSON,
    INPUT_NAME,
    METADATA_SIGNATURE,
    OUTPUT_NAMES,
    RUN_CONFIG,
    RUN_MODEL,
    RUN_REPORT,
    SAVED_MODEL_PB,
    SIGNATURE,
    VARIANT_FILES,
)
from keras_inst.runtime.presence import PresenceRule, read_presence_rule
from keras_inst.runtime.shipped import SHIPPED_METADATA, is_shipped_dir, read_shipped, variant_file

KINDS = ("keras", "saved_model", "tflite")
Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Artifact:
    """A loaded classifier: ``artifact(windows [n, input_samples])`` -> ``{"probabilities": [n, C],
    "embeddings": [n, D]}``; :meth:`predict` gives the probabilities alone."""

    kind: str  # keras | saved_model | tflite
    path: Path  # the model file or folder that was loaded
    sample_rate: int
    input_samples: int
    class_names: list[str]
    thresholds: dict[str, float] | None  # tuned on the validation split, if known
    thresholds_source: str | None  # the file or signature they were read from
    run: Callable[[np.ndarray], Outputs] = field(repr=False)
    predict_fn: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    model: Any = field(default=None, repr=False)  # the keras.Model (kind "keras" only)
    run_dir: Path | None = None  # the run directory the model came from, if any
    config: Any = None  # that run's ExperimentConfig (config.yaml), if any
    metadata: dict[str, Any] = field(default_factory=dict)  # export.json of an export, else {}
    presence_rule: PresenceRule | None = None  # calibrated on validation songs, if known
    presence_rule_source: str | None = None  # the file it was read from

    def __call__(self, windows: np.ndarray) -> Outputs:
        return self.run(np.asarray(windows, np.float32))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, C]`` for float32 windows ``[n, input_samples]``."""
        return self.predict_fn(np.asarray(windows, np.float32))

    def threshold_vector(self) -> np.ndarray | None:
        """The tuned thresholds ``[C]`` in class order, or None."""
        return None if self.thresholds is None else np.array([self.thresholds[c] for c in self.class_names])


def read_export_json(folder: str | Path) -> dict[str, Any] | None:
    """The ``export.json`` of an export folder, or None if the folder has none."""
    return read_json_object(Path(folder) / EXPORT_JSON)


def folder_metadata(folder: Path | None) -> tuple[dict[str, Any] | None, Path | None]:
    """(metadata, its file) of the folder a model lies in: an export's ``export.json``, or a
    shipped folder's ``metadata.json`` after checking every shipped file's sha256; (None, None)."""
    if folder is None:
        return None, None
    if (folder / EXPORT_JSON).is_file():
        return read_export_json(folder), folder / EXPORT_JSON
    if is_shipped_dir(folder):
        return read_shipped(folder), folder / SHIPPED_METADATA
    return None, None


def check_thresholds(data: Any, class_names: Sequence[str], *, where: str, key: str = "thresholds") -> dict[str, float] | None:
    """``{class: float}`` from a mapping read at ``where``; None for None; ValueError unless it
    covers exactly ``class_names`` with numbers in [0, 1]."""
    if data is None:
        return None
    ok = isinstance(data, Mapping) and set(data) == set(class_names)
    try:
        out = {c: float(data[c]) for c in class_names} if ok else {}
    except (TypeError, ValueError):
        ok = False
    if not ok or not all(0.0 <= t <= 1.0 for t in out.values()):
        raise ValueError(f"{where}: '{key}' must map every class ({', '.join(class_names)}) to a number in [0, 1]")
    return out


def read_thresholds(path: str | Path, class_names: Sequence[str], *, key: str = "thresholds") -> dict[str, float] | None:
    """Tuned per-class thresholds from a JSON file (a run's ``report.json``, ``export.json``).

    None if the file or its ``key`` is missing; ValueError if they do not cover every class.
    """
    data = read_json_object(path)
    return None if data is None else check_thresholds(data.get(key), class_names, where=str(path), key=key)


def default_class_names(n: int) -> list[str]:
    """The taxonomy's classes for a head of that size, else ``class_0 .. class_{n-1}``."""
    from keras_inst.taxonomy import CLASSES

    return list(CLASSES) if n == len(CLASSES) else [f"class_{i}" for i in range(n)]


def _batched(fn: Callable[[np.ndarray], Any], batch_size: int) -> Callable[[np.ndarray], Any]:
    """Run ``fn`` on ``batch_size`` rows at a time and concatenate (arrays or dicts of arrays)."""

    def run(x: np.ndarray) -> Any:
        parts = [fn(x[i : i + batch_size]) for i in range(0, max(len(x), 1), batch_size)]
        if isinstance(parts[0], dict):
            return {k: np.concatenate([np.asarray(p[k], np.float32) for p in parts]) for k in parts[0]}
        return np.concatenate([np.asarray(p, np.float32) for p in parts])

    return run


def _import_tensorflow(path: Path) -> Any:
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ValueError(f"{path} needs TensorFlow ({e}); without it use a .tflite model") from None
    return tf


def _load_tflite(path: Path, meta: dict | None, *, num_threads: int | None, batch_size: int, sample_rate: int | None,
                 meta_file: Path | None = None) -> dict:
    from keras_inst.runtime.lite import LiteClassifier

    lite = LiteClassifier(path, num_threads=num_threads, batch_size=batch_size)
    thresholds = None
    meta_file = meta_file or path.parent / EXPORT_JSON
    if meta is not None:
        missing = [k for k in ("sample_rate", "class_names") if k not in meta]
        if missing:
            raise ValueError(f"{meta_file}: missing keys {missing}")
        sr, names = int(meta["sample_rate"]), list(meta["class_names"])
        thresholds = check_thresholds(meta.get("thresholds"), names, where=str(meta_file))
    else:
        if sample_rate is None:
            print(f"note: no {EXPORT_JSON} beside {path.name}; assuming 16000 Hz input (set --sample-rate)", file=sys.stderr)
        sr, names = sample_rate or 16000, default_class_names(lite.num_classes)
    if len(names) != lite.num_classes:
        raise ValueError(f"{path}: {lite.num_classes} outputs but {len(names)} class names in {meta_file}")
    return {"sample_rate": sr, "input_samples": lite.input_samples, "class_names": names, "thresholds": thresholds,
            "thresholds_source": str(meta_file) if thresholds else None,
            "run": lite.run, "predict_fn": lite.predict, "metadata": meta or {}}


def _load_saved_model(path: Path, *, batch_size: int) -> dict:
    tf = _import_tensorflow(path)
    loaded = tf.saved_model.load(str(path))
    if SIGNATURE not in loaded.signatures or METADATA_SIGNATURE not in loaded.signatures:
        raise ValueError(f"{path}: needs '{SIGNATURE}' and '{METADATA_SIGNATURE}' signatures (export with python -m keras_inst.export)")
    meta = {k: v.numpy() for k, v in loaded.signatures[METADATA_SIGNATURE](request=tf.constant(0)).items()}
    names = [s.decode() for s in meta["class_names"]]
    where = f"{path} ({METADATA_SIGNATURE} signature)"
    thresholds = None
    if "thresholds" in meta:
        thresholds = check_thresholds(dict(zip(names, map(float, meta["thresholds"]), strict=True)), names, where=where)
    fn = loaded.signatures[SIGNATURE]

    def run(x: np.ndarray) -> Outputs:
        out = fn(**{INPUT_NAME: tf.constant(x)})
        return {n: out[n].numpy() for n in OUTPUT_NAMES}

    batched = _batched(run, batch_size)
    return {"sample_rate": int(meta["sample_rate"]), "input_samples": int(meta["input_samples"]), "class_names": names,
            "thresholds": thresholds, "thresholds_source": where if thresholds else None,
            "run": batched, "predict_fn": lambda x: batched(x)["probabilities"]}


def _load_keras(path: Path, *, batch_size: int) -> dict:
    _import_tensorflow(path)
    from keras_inst.models.short_chunk import load_model
    from keras_inst.runtime.keras_model import dual_output_model, model_info

    folder = path.parent  # a run directory, or wherever the .keras file lies
    # the shipped .keras: every file checked against its metadata.json before loading
    shipped = read_shipped(folder) if is_shipped_dir(folder) else {}
    model = load_model(path, compile=False)  # inference only: no optimizer
    info = model_info(model)
    names = default_class_names(info["num_classes"])
    cfg = None
    if (folder / RUN_CONFIG).is_file():
        from keras_inst.runtime.data_locations import load_run_config

        cfg = load_run_config(folder)  # data paths absolute
    thresholds = read_thresholds(folder / RUN_REPORT, names)
    where = str(folder / RUN_REPORT)
    if shipped:  # thresholds from the shipped metadata.json
        where = str(folder / SHIPPED_METADATA)
        thresholds = check_thresholds(shipped.get("thresholds"), names, where=where)
    dual: list[Any] = []  # built on the first call that needs embeddings

    def run(x: np.ndarray) -> Outputs:
        if not dual:
            dual.append(dual_output_model(model))
        return {n: np.asarray(v) for n, v in dual[0].predict_on_batch(x).items()}

    return {"sample_rate": info["sample_rate"], "input_samples": info["input_samples"], "class_names": names,
            "thresholds": thresholds, "thresholds_source": where if thresholds else None,
            "run": _batched(run, batch_size), "predict_fn": _batched(model.predict_on_batch, batch_size),
            "model": model, "run_dir": folder if cfg is not None else None, "config": cfg, "metadata": shipped}


def locate(model: str | Path, *, variant: str | None = None) -> tuple[str, Path, Path | None]:
    """(kind, file or folder to load, export directory or None) of a model argument; ValueError
    naming the argument if it is none of the forms (see module doc)."""
    p = Path(model).expanduser()
    if variant is not None and variant not in VARIANT_FILES:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANT_FILES)}")
    if p.is_file() and p.suffix == ".tflite":
        return "tflite", p, p.parent if (p.parent / EXPORT_JSON).is_file() or is_shipped_dir(p.parent) else None
    if p.is_file() and p.suffix == ".keras":
        return "keras", p, None
    if p.is_dir() and (p / EXPORT_JSON).is_file():
        failed = failed_artifacts(read_export_json(p))
        if variant in failed:
            file, checks = failed[variant]
            raise ValueError(f"export directory {p}: variant {variant!r} failed its export check ({'; '.join(checks)}); "
                             f"its file was kept only for inspection as {file} (see {EXPORT_JSON}); pick another "
                             "--variant or re-export")
        order = [variant] if variant else [v for v in DEFAULT_VARIANT_ORDER if v not in failed]
        for v in order:
            if (p / VARIANT_FILES[v]).exists():
                return ("saved_model" if v == "saved_model" else "tflite"), p / VARIANT_FILES[v], p
        raise ValueError(f"export directory {p} has no {' or '.join(VARIANT_FILES[v] for v in order)}")
    if p.is_dir() and is_shipped_dir(p):  # the files' hashes are checked when loaded
        return "tflite", variant_file(p, read_shipped(p, verify=False), variant)[1], p
    if p.is_dir() and (p / SAVED_MODEL_PB).is_file():
        return "saved_model", p, None
    if p.is_dir() and (p / RUN_MODEL).is_file():
        return "keras", p / RUN_MODEL, None
    if p.is_dir() and ((p / RUN_CONFIG).is_file() or (p / RUN_REPORT).is_file()):
        raise ValueError(f"{p}: not a finished run directory (no {RUN_MODEL}); train it first or pass a .keras file")
    raise ValueError(
        f"{str(model)!r}: expected a .keras or .tflite file, a run directory ({RUN_MODEL}), "
        f"an export directory ({EXPORT_JSON}), a shipped folder ({SHIPPED_METADATA}) or a SavedModel directory ({SAVED_MODEL_PB})"
    )


def failed_artifacts(meta: Mapping[str, Any] | None) -> dict[str, tuple[str, list[str]]]:
    """``{variant: (file, failed checks)}`` of the artifacts an ``export.json`` records as failed."""
    arts = (meta or {}).get("artifacts") or {}
    return {v: (str(a.get("path", VARIANT_FILES.get(v, v))), [str(c) for c in a.get("failed") or ["check failed"]])
            for v, a in arts.items() if isinstance(a, Mapping) and a.get("passed") is False}


def load_artifact(model: str | Path, *, variant: str | None = None, kinds: Collection[str] = KINDS,
                  num_threads: int | None = None, batch_size: int = 16, sample_rate: int | None = None) -> Artifact:
    """Load any form of a classifier (see module doc) as an :class:`Artifact`.

    ``variant``: which artifact of an export directory (default float32 TFLite, then float16,
    int8, SavedModel); ``kinds``: the forms the caller accepts (ValueError for others);
    ``num_threads``: TFLite threads (default all cores); ``batch_size``: windows per model call;
    ``sample_rate``: input rate of a bare ``.tflite`` file without ``export.json``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if set(kinds) == {"keras"} and not _is_keras_form(Path(model).expanduser()):
        raise ValueError(f"{str(model)!r}: expected a run directory or an existing .keras file")
    kind, target, export_dir = locate(model, variant=variant)
    if kind not in kinds:
        raise ValueError(f"{str(model)!r} is a {kind} model; expected one of: {', '.join(kinds)}")
    if kind == "tflite":
        meta, meta_file = folder_metadata(export_dir)
        for v, (file, checks) in failed_artifacts(meta).items():
            if file == target.name:  # a failed file opened by its path: allowed, but said
                print(f"warning: {target} is variant {v!r}, which failed its export check ({'; '.join(checks)})", file=sys.stderr)
        fields = _load_tflite(target, meta, num_threads=num_threads, batch_size=batch_size,
                              sample_rate=None if meta is not None else sample_rate, meta_file=meta_file)
    elif kind == "saved_model":
        fields = _load_saved_model(target, batch_size=batch_size)
        if export_dir is not None:
            fields["metadata"] = read_export_json(export_dir) or {}
    else:
        fields = _load_keras(target, batch_size=batch_size)
    # The presence rule lies beside the thresholds: the run's report.json, an export's export.json,
    # a shipped folder's metadata.json (already verified above).
    rule_file = target.parent / RUN_REPORT if kind == "keras" else (export_dir / EXPORT_JSON if export_dir else None)
    if (kind == "keras" and fields["metadata"]) or (export_dir is not None and not (export_dir / EXPORT_JSON).is_file()):
        rule_file = target.parent / SHIPPED_METADATA
    rule = read_presence_rule(read_json_object(rule_file) if rule_file else None, fields["class_names"], where=str(rule_file))
    return Artifact(kind=kind, path=target, presence_rule=rule, presence_rule_source=str(rule_file) if rule else None, **fields)


def _is_keras_form(p: Path) -> bool:
    """Whether ``p`` is a ``.keras`` file or a folder that looks like a run directory."""
    if p.is_file():
        return p.suffix == ".keras"
    return p.is_dir() and any((p / n).is_file() for n in (RUN_MODEL, RUN_CONFIG, RUN_REPORT))
