"""Per-group learning rates (paper §2.4, §3.1): a new head at 0.01, a fine-tuned backbone at 1e-4.

:class:`GroupedOptimizer` wraps one inner optimizer per variable group (each with its own
learning rate / schedule) and routes every gradient to the optimizer of its variable's group.
Keras 3 variable paths do not include the sub-model name (``conv1/kernel``, not
``backbone/conv1/kernel``), so the routing is an explicit table ``variable path -> group``,
computed from the model's ``backbone`` and ``head`` sub-models and stored in the optimizer's
config, so it survives ``.keras`` save/load and resume. A variable the table does not name is an
error, never a silent default.

Under tf.distribute (``training.strategy``): ``apply`` runs in the replica context and hands each
group to its inner optimizer's own ``apply``, whose TensorFlow backend all-reduces that group's
gradients across replicas before the update, so a MirroredStrategy step on a global batch equals
a single-device step (``tests/training/test_distribute.py``). Every optimizer captures the
strategy it was made under: create the model and the optimizer in the same ``strategy.scope()``
(checked in :meth:`GroupedOptimizer.build`). Under ``mixed_float16`` Keras' ``compile`` wraps the
grouped optimizer in a ``LossScaleOptimizer`` (dynamic loss scaling); nothing to configure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from keras_inst.compat import no_automatic_dependency_tracking
from keras_inst.config.schema import ExperimentConfig


@keras.saving.register_keras_serializable(package="keras_inst")
class GroupedOptimizer(keras.optimizers.Optimizer):
    """Route each trainable variable to the inner optimizer of its group.

    Args:
        optimizers: group name -> inner optimizer (each with its own learning rate/schedule).
        assignment: variable path -> group name, for every variable that will be trained.
    """

    def __init__(
        self,
        optimizers: Mapping[str, keras.optimizers.Optimizer],
        assignment: Mapping[str, str],
        name: str = "grouped_optimizer",
        **kwargs,
    ) -> None:
        if kwargs:
            raise ValueError(f"GroupedOptimizer does not take {sorted(kwargs)}; set them on the inner optimizers")
        if not optimizers:
            raise ValueError("GroupedOptimizer needs at least one inner optimizer")
        unknown = sorted({g for g in assignment.values() if g not in optimizers})
        if unknown:
            raise ValueError(f"assignment names groups {unknown} that have no optimizer; groups: {sorted(optimizers)}")
        super().__init__(learning_rate=0.0, name=name)
        self.group_names = list(optimizers)
        self.inner_optimizers = [optimizers[g] for g in self.group_names]
        self.assignment = dict(assignment)

    def optimizer_for(self, group: str) -> keras.optimizers.Optimizer:
        return self.inner_optimizers[self.group_names.index(group)]

    def _split(self, variables: Sequence) -> list[list[int]]:
        """Indices of ``variables`` per group, in group order."""
        per_group: list[list[int]] = [[] for _ in self.group_names]
        for i, v in enumerate(variables):
            group = self.assignment.get(v.path)
            if group is None:
                raise ValueError(
                    f"variable {v.path!r} is not assigned to a group of {self.name} "
                    f"(groups: {self.group_names}); rebuild the optimizer for this model"
                )
            per_group[self.group_names.index(group)].append(i)
        return per_group

    def _check_strategy(self) -> None:
        """Fail clearly when an inner optimizer was made outside the model's tf.distribute scope.

        TensorFlow optimizers capture the current strategy when constructed; one made outside
        ``strategy.scope()`` would otherwise fail at the first step with "Mixing different
        tf.distribute.Strategy objects".
        """
        captured = [getattr(o, "_distribution_strategy", None) for o in (self, *self.inner_optimizers)]
        if all(s is None for s in captured):  # not the TensorFlow backend
            return
        import tensorflow as tf

        current = tf.distribute.get_strategy()
        if any(s is not current for s in captured):
            raise ValueError(
                f"{self.name}: its optimizers were created under a different tf.distribute strategy "
                f"than the one in use ({type(current).__name__}); build the model and the optimizer "
                "inside the same strategy.scope() (keras_inst.training.distribute.make_strategy)"
            )

    @no_automatic_dependency_tracking
    def build(self, var_list) -> None:
        self._check_strategy()
        for opt, idx in zip(self.inner_optimizers, self._split(var_list), strict=True):
            opt.build([var_list[i] for i in idx])
        super().build(var_list)

    @property
    def variables(self):
        out = list(self._variables)
        for opt in self.inner_optimizers:
            out += opt.variables
        return out

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
            self.built = True
        grads = list(grads)
        for opt, idx in zip(self.inner_optimizers, self._split(trainable_variables), strict=True):
            if idx:
                opt.apply([grads[i] for i in idx], [trainable_variables[i] for i in idx])
        self.iterations.assign_add(1)

    @property
    def learning_rate(self):
        """The first group's current learning rate (the head's, as built by :func:`build_optimizer`)."""
        return self.inner_optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        # The base class sets 0.0 during __init__, before the inner optimizers exist.
        if hasattr(self, "inner_optimizers"):
            raise ValueError("set learning rates on the inner optimizers (optimizer_for(group))")
        self._learning_rate = self._build_learning_rate(value)

    def learning_rates(self) -> dict[str, float]:
        """Current learning rate of every group (schedules evaluated at each group's step)."""
        return {g: float(keras.ops.convert_to_numpy(o.learning_rate)) for g, o in zip(self.group_names, self.inner_optimizers, strict=True)}

    def finalize_variable_values(self, var_list) -> None:
        for opt, idx in zip(self.inner_optimizers, self._split(var_list), strict=True):
            opt.finalize_variable_values([var_list[i] for i in idx])

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "optimizers": {g: keras.saving.serialize_keras_object(o) for g, o in zip(self.group_names, self.inner_optimizers, strict=True)},
            "assignment": dict(self.assignment),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        optimizers = {
            g: keras.saving.deserialize_keras_object(o, custom_objects=custom_objects)
            for g, o in config.pop("optimizers").items()
        }
        return cls(optimizers, **config)


def step_schedule(initial: float, *, step_epochs: int, factor: float, steps_per_epoch: int):
    """Learning rate multiplied by ``factor`` every ``step_epochs`` epochs (PyTorch StepLR)."""
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=initial,
        decay_steps=step_epochs * steps_per_epoch,
        decay_rate=factor,
        staircase=True,
    )


