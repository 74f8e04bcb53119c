"""Deployment: export (SavedModel, TFLite), serving and TFLite runtimes, audio decoding, prediction.

Importing this package (and `lite`, `audio_io`, `predict`) never imports TensorFlow.
"""
