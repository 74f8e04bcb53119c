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
# and, under PRESENCE_RULE_KEY, the presence rule calibrated on its songs (PresenceRule.to_json)
PRESENCE_RULE_KEY = "presence_rule"  # in report.json and export.json
# Absolute locations of the run's data (config.yaml may hold roots relative to where the run
# was started): keras_inst.runtime.data_locations writes and reads it.
RUN_DATA_LOCATIONS = "data_locations.json"

# Export directory (keras_inst.deploy.export).
EXPORT_JSON = "export.json"  # class names, sample rate, input length, thresholds, presence_rule, checks
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


def failed_name(name: str) -> str:
    """Where an export keeps an artifact that failed its check (for inspection; the loader
    refuses it): ``model_int8.tflite`` -> ``model_int8.FAILED.tflite``, ``saved_model`` ->
    ``saved_model.FAILED``."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.FAILED.{suffix}" if dot else f"{name}.FAILED"