def group_assignment(model: keras.Model) -> dict[str, str]:
    """``variable path -> 'backbone' | 'head'`` for the model's trainable variables.

    Paths must be unique across the two sub-models; the model builders name their layers so.
    """
    assignment: dict[str, str] = {}
    for group in ("backbone", "head"):
        for v in model.get_layer(group).trainable_variables:
            if v.path in assignment:
                raise ValueError(f"variable path {v.path!r} occurs in two sub-models; layer names must be unique")
            assignment[v.path] = group
    return assignment


def build_optimizer(cfg: ExperimentConfig, model: keras.Model, *, steps_per_epoch: int | None = None) -> GroupedOptimizer:
    """Adam per group with the paper's step schedule, following the transfer mode.

    scratch: backbone and head both at ``head_learning_rate`` (paper §3.1: "the same learning
    rate was used for the backbone"); finetune: backbone at ``backbone_learning_rate``;
    frozen: the backbone is not trainable, so only the head group receives updates;
    ``training.trainable_blocks``: the frozen blocks' variables are not trainable, so the
    backbone group holds only the last blocks' (:mod:`keras_inst.models.blocks`).
    """
    o = cfg.optimizer
    spe = steps_per_epoch or cfg.training.steps_per_epoch
    backbone_lr = o.head_learning_rate if cfg.training.transfer == "scratch" else o.backbone_learning_rate

    def adam(lr: float, name: str) -> keras.optimizers.Adam:
        sched = step_schedule(lr, step_epochs=o.lr_step_epochs, factor=o.lr_decay_factor, steps_per_epoch=spe)
        return keras.optimizers.Adam(learning_rate=sched, clipnorm=o.clipnorm, name=name)

    return GroupedOptimizer(
        {"head": adam(o.head_learning_rate, "head_adam"), "backbone": adam(backbone_lr, "backbone_adam")},
        group_assignment(model),
    )
