"""The masked streaming AUC every keras_inst model is compiled with (``keras_inst>DefinedClassesAUC``).

It lives with the models, not with training, because a saved model or checkpoint carries it:
:func:`keras_inst.models.short_chunk.load_model` registers it before deserialising, and loading
a model must not import the training package. :func:`keras_inst.training.metrics.keras_metrics`
compiles it.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def defined_auc_class() -> type:
    """Build (once) and register the Keras metric class; keeps ``import keras`` out of module import."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="keras_inst")
    class DefinedClassesAUC(keras.metrics.AUC):
        """Multi-label macro AUC over the labels that have both positives and negatives.

        keras.metrics.AUC scores a label without positives as 0 and still averages it in
        (a set where one class is absent reads 0.375 instead of 0.75); this mask keeps the
        validation ROC-AUC -- which picks the best checkpoint and is the tuner's objective -- equal
        to the exact macro average of :func:`keras_inst.training.metrics.evaluate_predictions`
        up to threshold binning.
        """

        def result(self):
            if not self.multi_label:
                return super().result()
            # At thresholds[0] (just below 0) every example is predicted positive, so
            # tp+fn counts the positives and fp+tn the negatives of each label ([num_labels] each).
            pos = self.true_positives[0] + self.false_negatives[0]
            neg = self.false_positives[0] + self.true_negatives[0]
            mask = ops.cast(ops.logical_and(pos > 0, neg > 0), self.dtype)
            saved = self.label_weights
            self.label_weights = mask if saved is None else mask * saved
            try:
                return super().result()
            finally:
                self.label_weights = saved

    return DefinedClassesAUC
