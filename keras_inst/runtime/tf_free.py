"""Run Python code as the TFLite-only install would: TensorFlow and Keras unimportable.

The lite install (``pip install keras_inst[lite]``) has NumPy, SciPy, soundfile and
ai-edge-litert but no TensorFlow or Keras; :mod:`keras_inst.runtime.lite` and ``predict`` with a
``.tflite`` model must work there. Benchmarks and checks that measure that path
(``scripts/bench_shipped.py``, ``scripts/agree_shipped.py``) run it in a fresh interpreter whose
first statements are :data:`BLOCK_TF`: an import hook that makes every module of
:data:`BLOCKED_PACKAGES` raise ImportError, and a check that it does.

Importing this module imports only the standard library.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Top-level packages the lite install lacks (tf_keras and tensorboard come with TensorFlow).
BLOCKED_PACKAGES: tuple[str, ...] = ("tensorflow", "keras", "tf_keras", "tensorboard")

BLOCK_TF = f"""
import sys
class _BlockTF:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED_PACKAGES!r}:
            raise ImportError(f"import of {{name}} is blocked (TensorFlow-free run)")
        return None
sys.meta_path.insert(0, _BlockTF())
try:
    import keras
except ImportError:
    pass
else:
    raise SystemExit("the TensorFlow import blocker does not work")
"""


def python_command(code: str, *, tf_free: bool) -> list[str]:
    """``[python, "-c", code]`` of this interpreter, with :data:`BLOCK_TF` first when ``tf_free``."""
    return [sys.executable, "-c", (BLOCK_TF if tf_free else "") + code]


def run_python(code: str, *, tf_free: bool, cwd: str | Path | None = None,
               timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (TensorFlow's C++ logging quietened), output captured."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(python_command(code, tf_free=tf_free), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
