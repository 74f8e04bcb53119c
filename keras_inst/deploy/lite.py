"""TFLite: a TensorFlow-free runtime for exported classifiers, and the conversion itself.

Importing this module imports only NumPy and the standard library; :class:`LiteClassifier`
needs ``ai_edge_litert`` (imported when used), so ``keras_inst.deploy.predict`` can analyse audio with a
``.tflite`` model where TensorFlow and Keras are not installed (``pip install ai-edge-litert
numpy scipy soundfile`` plus this package installed with ``--no-deps``). The conversion
functions at the end (:func:`convert_tflite`, used by :mod:`keras_inst.deploy.export`) import
TensorFlow when called.

Every model written by :mod:`keras_inst.deploy.export` (float32, float16 and int8 alike) is ONE file
with a ``serving_default`` signature: input ``waveform`` float32 ``[batch, samples]``, outputs
``probabilities`` ``[batch, n_classes]`` and ``embeddings`` ``[batch, D]``. The int8 model keeps
its log-mel front end in float32 inside the same file (selective quantisation), so no chaining
of models is needed. Class names, the sample rate and tuned thresholds are in ``export.json``
beside the models.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXPORT_JSON = "export.json"
SIGNATURE = "serving_default"
INPUT_NAME = "waveform"
OUTPUT_NAMES = ("probabilities", "embeddings")
# TFLite tensor names of the front end: ".../frontend_1/log_mel_1/...".
_FRONTEND_NODE = re.compile(r"(^|/)frontend(_\d+)?/")


def read_export_json(folder: str | Path) -> dict[str, Any] | None:
    """The ``export.json`` of an export folder, or None if the folder has none.

    Raises ValueError naming the file if it exists but is not a JSON object.
    """
    path = Path(folder) / EXPORT_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    return dict(data)


def read_thresholds(report: str | Path, class_names: Sequence[str], *, key: str = "thresholds") -> dict[str, float] | None:
    """Tuned per-class thresholds from a JSON file (a run's ``report.json``, ``export.json``).

    None if the file or its ``key`` is missing; ValueError if they do not cover every class.
    """
    report = Path(report)
    if not report.is_file():
        return None
    data = json.loads(report.read_text(encoding="utf-8")).get(key)
    if data is None:
        return None
    if not isinstance(data, Mapping) or set(data) != set(class_names):
        raise ValueError(f"{report}: '{key}' must map every class ({', '.join(class_names)}) to a number")
    return {c: float(data[c]) for c in class_names}


def default_num_threads() -> int:
    """CPU cores this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LiteClassifier:
    """A ``.tflite`` classifier: float32 windows ``[n, samples]`` -> named outputs ``[n, ...]``.

    ``num_threads`` defaults to every core available (XNNPACK, the default CPU delegate, splits
    each convolution over them). Windows are run in batches of ``batch_size`` (the input is
    resized to the batch; resizing costs nothing measurable, so the last batch is not padded).
    """

    def __init__(self, path: str | Path, *, num_threads: int | None = None, batch_size: int = 16) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ValueError(
                f"running {path} needs the TFLite runtime: pip install ai-edge-litert ({e})"
            ) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"TFLite model {self.path} does not exist")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.num_threads = default_num_threads() if num_threads is None else int(num_threads)
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.batch_size = int(batch_size)
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=self.num_threads)
        except (ValueError, RuntimeError) as e:
            raise ValueError(f"{self.path}: not a loadable TFLite model ({e})") from None
        signatures = self._interpreter.get_signature_list()
        if SIGNATURE not in signatures:
            raise ValueError(
                f"{self.path}: no '{SIGNATURE}' signature (found {sorted(signatures)}); "
                "export models with python -m keras_inst.export"
            )
        spec = signatures[SIGNATURE]
        if list(spec["inputs"]) != [INPUT_NAME]:
            raise ValueError(f"{self.path}: signature inputs are {spec['inputs']}, expected ['{INPUT_NAME}']")
        missing = [n for n in OUTPUT_NAMES if n not in spec["outputs"]]
        if missing:
            raise ValueError(f"{self.path}: signature lacks outputs {missing} (has {spec['outputs']})")
        self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        shape = self._runner.get_input_details()[INPUT_NAME]["shape"]  # [1, samples]
        self.input_samples = int(shape[-1])
        out = self._runner.get_output_details()
        self.num_classes = int(out["probabilities"]["shape"][-1])
        self.embedding_dim = int(out["embeddings"]["shape"][-1])

    def op_names(self) -> set[str]:
        """Names of the builtin ops in the graph (``DELEGATE`` for the XNNPACK partitions)."""
        return {d["op_name"] for d in self._interpreter._get_ops_details()}

    def run(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """``{"probabilities": [n, C], "embeddings": [n, D]}`` for float32 windows ``[n, samples]``."""
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_samples:
            raise ValueError(
                f"{self.path.name} takes windows [n, {self.input_samples}], got shape {x.shape}"
            )
        outs: dict[str, list[np.ndarray]] = {n: [] for n in OUTPUT_NAMES}
        for i in range(0, len(x), self.batch_size):
            res = self._runner(**{INPUT_NAME: x[i : i + self.batch_size]})
            for n in OUTPUT_NAMES:
                outs[n].append(np.array(res[n], dtype=np.float32))  # copy: buffers are reused
        if not len(x):
            return {
                "probabilities": np.zeros((0, self.num_classes), np.float32),
                "embeddings": np.zeros((0, self.embedding_dim), np.float32),
            }
        return {n: np.concatenate(v) for n, v in outs.items()}

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, C]`` for windows ``[n, samples]``."""
        return self.run(windows)["probabilities"]


# ----------------------------------------------------------------------------------------
# Conversion (imports TensorFlow when called; used by keras_inst.deploy.export)

def _converter(saved_model: Path) -> Any:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    # Builtins only: conversion fails instead of producing a model that needs the Flex delegate.
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


def convert_tflite(saved_model: str | Path, variant: str, *, representative: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer of ``variant`` (tflite | tflite_fp16 | tflite_int8) from our SavedModel."""
    import tensorflow as tf

    saved_model = Path(saved_model)
    conv = _converter(saved_model)
    if variant == "tflite":
        return conv.convert()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "tflite_fp16":
        conv.target_spec.supported_types = [tf.float16]
        return _float32_front_end(conv.convert(), _converter(saved_model).convert())
    if variant != "tflite_int8":
        raise ValueError(f"unknown TFLite variant {variant!r}; known: tflite, tflite_fp16, tflite_int8")
    if representative is None or len(representative) == 0:
        raise ValueError("int8 conversion needs representative waveforms for calibration")
    rep = np.asarray(representative, np.float32)

    def dataset():
        for i in range(len(rep)):
            yield {INPUT_NAME: rep[i : i + 1]}

    conv.representative_dataset = dataset
    from ai_edge_litert.interpreter import Interpreter

    float_model = Interpreter(model_content=_converter(saved_model).convert())
    denylist = [d["name"] for d in float_model.get_tensor_details() if _FRONTEND_NODE.search(d["name"])]
    if not denylist:
        raise ValueError("int8 export: no front-end tensors found to keep in float (expected names containing 'frontend/')")
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist)
    with warnings.catch_warnings():  # the debugger itself uses the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=dataset, debug_options=options)
        flat = debugger.get_nondebug_quantized_model()
    interp = Interpreter(model_content=flat)
    details = interp.get_tensor_details()
    # Front-end ops must compute in float; only the QUANTIZE op handing the log-mel to the
    # int8 backbone may output an int8 front-end tensor.
    quantised_front = [
        details[i]["name"]
        for op in interp._get_ops_details()
        if op["op_name"] != "QUANTIZE"
        for i in op["outputs"]
        if _FRONTEND_NODE.search(details[i]["name"]) and details[i]["dtype"] == np.int8
    ]
    if quantised_front or not any(d["dtype"] == np.int8 for d in details):
        raise ValueError(f"int8 export: expected an int8 backbone with a float front end; int8 front-end tensors: {quantised_front[:5]}")
    return flat


