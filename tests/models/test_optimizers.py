"""GroupedOptimizer: per-group learning rates, frozen backbones, save/load and resume."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_inst.config.io import load_config
from keras_inst.models.optimizers import GroupedOptimizer, build_optimizer, group_assignment


def toy_model(seed: int = 0) -> keras.Model:
    """A model with the same sub-model structure as keras_inst.models.short_chunk: backbone (with BN) + head."""
    keras.utils.set_random_seed(seed)
    i = keras.Input((8,))
    x = keras.layers.Dense(16, name="b_dense")(i)
    x = keras.layers.BatchNormalization(name="b_bn")(x)
    backbone = keras.Model(i, keras.layers.ReLU(name="b_relu")(x), name="backbone")
    j = keras.Input((16,))
    head = keras.Model(j, keras.layers.Dense(3, name="h_dense")(j), name="head")
    w = keras.Input((8,))
    return keras.Model(w, keras.layers.Activation("sigmoid", name="probabilities")(head(backbone(w))), name="toy")


def data(n: int = 64, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, :3] > 0).astype("float32")
    return x, y


def cfg(transfer: str = "finetune", **over):
    sets = [f"training.transfer={transfer}", "training.steps_per_epoch=4", "optimizer.lr_step_epochs=1", "optimizer.lr_decay_factor=0.5"]
    if transfer == "scratch":
        sets.append("training.pretrained=null")
    sets += [f"{k}={v}" for k, v in over.items()]
    return load_config("paper", sets)


def compiled(model, c):
    if c.training.transfer == "frozen":
        model.get_layer("backbone").trainable = False
    model.compile(optimizer=build_optimizer(c, model), loss="binary_crossentropy")
    return model


def weights(layer):
    return [np.array(v) for v in layer.weights]


def test_backbone_and_head_updates_differ_by_the_configured_ratio():
    # One Adam step moves each parameter by ~lr (Adam normalises the gradient), so the mean
    # absolute update of each group is its learning rate: 0.01 (head) vs 0.0001 (backbone).
    c = cfg("finetune")
    m = compiled(toy_model(), c)
    x, y = data()
    b0, h0 = weights(m.get_layer("backbone").get_layer("b_dense")), weights(m.get_layer("head"))
    m.train_on_batch(x, y)
    b1, h1 = weights(m.get_layer("backbone").get_layer("b_dense")), weights(m.get_layer("head"))
    db = np.mean(np.abs(b1[0] - b0[0]))
    dh = np.mean(np.abs(h1[0] - h0[0]))
    assert db == pytest.approx(1e-4, rel=0.05)
    assert dh == pytest.approx(1e-2, rel=0.05)
    assert dh / db == pytest.approx(100.0, rel=0.1)


def test_scratch_uses_the_head_rate_for_both_groups():
    c = cfg("scratch")
    m = compiled(toy_model(), c)
    assert m.optimizer.learning_rates() == pytest.approx({"head": 0.01, "backbone": 0.01})


def test_frozen_backbone_does_not_move_including_batchnorm_statistics():
    c = cfg("frozen")
    m = compiled(toy_model(), c)
    x, y = data()
    before = weights(m.get_layer("backbone"))
    head_before = weights(m.get_layer("head"))
    m.fit(x, y, batch_size=16, epochs=2, verbose=0)
    after = weights(m.get_layer("backbone"))
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)  # moving mean/variance included
    assert any(np.abs(a - b).max() > 0 for a, b in zip(head_before, weights(m.get_layer("head")), strict=True))
    assert set(m.optimizer.assignment.values()) == {"head"}


def test_step_schedule_every_epoch_by_factor():
    c = cfg("finetune")
    m = compiled(toy_model(), c)
    x, y = data()
    m.fit(x, y, batch_size=16, epochs=2, verbose=0)  # 4 steps per epoch, 8 steps in total
    # after 8 steps: two decays of 0.5
    assert m.optimizer.learning_rates() == pytest.approx({"head": 0.01 * 0.25, "backbone": 1e-4 * 0.25})


def test_unassigned_variable_is_an_error():
    m = toy_model()
    opt = GroupedOptimizer({"head": keras.optimizers.Adam()}, {"h_dense/kernel": "head"})
    with pytest.raises(ValueError, match="not assigned"):
        opt.build(m.trainable_variables)
    with pytest.raises(ValueError, match="no optimizer"):
        GroupedOptimizer({"head": keras.optimizers.Adam()}, {"x": "backbone"})


def test_keras_round_trip_keeps_groups_rates_and_state(tmp_path):
    c = cfg("finetune")
    m = compiled(toy_model(), c)
    x, y = data()
    m.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    m.save(path)
    r = keras.saving.load_model(path)
    assert isinstance(r.optimizer, GroupedOptimizer)
    assert r.optimizer.assignment == m.optimizer.assignment
    assert r.optimizer.learning_rates() == pytest.approx(m.optimizer.learning_rates())
    for a, b in zip(m.optimizer.variables, r.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    x, y = data()
    c = cfg("finetune")
    straight = compiled(toy_model(seed=3), c)
    straight.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)

    first = compiled(toy_model(seed=3), c)
    first.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    first.save(tmp_path / "ckpt.keras")
    resumed = keras.saving.load_model(tmp_path / "ckpt.keras")
    resumed.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, verbose=0, shuffle=False)
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=0, atol=1e-6)


def test_group_assignment_covers_backbone_and_head():
    m = toy_model()
    a = group_assignment(m)
    assert a == {"b_dense/kernel": "backbone", "b_dense/bias": "backbone", "b_bn/gamma": "backbone", "b_bn/beta": "backbone", "h_dense/kernel": "head", "h_dense/bias": "head"}
