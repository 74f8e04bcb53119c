"""TFLite conversion of an exported SavedModel (imports TensorFlow when called).

:func:`convert_tflite` (used by :mod:`keras_inst.deploy.export`) writes float32, float16 and
int8 models with one ``serving_default`` signature (:mod:`keras_inst.runtime.artifacts`). The
int8 model keeps its log-mel front end (and the backbone layers the caller names, e.g. its
input normalisation) in float32 inside the same file (selective quantisation), so no chaining
of models is needed. Running the result needs no TensorFlow:
:class:`keras_inst.runtime.lite.LiteClassifier`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.compat import tflite_ops
from keras_inst.runtime.artifacts import INPUT_NAME, SIGNATURE

# TFLite tensor names of the front end: ".../frontend_1/log_mel_1/...".
_FRONTEND_NODE = re.compile(r"(^|/)frontend(_\d+)?/")


# A tensor name's scope inside a fused model's tagger: ".../tagger_1/" before its backbone.
_TAGGER_SCOPE = r"(^|/)tagger(_\d+)?/"
_TAGGER_PREFIX = "tagger/"  # how the export names a tagger's backbone layer (int8_source.int8_layers)


class _BackboneNodes:
    """Matches the TFLite tensor names of backbone layers: ``NAME`` for the classifier's
    (".../backbone_1/input_bn_1/..."), ``tagger/NAME`` for a fused tagger's
    (".../tagger_1/backbone_1/conv1_1/..."); the two backbones may share layer names."""

    def __init__(self, layers: Sequence[str]) -> None:
        own = [n for n in layers if not n.startswith(_TAGGER_PREFIX)]
        tagger = [n[len(_TAGGER_PREFIX):] for n in layers if n.startswith(_TAGGER_PREFIX)]
        self._own = self._pattern(r"(^|/)", own)
        self._tagger = self._pattern(_TAGGER_SCOPE, tagger)

    @staticmethod
    def _pattern(scope: str, names: list[str]) -> re.Pattern | None:
        names_re = "|".join(map(re.escape, names))
        return re.compile(scope + r"backbone(_\d+)?/(" + names_re + r")(_\d+)?/") if names else None

    def search(self, name: str) -> bool:
        if self._tagger is not None and self._tagger.search(name):
            return True
        # A classifier layer: the match's backbone is not the tagger's.
        return self._own is not None and any(not re.search(_TAGGER_SCOPE + "$", name[: m.end(1)])
                                             for m in self._own.finditer(name))


def _backbone_nodes(layers: Sequence[str]) -> _BackboneNodes | None:
    """TFLite tensor names of the backbone layers ``layers`` (``tagger/NAME``: a fused tagger's)."""
    return _BackboneNodes(layers) if layers else None


def _converter(saved_model: Path) -> Any:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    # Builtins only: conversion fails instead of producing a model that needs the Flex delegate.
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


def convert_tflite(saved_model: str | Path, variant: str, *, representative: np.ndarray | None = None,
                   keep_float: Sequence[str] = (), dynamic: bool = False) -> bytes:
    """TFLite flatbuffer of ``variant`` (tflite | tflite_fp16 | tflite_int8) from our SavedModel.

    int8 only: ``representative`` waveforms ``[n, samples]`` calibrate the ranges (full-integer
    model); with ``dynamic`` the model is dynamic-range instead (:func:`dynamic_range_int8`, no
    calibration). Either way the front end and the backbone layers named in ``keep_float`` stay
    float32.
    """
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
    if dynamic:
        return dynamic_range_int8(*dynamic_int8_parts(saved_model), keep_float)
    if representative is None or len(representative) == 0:
        raise ValueError("int8 conversion needs representative waveforms for calibration")
    rep = np.asarray(representative, np.float32)

    def dataset():
        for i in range(len(rep)):
            yield {INPUT_NAME: rep[i : i + 1]}

    conv.representative_dataset = dataset
    from ai_edge_litert.interpreter import Interpreter

    float_model = Interpreter(model_content=_converter(saved_model).convert())
    kept = _backbone_nodes(keep_float)
    denylist = [d["name"] for d in float_model.get_tensor_details()
                if _FRONTEND_NODE.search(d["name"]) or (kept is not None and kept.search(d["name"]))]
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
        for op in tflite_ops(interp)
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


def dynamic_int8_parts(saved_model: str | Path) -> tuple[bytes, bytes]:
    """(int8-weight model, float32 model) of ``saved_model``: the two conversions every
    dynamic-range int8 model of it is assembled from by :func:`dynamic_range_int8`. Converting
    once and assembling per choice of float layers is what makes trying choices cheap
    (musicnn VGG: 1.3 s per conversion, 0.1 s per assembly)."""
    import tensorflow as tf

    conv = _converter(Path(saved_model))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert(), _converter(Path(saved_model)).convert()


def dynamic_range_int8(flat8: bytes, flat32: bytes, keep_float: Sequence[str]) -> bytes:
    """A dynamic-range model (int8 weights; each conv / dense quantises its input per example
    at run time, XNNPACK's "qd8" kernels) with the front end's and ``keep_float`` layers'
    weights put back to float32.

    Why: activation ranges then follow each input instead of one calibrated range per tensor
    (musicnn VGG, docs/benchmarks.md "int8"). The converter makes every large weight int8,
    the mel matrix included (a hybrid FULLY_CONNECTED on power spectra: measured max|dp| 0.99);
    such a weight becomes a float32 tensor holding its original value (by tensor name, from
    the float32 model of the same SavedModel), which turns its op back into a float op.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    m8 = fbu.read_model_from_bytearray(bytearray(flat8))
    m32 = fbu.read_model_from_bytearray(bytearray(flat32))
    originals = {t.name: m32.buffers[t.buffer].data for g in m32.subgraphs for t in g.tensors
                 if t.type == schema.TensorType.FLOAT32 and m32.buffers[t.buffer].data is not None}
    kept = _backbone_nodes(keep_float)
    restored, int8_left = 0, 0
    for g in m8.subgraphs:
        for t in g.tensors:
            name = t.name.decode() if isinstance(t.name, bytes) else t.name
            if t.type != schema.TensorType.INT8:
                continue
            if not (_FRONTEND_NODE.search(name) or (kept is not None and kept.search(name))):
                int8_left += 1
                continue
            if t.name not in originals:
                raise ValueError(f"int8 export: no float32 original for weight {name}")
            buf = schema.BufferT()
            buf.data = originals[t.name]
            m8.buffers.append(buf)
            t.buffer, t.type, t.quantization = len(m8.buffers) - 1, schema.TensorType.FLOAT32, None
            restored += 1
    if not restored or not int8_left:
        raise ValueError(f"int8 export: expected int8 backbone weights and float front-end weights "
                         f"(restored {restored}, int8 left {int8_left})")
    return bytes(fbu.convert_object_to_bytearray(m8))
