"""The TFLite runtime: run an exported ``.tflite`` classifier without TensorFlow.

Importing this module imports only NumPy and the standard library; :class:`LiteClassifier`
needs ``ai_edge_litert`` (imported when used), so ``.tflite`` models run where TensorFlow and
Keras are not installed (``pip install ai-edge-litert numpy scipy soundfile`` plus this package
installed with ``--no-deps``). The conversion itself, which needs TensorFlow, is
:mod:`keras_inst.deploy.lite`.

Every ``.tflite`` model written by ``python -m keras_inst.export`` (float32, float16, int8) is
ONE file with the signature of :mod:`keras_inst.runtime.artifacts`: input ``waveform`` float32
``[batch, samples]``, outputs ``probabilities`` ``[batch, C]`` and ``embeddings`` ``[batch, D]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_inst.compat import tflite_ops
from keras_inst.runtime.artifacts import INPUT_NAME, OUTPUT_NAMES, SIGNATURE


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
        return {d["op_name"] for d in tflite_ops(self._interpreter)}

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
