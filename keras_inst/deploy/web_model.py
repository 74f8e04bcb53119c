"""The page's copy of a ``.tflite`` model: the same graph with its batch fixed at 1.

LiteRT.js (npm ``@litertjs/core`` 2.5.3) checks every input buffer against the tensor's
*shape signature* and refuses ``Float32[1, 16000]`` for ``Float32[-1, 16000]`` (measured in
Chromium 156: "TensorBuffer ranked tensor type ... does not match"), and it has no resize call.
The exports keep a dynamic batch (``predict`` runs 16 windows per call), so the page gets a copy
whose shape signatures say 1 where they said -1: each ``-1`` is overwritten in place with the
tensor's recorded ``shape`` (the batch-1 extent the converter stored), so no offset in the
flatbuffer moves and weights and ops are byte-identical. NumPy + the schema module that
``ai-edge-litert`` ships: no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Field offset of Tensor.shape_signature in the TFLite schema's vtable (schema.fbs: shape 4,
# type 6, buffer 8, name 10, quantization 12, is_variable 14, sparsity 16, shape_signature 18).
_SHAPE_SIGNATURE_FIELD = 18


def _schema() -> object:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as e:
        raise ValueError(f"fixing a model's batch for the web page needs ai-edge-litert: pip install ai-edge-litert ({e})") from None
    return schema_py_generated


def batch_one(data: bytes, *, where: str = "model") -> tuple[bytes, int]:
    """(``data`` with every ``-1`` in a tensor's shape signature set to its batch-1 extent, how
    many entries changed); ValueError naming ``where`` if ``data`` is not a TFLite flatbuffer."""
    schema = _schema()
    buf = bytearray(data)
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(f"{where}: not a TFLite model (no 'TFL3' file identifier)")
    model = schema.Model.GetRootAs(buf, 0)  # type: ignore[attr-defined]
    changed = 0
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for i in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(i)
            field = tensor._tab.Offset(_SHAPE_SIGNATURE_FIELD)
            if not field:
                continue
            start = tensor._tab.Vector(field)  # int32 [rank], little-endian
            for j in range(tensor.ShapeSignatureLength()):
                if tensor.ShapeSignature(j) == -1:
                    buf[start + 4 * j : start + 4 * j + 4] = np.int32(tensor.Shape(j)).astype("<i4").tobytes()
                    changed += 1
    return bytes(buf), changed


def batch_one_file(path: str | Path) -> bytes:
    """:func:`batch_one` of the ``.tflite`` file at ``path`` (ValueError naming it if unreadable)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the model ({e.strerror or e})") from None
    return batch_one(data, where=str(path))[0]
