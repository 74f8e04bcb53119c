"""keras_inst.runtime.tf_free: code run as the TFLite-only install would run it."""

from __future__ import annotations

import sys

from keras_inst.runtime.tf_free import BLOCK_TF, BLOCKED_PACKAGES, python_command, run_python


def test_tensorflow_keras_and_their_companions_cannot_be_imported(tmp_path):
    code = f"""
blocked = []
for name in {BLOCKED_PACKAGES!r} + ("tensorflow.lite", "keras.layers"):
    try:
        __import__(name)
    except ImportError as e:
        blocked.append("blocked" in str(e))
import numpy
print(blocked, numpy.__name__)
"""
    proc = run_python(code, tf_free=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{[True] * (len(BLOCKED_PACKAGES) + 2)} numpy"


def test_the_blocker_is_prepended_only_when_asked():
    assert python_command("print(1)", tf_free=True) == [sys.executable, "-c", BLOCK_TF + "print(1)"]
    assert python_command("print(1)", tf_free=False) == [sys.executable, "-c", "print(1)"]
    proc = run_python("import sys; print(sys.argv)", tf_free=False, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "['-c']"
