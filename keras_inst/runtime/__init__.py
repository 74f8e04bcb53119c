"""Load and run a trained classifier in any of its forms (the layer between models and training/deploy).

:mod:`~keras_inst.runtime.artifacts` names the files of run and export directories once;
:mod:`~keras_inst.runtime.loader` (:func:`~keras_inst.runtime.loader.load_artifact`) opens a
run directory, ``.keras`` file, export directory, SavedModel or ``.tflite`` file as one
classifier record; :mod:`~keras_inst.runtime.lite` runs ``.tflite`` models without TensorFlow (:mod:`~keras_inst.runtime.tf_free` runs code as that install would);
:mod:`~keras_inst.runtime.keras_model` reads a Keras model's sizes and its two-output form.
Nothing here imports ``keras_inst.training`` or ``keras_inst.deploy``, and importing the
package imports no TensorFlow.
"""
