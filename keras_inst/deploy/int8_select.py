"""Which layers a dynamic-range int8 model keeps in float32: a greedy choice on calibration data.

Why: in the musicnn VGG's dynamic-range int8 model (:mod:`keras_inst.deploy.lite`) the error
comes from the per-example int8 rounding at the inputs of a few convolutions, and keeping one
or two of them float removes most of it (docs/benchmarks.md "int8"). Which ones depends on the
weights, so the export chooses them on the calibration waveforms (the run's validation split,
never the check data the export is then judged on) with :func:`greedy_float_layers`, and
records every step in export.json's ``"int8"`` entry (``"float_selection"``).

:func:`select_float_layers` wires the rule to the real conversion: the SavedModel is converted
twice (int8 weights, float32) and each choice of float layers is only a re-assembly of those two
flatbuffers (:func:`keras_inst.deploy.lite.dynamic_range_int8`), run on the calibration
waveforms by the same runtime users load (:class:`keras_inst.runtime.lite.LiteClassifier`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RULE = ("greedy on the calibration waveforms: start with no backbone conv/dense layer kept float; while the "
        "int8 model's max|p - Keras p| on them exceeds the target and fewer than max_layers are kept, keep "
        "float the candidate that lowers it most (stop if none lowers it)")


def greedy_float_layers(error: Callable[[tuple[str, ...]], float], candidates: Sequence[str], *,
                        target: float, max_layers: int) -> dict[str, Any]:
    """Run :data:`RULE` with ``error(kept_float_layers)`` (the calibration max|dp| of the int8
    model that keeps those layers float): export.json's ``"float_selection"`` record.

    ``steps[0]`` is the model with nothing kept; each later step names the layer it added, its
    error and every candidate's error tried at that step (``tried``), so the record shows each
    choice was the lowest and lowered the error. ``reached_target`` says whether it stopped
    under the target (otherwise the export's own check decides)."""
    if target <= 0 or max_layers < 0:
        raise ValueError(f"float-layer selection needs target > 0 and max_layers >= 0 (got {target}, {max_layers})")
    kept: tuple[str, ...] = ()
    err = float(error(kept))
    steps: list[dict[str, Any]] = [{"float": [], "calibration_max_abs_diff": err}]
    while err > target and len(kept) < max_layers:
        tried = {c: float(error(kept + (c,))) for c in candidates if c not in kept}
        if not tried:
            break
        best = min(tried, key=tried.get)
        if tried[best] >= err:  # nothing helps: keeping more float would only cost speed
            steps.append({"float": list(kept), "added": None, "calibration_max_abs_diff": err, "tried": tried})
            break
        kept, err = kept + (best,), tried[best]
        steps.append({"float": list(kept), "added": best, "calibration_max_abs_diff": err, "tried": tried})
    return {"rule": RULE, "target_max_abs_diff": target, "max_layers": max_layers, "candidates": list(candidates),
            "chosen": list(kept), "calibration_max_abs_diff": err, "reached_target": err <= target, "steps": steps}


def candidate_layers(backbone: Any) -> list[str]:
    """Names of ``backbone``'s Conv2D and Dense layers: the ops whose int8 weights make them
    quantise their input at run time. (The head's dense layers are not offered: the converter
    folds them into ops named after the head's batch norm, and keeping the head float changed
    nothing measurable on the musicnn VGG.)"""
    import keras

    return [lay.name for lay in backbone.layers if isinstance(lay, (keras.layers.Conv2D, keras.layers.Dense))]


def select_float_layers(saved_model: str | Path, scratch: Path, *, waveforms: np.ndarray, reference: np.ndarray,
                        always_float: Sequence[str], candidates: Sequence[str], target: float,
                        max_layers: int) -> tuple[bytes, dict[str, Any]]:
    """(dynamic-range int8 flatbuffer keeping ``always_float`` + the chosen layers float, the
    selection record) for ``saved_model``; ``reference [n, C]`` are the Keras probabilities on
    ``waveforms [n, samples]`` (the calibration split). ``scratch`` is a folder for the
    candidate models (each is overwritten by the next)."""
    from keras_inst.deploy.lite import dynamic_int8_parts, dynamic_range_int8
    from keras_inst.runtime.lite import LiteClassifier

    flat8, flat32 = dynamic_int8_parts(saved_model)
    path = Path(scratch) / "candidate_int8.tflite"
    x = np.asarray(waveforms, np.float32)

    def error(kept: tuple[str, ...]) -> float:
        path.write_bytes(dynamic_range_int8(flat8, flat32, [*always_float, *kept]))
        got = LiteClassifier(path).run(x)["probabilities"]  # [n, C]
        return float(np.abs(got.astype(np.float64) - reference).max())

    record = greedy_float_layers(error, candidates, target=target, max_layers=max_layers)
    path.unlink(missing_ok=True)
    # Re-assembling the chosen model (0.1 s) is cheaper than keeping every candidate's bytes.
    return dynamic_range_int8(flat8, flat32, [*always_float, *record["chosen"]]), record
