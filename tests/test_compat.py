"""keras_inst.compat: every private framework API the project relies on still exists and still
does what keras_inst needs. A framework upgrade that removes or renames one fails HERE, with
:class:`keras_inst.compat.FrameworkChanged` naming the API, the version and the keras_inst code
that uses it -- update ``keras_inst/compat.py`` for the new version."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from keras_inst import compat


def test_importing_compat_and_the_tflite_runtime_imports_no_framework():
    code = ("import sys, keras_inst.compat, keras_inst.runtime.lite; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def _compiled_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["mae"])
    return model


def test_symbolic_build_builds_the_optimizer_from_tensor_specs():
    import tensorflow as tf

    model = _compiled_model()
    assert not model.optimizer.built
    compat.symbolic_build(model, data_batch=(tf.TensorSpec((None, 4)), tf.TensorSpec((None, 2))))
    assert model.optimizer.built
    # Adam: iteration count + learning rate, then two slots per weight (kernel [4, 2], bias [2])
    slots = [v for v in model.optimizer.variables if tuple(v.shape) in ((4, 2), (2,))]
    assert len(slots) == 4


def test_no_automatic_dependency_tracking_leaves_attributes_untracked():
    import keras

    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.tracked = [keras.layers.Dense(2)]
            self._set_plain()

        @compat.no_automatic_dependency_tracking
        def _set_plain(self):
            self.plain = [keras.layers.Dense(3)]

    h = Holder()
    assert type(h.plain) is not type(h.tracked)  # Keras wrapped one list, not the other
    assert h.plain[0] not in h._flatten_layers(include_self=False)
    assert h.tracked[0] in h._flatten_layers(include_self=False)


def test_tflite_ops_lists_every_op_with_its_outputs():
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = _compiled_model()
    interp = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
    ops = compat.tflite_ops(interp)
    names = {op["op_name"] for op in ops}
    assert {"FULLY_CONNECTED", "LOGISTIC"} <= names
    n_tensors = len(interp.get_tensor_details())
    assert all(0 <= i < n_tensors for op in ops for i in op["outputs"])
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.ones((1, 4), np.float32))
    interp.invoke()  # the interpreter still runs after the ops were listed


class _Renamed:
    """An object of a framework version where the private name is gone."""


def test_a_missing_private_api_fails_loudly_naming_it():
    with pytest.raises(compat.FrameworkChanged, match=r"keras.Model._symbolic_build is not available in keras \d"):
        compat.symbolic_build(_Renamed(), data_batch=())
    with pytest.raises(compat.FrameworkChanged, match=r"_get_ops_details is not available .*keras_inst.deploy.lite"):
        compat.tflite_ops(_Renamed())