def _float32_front_end(flat16: bytes, flat32: bytes) -> bytes:
    """Put the front end's constants of a float16-weight model back to their float32 values.

    The float16 converter stores every float constant as float16 behind a DEQUANTIZE op; the
    log-mel floor ``amin`` = 1e-10 underflows to 0 there, so silent frames become log(0) = -inf
    (measured: probabilities off by up to 0.98). Each such DEQUANTIZE of a front-end constant is
    removed and its output becomes a float32 constant holding the original value (taken, by
    tensor name, from the float32 model of the same SavedModel).
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    m16 = fbu.read_model_from_bytearray(bytearray(flat16))
    m32 = fbu.read_model_from_bytearray(bytearray(flat32))
    originals = {}
    for g in m32.subgraphs:
        for t in g.tensors:
            if t.type == schema.TensorType.FLOAT32 and m32.buffers[t.buffer].data is not None:
                originals[t.name] = m32.buffers[t.buffer].data
    dequantize = [i for i, c in enumerate(m16.operatorCodes) if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE]
    restored = 0
    for g in m16.subgraphs:
        keep = []
        for op in g.operators:
            src = g.tensors[op.inputs[0]]
            name = src.name.decode() if isinstance(src.name, bytes) else src.name
            if op.opcodeIndex in dequantize and src.type == schema.TensorType.FLOAT16 and _FRONTEND_NODE.search(name):
                key = src.name
                if key not in originals:
                    raise ValueError(f"float16 export: no float32 original for front-end constant {name}")
                buf = schema.BufferT()
                buf.data = originals[key]
                m16.buffers.append(buf)
                g.tensors[op.outputs[0]].buffer = len(m16.buffers) - 1
                restored += 1
            else:
                keep.append(op)
        g.operators = keep
    if not restored:
        raise ValueError("float16 export: found no front-end constants to keep in float32")
    return bytes(fbu.convert_object_to_bytearray(m16))
