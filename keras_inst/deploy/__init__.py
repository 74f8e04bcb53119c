"""Deployment: export (SavedModel, TFLite conversion), audio decoding, prediction and its plots.

Loading and running the exported forms is :mod:`keras_inst.runtime`. Importing this package
(and `audio_io`, `predict`, `plot`) never imports TensorFlow.
"""
