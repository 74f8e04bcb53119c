"""training.effects_in: train_step -- the training step mixes raw batches on its own device.

A step on a raw batch must equal a step on the stream's mixed batch (same initial weights, same
examples), under the default strategy and split over 2 replicas of MirroredStrategy; the saved
model stays the plain waveform classifier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "data"))  # test_pipeline's sine-stem trees

from test_pipeline import make_config, write_cached_trees  # noqa: E402

SR = 16000
TINY = ["model.architecture=short_chunk_cnn", "features.n_mels=32", "audio.chunk_seconds=1.0",
        "model.channels=[4,8,8,8]", "model.head_units=8", "training.batch_size=4",
        "effects.reverb.probability=1.0", "effects.compressor.probability=0.5",
        "effects.noise.probability=0.5", "mixing.p_musical=0.4"]

# One training step, from the same initial weights, on the mixed stream and on the raw stream
# (effects in the step); the raw step also split over 2 replicas. A fresh process: logical
# devices must be configured before TensorFlow starts.
SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_pipeline import make_config
from keras_inst.data.pipeline import build_data
from keras_inst.training.distribute import make_strategy, synchronize_batch_norm
from keras_inst.training.step_effects import prepare_fit
from keras_inst.training.train import build_compiled_model

tree, sets = __import__("pathlib").Path(sys.argv[2]), json.loads(sys.argv[3])
out = {}

def one_step(effects_in, strategy):
    cfg = make_config(tree, *sets, f"training.effects_in={effects_in}")
    data = build_data(cfg, run_dir=tree / "run", progress=False)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = build_compiled_model(cfg)
        synchronize_batch_norm(model, strategy.num_replicas_in_sync)
        prepare_fit(model, cfg)
    before = [np.array(v) for v in model.weights]
    model.fit(data.train, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    out[f"jit_{effects_in}"] = bool(model.jit_compile)
    return model, [np.array(v) - b for v, b in zip(model.weights, before)]

default = make_strategy("default")
mixed, d_mixed = one_step("pipeline", default)
raw, d_raw = one_step("train_step", default)
two = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
_, d_mirrored_mixed = one_step("pipeline", two)
mirrored, d_mirrored = one_step("train_step", two)
scale = max(float(np.abs(d).max()) for d in d_mixed)
out["moved"] = scale
out["raw_vs_mixed"] = max(float(np.abs(a - b).max()) for a, b in zip(d_raw, d_mixed)) / scale
out["mirrored_vs_mixed"] = max(float(np.abs(a - b).max()) for a, b in zip(d_mirrored, d_mirrored_mixed)) / scale
out["mirrored_vs_single"] = max(float(np.abs(a - b).max()) for a, b in zip(d_mirrored, d_mixed)) / scale
try:
    prepare_fit(raw, make_config(tree, *sets, "training.effects_in=train_step"))
    out["twice"] = "no error"
except ValueError as e:
    out["twice"] = str(e)
raw.save(sys.argv[4])
loaded = keras.saving.load_model(sys.argv[4])
out["saved_input_shape"] = list(loaded.inputs[0].shape)
x = np.zeros((2, loaded.inputs[0].shape[-1]), np.float32)
out["saved_predicts"] = list(np.asarray(loaded.predict(x, verbose=0)).shape)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = write_cached_trees(tmp_path_factory.mktemp("step_effects"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS / "data"), str(tmp),
                           json.dumps(TINY), str(tmp / "raw.keras")],
                          capture_output=True, text=True, env=env, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
def test_a_step_on_raw_batches_equals_a_step_on_mixed_batches(steps: dict) -> None:
    assert steps["moved"] > 1e-4  # the step did train
    assert steps["raw_vs_mixed"] < 1e-4


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
def test_split_over_two_replicas_the_raw_step_still_equals_the_mixed_step(steps: dict) -> None:
    # Each replica mixes its own half: the same step as the 2-replica step on mixed batches, and
    # (up to the order of the gradients' all-reduce) as the one-device step.
    assert steps["mirrored_vs_mixed"] < 1e-4
    assert steps["mirrored_vs_single"] < 2e-3


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
def test_mixing_in_the_step_twice_is_refused(steps: dict) -> None:
    assert "already mixes raw batches" in steps["twice"]


@pytest.mark.slow  # long (see pyproject's markers); run with -m slow
def test_effects_in_the_step_turn_xla_off_and_save_a_waveform_classifier(steps: dict) -> None:
    assert steps["jit_train_step"] is False
    assert steps["saved_input_shape"] == [None, SR]  # 1-s chunks in, as every exported model
    assert steps["saved_predicts"] == [2, 15]


def test_default_config_leaves_the_model_alone(tmp_path: Path) -> None:
    from keras_inst.training.step_effects import prepare_fit

    class Model:
        train_step = "untouched"

    m = Model()
    prepare_fit(m, make_config(tmp_path))
    assert m.train_step == "untouched"
