"""The file names of a run directory and of an export directory, defined once.

A run directory is what ``python -m keras_inst.train`` leaves; an export directory is what
``python -m keras_inst.export`` writes. Every module that reads or writes these files takes the
names from here (and the serving signature's names, shared by the SavedModel and TFLite forms).
"""

from __future__ import annotations

# Run directory (keras_inst.training.train).
RUN_MODEL = "model.keras"
RUN_CONFIG = "config.yaml"
RUN_REPORT = "report.json"  # holds "thresholds": {class: t} tuned on the validation split

# Export directory (keras_inst.deploy.export).
EXPORT_JSON = "export.json"  # class names, sample rate, input length, thresholds, checks
LABELS_FILE = "labels.txt"  # class names, one per line, in output order
SAVED_MODEL_PB = "saved_model.pb"  # marks a SavedModel directory
# Export format -> file (or folder) name; the first TFLite entry is the default to run.
VARIANT_FILES: dict[str, str] = {
    "saved_model": "saved_model",
    "tflite": "model_float32.tflite",
    "tflite_fp16": "model_float16.tflite",
    "tflite_int8": "model_int8.tflite",
}
# Which variant of an export directory load_artifact runs when none is asked for.
DEFAULT_VARIANT_ORDER: tuple[str, ...] = ("tflite", "tflite_fp16", "tflite_int8", "saved_model")

# Serving signature of every exported form: waveform [batch, samples] float32 ->
# probabilities [batch, C], embeddings [batch, D]; the SavedModel adds a "metadata" signature.
SIGNATURE = "serving_default"
METADATA_SIGNATURE = "metadata"
INPUT_NAME = "waveform"
OUTPUT_NAMES: tuple[str, ...] = ("probabilities", "embeddings")
