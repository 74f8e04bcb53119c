"""What the int8 converter reads, and how: the source SavedModel and export.json's ``"int8"`` record.

Apart from :mod:`keras_inst.deploy.export` (which calls :func:`int8_source` and judges the
result) so that the export stays one straight sequence. Models whose backbone normalises after
the ReLU (musicnn's VGG, as classifier or as a fused model's tagger) get a float-equivalent
copy (:func:`keras_inst.deploy.fold_norms.float_equivalent_copy`) and dynamic-range int8 with
the float layers chosen on the calibration waveforms (:mod:`keras_inst.deploy.int8_select`);
the others are converted as they are, full-integer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keras_inst.deploy.equalize import input_stage
from keras_inst.deploy.fold_norms import float_equivalent_copy
from keras_inst.deploy.int8_select import candidate_layers, select_float_layers

# The two kinds of int8 model (export.json "int8" "activations"). Full-integer: every backbone
# tensor int8 with ranges calibrated on the representative waveforms (the short-chunk CNN).
# Dynamic-range: int8 weights, float activations that each conv / dense quantises per example
# at run time; for models whose calibrated ranges are too uneven (musicnn's VGG: full-integer
# max|dp| 0.315, clear agreement 0.988; dynamic 0.135 / 0.996, with conv3 and conv2 kept float
# 0.049 / 0.9995; docs/benchmarks.md "int8").
FULL_INT8 = "full-integer (int8 weights and calibrated int8 activations)"
DYNAMIC_INT8 = "dynamic-range (int8 weights, float activations quantised per example at run time)"


def int8_layers(model: Any) -> tuple[list[str], list[str]]:
    """(layers always kept float, candidates of the float selection) of ``model``: the input
    stage and the conv / dense layers of its backbone and, for a model fused with a tagger
    (:mod:`keras_inst.models.fusion`), of the tagger's backbone as ``tagger/NAME``
    (:func:`keras_inst.deploy.lite.dynamic_range_int8` reads these names). A tagger backbone
    that :mod:`~keras_inst.deploy.fold_norms` cannot fold (musicnn's own architecture) is kept
    float whole: its dynamic-range int8 convs were slower than float32 (docs/benchmarks.md
    "Sixth round")."""
    from keras_inst.deploy.fold_norms import foldable_chain
    from keras_inst.models.fusion_layers import TAGGER_LAYER, is_fused

    own = model.get_layer("backbone")
    always, candidates = list(input_stage(own)), list(candidate_layers(own))
    if is_fused(model):
        tagger, prefix = model.get_layer(TAGGER_LAYER).get_layer("backbone"), f"{TAGGER_LAYER}/"
        if foldable_chain(tagger) is None:
            always += [prefix + lay.name for lay in tagger.layers if lay.weights or lay.name in input_stage(tagger)]
        else:
            always += [prefix + n for n in input_stage(tagger)]
            candidates += [prefix + n for n in candidate_layers(tagger)]
    return always, candidates


def int8_source(model: Any, tmp: Path, sm_path: Path, *, representative: np.ndarray, check_inputs: np.ndarray,
                ref: dict[str, np.ndarray], save: Callable[[Any, Path], None],
                predict: Callable[[Any, np.ndarray], dict[str, np.ndarray]], copy_tolerance: float,
                target: float, max_layers: int) -> dict[str, Any]:
    """The SavedModel the int8 converter reads (key ``"saved_model"``) and export.json's
    ``"int8"`` record.

    For a model with a float-equivalent copy (folded or equalised) the copy must reproduce
    ``ref`` (Keras outputs on ``check_inputs``) within ``copy_tolerance`` or ValueError; it is
    saved with ``save(dual, path)`` in ``tmp`` and its dynamic-range int8 flatbuffer is built
    here (key ``"tflite"``), keeping float the layers chosen on ``representative`` down to
    ``target`` calibration max|dp| (at most ``max_layers``). ``predict(dual, x)`` runs a
    dual-output Keras model. Otherwise the record names ``sm_path`` (full-integer)."""
    from keras_inst.runtime.keras_model import dual_output_model

    copy, names, how, note = float_equivalent_copy(model, representative)  # folded (musicnn VGG) or equalised
    always, candidates = int8_layers(model)
    record: dict[str, Any] = {"front_end": "float32 (selective quantisation)",
                              "activations": DYNAMIC_INT8 if names else FULL_INT8,
                              "float_layers": always, "equalised": names, "copy": how, **note,
                              "saved_model": sm_path}
    if not names:
        return record
    dual = dual_output_model(copy)
    diff = float(np.abs(predict(dual, check_inputs)["probabilities"] - ref["probabilities"]).max())
    if diff > copy_tolerance:
        raise ValueError(f"int8 export: the float-equivalent copy of the model ({how}) differs from it by "
                         f"{diff:.3g} (> {copy_tolerance:g}); changed layers {names}")
    record["equalised_max_abs_diff"] = diff
    record["saved_model"] = tmp / ".scratch_int8_saved_model"
    save(dual, record["saved_model"])
    cal_ref = predict(dual_output_model(model), np.asarray(representative, np.float32))["probabilities"]
    record["tflite"], selection = select_float_layers(
        record["saved_model"], tmp, waveforms=representative, reference=cal_ref, always_float=always,
        candidates=candidates, target=target, max_layers=max_layers)
    record["float_layers"] = [*always, *selection["chosen"]]
    record["float_selection"] = selection
    return record
