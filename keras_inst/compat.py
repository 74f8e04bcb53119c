"""The private framework APIs keras_inst relies on, each behind one function.

Keras and the TFLite interpreter expose no public way to do three things this project needs:

* :func:`symbolic_build` -- ``keras.Model._symbolic_build``: build a compiled model's optimizer
  and metrics from tensor specs before its first batch (used by
  :mod:`keras_inst.training.step_effects`, whose training step takes raw batches the model
  cannot take itself);
* :func:`no_automatic_dependency_tracking` -- ``keras.src.utils.tracking``: let an optimizer's
  ``build`` keep plain Python lists of its inner optimizers (:mod:`keras_inst.models.optimizers`);
* :func:`tflite_ops` -- ``Interpreter._get_ops_details``: the ops of a ``.tflite`` graph with their
  output tensors (:mod:`keras_inst.deploy.lite` checks which ops were quantised,
  :mod:`keras_inst.runtime.lite` reports them).

Each function looks the private name up when called and raises :class:`FrameworkChanged`
naming the framework version and the keras_inst code that needs it when the name is gone, so
an upgrade that removes or renames one fails here, loudly, and ``tests/test_compat.py`` (which
exercises every one) says which. Importing this module imports nothing but the standard
library: :mod:`keras_inst.runtime.lite` must keep working without TensorFlow or Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class FrameworkChanged(RuntimeError):
    """A private framework API keras_inst relies on is gone or changed shape."""


def _missing(what: str, version: str, used_by: str) -> FrameworkChanged:
    return FrameworkChanged(
        f"{what} is not available in {version}; keras_inst.compat must be updated for this "
        f"framework version (used by {used_by})"
    )


def _keras_version() -> str:
    import keras

    return f"keras {keras.__version__}"


def symbolic_build(model: Any, *, data_batch: tuple) -> None:
    """Build ``model``'s optimizer and compiled metrics from ``data_batch`` (tensor specs, as
    ``(inputs, labels)``), as Keras does on the first batch of ``fit``."""
    build = getattr(model, "_symbolic_build", None)
    if not callable(build):
        raise _missing("keras.Model._symbolic_build", _keras_version(), "keras_inst.training.step_effects")
    build(data_batch=data_batch)


def no_automatic_dependency_tracking(fn: F) -> F:
    """Decorator: attributes set while ``fn`` runs are not wrapped by Keras' tracking."""
    try:
        from keras.src.utils import tracking

        wrap = tracking.no_automatic_dependency_tracking
    except (ImportError, AttributeError) as e:
        raise _missing("keras.src.utils.tracking.no_automatic_dependency_tracking", _keras_version(),
                       "keras_inst.models.optimizers") from e
    return wrap(fn)


def tflite_ops(interpreter: Any) -> list[dict[str, Any]]:
    """``[{"op_name": str, "outputs": [tensor index, ...], ...}, ...]`` of a TFLite interpreter
    (``ai_edge_litert`` or ``tf.lite``), one entry per op of its graph."""
    details = getattr(interpreter, "_get_ops_details", None)
    if not callable(details):
        version = f"{type(interpreter).__module__}.{type(interpreter).__name__}"
        raise _missing("Interpreter._get_ops_details", version, "keras_inst.deploy.lite, keras_inst.runtime.lite")
    ops = details()
    if not ops or not {"op_name", "outputs"} <= set(ops[0]):
        keys = sorted(ops[0]) if ops else "no ops"
        raise FrameworkChanged(f"Interpreter._get_ops_details returned {keys}; keras_inst.compat "
                               "expects entries with 'op_name' and 'outputs'")
    return list(ops)
